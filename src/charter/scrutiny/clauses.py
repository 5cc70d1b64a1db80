"""A constitution's clauses as texts to compare, and what orders two of them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from charter.constitution.model import Constitution


@dataclass(frozen=True)
class ClauseText:
    id: str
    kind: str  # principle | trait | hard_line | protection | default
    text: str  # what the clause asks; a default's text with its current choice
    rationale: str
    tags: tuple[str, ...]
    tier: int | None  # principles only: 0 is the highest tier; None when in no tier


def clause_texts(constitution: Constitution) -> list[ClauseText]:
    out = []
    for kind, clauses in constitution.clauses_by_kind().items():
        for clause in clauses:
            text = clause.text
            if kind == "default":
                text = f"{clause.text} Currently: {clause.instruction()}"
            tier = constitution.tier_of(clause.id) if kind == "principle" else None
            out.append(ClauseText(clause.id, kind, text, clause.rationale or "", tuple(getattr(clause, "tags", ())),
                                  tier))
    return out


def uses_tiers(constitution: Constitution) -> bool:
    return constitution.priorities is not None and bool(constitution.priorities.tiers)


def which_wins(constitution: Constitution, a: ClauseText, b: ClauseText) -> str | None:
    """The id of the clause the constitution puts first, or None where it does not say.

    Hard lines and protections come before any principle (nothing overrides them); between two
    principles, the higher tier wins; in one tier, or without tiers, the text alone does not say."""
    absolute = ("hard_line", "protection")
    if (a.kind in absolute) != (b.kind in absolute):
        return a.id if a.kind in absolute else b.id
    if a.kind == b.kind == "principle" and a.tier is not None and b.tier is not None and a.tier != b.tier:
        return a.id if a.tier < b.tier else b.id
    return None


def gist(text: str) -> str:
    """What a clause asks, without the comparison frame every principle shares ("Choose the response
    that ..."): the frame makes any two principles look alike to an embedding model."""
    text = re.sub(r"^(?:choose|prefer|pick) the (?:response|answer|reply)\s+(?:that|which)\s+", "", text.strip(),
                  flags=re.IGNORECASE)
    return text.rstrip(".")
