"""Bootstrap intervals, paired deltas, kappa and Bradley-Terry on data with known answers."""

from __future__ import annotations

import numpy as np

from charter.evals.stats import (
    bradley_terry,
    bradley_terry_ci,
    cohen_kappa,
    mean_ci,
    paired_delta,
    unpaired_delta,
)


def test_bootstrap_interval_covers_the_true_rate_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    true_rate, covered, trials = 0.3, 0, 200
    for trial in range(trials):
        sample = (rng.random(80) < true_rate).astype(float).tolist()
        e = mean_ci(sample, seed=trial, n_boot=500)
        covered += e.low <= true_rate <= e.high
    assert 0.88 <= covered / trials <= 0.99


def test_intervals_are_seeded_and_abstentions_are_counted_not_scored():
    values = [1, 0, 1, None, 1, 0, None]
    assert mean_ci(values, seed=3) == mean_ci(values, seed=3)
    e = mean_ci(values)
    assert e.n == 5 and e.unscored == 2 and e.value == 0.6
    assert mean_ci([None, None]).value is None


def test_pairing_finds_a_small_consistent_change_that_unpaired_comparison_misses():
    rng = np.random.default_rng(0)
    base = rng.random(60)  # item difficulty varies a lot; the change is small and consistent
    before = {f"i{n}": float(v) for n, v in enumerate(base)}
    after = {k: v + 0.05 for k, v in before.items()}
    paired = paired_delta(before, after)
    assert abs(paired.value - 0.05) < 1e-9 and paired.low > 0
    unpaired = unpaired_delta(list(before.values()), list(after.values()))
    assert unpaired.low < 0 < unpaired.high


def test_paired_delta_uses_only_items_both_runs_scored():
    d = paired_delta({"a": 1.0, "b": 0.0, "c": None}, {"a": 0.0, "b": 0.0, "d": 1.0})
    assert d.n == 2 and d.value == -0.5 and d.unscored == 2


def test_kappa_matches_a_hand_computed_value():
    first = ["y", "y", "n", "n", "y", "n", "y", "y", "n", "n"]
    second = ["y", "n", "n", "n", "y", "n", "y", "y", "y", "n"]
    result = cohen_kappa(first, second)
    # observed 0.8, expected 0.5 -> kappa 0.6
    assert result["agreement"] == 0.8 and abs(result["kappa"] - 0.6) < 1e-9
    assert cohen_kappa(["a", "a"], ["a", "a"])["kappa"] is None  # undefined, not 1 or 0
    assert cohen_kappa(["a", None], [None, "b"])["n"] == 0


def test_bradley_terry_recovers_a_known_ordering_with_intervals():
    rng = np.random.default_rng(7)
    truth = {"weak": -1.0, "mid": 0.0, "strong": 1.2, "best": 2.0}
    models = list(truth)
    games = []
    for _ in range(600):
        a, b = rng.choice(models, size=2, replace=False)
        p_a = 1 / (1 + np.exp(truth[b] - truth[a]))
        games.append((str(a), str(b), float(rng.random() < p_a)))
    ratings = bradley_terry(models, games)
    assert sorted(models, key=ratings.get) == ["weak", "mid", "strong", "best"]
    with_ci = bradley_terry_ci(models, games, n_boot=100)
    assert with_ci["best"].low > with_ci["weak"].high
    assert all(e.low <= e.value <= e.high for e in with_ci.values())


def test_bradley_terry_stays_finite_for_an_unbeaten_model():
    ratings = bradley_terry(["a", "b", "c"], [("a", "b", 1.0), ("a", "c", 1.0), ("b", "c", 0.5)])
    assert all(np.isfinite(v) for v in ratings.values()) and ratings["a"] > ratings["b"]
