"""What scrutiny reports: one finding per problem, naming the clauses and the fix a person would make."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

SEVERITIES = ("error", "warning", "info")  # most severe first; `--fail-on` takes one of the first two


@dataclass(frozen=True)
class Finding:
    check: str  # which check found it: duplicate, contradiction, missing_priority, ...
    severity: str  # error | warning | info
    clauses: tuple[str, ...]  # the clause ids involved, in the order the message names them
    message: str
    fix: str  # what a person would change
    quotes: dict[str, str] = field(default_factory=dict)  # clause id or "scenario"/"answer" -> text
    evidence: dict = field(default_factory=dict)  # numbers behind it (similarities, probabilities)

    @property
    def key(self) -> str:
        """Stable identity: the same check on the same clauses is one finding."""
        text = json.dumps([self.check, sorted(self.clauses)], ensure_ascii=False)
        return "finding:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def as_dict(self) -> dict:
        data = asdict(self)
        data["clauses"] = list(self.clauses)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Finding:
        return cls(**{**data, "clauses": tuple(data["clauses"])})


def ordered(findings: list[Finding]) -> list[Finding]:
    """Most severe first, then by check and clause ids (a stable order for reports and tests)."""
    unique = {f.key: f for f in findings}
    return sorted(unique.values(), key=lambda f: (SEVERITIES.index(f.severity), f.check, f.clauses))


def counts(findings: list[Finding]) -> dict[str, int]:
    return {s: sum(f.severity == s for f in findings) for s in SEVERITIES}


def fails(findings: list[Finding], fail_on: str) -> bool:
    """Whether `--fail-on` (error | warning | never) is met."""
    if fail_on == "never":
        return False
    worst = SEVERITIES.index(fail_on)
    return any(SEVERITIES.index(f.severity) <= worst for f in findings)
