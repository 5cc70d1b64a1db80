"""`charter lint`'s near-duplicate check on a large generated constitution, side by side with
comparing every pair (what it did before), on the same texts in one run.

    python bench/lint_speed.py [--clauses 4000] [--brute-limit 4000]

Prints the seconds of each, their ratio, and that both found the same pairs. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from charter.constitution.lint import NEAR_DUPLICATE, _token_set, near_duplicates  # noqa: E402


def clauses(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = [f"word{i}" for i in range(3000)]
    texts = [" ".join(rng.sample(words, rng.randint(8, 30))) for _ in range(n)]
    for i in rng.sample(range(n), n // 20):  # some near copies to find
        texts[i] = texts[(i + 1) % n] + " " + rng.choice(words)
    return texts


def all_pairs(texts: list[str]) -> list[tuple[int, int, float]]:
    sets = [_token_set(t) for t in texts]
    found = []
    for i, j in combinations(range(len(texts)), 2):
        similarity = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
        if similarity >= NEAR_DUPLICATE:
            found.append((i, j, similarity))
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clauses", type=int, default=4000)
    args = parser.parse_args()
    texts = clauses(args.clauses)
    started = time.perf_counter()
    fast = near_duplicates(texts, NEAR_DUPLICATE)
    fast_s = time.perf_counter() - started
    started = time.perf_counter()
    slow = all_pairs(texts)
    slow_s = time.perf_counter() - started
    print(f"{args.clauses} clauses: prefix filtering {fast_s:.2f} s, all pairs {slow_s:.2f} s "
          f"(x{slow_s / fast_s:.0f}); same pairs: {fast == slow} ({len(fast)} pairs)")


if __name__ == "__main__":
    main()
