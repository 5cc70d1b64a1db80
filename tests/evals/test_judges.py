"""Judge checks: a judge that ignores the question is caught, in words (fakes, real model)."""

from __future__ import annotations

import pytest

from charter.evals import Judge, check_judge
from tests.evals.fakes import first_option_judge, oracle_judge


def test_a_careful_judge_passes_in_both_modes():
    for mode in ("choose", "generate"):
        report = check_judge(Judge(oracle_judge(), mode=mode), limit=6)
        assert report["passed"], report["headline"]
        assert report["headline"] == ""


def test_a_judge_that_always_picks_the_first_option_fails_every_signal_check():
    report = check_judge(Judge(first_option_judge()), limit=6)
    failed = {c["name"] for c in report["checks"] if c["passed"] is False}
    assert {"question_sensitivity", "position_consistency", "self_consistency"} <= failed
    assert report["headline"].startswith("JUDGE FAILED ITS CHECKS")
    assert "ignores the question" in report["headline"]


def test_a_judge_that_never_gives_a_verdict_abstains_rather_than_guessing():
    report = check_judge(Judge(first_option_judge(), mode="generate"), limit=4)
    scored = next(c for c in report["checks"] if c["name"] == "scored_rate")
    assert scored["value"] == 0.0 and scored["passed"] is False
    assert "abstains" in report["headline"]


def test_rules_are_reported_against_the_gold_set_too():
    report = check_judge(Judge(oracle_judge()), limit=9)
    assert report["rules_vs_gold_refusal"]["agreement"] >= 0.8


@pytest.mark.slow
def test_the_embedded_model_as_judge_carries_no_harmlessness_signal(embedded_checks):
    sensitivity = next(c for c in embedded_checks["checks"] if c["name"] == "question_sensitivity")
    assert sensitivity["passed"] is False, sensitivity
    assert not embedded_checks["passed"]
    assert "no harmlessness signal" in embedded_checks["headline"]
