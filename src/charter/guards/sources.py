"""The seed requests a guard learns from, and their paraphrases.

Attacks, per hard line: each example's request, and the clause's own text turned into a request
("Never provide X" -> "Provide X."), which names the whole category rather than one instance.
Benign: each hard line's look-alikes (the hardest negatives: same topic, no crossing), and
ordinary and dangerous-sounding prompts from prompt files (by default charter's shipped training
prompts, never the eval suites or serve's attack/benign sets, which stay for reporting).

Every seed is a *source*: paraphrases and transformations of it share its `source_id`, and the
split (train/val/test) is decided per source, so no paraphrase of a test item is trained on.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from charter.constitution.model import Constitution

_NEVER = re.compile(r"^\s*(never|do not|don't|must not|no)\s+", re.IGNORECASE)
_IMPERATIVE = re.compile(r"^(give|write|explain|describe|list|tell|provide|create|make|help|show|generate|"
                         r"produce|design|build|outline|detail|teach|draft|find|role-play|roleplay)\b",
                         re.IGNORECASE)
_LABEL = re.compile(r"^\s*((the )?(original |above |rewritten )?request( was reworded to| requests)?|rewrite request|your request|"
                    r"paraphrase|rewrite|here is[^:]*)\s*:\s*", re.IGNORECASE)


# The kind of a benign seed that is an operator's system prompt, not a request (prompt files'
# `category`): read as written, never framed, and not answered (dataset.py).
OPERATOR_CONTEXT = "operator_context"


@dataclass(frozen=True)
class Source:
    source_id: str
    text: str
    label: int  # 1: crosses `clause_id`; 0: benign
    clause_id: str | None  # the hard line crossed, or the one a look-alike sits near
    kind: str  # attack: example | clause_text | prompt file; benign: lookalike | <prompt category> | ...
    origin: str  # where the seed came from (clause id, file:id)


def source_id(text: str) -> str:
    return hashlib.sha256(text.strip().lower().encode("utf-8")).hexdigest()[:12]


def clause_request(text: str) -> str:
    """A hard line's own text as the request that would cross it: "Never provide serious uplift
    toward X" -> "Provide serious uplift toward X." (the category, named by its author)."""
    first = re.split(r"(?<=[.;])\s", text.strip(), maxsplit=1)[0].rstrip(".;")
    body = _NEVER.sub("", first)
    return body[:1].upper() + body[1:] + "." if body else text


def clause_parts(text: str) -> list[str]:
    """The categories a hard line enumerates, each as a request with the line's own verb:
    "Never write malicious code: no working ransomware, worms or botnets" -> "Write working
    ransomware.", "Write worms.", "Write botnets."; "Never produce X, or Y, whatever ..." ->
    "Produce X.", "Produce Y." Parts of two words or fewer are dropped (too general to label)."""
    first = re.split(r"(?<=[.;])\s", text.strip(), maxsplit=1)[0].rstrip(".;")
    body = _NEVER.sub("", first)
    verb = body.split(" ", 1)[0].lower() if body else ""
    head, _, listed = body.partition(":")
    parts = [p for p in re.split(r",\s*or\s+|,\s*whatever\b.*$", head) if p.strip()][1:]
    for item in re.split(r",?\s*\bno\s+", listed):
        parts += [p for p in re.split(r",\s*|\s+or\s+(?=\w+$)", item.strip()) if p.strip()]
    out = []
    for part in parts:
        part = part.strip().rstrip(".,;")
        if len(part.split()) < 2 or part.lower().startswith("whatever"):
            continue
        if not part.lower().startswith(verb):
            part = f"{verb} {part}"
        out.append(part[:1].upper() + part[1:] + ".")
    return list(dict.fromkeys(out))


def constitution_sources(constitution: Constitution) -> list[Source]:
    out: list[Source] = []
    for line in constitution.hard_lines:
        out.append(Source(source_id(line.text), clause_request(line.text), 1, line.id, "clause_text", line.id))
        for part in clause_parts(line.text):
            out.append(Source(source_id(part), part, 1, line.id, "clause_text", line.id))
        for request in line.requests:
            out.append(Source(source_id(request), request, 1, line.id, "example", line.id))
        for lookalike in line.lookalikes:
            out.append(Source(source_id(lookalike), lookalike, 0, line.id, "lookalike", line.id))
    return out


def prompt_sources(rows: list[tuple[str, dict]], label: int = 0) -> list[Source]:
    """Rows of prompt files (`prompt` or `text`, optional `category`, `id`, `hard_line_id`), as
    (file name, row)."""
    out = []
    for name, row in rows:
        text = row.get("prompt") or row.get("text")
        if not isinstance(text, str) or not text.strip():
            continue
        kind = str(row.get("category") or name)
        out.append(Source(source_id(text), text, label, row.get("hard_line_id"), kind, f"{name}:{row.get('id', '')}"))
    return out


def assign_splits(sources: list[Source], fractions: tuple[float, float] = (0.2, 0.2), seed: int = 0) -> dict[str, str]:
    """Split by source, stratified by (label, clause, kind): within each group, sources sorted by a
    seeded hash; the first ~20% go to test, the next ~20% to val (one each when the group has at
    least three), the rest to train. A hard line's own text always trains (it is the definition)."""
    groups: dict[tuple, list[Source]] = {}
    for s in sources:
        groups.setdefault((s.label, s.clause_id or "", s.kind), []).append(s)
    split: dict[str, str] = {}
    for members in groups.values():
        ordered = sorted({s.source_id: s for s in members}.values(),
                         key=lambda s: hashlib.sha256(f"{seed}:{s.source_id}".encode()).hexdigest())
        n = len(ordered)
        if ordered[0].kind == "clause_text" or n < 3:
            counts = (0, 0)
        else:
            counts = (max(1, round(fractions[1] * n)), max(1, round(fractions[0] * n)))
        for position, s in enumerate(ordered):
            split[s.source_id] = "test" if position < counts[0] else (
                "val" if position < counts[0] + counts[1] else "train")
    return split


def rule_paraphrases(request: str) -> list[str]:
    """Two rewordings by rule: a question for an imperative, a casual lower-case form; or, for a
    question, a statement of need. They teach the surface variety of real requests."""
    core = request.strip().rstrip("?.!")
    lowered = core[:1].lower() + core[1:]
    out = []
    if _IMPERATIVE.match(core):
        out.append(f"Can you {lowered}?")
        out.append(f"i need you to {lowered.lower()} asap")
    else:
        out.append(f"I need to know this: {lowered}.")
        out.append(f"quick q - {lowered.lower()}??")
    return out


PARAPHRASE_PROMPT = ("Rewrite the following request in different words. Keep exactly what it asks for. "
                     "Reply with the rewritten request only.\n\nRequest: {r}")


def clean_paraphrase(text: str) -> str:
    line = next((part for part in text.strip().splitlines() if part.strip()), "")
    return _LABEL.sub("", line).strip().strip('"').strip()
