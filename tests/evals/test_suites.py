"""Suites: logic on fake engines (resume, both-order judging, polarity), then every suite end to end
on the real embedded model with tiny sizes."""

from __future__ import annotations

import pytest

from charter.errors import CharterError
from charter.evals import EvalConfig, Judge, run_suite
from charter.evals.runner import KIND
from charter.store import RunStore
from tests.evals.fakes import ScriptedEngine, first_option_judge, oracle_judge

REFUSER = ScriptedEngine("fake:refuser", answer=lambda p: "I'm sorry, but I can't help with that.")


def test_harmful_reports_both_classifiers_their_agreement_and_stores_findings(tmp_path):
    store = RunStore.open(tmp_path, stage="eval")
    result = run_suite("harmful", REFUSER, judge=Judge(oracle_judge()), limit=5, store=store)
    summary = result.summary()
    assert (
        summary["refusal_rate[rules]"].value == 1.0 and summary["refusal_rate[judge]"].value == 1.0
    )
    assert summary["harm_score[judge]"].value == 0.0 and result.judge_trusted
    assert result.agreement["rules_vs_judge"]["agreement"] == 1.0
    records = list(store.iter(KIND))
    assert len(records) == 5 and all(
        r.data["answer"] and r.clause_ids == ("harmlessness",) for r in records
    )
    assert (
        records[0].data["judge"][0]["prompt"]
        and records[0].data["provenance"]["engine"] == REFUSER.fingerprint
    )


def test_a_rerun_resumes_from_the_store_without_asking_the_model_again(tmp_path):
    engine = ScriptedEngine("fake:counting")
    with RunStore.open(tmp_path, stage="eval") as store:
        first = run_suite("overrefusal", engine, judge=None, limit=4, store=store)
        calls = engine.generated
        again = run_suite("overrefusal", engine, judge=None, limit=4, store=store)
        more = run_suite("overrefusal", engine, judge=None, limit=6, store=store)
    assert (
        calls == 4 and engine.generated == 6
    )  # the rerun cost nothing; the larger one did only new items
    assert [f.answer for f in again.findings] == [f.answer for f in first.findings]
    assert len(more.findings) == 6


def test_a_broken_judge_is_flagged_and_its_numbers_are_untrusted():
    result = run_suite("overrefusal", REFUSER, judge=Judge(first_option_judge()), limit=3)
    assert result.judge_trusted is False
    assert result.warnings[0].startswith("JUDGE FAILED ITS CHECKS")
    assert "ignores the question" in result.warnings[0] and "position bias" in result.warnings[0]
    assert not result.trusted("answer_rate[judge]") and result.trusted("answer_rate[rules]")


def test_helpfulness_judges_both_orders_and_calls_disagreement_a_tie():
    always_a = ScriptedEngine(
        "fake:judge-A", choose=lambda p, o: {x: (0.9 if x == "A" else 0.1) for x in o}
    )
    result = run_suite(
        "helpfulness",
        ScriptedEngine("fake:one"),
        judge=Judge(always_a),
        limit=3,
        against=[ScriptedEngine("fake:two")],
        checks={"passed": True, "headline": ""},
    )
    assert result.summary()["win_rate[vs fake:two]"].value == 0.5  # A first, then A second: a tie


def test_helpfulness_with_three_models_gives_ratings_in_the_right_order():
    judge = Judge(oracle_judge())  # prefers the longer answer
    models = [
        ScriptedEngine("m:short", answer=lambda p: "ok"),
        ScriptedEngine("m:long", answer=lambda p: "x" * 80),
    ]
    result = run_suite(
        "helpfulness",
        ScriptedEngine("m:mid", answer=lambda p: "x" * 40),
        judge=judge,
        limit=3,
        against=models,
        checks={"passed": True, "headline": ""},
    )
    ratings = result.extra["ratings"]
    assert ratings["m:long"]["value"] > ratings["m:mid"]["value"] > ratings["m:short"]["value"]
    assert result.summary()["win_rate[vs m:short]"].value == 1.0


def test_character_scores_both_polarities_and_flags_an_answer_habit():
    yes_sayer = ScriptedEngine("fake:yes", choose=lambda p, o: {"Yes": 0.8, "No": 0.2})
    result = run_suite("character", yes_sayer, limit=6)
    summary = result.summary()
    assert summary["endorse_agreement"].value == 1.0 and summary["reject_agreement"].value == 0.0
    assert summary["trait_agreement"].value == 0.5
    assert any("every statement" in w for w in result.warnings)


def test_suites_that_need_a_judge_or_an_opponent_say_so():
    with pytest.raises(CharterError, match="--judge-engine"):
        run_suite("adherence", REFUSER, judge=None, limit=1)
    with pytest.raises(CharterError, match="--against"):
        run_suite("helpfulness", REFUSER, judge=Judge(oracle_judge()), limit=1)


# -- the real embedded model ----------------------------------------------------------------

SMALL = EvalConfig(max_tokens=24)


@pytest.mark.slow
@pytest.mark.parametrize("suite", ["harmful", "overrefusal", "adherence"])
def test_judged_suites_run_on_the_embedded_model(embedded, embedded_checks, suite):
    result = run_suite(
        suite, embedded, judge=Judge(embedded), limit=2, config=SMALL, checks=embedded_checks
    )
    assert len(result.findings) == 2
    assert all(isinstance(f.answer, str) for f in result.findings)
    for name, estimate in result.summary().items():
        assert estimate.n + estimate.unscored == 2, name
        assert (
            estimate.value is None or 0.0 <= estimate.low <= estimate.value <= estimate.high <= 1.0
        )
    assert all(f.judge and f.judge[0]["prompt"] for f in result.findings)


@pytest.mark.slow
def test_character_runs_on_the_embedded_model(embedded):
    result = run_suite("character", embedded, limit=2)
    assert {f.extra["polarity"] for f in result.findings} == {"endorse", "reject"}
    assert all(0.0 <= f.scores["trait_prob"] <= 1.0 for f in result.findings)


@pytest.mark.slow
def test_helpfulness_runs_on_the_embedded_model(embedded, embedded_checks):
    result = run_suite(
        "helpfulness",
        embedded,
        judge=Judge(embedded),
        limit=1,
        config=SMALL,
        against=[embedded],
        checks=embedded_checks,
    )
    [finding] = result.findings
    assert len(finding.judge) == 2  # one question in each order
    assert finding.scores["win_rate[vs llamacpp:embedded']"] in (0.0, 0.5, 1.0, None)
