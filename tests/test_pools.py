"""The train, dev and test prompt pools (charter/pools.py) share nothing: no prompt of one repeats
in another, exactly or once case and punctuation are dropped, and no two are about the same
thing (topic-word overlap below 0.5). Headline figures come from *test*; knobs are chosen on *dev*."""

from __future__ import annotations

import itertools

import pytest

from charter.pools import POOLS, normalised, pool_files, pool_prompts, topic_overlap

MAX_OVERLAP = 0.5


@pytest.fixture(scope="module")
def prompts():
    return {pool: pool_prompts(pool) for pool in POOLS}


def test_every_pool_file_exists_and_has_prompts(prompts):
    for pool in POOLS:
        assert all(path.is_file() for path in pool_files(pool)), pool
        assert len(prompts[pool]) >= 100, pool


def test_the_minimal_pairs_come_in_pairs_of_every_kind():
    from charter.rows import read_rows

    for pool, parts in (("train", ("examples", "prompts", "minimal_pairs_train.jsonl")),
                        ("dev", ("evals", "data", "minimal_pairs_dev.jsonl")),
                        ("test", ("evals", "data", "minimal_pairs_test.jsonl"))):
        from charter.shipped import shipped_path

        rows = read_rows(shipped_path(*parts))
        sides: dict[str, set] = {}
        for row in rows:
            assert row["pool"] == pool and row["side"] in ("safe", "unsafe")
            sides.setdefault(row["pair_id"], set()).add(row["side"])
        assert all(s == {"safe", "unsafe"} for s in sides.values())
        assert len({row["kind"] for row in rows}) == 10


@pytest.mark.parametrize("first,second", list(itertools.combinations(POOLS, 2)))
def test_pools_are_disjoint(prompts, first, second):
    exact = set(prompts[first]) & set(prompts[second])
    assert not exact, f"{first} and {second} share {sorted(exact)[:3]}"
    norm = {normalised(p) for p in prompts[first]} & {normalised(p) for p in prompts[second]}
    assert not norm, f"{first} and {second} share (normalised) {sorted(norm)[:3]}"
    close = [(a, b) for a in prompts[first] for b in prompts[second] if topic_overlap(a, b) >= MAX_OVERLAP]
    assert not close, f"{len(close)} {first}/{second} prompt(s) about the same thing, e.g. {close[:3]}"
