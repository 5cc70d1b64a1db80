"""Scrutiny of a valid constitution: duplicates, vague wording, gaps, likely conflicts.

Schema errors stop loading (see load.py); these checks are warnings a careful author wants to see.
They are rule-based so `charter lint` stays instant and needs no model.
"""

from __future__ import annotations

import re
from pathlib import Path

from charter.constitution.model import Constitution
from charter.errors import Problem

_WORD = re.compile(r"\w+", re.UNICODE)
_VAGUE = ("good", "bad", "appropriate", "nice", "proper", "right thing", "reasonable", "ok")
_OPPOSITES = (("concise", "detailed"), ("formal", "informal"), ("always", "never"), ("refuse", "comply"))


def lint(constitution: Constitution, path: str | Path = "<constitution>",
         lines: dict[str, int] | None = None) -> list[Problem]:
    """Warnings about a constitution that loaded. `lines` maps clause id -> line for locations."""
    where = lines or {}
    name = str(path)
    problems: list[Problem] = []

    def warn(clause_id: str, field: str, message: str) -> None:
        problems.append(Problem(name, where.get(clause_id, 1), f"{clause_id}.{field}" if clause_id else field,
                                message, severity="warning"))

    texts = [(c.id, c.text) for clauses in constitution.clauses_by_kind().values() for c in clauses]
    for i, (id_a, text_a) in enumerate(texts):
        for id_b, text_b in texts[i + 1:]:
            similarity = _jaccard(text_a, text_b)
            if similarity >= 0.8:
                warn(id_b, "text", f"nearly duplicates '{id_a}' ({similarity:.0%} shared words); merge them or "
                                   "say what distinguishes them")
    for principle in constitution.principles:
        words = _words(principle.text)
        if len(words) < 6:
            warn(principle.id, "text", "is very short; say concretely what a better response does")
        vague = [v for v in _VAGUE if re.search(rf"\b{re.escape(v)}\b", principle.text.lower())]
        if vague and len(words) < 14:
            warn(principle.id, "text", f"leans on vague words ({', '.join(vague)}); say what they mean here")
    for line in constitution.hard_lines:
        if not line.examples:
            warn(line.id, "examples", "has no example requests; guards and evals need a few that cross the line")
        if not line.lookalikes:
            warn(line.id, "lookalikes", "has no look-alike requests; without them guards over-block")
    for trait in constitution.traits:
        if not _words(trait.text)[:1] or _words(trait.text)[0].lower() not in ("i", "i'm", "my"):
            if re.match(r"^[A-Za-z]", trait.text):
                warn(trait.id, "text", "is not written in the first person ('I am ...')")
        if not trait.questions:
            warn(trait.id, "questions", "has no example questions; character data needs some")
    problems.extend(_gaps(constitution, warn))
    return problems


def _gaps(constitution: Constitution, warn) -> list[Problem]:
    if not constitution.hard_lines:
        warn("", "hard_lines", "none defined; most deployments need at least one line nothing may override")
    if not constitution.principles_for("rl"):
        warn("", "principles", "none usable for RL-CAI ('rl' in use); preference labelling needs at least one")
    if not constitution.traits:
        warn("", "traits", "none defined; character data and evals will be empty")
    if not any("user" in d.adjustable_by for d in constitution.defaults):
        warn("", "defaults", "no default is adjustable by users; user overlays will have nothing to switch")
    # Two defaults' current instructions that pull in opposite directions are a likely conflict.
    current = [(d.id, d.instruction().lower()) for d in constitution.defaults]
    for a, b in _OPPOSITES:
        has_a = [i for i, t in current if re.search(rf"\b{a}\b", t)]
        has_b = [i for i, t in current if re.search(rf"\b{b}\b", t)]
        if has_a and has_b and set(has_a) != set(has_b):
            warn(has_b[0], "value", f"its instruction says '{b}' while '{has_a[0]}' says '{a}'; check they agree")
    return []


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _jaccard(a: str, b: str) -> float:
    # For scripts without spaces (Chinese, Japanese) compare characters, not whitespace words.
    set_a = set(_words(a.lower())) if " " in a.strip() else set(a)
    set_b = set(_words(b.lower())) if " " in b.strip() else set(b)
    if not set_a or not set_b:
        return 0.0
    return len(set_a & set_b) / len(set_a | set_b)
