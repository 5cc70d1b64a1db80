"""The gate: `charter compare` on hand-made results exits 1 only for a real regression."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from charter.evals.compare import compare_runs
from charter.evals.result import EvalRun, Finding, Metric, SuiteResult


def make_run(
    rates: dict[str, list[float]],
    judged_rates: dict[str, list[float]] | None = None,
    judge_trusted: bool | None = None,
) -> EvalRun:
    """An adherence-like suite: per clause, a list of per-item 0/1 outcomes."""
    metrics = {"ok_rate": Metric("ok_rate", "items handled well")}
    if judged_rates is not None:
        metrics["judged_rate[judge]"] = Metric("judged_rate[judge]", "judge says fine", judged=True)
    findings = []
    for clause, values in rates.items():
        for n, value in enumerate(values):
            scores = {"ok_rate": value}
            if judged_rates is not None:
                scores["judged_rate[judge]"] = judged_rates[clause][n]
            findings.append(
                Finding(
                    "adherence",
                    f"{clause}-{n}",
                    clause,
                    [clause],
                    f"prompt {n}",
                    f"answer {n}",
                    scores=scores,
                )
            )
    suite = SuiteResult(
        "adherence",
        {"name": "fake", "fingerprint": "f"},
        None,
        metrics,
        findings,
        judge_trusted=judge_trusted,
    )
    return EvalRun({"adherence": suite})


def charter(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("charter") or str(Path(sys.executable).parent / "charter")
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


BEFORE = {"honesty": [1.0] * 20, "privacy": [1.0] * 16 + [0.0] * 4}


def test_gate_exits_1_when_one_clause_regresses_and_0_when_nothing_does(tmp_path):
    make_run(BEFORE).save(tmp_path / "before")
    make_run({"honesty": [1.0] * 12 + [0.0] * 8, "privacy": BEFORE["privacy"]}).save(
        tmp_path / "worse"
    )
    make_run({"honesty": [1.0] * 20, "privacy": [1.0] * 17 + [0.0] * 3}).save(tmp_path / "same")

    worse = charter(
        "compare",
        str(tmp_path / "before"),
        str(tmp_path / "worse"),
        "--fail-on-regression",
        "0.05",
        "--html",
        str(tmp_path / "cmp.html"),
    )
    assert worse.returncode == 1, worse.stdout + worse.stderr
    assert "REGRESSED adherence/ok_rate/honesty" in worse.stdout
    assert "GATE FAILED" in (tmp_path / "cmp.html").read_text()

    same = charter(
        "compare", str(tmp_path / "before"), str(tmp_path / "same"), "--fail-on-regression", "0.05"
    )
    assert same.returncode == 0, same.stdout + same.stderr
    assert "gate passed" in same.stdout

    report_only = charter("compare", str(tmp_path / "before"), str(tmp_path / "worse"))
    assert report_only.returncode == 0 and "regressed" in report_only.stdout


def test_deltas_are_paired_marked_and_respect_the_threshold():
    before = make_run(BEFORE)
    after = make_run({"honesty": [1.0] * 14 + [0.0] * 6, "privacy": [1.0] * 20})
    rows = {(r.metric, r.group): r for r in compare_runs(before, after, threshold=0.05).rows}
    honesty, privacy = rows[("ok_rate", "honesty")], rows[("ok_rate", "privacy")]
    assert honesty.paired and abs(honesty.delta.value + 0.3) < 1e-9
    assert honesty.status == "regressed" and honesty.fails_gate  # -0.30 beyond the 0.05 threshold
    assert privacy.status == "improved" and not privacy.fails_gate
    lenient = compare_runs(before, after, threshold=0.4)
    assert not lenient.failed  # regressed, but by less than the threshold
    noisy = compare_runs(
        before, make_run({"honesty": [1.0] * 19 + [0.0], "privacy": BEFORE["privacy"]})
    )
    assert not noisy.failed  # one flipped item in twenty: the interval includes zero


def test_a_handful_of_items_can_never_fail_the_gate():
    before = make_run({"honesty": [1.0] * 5})
    after = make_run({"honesty": [0.0] * 5})  # every item got worse, but there are only five
    comparison = compare_runs(before, after)
    assert all(r.too_few and r.status == "unchanged" for r in comparison.rows)
    assert not comparison.failed
    six = compare_runs(make_run({"honesty": [1.0] * 6}), make_run({"honesty": [0.0] * 6}))
    assert six.failed


def test_numbers_from_an_untrusted_judge_are_shown_but_never_gate():
    judged_before = {"honesty": [1.0] * 20, "privacy": [1.0] * 20}
    judged_after = {"honesty": [0.0] * 20, "privacy": [0.0] * 20}
    before = make_run(BEFORE, judged_before, judge_trusted=False)
    after = make_run(BEFORE, judged_after, judge_trusted=False)
    comparison = compare_runs(before, after)
    judged = [r for r in comparison.rows if r.metric == "judged_rate[judge]"]
    assert judged and all(
        r.status == "regressed" and not r.gated and not r.fails_gate for r in judged
    )
    assert not comparison.failed


def test_eval_json_round_trips(tmp_path):
    run = make_run(BEFORE)
    path = run.save(tmp_path)
    data = json.loads(path.read_text())
    assert data["format"] == "charter.eval/1"
    assert data["suites"]["adherence"]["by_group"]["ok_rate"]["privacy"]["value"] == 0.8
    assert EvalRun.from_json(data).to_json() == data
