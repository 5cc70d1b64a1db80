"""Temperature + top-p sampling of many sequences at once from a matrix of logits, in numpy.

Each sequence owns its random generator, seeded from (request seed, sample index), and each row is
computed on its own, so a sample's tokens do not depend on which other sequences shared its batch.
"""

from __future__ import annotations

import numpy as np

# Probability floors tried in turn to find the nucleus without sorting the whole vocabulary: every
# token above a floor is more likely than every token below it, so if the tokens above the floor
# already hold top_p of the mass, the nucleus is among them (exact, not an approximation).
_FLOORS = (1e-4, 1e-6, 1e-8)


def sequence_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for sample `index` of a request seeded with `seed`."""
    return np.random.default_rng([seed & 0xFFFFFFFF, index])


def sample_rows(logits: np.ndarray, temperatures: list[float], top_ps: list[float],
                rngs: list[np.random.Generator]) -> list[int]:
    """One token id per row of `logits` (rows x vocab). Temperature <= 0 means greedy."""
    chosen: list[int] = []
    for row, temperature, top_p, rng in zip(logits, temperatures, top_ps, rngs):
        if temperature <= 0:
            chosen.append(int(np.argmax(row)))
        else:
            chosen.append(_sample_top_p(np.asarray(row, dtype=np.float32) / np.float32(temperature),
                                        top_p, rng))
    return chosen


def _sample_top_p(scaled: np.ndarray, top_p: float, rng: np.random.Generator) -> int:
    weights = np.exp(scaled - scaled.max())
    total = float(weights.sum(dtype=np.float64))
    if top_p >= 1.0:  # the whole distribution: no sorting needed
        keep = np.arange(weights.size)
    else:
        keep = None
        for floor in _FLOORS:
            candidates = np.flatnonzero(weights >= floor * total)
            if weights[candidates].sum(dtype=np.float64) >= top_p * total:
                keep = candidates
                break
        if keep is None:  # a very flat distribution: sort everything
            keep = np.arange(weights.size)
        order = keep[np.argsort(-weights[keep], kind="stable")]
        cumulative = np.cumsum(weights[order], dtype=np.float64)
        keep = order[: int(np.searchsorted(cumulative, top_p * total)) + 1]
    # Inverse-CDF draw with one uniform number per token: cheaper than rng.choice's checks.
    cdf = np.cumsum(weights[keep], dtype=np.float64)
    position = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    return int(keep[min(position, keep.size - 1)])


def log_softmax(row: np.ndarray) -> np.ndarray:
    row = row.astype(np.float64)
    top = row.max()
    return row - top - np.log(np.exp(row - top).sum())
