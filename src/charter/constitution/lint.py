"""Scrutiny of a valid constitution: duplicates, vague wording, gaps, likely conflicts.

Schema errors stop loading (see load.py); these checks are warnings a careful author wants to see.
They are rule-based so `charter lint` stays instant and needs no model.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from pathlib import Path

from charter.constitution.model import Constitution
from charter.errors import Problem

_WORD = re.compile(r"\w+", re.UNICODE)
_VAGUE = ("good", "bad", "appropriate", "nice", "proper", "right thing", "reasonable", "ok")
_OPPOSITES = (("concise", "detailed"), ("formal", "informal"), ("always", "never"), ("refuse", "comply"))
NEAR_DUPLICATE = 0.8  # share of words two clauses have in common to be flagged
MAX_PER_KIND = 50  # near-duplicate pairs listed; the rest are counted in one line


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
    pairs = near_duplicates([text for _, text in texts], NEAR_DUPLICATE)
    for i, j, similarity in pairs[:MAX_PER_KIND]:
        warn(texts[j][0], "text", f"nearly duplicates '{texts[i][0]}' ({similarity:.0%} shared words); merge them "
                                  "or say what distinguishes them")
    if len(pairs) > MAX_PER_KIND:
        warn("", "text", f"and {len(pairs) - MAX_PER_KIND} more near-duplicate pairs not listed")
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


def _token_set(text: str) -> frozenset[str]:
    # For scripts without spaces (Chinese, Japanese) compare characters, not whitespace words.
    return frozenset(_words(text.lower())) if " " in text.strip() else frozenset(text)


def near_duplicates(texts: list[str], threshold: float) -> list[tuple[int, int, float]]:
    """(i, j, Jaccard) for every pair i < j of texts whose word sets share >= `threshold`.

    Not all pairs (4,000 clauses took 166 s that way): prefix filtering. With the words of each
    set ordered rarest first, two sets with Jaccard >= t must share a word among the first
    |x| - ceil(t|x|) + 1 of each, so only texts meeting in an index of those prefixes are compared.
    """
    sets = [_token_set(text) for text in texts]
    frequency = Counter(word for words in sets for word in words)
    index: dict[str, list[int]] = defaultdict(list)
    found = []
    for j, words in enumerate(sets):
        if not words:
            continue
        ordered = sorted(words, key=lambda w: (frequency[w], w))
        candidates: set[int] = set()
        for word in ordered[: len(ordered) - math.ceil(threshold * len(ordered) - 1e-9) + 1]:
            candidates.update(index[word])
            index[word].append(j)
        for i in candidates:
            similarity = len(sets[i] & words) / len(sets[i] | words)
            if similarity >= threshold:
                found.append((i, j, similarity))
    return sorted(found)
