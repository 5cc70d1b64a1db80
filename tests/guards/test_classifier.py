"""The classifier's pieces that need no data run: calibration, AUC, saving and loading."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from charter.errors import CharterError
from charter.guards.classifier import (
    GuardClassifier,
    Head,
    StageModel,
    calibrate,
    fit_head,
    roc_auc,
)


def test_auc_matches_counting_every_pair():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(40), 1)  # ties on purpose
    labels = rng.integers(0, 2, 40)
    pairs = [(p, n) for p, n in itertools.product(scores[labels == 1], scores[labels == 0])]
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert roc_auc(scores, labels) == pytest.approx(expected)


def test_calibration_blocks_at_most_the_target_share_of_benign_items_over_all_lines():
    rng = np.random.default_rng(1)
    scores = rng.random((500, 3))
    benign = np.arange(500) < 400
    for target in (0.0, 0.05, 0.2):
        thresholds = calibrate(scores, benign, target)
        blocked = (scores[benign] >= thresholds).any(axis=1).mean()
        assert blocked <= target + 1e-9
        assert blocked >= target - 0.03  # and not needlessly strict


def test_calibration_without_benign_items_is_a_clear_error():
    with pytest.raises(CharterError, match="no benign items"):
        calibrate(np.zeros((3, 1)), np.zeros(3, dtype=bool), 0.05)


@pytest.mark.parametrize("kind", ["logistic", "mlp"])
def test_heads_learn_a_separable_problem(kind):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    y = np.stack([(x[:, 0] > 0.5), (x[:, 1] < -0.5)], axis=1).astype(np.float32)
    head = fit_head(kind, x, y)
    assert roc_auc(head.scores(x)[:, 0], y[:, 0]) > 0.95
    assert roc_auc(head.scores(x)[:, 1], y[:, 1]) > 0.95


def _classifier(kind: str = "logistic") -> GuardClassifier:
    rng = np.random.default_rng(3)
    arrays = {"w1": rng.normal(size=(4, 2)).astype(np.float32), "b1": np.zeros(2, np.float32)}
    if kind == "mlp":
        arrays = {"w1": rng.normal(size=(4, 3)).astype(np.float32), "b1": np.zeros(3, np.float32),
                  "w2": rng.normal(size=(3, 2)).astype(np.float32), "b2": np.zeros(2, np.float32)}
    stage = StageModel(Head(kind, arrays), np.array([0.6, 0.7], np.float32), np.array([0.4, 0.5], np.float32))
    return GuardClassifier(["a", "b"], {"input": stage, "output": stage}, {"data_hash": "x"})


@pytest.mark.parametrize("kind", ["logistic", "mlp"])
def test_saved_guards_load_to_the_same_scores_and_version(tmp_path, kind):
    classifier = _classifier(kind)
    classifier.save(tmp_path / "guard")
    loaded = GuardClassifier.load(tmp_path)  # the run folder is accepted for its guard/
    x = np.random.default_rng(4).normal(size=(5, 4)).astype(np.float32)
    assert np.allclose(loaded.line_scores("input", x), classifier.line_scores("input", x), atol=1e-6)
    assert loaded.version == classifier.version and len(loaded.version) == 16
    assert loaded.lines == ["a", "b"]


def test_decide_names_the_line_over_its_threshold_and_the_uncertain_ones():
    classifier = _classifier()
    head = classifier.stages["input"].head
    # Vectors whose scores we set through the head: find one per case by search.
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2000, 4)).astype(np.float32) * 3
    scores = head.scores(x)
    over_a = x[(scores[:, 0] >= 0.6) & (scores[:, 1] < 0.5)][:1]
    blocked, uncertain, best = classifier.decide("input", over_a)
    assert blocked == "a" and uncertain == [] and best["a"] >= 0.6
    band_b = x[(scores[:, 0] < 0.4) & (scores[:, 1] >= 0.5) & (scores[:, 1] < 0.7)][:1]
    blocked, uncertain, _ = classifier.decide("input", band_b)
    assert blocked is None and uncertain == ["b"]


def test_a_missing_or_foreign_guard_folder_is_a_clear_error(tmp_path):
    with pytest.raises(CharterError, match="holds no trained guard"):
        GuardClassifier.load(tmp_path)
    _classifier().save(tmp_path)
    spec = json.loads((tmp_path / "guard.json").read_text())
    (tmp_path / "guard.json").write_text(json.dumps({**spec, "format": 99}))
    with pytest.raises(CharterError, match="format 99"):
        GuardClassifier.load(tmp_path)
    (tmp_path / "weights.npz").write_bytes(b"not a zip")
    (tmp_path / "guard.json").write_text(json.dumps(spec))
    with pytest.raises(CharterError, match="cannot be read"):
        GuardClassifier.load(tmp_path)


def test_a_guard_is_saved_whole_and_replaces_the_last_one(tmp_path):
    from charter.guards.training import save_guard

    metrics = {"data_hash": "x", "counts": {},
               **{f"{s}_choice": {"head": "logistic", "cross_validation": {}} for s in ("input", "output")},
               "input_test": {"attacks_blocked": {"rate": None}, "benign_blocked": {"rate": None}, "auc": None,
                              "attacks_by_family": {}, "attacks_by_line": {}, "benign_by_kind": {},
                              "benign_by_family": {}, "roc": []}}
    first = _classifier()
    first.meta["max_false_block"] = 0.05
    save_guard(tmp_path / "guard", first, metrics)
    (tmp_path / "guard" / "stale.txt").write_text("from an older training")
    second = _classifier("mlp")
    second.meta["max_false_block"] = 0.05
    save_guard(tmp_path / "guard", second, metrics)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["guard"]
    assert not (tmp_path / "guard" / "stale.txt").exists()
    assert GuardClassifier.load(tmp_path / "guard").version == second.version != first.version
