"""Scrutiny with no model but sentence embeddings: what a careful reader finds in one pass.

Every check returns findings that name the clause ids, quote the texts and propose a fix:

  duplicate             two clauses that mean the same (embedding similarity of the whole texts)
  contradiction         a sentence of one clause asks against what a sentence of another asks for
                        (same meaning once the stance is taken out, opposite stance: polarity.py)
  default_contradicts   a default's current choice asks against a principle, protection or hard line
  missing_priority      two principles pull on the two sides of a known tension (autonomy and
                        wellbeing, candour and kindness, ...) and no tier or text says which wins
  hard_line_examples    a hard line without crossing examples or without look-alikes
  untiered_principle    tiers are declared and a principle is in none
  unexercised           no example, question, prompt set or eval item exercises the clause

The thresholds were set on a development set written beside these rules (tests/fixtures/scrutiny);
bench/scrutiny.py measures them on a held-out set written by someone who never saw them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from charter.constitution.model import Constitution
from charter.scrutiny.clauses import ClauseText, clause_texts, gist, uses_tiers, which_wins
from charter.scrutiny.findings import SEVERITIES, Finding
from charter.scrutiny.polarity import stance

DUPLICATE = 0.80  # cosine of two clauses' whole texts to call them duplicates
CONTRADICTION = 0.70  # cosine of two sentences' stance-free gists (with opposite stances)
CONTRADICTION_FLOOR = 0.45  # and of the sentences as written: "never X" and "always Y" share little
MAX_PAIRS = 50  # findings per check; the rest are counted in one info finding

# Tensions a constitution must settle: two principles that lean on opposite sides, and neither
# says how they meet, need a tier or a sentence saying which wins.
TENSIONS = {
    "autonomy and wellbeing": (
        r"autonom|own (?:decision|choice|life)|decide for themselves|self-determination|their choices|respect (?:the "
        r"user's|their) (?:choice|decision|wish)|respects the (?:way|choice|plan)|(?:has|have) chosen|theirs to "
        r"(?:make|decide)|second-guess|settled on|freedom to|adults?\b",
        r"wellbeing|well-being|protect (?:the user|them|people)|safety|self-harm|health|at risk|vulnerable|harm to "
        r"themselves|nutrition|advisor(?:y|ies)|warn(?:s|ing)? (?:them|the user|about)",
    ),
    "candour and kindness": (
        r"honest|candid|frank|blunt|truth|direct(?:ly)?\b|hard feedback|criticis",
        r"kind|gentle|encourag|feelings|tact|supportive|reassur|warm",
    ),
    "openness and privacy": (
        r"transparen|disclose|openly|share (?:information|what)|explain (?:how|why) you|full information|inform|"
        r"\b(?:tell|tells|explain|explains)\b[^.]{0,40}\bwhy\b",
        r"privacy|private|confidential|personal (?:data|information|details)|discreet|secret",
    ),
    "helpfulness and caution": (
        r"as helpful as|fully help|complete (?:answer|help)|every detail|whatever (?:the user|they) ask|never refuse|"
        r"maximally helpful|the (?:least|most) [a-z]+ (?:the law|possible|allowed)",
        r"caution|careful|risk|danger|harm|err on the side|conservative|aggressive|borderline",
    ),
    "brevity and thoroughness": (
        r"concise|brief|short(?! sentences| words)|succinct|few words|to the point|\bhints?\b",
        r"thorough|detailed|in full|step by step|comprehensive|complete (?:explanation|steps|model)|every step",
    ),
    "obedience and judgement": (
        r"follow (?:the )?(?:user's|operator's|their) instructions|do what (?:the user|they) ask|obey|comply with",
        r"push back|disagree|question (?:the|their)|own judgement|own judgment|refuse when|object",
    ),
    "the letter and liberty": (
        r"exactly as (?:printed|written|stated|it stands)|verbatim|exact wording|to the letter|only the lines|adding "
        r"nothing|as printed",
        r"bend(?:s|ing)? (?:a |the )?rules?|invent(?:s)? (?:one|a rule)|tid(?:y|ies)|renam(?:e|es)|reformat|"
        r"in (?:everyday|plain|your own) (?:language|words)|restate",
    ),
    "formality and informality": (
        r"\bformal\b|courteous|sign-off|letter from",
        r"casual|informal|slang|emoji|lowercase|like a (?:quick )?text|chatty",
    ),
    "following their lead and a plan": (
        r"choices change|where (?:they|the user|the players?) take|their lead",
        r"planned|stick to the plan|on track|steer(?:s|ing)? [^.]{0,40}toward",
    ),
}


def static_findings(constitution: Constitution, embedder, *, exercised: dict[str, int] | None = None
                    ) -> list[Finding]:
    """Every static check's findings. `exercised`: clause id -> items outside the constitution
    (prompt sets, eval items) that exercise it (coverage.py)."""
    clauses = clause_texts(constitution)
    found: list[Finding] = []
    found += _similarity_checks(constitution, clauses, embedder)
    found += _tensions(constitution, clauses, {f.clauses for f in found})
    found += _hard_line_examples(constitution)
    found += _untiered(constitution)
    found += _unexercised(constitution, exercised or {})
    return found


# -- duplicates and contradictions -------------------------------------------------------------

def sentences(text: str) -> list[str]:
    parts = [p.strip() for p in re.split(r"(?<=[.!?;])\s+|\n+", text) if p.strip()]
    return [p for p in parts if len(p.split()) >= 3] or [text.strip()]


def _similarity_checks(constitution: Constitution, clauses: list[ClauseText], embedder) -> list[Finding]:
    whole = embedder.encode([c.text for c in clauses])
    pieces = [(i, s) for i, c in enumerate(clauses) for s in sentences(c.text)]
    stances = [stance(gist(s)) for _, s in pieces]
    written = embedder.encode([gist(s) for _, s in pieces])
    cores = embedder.encode([st.core or gist(s) for (_, s), st in zip(pieces, stances)])
    owner = np.array([i for i, _ in pieces])
    found: list[Finding] = []
    for a in range(len(clauses)):
        for b in range(a + 1, len(clauses)):
            hit = _contradiction(a, b, owner, written, cores, stances)
            if hit is not None:
                found.append(_contradiction_finding(constitution, clauses[a], clauses[b],
                                                    pieces[hit[0]][1], pieces[hit[1]][1], hit[2], hit[3]))
                continue
            similarity = float(whole[a] @ whole[b])
            if similarity >= DUPLICATE and clauses[a].kind == clauses[b].kind:
                found.append(_duplicate_finding(clauses[a], clauses[b], similarity))
    return _capped(found)


def _contradiction(a: int, b: int, owner, written, cores, stances) -> tuple[int, int, float, float] | None:
    """The most similar pair of sentences (one from each clause) with opposite stances, if any."""
    best = None
    for i in np.flatnonzero(owner == a):
        for j in np.flatnonzero(owner == b):
            if stances[i].positive == stances[j].positive:
                continue
            core, raw = float(cores[i] @ cores[j]), float(written[i] @ written[j])
            if core >= CONTRADICTION and raw >= CONTRADICTION_FLOOR and (best is None or core > best[2]):
                best = (int(i), int(j), core, raw)
    return best


def _contradiction_finding(constitution, a: ClauseText, b: ClauseText, sa: str, sb: str, core: float,
                           raw: float) -> Finding:
    evidence = {"stance_free_similarity": round(core, 3), "similarity": round(raw, 3)}
    quotes = {a.id: sa, b.id: sb}
    if "default" in (a.kind, b.kind) and a.kind != b.kind:
        default, other = (a, b) if a.kind == "default" else (b, a)
        return Finding("default_contradicts", "warning", (default.id, other.id),
                       f"default '{default.id}' is currently set against {other.kind} '{other.id}'",
                       f"choose another value for '{default.id}', or say in '{other.id}' that the default may "
                       f"narrow it", quotes, evidence)
    winner = which_wins(constitution, a, b)
    if winner is not None:
        loser = b.id if winner == a.id else a.id
        return Finding("contradiction", "warning", (a.id, b.id),
                       f"'{a.id}' and '{b.id}' ask opposite things; the constitution puts '{winner}' first",
                       f"say in '{loser}' where it stops (\"... except where '{winner}' applies\"), so a model "
                       f"does not learn both", quotes, evidence)
    return Finding("contradiction", "error", (a.id, b.id),
                   f"'{a.id}' and '{b.id}' ask opposite things and nothing says which wins",
                   "narrow one of them to the cases it is meant for, put them in different priority tiers, "
                   "or merge them into one clause that says when each applies", quotes, evidence)


def _duplicate_finding(a: ClauseText, b: ClauseText, similarity: float) -> Finding:
    return Finding("duplicate", "warning", (a.id, b.id), f"'{a.id}' and '{b.id}' say nearly the same thing",
                   f"merge them, or say what '{b.id}' adds that '{a.id}' does not (a duplicate is sampled "
                   f"twice as often in training)", {a.id: a.text, b.id: b.text},
                   {"similarity": round(similarity, 3)})


# -- tensions no tier settles -------------------------------------------------------------------

def _tensions(constitution: Constitution, clauses: list[ClauseText], already: set) -> list[Finding]:
    principles = [c for c in clauses if c.kind == "principle"]
    found = []
    for x in range(len(principles)):
        for y in range(x + 1, len(principles)):
            a, b = principles[x], principles[y]
            if (a.id, b.id) in already or which_wins(constitution, a, b) is not None:
                continue
            for name, (left, right) in TENSIONS.items():
                if _pulls_apart(a, b, left, right) or _pulls_apart(b, a, left, right):
                    where = ("they share a tier" if a.tier is not None and a.tier == b.tier
                             else "no tier orders them")
                    found.append(Finding(
                        "missing_priority", "warning", (a.id, b.id),
                        f"'{a.id}' and '{b.id}' pull on the two sides of {name}, and {where}",
                        "put them in different tiers, or say in one of them (or its rationale) which wins "
                        "when they meet", {a.id: a.text, b.id: b.text}, {"tension": name}))
                    break
    return found


def _pulls_apart(a: ClauseText, b: ClauseText, left: str, right: str) -> bool:
    """`a` leans left and `b` right, and neither says how the two meet (names both sides)."""
    def leans(text: str, side: str) -> bool:
        return re.search(side, text, re.IGNORECASE) is not None

    reconciled = any(leans(c.text + " " + c.rationale, left) and leans(c.text + " " + c.rationale, right)
                     for c in (a, b))
    return leans(a.text, left) and leans(b.text, right) and not reconciled


# -- gaps ----------------------------------------------------------------------------------------

def _hard_line_examples(constitution: Constitution) -> Iterable[Finding]:
    for line in constitution.hard_lines:
        missing = [name for name, items in (("examples", line.examples), ("look-alikes", line.lookalikes))
                   if not items]
        if missing:
            yield Finding("hard_line_examples", "warning", (line.id,),
                          f"hard line '{line.id}' has no {' and no '.join(missing)}",
                          "add requests that cross the line and requests that only look like them: guards, "
                          "evals and training data are built from them", {line.id: line.text})


def _untiered(constitution: Constitution) -> Iterable[Finding]:
    if not uses_tiers(constitution):
        return
    for principle in constitution.principles:
        if constitution.tier_of(principle.id) is None:
            yield Finding("untiered_principle", "warning", (principle.id,),
                          f"principle '{principle.id}' is in no priority tier",
                          "add it to the tier it belongs to; untiered, it never decides a preference before "
                          "any tier does", {principle.id: principle.text})


def own_items(clause) -> int:
    """Items the clause itself carries that exercise it: examples, questions, look-alikes."""
    return (len(getattr(clause, "examples", ())) + len(getattr(clause, "questions", ()))
            + len(getattr(clause, "lookalikes", ())))


def _unexercised(constitution: Constitution, exercised: dict[str, int]) -> Iterable[Finding]:
    for kind, clauses in constitution.clauses_by_kind().items():
        for clause in clauses:
            if own_items(clause) + exercised.get(clause.id, 0):
                continue
            # Principles and traits are what data and evals are built around; a default or a
            # protection without examples is worth knowing, not a defect.
            severity = "warning" if kind in ("principle", "trait") else "info"
            yield Finding("unexercised", severity, (clause.id,),
                          f"{kind} '{clause.id}' is exercised by no example, question, prompt set or eval item",
                          "add an example conversation (or questions, for a trait) that only this clause "
                          "decides, so data and evals can show it is followed", {clause.id: clause.text})


def _capped(found: list[Finding]) -> list[Finding]:
    by_check: dict[str, list[Finding]] = {}
    for f in found:
        by_check.setdefault(f.check, []).append(f)
    out = []
    for check, items in by_check.items():
        items.sort(key=lambda f: (SEVERITIES.index(f.severity), -max(f.evidence.values(), default=0)))
        out += items[:MAX_PAIRS]
        if len(items) > MAX_PAIRS:
            out.append(Finding(check, "info", (), f"and {len(items) - MAX_PAIRS} more '{check}' findings not listed",
                               "fix the listed ones first; many pairs usually mean a few clauses repeat"))
    return out
