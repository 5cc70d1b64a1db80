"""RL-CAI with priority tiers: a pair is decided by the highest tier whose principles tell the two
answers apart; the row says which tier that was, and how the tiers were combined."""

from __future__ import annotations

import pytest

from charter.constitution.model import Priorities, PriorityTier
from charter.data.feedback import JudgeConfig, run_prefs

from .conftest import items
from .fakes import FakeEngine


class TierBlindJudge(FakeEngine):
    """Cannot tell the answers apart on the principles named in `blind` (a tie), decisive elsewhere."""

    def __init__(self, blind_texts: list[str], bias: float = 0.8):
        super().__init__("fake:tier-judge", bias=bias)
        self.blind_texts = blind_texts
        self.asked: list[str] = []

    def choose(self, request):
        text = request.messages[-1]["content"]
        self.asked.append(text)
        if any(blind in text for blind in self.blind_texts):
            return {"A": 0.5, "B": 0.5}
        return super().choose(request)


def tiered(constitution, mode: str):
    ids = [p.id for p in constitution.principles_for("rl")]
    return constitution.model_copy(update={"priorities": Priorities(mode=mode, tiers=(
        PriorityTier(id="safe", text="Broadly safe", principles=tuple(ids[:2])),
        PriorityTier(id="helpful", text="Helpful", principles=tuple(ids[2:])),
    ))})


@pytest.mark.parametrize("mode, expected", [("strict", 0.8), ("holistic", round((0.5 + 0.5 * 0.8) / 1.5, 6))])
def test_an_undecided_top_tier_passes_the_pair_to_the_next(open_store, example_constitution, mode, expected):
    constitution = tiered(example_constitution, mode)
    top = [p for p in constitution.principles if p.id in constitution.priorities.tiers[0].principles]
    policy, judge = FakeEngine(), TierBlindJudge([p.text for p in top])
    store = open_store(policy)
    run_prefs(store, constitution, policy, items(2), feedback_engine=judge, mode="judge")
    prefs = [r.data for r in store.iter("pref")]
    assert len(prefs) == 2
    for pref in prefs:
        assert pref["decided_by_tier"] == "helpful" and pref["tiers_asked"] == ["safe", "helpful"]
        assert pref["priority_mode"] == mode and pref["score_chosen"] == pytest.approx(expected)
    judgments = list(store.iter("judgment"))
    assert len(judgments) == 2 * 2 * 2  # two pairs x two tiers x both orders
    asked_before = len(judge.asked)
    run_prefs(store, constitution, policy, items(2), feedback_engine=judge, mode="judge")
    assert len(judge.asked) == asked_before and store.count("pref") == 2  # a rerun reuses every judgment


def test_a_decisive_top_tier_decides_alone(open_store, example_constitution):
    constitution = tiered(example_constitution, "strict")
    policy, judge = FakeEngine(), TierBlindJudge([])
    store = open_store(policy)
    run_prefs(store, constitution, policy, items(2), feedback_engine=judge, mode="judge",
              config=JudgeConfig(principles=1))
    prefs = [r.data for r in store.iter("pref")]
    assert {p["decided_by_tier"] for p in prefs} == {"safe"} and all(p["tiers_asked"] == ["safe"] for p in prefs)
    assert store.count("judgment") == 2 * 2
    top = set(constitution.priorities.tiers[0].principles)
    assert all(set(r.clause_ids) <= top for r in store.iter("pref"))


def _tiers(*labels):
    from types import SimpleNamespace

    def judged(tier, p_ab, p_ba):
        return [SimpleNamespace(data={"principle_id": f"{tier}-p", "order": "ab", "p_first": p_ab}),
                SimpleNamespace(data={"principle_id": f"{tier}-p", "order": "ba", "p_first": p_ba})]

    return [(i, tier, judged(tier, *ps)) for i, (tier, ps) in enumerate(labels)]


def _judging(mode: str, cot: bool = False):
    from types import SimpleNamespace

    from charter.data.feedback import _Judging

    config = JudgeConfig(cot=cot)
    fake = SimpleNamespace(config=config, stage=SimpleNamespace(constitution=SimpleNamespace(
        priorities=SimpleNamespace(mode=mode))))
    return lambda tiers: _Judging.tiered_label(fake, tiers, config.band if cot else None)


def test_holistic_tempering_never_flips_the_deciding_tiers_side():
    label, info = _judging("holistic")(_tiers(("safe", (0.41, 0.41)), ("helpful", (0.62, 0.62))))
    assert info["decided_by_tier"] == "helpful" and label.p_first > 0.5
    assert label.p_first == pytest.approx(0.5 + 0.12 * 0.5 / 1.5)


def test_strict_without_a_decisive_tier_follows_the_highest_that_leans():
    label, info = _judging("strict")(_tiers(("safe", (0.58, 0.58)), ("helpful", (0.45, 0.45))))
    assert info["decided_by_tier"] is None and label.p_first == pytest.approx(0.58)
    label, _ = _judging("strict")(_tiers(("safe", (0.5, 0.5)), ("helpful", (0.5, 0.5))))
    assert label is None  # all ties: no label, never a guess


def test_cot_tiers_decide_on_the_unclamped_label():
    label, info = _judging("strict", cot=True)(_tiers(("safe", (0.95, 0.58)), ("helpful", (0.3, 0.3))))
    assert info["decided_by_tier"] == "safe" and label.p_first == pytest.approx((0.6 + 0.58) / 2)
