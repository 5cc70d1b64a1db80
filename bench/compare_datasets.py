"""Row-for-row comparison of two `charter run` folders' datasets (datasets/{sft,prefs,dpo}.parquet).

    python bench/compare_datasets.py RUN_BEFORE RUN_AFTER

For a change that should not change the data: prints, per dataset, the row counts, the columns only
one side has, and how many rows differ in each shared column (`sampling` compared as parsed JSON,
since it was once a struct column and is JSON text in the one exporter's schema).
"""

from __future__ import annotations

import json
import sys

import pyarrow.parquet as pq


def _value(row: dict, column: str):
    value = row[column]
    if column == "sampling" and value is not None:
        return json.dumps(json.loads(value) if isinstance(value, str) else value, sort_keys=True)
    return value


def main(before: str, after: str) -> None:
    for name in ("sft", "prefs", "dpo"):
        a = pq.read_table(f"{before}/datasets/{name}.parquet")
        b = pq.read_table(f"{after}/datasets/{name}.parquet")
        rows_a, rows_b = a.to_pylist(), b.to_pylist()
        shared = [c for c in a.column_names if c in b.column_names]
        differing = {c: sum(_value(x, c) != _value(y, c) for x, y in zip(rows_a, rows_b)) for c in shared}
        print(f"{name}: rows {len(rows_a)} vs {len(rows_b)}; "
              f"only before {[c for c in a.column_names if c not in b.column_names]}, "
              f"only after {[c for c in b.column_names if c not in a.column_names]}; "
              f"rows differing per shared column: {({c: n for c, n in differing.items() if n}) or 'none'}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
