"""`charter lint`'s near-duplicate check: the same pairs as comparing every pair, without doing so."""

from __future__ import annotations

import random
from itertools import combinations

import pytest

from charter.constitution.lint import _token_set, near_duplicates


def brute_force(texts: list[str], threshold: float) -> list[tuple[int, int, float]]:
    sets = [_token_set(t) for t in texts]
    out = []
    for i, j in combinations(range(len(texts)), 2):
        if sets[i] and sets[j]:
            similarity = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
            if similarity >= threshold:
                out.append((i, j, similarity))
    return out


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("threshold", [0.5, 0.8, 1.0])
def test_prefix_filtering_finds_exactly_the_pairs_all_pairs_would(seed, threshold):
    rng = random.Random(seed)
    vocabulary = [f"w{i}" for i in range(rng.choice([6, 12, 40]))]
    base = [" ".join(rng.sample(vocabulary, rng.randint(1, min(8, len(vocabulary))))) for _ in range(30)]
    # Near copies of some texts, so there are pairs above the threshold to find.
    texts = base + [t + " " + rng.choice(vocabulary) for t in rng.sample(base, 10)]
    assert near_duplicates(texts, threshold) == brute_force(texts, threshold)
