"""Which clauses the items outside the constitution exercise: prompt sets and eval items that name a
clause (`clause_id`, or `trait_id` for character items), counted per clause id.

The shipped eval sets were written for the shipped example constitution, so an item of theirs
counts for a clause only where that clause *is* the example's (same id and same text): a user's own
`warmth` trait that shares the id but not the words is not exercised by items about another text."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from charter.constitution.model import Constitution
from charter.rows import read_rows
from charter.shipped import example_path, shipped_path

SHIPPED_EVAL_SETS = ("adherence.jsonl", "gold_adherence.jsonl", "character.jsonl")


def exercised_by(constitution: Constitution, paths: Iterable[str | Path] = (), shipped_evals: bool = True
                 ) -> dict[str, int]:
    """clause id -> how many rows of these files (and of the shipped eval sets, for the example's
    own clauses) name it."""
    counts: Counter[str] = Counter()
    for path in paths:
        counts.update(_named(str(path)))
    if shipped_evals:
        same = _shared_with_example(constitution)
        for name in SHIPPED_EVAL_SETS:
            counts.update(c for c in _named(str(shipped_path("evals", "data", name))) if c in same)
    return dict(counts)


def _named(path: str) -> list[str]:
    return [str(row[field]) for row in read_rows(path) for field in ("clause_id", "trait_id") if row.get(field)]


def _texts(constitution: Constitution) -> dict[str, str]:
    return {c.id: " ".join(c.text.split()) for clauses in constitution.clauses_by_kind().values() for c in clauses}


def _shared_with_example(constitution: Constitution) -> set[str]:
    """Ids of the clauses this constitution shares, word for word, with the shipped example."""
    from charter.constitution import load_constitution

    example = _texts(load_constitution(example_path("constitution.yaml")))
    return {cid for cid, text in _texts(constitution).items() if example.get(cid) == text}
