"""Export a run's SFT and preference datasets as Parquet or JSONL, in the formats TRL takes.

SFT rows are conversational: {"messages": [user, assistant]}. Preference rows use TRL's
conversational preference form, which DPOTrainer accepts (it applies the chat template itself):
{"prompt": [user message], "chosen": [assistant message], "rejected": [assistant message]},
plus score_chosen / score_rejected. Provenance rides in extra columns: id, stage, prompt_id,
example_kind, clause_ids, constitution_hash, engine, sampling (JSON text), seed, label_source, and
for preferences position_bias, feedback_engine, rejected_engine. Every dataset charter writes, in
`charter data export` and in `charter run`, goes through here with this one schema.

Rows stream from the store in order-key order and are written to a temporary file that replaces
the target only when complete, so a reader never sees half a dataset and a resumed run exports
byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from charter.errors import CharterError
from charter.rows import write_rows
from charter.store import Record, RunStore

FORMATS = ("parquet", "jsonl")


def _schemas():
    import pyarrow as pa

    message = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    provenance = [
        ("id", pa.string()),
        ("stage", pa.string()),
        ("prompt_id", pa.string()),
        ("example_kind", pa.string()),
        ("clause_ids", pa.list_(pa.string())),
        ("constitution_hash", pa.string()),
        ("engine", pa.string()),
        ("sampling", pa.string()),
        ("seed", pa.int64()),
    ]
    sft = pa.schema([("messages", message), *provenance, ("label_source", pa.string())])
    prefs = pa.schema(
        [
            ("prompt", message),
            ("chosen", message),
            ("rejected", message),
            ("score_chosen", pa.float64()),
            ("score_rejected", pa.float64()),
            *provenance,
            ("label_source", pa.string()),
            ("position_bias", pa.bool_()),
            ("feedback_engine", pa.string()),
            ("rejected_engine", pa.string()),
        ]
    )
    return {"sft": sft, "prefs": prefs}


def sft_rows(store: RunStore, stages: Iterable[str] | None = None) -> Iterator[dict]:
    return (_row(r, "sft") for r in _records(store, "sft", stages))


def pref_rows(store: RunStore, stages: Iterable[str] | None = None) -> Iterator[dict]:
    return (_row(r, "prefs") for r in _records(store, "pref", stages))


def _records(store: RunStore, kind: str, stages: Iterable[str] | None) -> Iterator[Record]:
    wanted = set(stages) if stages else None
    for record in store.iter(kind):
        if wanted is None or record.stage in wanted:
            yield record


def _row(record: Record, dataset: str) -> dict:
    d = record.data
    row = {
        "id": record.key,
        "stage": record.stage,
        "prompt_id": d.get("prompt_id"),
        "example_kind": d.get("example_kind"),
        "clause_ids": list(record.clause_ids),
        "constitution_hash": d.get("constitution_hash"),
        "engine": d.get("engine"),
        "sampling": json.dumps(d.get("sampling"), sort_keys=True)
        if d.get("sampling") is not None
        else None,
        "seed": d.get("seed"),
    }
    if dataset == "sft":
        return {"messages": d["messages"], **row, "label_source": d.get("label_source")}
    return {
        "prompt": d["prompt"],
        "chosen": d["chosen"],
        "rejected": d["rejected"],
        "score_chosen": float(d["score_chosen"]),
        "score_rejected": float(d["score_rejected"]),
        **row,
        "label_source": d.get("label_source"),
        "position_bias": d.get("position_bias"),
        "feedback_engine": d.get("feedback_engine"),
        "rejected_engine": d.get("rejected_engine"),
    }


def export_run(
    store: RunStore,
    out: str | Path,
    fmt: str = "parquet",
    stages: Iterable[str] | None = None,
    datasets: Iterable[str] = ("sft", "prefs"),
) -> dict[str, dict]:
    """Write `sft.<fmt>` and `prefs.<fmt>` into folder `out`; return {dataset: {path, rows}}.

    A dataset with no rows gets no file (and a stale one is removed): `datasets` cannot load an
    empty Parquet file as a split, so an empty file would only fail later, in training."""
    if fmt not in FORMATS:
        raise CharterError(f"export format '{fmt}' is unknown; use one of {', '.join(FORMATS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stages = list(stages) if stages else None
    results = {}
    for name in datasets:
        rows = sft_rows(store, stages) if name == "sft" else pref_rows(store, stages)
        path = out / f"{name}.{fmt}"
        count = write_rows(path, rows, _schemas()[name] if fmt == "parquet" else None)
        if count == 0:
            path.unlink()
        results[name] = {"path": str(path) if count else None, "rows": count}
    return results


def write_dataset(path: Path, rows: Iterable[dict], dataset: str) -> int:
    """Rows already in a dataset's form (from `sft_rows` / `pref_rows`, perhaps a selection of
    them) written with that dataset's schema; the suffix picks the format."""
    schema = _schemas()[dataset] if Path(path).suffix == ".parquet" else None
    return write_rows(Path(path), rows, schema)
