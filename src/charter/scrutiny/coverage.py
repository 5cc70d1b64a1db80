"""Which clauses the items outside the constitution exercise: prompt sets and eval items that name a
clause (`clause_id`, or `trait_id` for character items), counted per clause id."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from charter.rows import read_rows
from charter.shipped import shipped_path

SHIPPED_EVAL_SETS = ("adherence.jsonl", "gold_adherence.jsonl", "character.jsonl")


def exercised_by(paths: Iterable[str | Path] = (), shipped_evals: bool = True) -> dict[str, int]:
    """clause id -> how many rows of these files (and of the shipped eval sets) name it."""
    files = [str(p) for p in paths]
    if shipped_evals:
        files += [str(shipped_path("evals", "data", name)) for name in SHIPPED_EVAL_SETS]
    counts: Counter[str] = Counter()
    for path in files:
        for row in read_rows(path):
            for field in ("clause_id", "trait_id"):
                if row.get(field):
                    counts[str(row[field])] += 1
    return dict(counts)
