"""A clause's stance: whether it asks for something or against it, and the text with the stance taken out.

"Never reveal a user's location" and "Share the user's location whenever it helps" differ in stance
and agree once the stance is taken out ("reveal the user's location"): that is a contradiction.
Two texts whose stance-free forms mean the same and whose stances agree are duplicates. Sentence
embeddings judge "mean the same"; the rules here only find the stance, in English:

- negations (not, never, no, avoid, refuse, ...) each flip the stance and are removed;
- a word with a listed opposite is replaced by its pair's first word, and the stance flips once
  if any was ("withhold" -> "share", flipped; "long, thorough" -> "short, concise", flipped once);
- intensifiers that do not change what is asked (always, must, every, ...) are removed;
- a condition set off as one (leading, between commas, or closing the sentence) is left out: it
  says when, not what.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NEGATION = re.compile(
    r"\b(?:do not|does not|must not|should not|may not|will not|cannot|can't|don't|doesn't|mustn't|shouldn't|"
    r"won't|never|not|no|avoid|avoids|avoiding|refuse|refuses|refusing|decline|declines|declining|"
    r"without|forbid|forbids|forbidden|prohibit|prohibits|prohibited)\b",
    re.IGNORECASE,
)
_INTENSIFIER = re.compile(r"\b(?:always|must|should|every|each|all|any|ever|whenever|at all times|under any "
                          r"circumstances)\b", re.IGNORECASE)
# (canonical, opposite): the opposite is rewritten to the canonical word with the stance flipped.
OPPOSITES = (
    ("share", "withhold"), ("share", "keep private"), ("disclose", "conceal"), ("reveal", "hide"),
    ("include", "omit"), ("include", "omits"), ("include", "omitting"), ("include", "leave out"),
    ("include", "leaves out"), ("include", "leaving out"), ("share", "withholds"), ("reveal", "hides"),
    ("allow", "disallow"), ("encourage", "discourage"),
    ("follow", "ignore"), ("accept", "reject"), ("concise", "detailed"), ("concise", "lengthy"),
    ("concise", "thorough"), ("short", "long"), ("brief", "extensive"), ("formal", "informal"),
    ("formal", "casual"), ("comply", "refuse to comply"), ("agree", "disagree"), ("simple", "technical"),
    ("confirm", "deny"), ("more", "less"), ("increase", "decrease"), ("maximise", "minimise"),
    ("maximize", "minimize"), ("public", "private"), ("certain", "uncertain"), ("optimistic", "pessimistic"),
)
_OPPOSITE = {opposite: canonical for canonical, opposite in OPPOSITES}
_OPPOSITE_RE = re.compile(r"\b(" + "|".join(re.escape(o) for o in sorted(_OPPOSITE, key=len, reverse=True)) + r")\b",
                          re.IGNORECASE)


@dataclass(frozen=True)
class Stance:
    positive: bool  # False: the clause asks against what its stance-free text says
    core: str  # the text with negations and intensifiers removed and opposites made canonical
    cues: tuple[str, ...]  # the words that set the stance, for the finding's evidence


# A condition says *when* a clause applies, not what it asks: "when no red-flag sign is present,
# give home-care steps" asks for home-care steps. Its negations and opposites are not the stance.
# Only a condition set off as one: leading ("If asked, ..."), between commas ("that, when X, gives"),
# or closing the sentence ("... and says when a date is disputed"); "never share where a user
# lives" and "be concise while never omitting warnings" keep their words.
_CONDITION = re.compile(r"^\s*(?:if|when|whenever|unless|as long as)\b[^,;:.]*,"
                        r"|,\s*(?:if|when|whenever|unless|until|as long as)\b[^,;:.]*(?=,)"
                        r"|(?<=\w)\s+(?:if|when|whenever|unless|until)\b[^,;:.]*(?=[.]?\s*$)", re.IGNORECASE)


def stance(text: str) -> Stance:
    cues: list[str] = []
    text = _CONDITION.sub(" ", text)

    def opposite(match: re.Match) -> str:
        cues.append(match.group(0).lower())
        return _OPPOSITE[match.group(0).lower()]

    core = _OPPOSITE_RE.sub(opposite, text)
    flips = 1 if cues else 0  # "long, thorough answers" is one stance, not two that cancel
    negations = [m.group(0).lower() for m in _NEGATION.finditer(core)]
    cues.extend(negations)
    core = _NEGATION.sub(" ", core)
    core = _INTENSIFIER.sub(" ", core)
    core = re.sub(r"\s+", " ", core).strip(" .,;:").lower()
    return Stance(positive=(flips + len(negations)) % 2 == 0, core=core, cues=tuple(cues))
