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

    def warn(clause_id: str, field: str, message: str, severity: str = "warning") -> None:
        problems.append(Problem(name, where.get(clause_id, 1), f"{clause_id}.{field}" if clause_id else field,
                                message, severity=severity))

    texts = [(c.id, c.text) for clauses in constitution.clauses_by_kind().values() for c in clauses]
    pairs = near_duplicates([text for _, text in texts], NEAR_DUPLICATE)
    for i, j, similarity in pairs[:MAX_PER_KIND]:
        warn(texts[j][0], "text", f"nearly duplicates '{texts[i][0]}' ({similarity:.0%} shared words); merge them "
                                  "or say what distinguishes them")
    if len(pairs) > MAX_PER_KIND:
        warn("", "text", f"and {len(pairs) - MAX_PER_KIND} more near-duplicate pairs not listed")
    for principle in constitution.principles:
        words = _words(principle.text)
        if length_in_words(principle.text) < 6:
            warn(principle.id, "text", "is very short; say concretely what a better response does")
        vague = [v for v in _VAGUE if re.search(rf"\b{re.escape(v)}\b", principle.text.lower())]
        if vague and len(words) < 14:
            warn(principle.id, "text", f"leans on vague words ({', '.join(vague)}); say what they mean here")
    for line in constitution.hard_lines:
        if not line.examples:
            warn(line.id, "examples", "has no example requests; guards and evals need a few that cross the line")
        if not line.lookalikes:
            warn(line.id, "lookalikes", "has no look-alike requests; without them guards over-block")
    unchecked: list[str] = []
    for trait in constitution.traits:
        person = first_person(trait.text)
        if person is False:
            warn(trait.id, "text", "is not written in the first person ('I am ...')")
        elif person is None:
            unchecked.append(trait.id)
        if not trait.questions:
            warn(trait.id, "questions", "has no example questions; character data needs some")
    if unchecked:
        warn("", "traits", f"first-person check skipped for {len(unchecked)} trait(s) in a language charter does "
                           f"not recognise ({', '.join(unchecked[:5])})", severity="info")
    if constitution.priorities is not None and constitution.priorities.tiers:
        tiered = {i for tier in constitution.priorities.tiers for i in tier.principles}
        for principle in constitution.principles:
            if principle.id not in tiered:
                warn(principle.id, "priorities", "is in no priority tier; it is rendered after every tier and "
                                                 "never decides a preference before them")
    problems.extend(_gaps(constitution, warn))
    return problems


def _gaps(constitution: Constitution, warn) -> list[Problem]:
    if not constitution.hard_lines:
        warn("", "hard_lines", "none defined; most deployments need at least one line nothing may override")
    if not constitution.principles_for("rl"):
        warn("", "principles", "none usable for RL-CAI ('rl' in use); preference labelling needs at least one")
    if not constitution.traits:
        warn("", "traits", "none defined; character data and evals will be empty")
    user = constitution.principal_for("user")
    if user is not None and not any(user.id in d.adjustable_by for d in constitution.defaults):
        warn("", "defaults", "no default is adjustable by users; user overlays will have nothing to switch")
    # Two defaults' current instructions that pull in opposite directions about the same thing are a
    # likely conflict ("always" in one and "never" in another about unrelated things is not).
    current = [(d.id, d.instruction().lower()) for d in constitution.defaults]
    for a, b in _OPPOSITES:
        for id_a, text_a in current:
            clash = next((id_b for id_b, text_b in current if id_b != id_a and re.search(rf"\b{a}\b", text_a)
                          and re.search(rf"\b{b}\b", text_b) and _same_topic(text_a, text_b, (a, b))), None)
            if clash:
                warn(clash, "value", f"its instruction says '{b}' while '{id_a}' says '{a}' about the same "
                                     "thing; check they agree")
                break
    return []


_TOPIC_STOP = frozenset("the a an and or of to in on for with your you be is are it that this when than more "
                        "less any all what who how use give keep answer answers response responses reply".split())


def _same_topic(a: str, b: str, ignore: tuple[str, str]) -> bool:
    def topic(text: str) -> set[str]:
        return {w for w in _WORD.findall(text) if len(w) > 3 and w not in _TOPIC_STOP and w not in ignore}
    return len(topic(a) & topic(b)) >= 2


def _spaceless(text: str) -> bool:
    """Written in a script without spaces between words (Chinese, Japanese, Thai...)."""
    letters = [ch for ch in text if ch.isalpha()]
    dense = sum(1 for ch in letters if _SPACELESS.match(ch))
    return bool(letters) and dense / len(letters) > 0.5


_SPACELESS = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f\u0e80-\u0eff]")


def length_in_words(text: str) -> float:
    # A Chinese or Japanese character carries about half an English word; count so 12 characters ~ 6 words.
    return len(_SPACELESS.findall(text)) / 2 if _spaceless(text) else len(_words(text))


# First-person pronouns and verbs that open a first-person sentence, in the Latin-script languages
# charter recognises (en, fr, de, es, it, pt); other scripts are checked by their own pronouns.
_PRONOUNS = frozenset("i i'm i've i'd my me je j mon ma mes moi ich mein meine mir mich yo soy mi mis estoy "
                      "io sono mio mia eu sou meu minha estou".split())


def first_person(text: str) -> bool | None:
    """True/False when the language is recognised and the text is/is not in the first person;
    None when charter cannot tell (an unrecognised language is not flagged)."""
    # Korean, Japanese and Chinese often leave the pronoun out of a first-person sentence: a
    # pronoun confirms it, its absence says nothing (None: not checked).
    if re.search(r"[\uac00-\ud7af]", text):  # Hangul: first-person pronouns 나/저 (+ particles)
        return True if re.search(r"(^|\s)(나|저|내|제)(는|가|의|\s)", text) else None
    if re.search(r"[\u3040-\u30ff]", text):  # kana: Japanese
        return True if any(ch in text for ch in "私僕") or "わたし" in text else None
    if re.search(r"[\u4e00-\u9fff]", text):
        return True if "我" in text else None
    words = [w.lower() for w in _WORD.findall(text.replace("’", "'"))]
    if not words:
        return None
    if not re.match(r"^[\W\d_]*[A-Za-zÀ-ÿ]", text):
        return None  # a Latin-script language charter knows is needed for the check
    return any(w in _PRONOUNS for w in words[:3])


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
