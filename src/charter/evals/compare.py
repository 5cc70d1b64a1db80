"""Compare two eval runs item by item, and decide whether anything regressed (the CI gate).

For every suite and metric both runs have, overall and per clause: the change after - before on
the items both runs scored (paired; unpaired when the runs share no items), with a 95% bootstrap
interval. A row is *improved* or *regressed* only when its interval excludes zero, in the
metric's good or bad direction. The gate fails when a row regressed by more than the threshold.
Metrics from a judge that failed its checks are shown but never gate: they are not evidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from charter.evals.result import EvalRun, SuiteResult
from charter.evals.stats import Estimate, mean_ci, paired_delta, unpaired_delta

OVERALL = "(all)"
# Below 6 items no change can be told apart from chance: even 5 of 5 items moving the same way
# has a two-sided sign-test p of 0.06, while a bootstrap of 5 equal differences has zero width.
MIN_ITEMS = 6


@dataclass
class Row:
    suite: str
    metric: str
    group: str  # OVERALL or a clause id / category
    before: Estimate
    after: Estimate
    delta: Estimate  # after - before, in the metric's own units
    higher_is_better: bool
    paired: bool
    gated: bool  # False when a judge behind this metric failed its checks in either run
    status: str = "unchanged"  # improved | unchanged | regressed
    fails_gate: bool = False
    too_few: bool = False  # fewer than MIN_ITEMS items: shown, never marked or gated

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "before": self.before.as_dict(),
            "after": self.after.as_dict(),
            "delta": self.delta.as_dict(),
        }


@dataclass
class Comparison:
    rows: list[Row]
    threshold: float
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(r.fails_gate for r in self.rows)

    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.fails_gate]

    def to_json(self) -> dict:
        return {
            "threshold": self.threshold,
            "failed": self.failed,
            "warnings": self.warnings,
            "rows": [r.as_dict() for r in self.rows],
        }


def compare_runs(
    before: EvalRun, after: EvalRun, threshold: float = 0.05, seed: int = 0
) -> Comparison:
    """Per-suite and per-clause deltas with intervals, marked improved / unchanged / regressed."""
    comparison = Comparison([], threshold)
    for label, run in (("before", before), ("after", after)):
        comparison.warnings += [f"{label}: {w}" for w in run.warnings]
    for name in [s for s in before.suites if s in after.suites]:
        a, b = before.suites[name], after.suites[name]
        for metric in [m for m in a.metrics if m in b.metrics]:
            gated = a.trusted(metric) and b.trusted(metric)
            higher = b.metrics[metric].higher_is_better
            groups = [OVERALL] + sorted(set(a.groups()) & set(b.groups()))
            for group in groups:
                row = _row(name, metric, group, a, b, higher, gated, seed)
                if row is not None:
                    _judge(row, threshold)
                    comparison.rows.append(row)
    missing = sorted(set(before.suites) ^ set(after.suites))
    if missing:
        comparison.warnings.append(
            f"suite(s) {', '.join(missing)} are in only one run and were not compared"
        )
    return comparison


def _row(
    suite: str,
    metric: str,
    group: str,
    a: SuiteResult,
    b: SuiteResult,
    higher: bool,
    gated: bool,
    seed: int,
) -> Row | None:
    key = None if group == OVERALL else group
    before, after = a.values(metric, key), b.values(metric, key)
    if not before or not after:
        return None
    shared = [k for k in before if k in after and before[k] is not None and after[k] is not None]
    if shared:
        delta = paired_delta(before, after, seed=seed)
    else:
        delta = unpaired_delta(list(before.values()), list(after.values()), seed=seed)
    return Row(
        suite,
        metric,
        group,
        mean_ci(list(before.values()), seed=seed),
        mean_ci(list(after.values()), seed=seed),
        delta,
        higher,
        bool(shared),
        gated,
    )


def _judge(row: Row, threshold: float) -> None:
    d = row.delta
    if d.value is None or d.low is None or d.high is None:
        return
    if d.n < MIN_ITEMS:
        row.too_few = True
        return
    sign = 1 if row.higher_is_better else -1
    better, low, high = (
        sign * d.value,
        min(sign * d.low, sign * d.high),
        max(sign * d.low, sign * d.high),
    )
    if high < 0:
        row.status = "regressed"
        row.fails_gate = row.gated and -better > threshold
    elif low > 0:
        row.status = "improved"
