"""Eval results as plain data: findings (one per item, with its answer), metrics, and summaries.

A metric is a per-item value (1/0 for a rate, 0..1 for a score) stored in each finding's `scores`;
a missing key means the metric does not apply to that item, `None` means the grader abstained.
Rates, per-clause tables and comparisons are all computed from those per-item values, so
`eval.json` carries everything `charter compare` needs to pair two runs item by item.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from charter.errors import CharterError
from charter.evals.stats import Estimate, mean_ci
from charter.rows import write_json_atomic

FORMAT = "charter.eval/1"


@dataclass(frozen=True)
class Metric:
    name: str  # e.g. "refusal_rate[rules]"
    description: str
    higher_is_better: bool = True
    judged: bool = (
        False  # computed from LLM-judge verdicts: evidence only if the judge passed its checks
    )


@dataclass
class Finding:
    """One item's outcome: what was asked, what the model answered, and how it was graded."""

    suite: str
    item_id: str
    group: str  # the row of the per-clause table: a clause id, trait id or prompt category
    clause_ids: list[str]
    prompt: str
    answer: str | None
    labels: dict = field(default_factory=dict)
    scores: dict[str, float | None] = field(default_factory=dict)
    judge: list[dict] = field(
        default_factory=list
    )  # judge exchanges: question, prompt, reply, verdict
    extra: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)  # constitution hash, engines, sampling, seed

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class SuiteResult:
    suite: str
    engine: dict  # {"name", "fingerprint"}
    judge: dict | None
    metrics: dict[str, Metric]
    findings: list[Finding]
    seed: int = 0
    judge_trusted: bool | None = None  # None: no judge was used
    warnings: list[str] = field(default_factory=list)
    agreement: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    def values(self, metric: str, group: str | None = None) -> dict[str, float | None]:
        """Per-item values of a metric (item id -> value), optionally for one group only."""
        return {
            f.item_id: f.scores[metric]
            for f in self.findings
            if metric in f.scores and (group is None or f.group == group)
        }

    def groups(self) -> list[str]:
        return sorted({f.group for f in self.findings})

    def summary(self) -> dict[str, Estimate]:
        return {
            name: mean_ci(list(self.values(name).values()), seed=self.seed) for name in self.metrics
        }

    def by_group(self) -> dict[str, dict[str, Estimate]]:
        """metric -> group -> estimate: the per-clause tables."""
        return {
            name: {
                g: mean_ci(list(vals.values()), seed=self.seed)
                for g in self.groups()
                if (vals := self.values(name, g))
            }
            for name in self.metrics
        }

    def by_tier(self, constitution) -> dict[str, dict[str, dict]]:
        """metric -> priority tier id -> estimate over the findings of that tier's principles
        (highest tier first); {} when the constitution has no priorities."""
        priorities = getattr(constitution, "priorities", None)
        if priorities is None or not priorities.tiers:
            return {}
        table: dict[str, dict[str, dict]] = {}
        for name in self.metrics:
            rows = {}
            for tier in priorities.tiers:
                vals = [f.scores[name] for f in self.findings if name in f.scores
                        and set(f.clause_ids) & set(tier.principles) and f.scores[name] is not None]
                if vals:
                    rows[tier.id] = mean_ci(vals, seed=self.seed).as_dict()
            if rows:
                table[name] = rows
        return table

    def trusted(self, metric: str) -> bool:
        return not self.metrics[metric].judged or bool(self.judge_trusted)

    def to_json(self) -> dict:
        return {
            "suite": self.suite,
            "engine": self.engine,
            "judge": self.judge,
            "seed": self.seed,
            "judge_trusted": self.judge_trusted,
            "warnings": self.warnings,
            "agreement": self.agreement,
            "extra": self.extra,
            "metrics": {
                n: {**asdict(m), "trusted": self.trusted(n)} for n, m in self.metrics.items()
            },
            "summary": {n: e.as_dict() for n, e in self.summary().items()},
            "by_group": {
                n: {g: e.as_dict() for g, e in rows.items()} for n, rows in self.by_group().items()
            },
            "findings": [f.as_dict() for f in self.findings],
        }

    @classmethod
    def from_json(cls, data: dict) -> SuiteResult:
        metrics = {
            n: Metric(**{k: v for k, v in m.items() if k != "trusted"})
            for n, m in data["metrics"].items()
        }
        findings = [Finding(**f) for f in data["findings"]]
        return cls(
            data["suite"],
            data["engine"],
            data.get("judge"),
            metrics,
            findings,
            seed=data.get("seed", 0),
            judge_trusted=data.get("judge_trusted"),
            warnings=list(data.get("warnings", [])),
            agreement=data.get("agreement", {}),
            extra=data.get("extra", {}),
        )


@dataclass
class EvalRun:
    """What one `charter eval` produced: suites, the judge's checks, and warnings for the top."""

    suites: dict[str, SuiteResult]
    judge_checks: dict | None = None
    warnings: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "warnings": self.warnings,
            "meta": self.meta,
            "judge_checks": self.judge_checks,
            "suites": {name: s.to_json() for name, s in self.suites.items()},
        }

    @classmethod
    def from_json(cls, data: dict) -> EvalRun:
        if data.get("format") != FORMAT:
            raise CharterError(
                f"not a charter eval result (format {data.get('format')!r}, expected {FORMAT}); "
                "pass the eval.json written by `charter eval`"
            )
        return cls(
            {n: SuiteResult.from_json(s) for n, s in data["suites"].items()},
            data.get("judge_checks"),
            list(data.get("warnings", [])),
            data.get("meta", {}),
        )

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / "eval.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, self.to_json())
        return path


def load_eval(path: str | Path) -> EvalRun:
    """Read `eval.json` from a run folder or a file path."""
    path = Path(path)
    if path.is_dir():
        path = path / "eval.json"
    if not path.is_file():
        raise CharterError(
            f"{path} not found; pass a folder written by `charter eval --out` or its eval.json"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CharterError(f"{path} is not valid JSON ({exc.msg}); rerun `charter eval`") from None
    return EvalRun.from_json(data)
