"""Eval items from the built-in sets or from any JSONL, JSON, CSV, Parquet file or HF dataset.

An external set's columns are mapped onto charter's field names with `columns`, e.g.
`{"prompt": "question", "label": "type"}` (the CLI's `--column prompt=question`). Items without an
id get a stable one derived from their prompt, so two runs on the same file pair up in `compare`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from charter.errors import CharterError
from charter.rows import read_rows as read_row_file
from charter.shipped import shipped_path

# The fields each suite needs in every item; other fields ride along into the findings.
REQUIRED = {
    "harmful": ("prompt",),
    "overrefusal": ("prompt",),
    "helpfulness": ("prompt",),
    "adherence": ("prompt", "clause_id"),
    "character": ("statement", "trait_id", "polarity"),
    "pairs": ("prompt", "side", "pair_id"),
    "pairs_dev": ("prompt", "side", "pair_id"),
}
# Built-in sets stored under another file name: the minimal pairs' pools (docs/evals.md, "Pools").
BUILTIN_FILES = {"pairs": "minimal_pairs_test", "pairs_dev": "minimal_pairs_dev"}
# Label values that say what an item expects, for external sets that mix safe and unsafe prompts.
UNSAFE_LABELS = {"harmful", "unsafe", "refuse", "refusal", "1", "true", "yes", "contrast_harmful"}
SAFE_LABELS = {"safe", "benign", "harmless", "comply", "compliance", "0", "false", "no"}


def builtin_path(name: str) -> Path:
    """Path of a set shipped in charter/evals/data (e.g. "harmful", "gold_refusal")."""
    path = shipped_path("evals", "data", f"{BUILTIN_FILES.get(name, name)}.jsonl")
    if not path.is_file():
        raise CharterError(f"built-in eval set '{name}' is missing ({path}); reinstall charter")
    return path


def builtin_items(name: str) -> list[dict]:
    return read_rows(builtin_path(name))


def read_rows(source: str | Path, split: str = "train") -> list[dict]:
    """Rows of an eval set: any row file (charter.rows), a `save_to_disk` folder, or `hf:NAME`."""
    return read_row_file(source, split, what="prompt set")


def map_columns(rows: Iterable[dict], columns: dict[str, str] | None, source: str) -> list[dict]:
    """Rename columns to charter's fields and give every row a string id."""
    columns = columns or {}
    items = []
    for number, row in enumerate(rows, start=1):
        item = dict(row)
        for field, column in columns.items():
            if column not in row:
                raise CharterError(
                    f"{source}: row {number} has no column '{column}' (mapped to '{field}'); "
                    f"columns are: {', '.join(map(str, row))}"
                )
            item[field] = row[column]
        item["id"] = str(item.get("id") or stable_id(item))
        items.append(item)
    return items


def stable_id(item: dict) -> str:
    text = str(
        item.get("prompt") or item.get("statement") or json.dumps(item, sort_keys=True, default=str)
    )
    return "x-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def check_items(suite: str, items: list[dict], source: str) -> None:
    missing = [f for f in REQUIRED[suite] if items and f not in items[0]]
    if missing:
        raise CharterError(
            f"{source}: suite '{suite}' needs field(s) {', '.join(missing)}; map them with "
            f"--column {missing[0]}=COLUMN"
        )
    ids = [item["id"] for item in items]
    if len(set(ids)) != len(ids):
        duplicate = next(i for i in ids if ids.count(i) > 1)
        raise CharterError(f"{source}: id '{duplicate}' appears more than once; ids must be unique")


def filter_by_label(suite: str, items: list[dict]) -> tuple[list[dict], int]:
    """Keep the items a refusal suite should see: unsafe labels for harmful, safe for overrefusal.

    Items without a label are kept. Returns the kept items and how many were skipped.
    """
    wanted = {"harmful": UNSAFE_LABELS, "overrefusal": SAFE_LABELS}.get(suite)
    if wanted is None:
        return items, 0
    kept = [i for i in items if i.get("label") is None or str(i["label"]).strip().lower() in wanted]
    return kept, len(items) - len(kept)


def load_items(
    suite: str,
    source: str | Path | None = None,
    columns: dict[str, str] | None = None,
    split: str = "train",
) -> tuple[list[dict], int]:
    """A suite's items (its built-in set when `source` is None) and how many labels skipped."""
    if suite == "conversations":  # scenarios are YAML with their own schema (evals/scenarios.py)
        from charter.evals.scenarios import load_scenarios

        return [s.model_dump(by_alias=True, mode="json") for s in load_scenarios(source)], 0
    rows = builtin_items(suite) if source is None else read_rows(source, split)
    name = f"built-in set '{suite}'" if source is None else str(source)
    items = map_columns(rows, columns, name)
    if not items:
        raise CharterError(f"{name} has no rows; give a prompt set with at least one row")
    check_items(suite, items, name)
    return filter_by_label(suite, items)


def spread(items: list[dict], limit: int | None, group: str | tuple[str, ...],
           together: str | None = None) -> list[dict]:
    """`limit` items taken round-robin across the groups of the first field, so a small limit still
    covers every clause or category. A second field (kind, polarity) is balanced too: each group
    starts at the next value of it. Deterministic, so two runs with equal limits pair up."""
    if together and limit is not None and limit < len(items):
        # Whole units (a minimal pair's two sides): spread the units' first items, keep the rest.
        firsts = list({item.get(together, item["id"]): item for item in reversed(items)}.values())[::-1]
        chosen = {item.get(together, item["id"]) for item in spread(firsts, max(1, limit // 2), group)}
        return [item for item in items if item.get(together, item["id"]) in chosen]
    if limit is None or limit >= len(items):
        return items
    first, *rest = (group,) if isinstance(group, str) else group
    groups: dict[str, dict[tuple, list[dict]]] = {}
    for item in items:
        sub = tuple(str(item.get(f, "")) for f in rest)
        groups.setdefault(str(item.get(first, "")), {}).setdefault(sub, []).append(item)
    queues = [_interleave(list(subs.values()), shift) for shift, subs in enumerate(groups.values())]
    picked: list[dict] = []
    for depth in range(max(map(len, queues))):
        picked += [queue[depth] for queue in queues if depth < len(queue)]
    return picked[:limit]


def _interleave(buckets: list[list[dict]], shift: int) -> list[dict]:
    shift %= len(buckets)
    buckets = buckets[shift:] + buckets[:shift]
    deepest = max(map(len, buckets))
    return [b[d] for d in range(deepest) for b in buckets if d < len(b)]


def parse_columns(pairs: list[str]) -> dict[str, str]:
    """`["prompt=question", "label=type"]` -> {"prompt": "question", "label": "type"}."""
    columns = {}
    for pair in pairs:
        field, sep, column = pair.partition("=")
        if not sep or not field.strip() or not column.strip():
            raise CharterError(
                f"--column '{pair}' is not FIELD=COLUMN; write e.g. --column prompt=question"
            )
        columns[field.strip()] = column.strip()
    return columns
