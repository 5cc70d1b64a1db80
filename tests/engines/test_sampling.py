"""The numpy sampler: greedy, the top-p nucleus, the sampled frequencies, per-row independence."""

from __future__ import annotations

import numpy as np

from charter.engines.sampling import sample_rows, sequence_rng


def nucleus_distribution(logits, temperature, top_p):
    p = np.exp(logits / temperature - np.max(logits / temperature))
    p /= p.sum()
    order = np.argsort(-p)
    nucleus = order[: np.searchsorted(np.cumsum(p[order]), top_p) + 1]
    q = np.zeros_like(p)
    q[nucleus] = p[nucleus]
    return q / q.sum()


def test_greedy_picks_the_argmax():
    logits = np.array([[0.1, 3.0, 2.0], [5.0, 1.0, 0.0]], dtype=np.float32)
    rngs = [sequence_rng(0, i) for i in range(2)]
    assert sample_rows(logits, [0.0, 0.0], [0.9, 0.9], rngs) == [1, 0]


def test_frequencies_follow_the_nucleus():
    logits = (np.random.default_rng(0).standard_normal(64) * 2).astype(np.float32)
    expected = nucleus_distribution(logits, 0.8, 0.9)
    rng = sequence_rng(1, 0)
    draws = [sample_rows(logits[None], [0.8], [0.9], [rng])[0] for _ in range(20000)]
    freq = np.bincount(draws, minlength=64) / len(draws)
    assert freq[expected == 0].sum() == 0  # never outside the nucleus
    assert np.abs(freq - expected).max() < 0.015


def test_flat_distributions_take_the_slow_path_and_stay_exact():
    logits = np.zeros((1, 50000), dtype=np.float32)
    logits[0, :10] = 0.5
    picks = {sample_rows(logits, [1.0], [0.999], [sequence_rng(s, 0)])[0] for s in range(200)}
    assert len(picks) > 150  # the nucleus spans nearly the whole vocabulary


def test_a_row_does_not_depend_on_its_neighbours():
    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((4, 1000)) * 3).astype(np.float32)
    alone = sample_rows(logits[2:3], [0.7], [0.95], [sequence_rng(9, 2)])
    together = sample_rows(logits, [0.7] * 4, [0.95] * 4, [sequence_rng(9, i) for i in range(4)])
    assert together[2] == alone[0]
