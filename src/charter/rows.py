"""Row files: the one reader and the one writer for every tabular file charter reads or writes.

Prompt sets, eval sets, training datasets and the pipeline's own files all go through here, so a
format means the same thing everywhere:

  .jsonl .ndjson   JSON Lines: one JSON object per line (blank lines skipped)
  .json            a JSON array of objects, or an object holding one under "data" or "rows";
                   a file of one object per line is read as JSON Lines
  .csv .tsv        a header row, then one row per line (comma / tab separated)
  .parquet .pq     Parquet
  FOLDER           a `datasets` save_to_disk folder, or a folder of data files
  hf:NAME[:split]  the same, or a Hub dataset already in the local cache (nothing is downloaded
                   at run time: HF_HUB_OFFLINE decides, see docs/setup.md)

Readers yield (number, row): the line number for line-based files, the row's 1-based position
otherwise, so an error can name the file, the line and the field. Writers are atomic: a crash
leaves the old file or the new one, never half of one (`atomic_path`).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from charter.errors import CharterError

LINE_SUFFIXES = (".jsonl", ".ndjson")
READABLE = ".jsonl, .json, .csv, .tsv, .parquet, a datasets folder or hf:NAME[:split]"
WRITABLE = (".jsonl", ".json", ".csv", ".tsv", ".parquet")


def iter_rows(source: str | Path, split: str | None = None, what: str = "file") -> Iterator[tuple[int, dict]]:
    """(number, row) for every row of `source`; `what` names it in errors ("prompt file", ...).

    `split` picks a split of a dataset with several (a `:split` in `hf:NAME:split` wins)."""
    text = str(source)
    if text.startswith("hf:"):
        yield from enumerate(_dataset_rows(text[3:], split, text), 1)
        return
    path = Path(source).expanduser()
    if not path.exists():
        raise CharterError(f"{what} {path} does not exist; check the path (or use hf:NAME for a dataset)")
    if path.is_dir():
        yield from enumerate(_dataset_rows(str(path), split, str(path)), 1)
        return
    suffix = path.suffix.lower()
    if suffix in LINE_SUFFIXES:
        yield from _json_lines(path)
    elif suffix == ".json":
        yield from _json_rows(path)
    elif suffix in (".csv", ".tsv"):
        yield from _delimited_rows(path, "\t" if suffix == ".tsv" else ",")
    elif suffix in (".parquet", ".pq"):
        yield from _parquet_rows(path)
    else:
        raise CharterError(f"{path}: unknown {what} type '{suffix}'; use {READABLE}")


def read_rows(source: str | Path, split: str | None = None, what: str = "file") -> list[dict]:
    """Every row of `source` as a dict (see the module docstring for the formats)."""
    return [row for _, row in iter_rows(source, split, what)]


def write_rows(path: Path, rows: Iterable[dict], schema=None, sort_keys: bool = False) -> int:
    """Write rows atomically in the format the suffix names; return how many were written.

    `schema` (a pyarrow schema) fixes Parquet's column types, so an empty dataset still has them;
    `sort_keys` orders each JSON line's keys (otherwise they keep the row's order)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITABLE:
        raise CharterError(f"{path}: cannot write '{suffix}' files; use {', '.join(WRITABLE)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if suffix == ".parquet":
            return _write_parquet(tmp, rows, schema)
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            if suffix == ".jsonl":
                return _write_lines(handle, rows, sort_keys)
            if suffix == ".json":
                listed = list(rows)
                json.dump(listed, handle, ensure_ascii=False, indent=1)
                return len(listed)
            return _write_delimited(handle, list(rows), "\t" if suffix == ".tsv" else ",")


def write_text_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Write a text file so that a crash leaves the old file or the new one; `mode` e.g. 0o600."""
    with atomic_path(Path(path)) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
        if mode is not None:
            os.chmod(tmp, mode)


def write_json_atomic(path: Path, data: Any) -> None:
    """JSON (indented, keys sorted) written atomically."""
    write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True))


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[str]:
    """A temporary path beside `path`; on success it is synced and renamed over `path`, on any
    error it is removed, so readers only ever see a complete file."""
    path = Path(path)
    _remove_leftovers(path)
    # The writer's pid is in the name, so a later write can tell a killed writer's leftover from a
    # file another live process is still writing.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_leftovers(path: Path) -> None:
    """Temporary files a killed writer of `path` left behind (SIGKILL skips every cleanup)."""
    import glob
    import time

    for old in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = old.name[len(path.name) + 2:].split(".", 1)[0]
        if pid.isdigit():
            stale = not _alive(int(pid))
        else:  # written before names carried a pid: stale once nothing has touched it for an hour
            try:
                stale = time.time() - old.stat().st_mtime > 3600
            except OSError:
                continue
        if stale:
            old.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


# -- readers -------------------------------------------------------------------------------------


def _json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CharterError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno}); "
                                   f"each line must be one JSON object") from None
            yield number, _object(row, path, number)


def _json_rows(path: Path) -> Iterator[tuple[int, dict]]:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if text.lstrip().startswith("{"):  # one object per line under a .json name
            yield from _json_lines(path)
            return
        raise CharterError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if isinstance(data, dict):
        data = next((data[key] for key in ("data", "rows") if isinstance(data.get(key), list)), [data])
    if not isinstance(data, list):
        raise CharterError(f"{path}: a .json file must hold a list of rows, got {type(data).__name__}")
    for number, row in enumerate(data, 1):
        yield number, _object(row, path, number, "row")


def _object(row: Any, path: Path, number: int, unit: str = "line") -> dict:
    if not isinstance(row, dict):
        where = f"{path}:{number}" if unit == "line" else f"{path}: row {number}"
        raise CharterError(f'{where}: expected a JSON object like {{"prompt": "..."}}, got {type(row).__name__}')
    return row


def _delimited_rows(path: Path, delimiter: str) -> Iterator[tuple[int, dict]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        if not reader.fieldnames:
            raise CharterError(f"{path}:1: no header row; the first line must name the columns")
        for row in reader:
            yield reader.line_num, row


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        raise CharterError(f"{path}: not a readable Parquet file ({exc}); check the file") from None
    number = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _dataset_rows(spec: str, split: str | None, label: str):
    """`NAME[:split]`: a save_to_disk folder, a folder of data files, or a cached Hub dataset."""
    import datasets

    name = spec
    if ":" in spec and "/" not in spec.rsplit(":", 1)[1]:
        name, split = spec.rsplit(":", 1)
    folder = Path(name).expanduser()
    try:
        if folder.is_dir() and any((folder / f).exists() for f in ("dataset_info.json", "dataset_dict.json",
                                                                     "state.json")):
            loaded = datasets.load_from_disk(str(folder))
        else:
            loaded = datasets.load_dataset(str(folder) if folder.exists() else name, split=split)
    except Exception as exc:  # noqa: BLE001 - datasets raises many types; the user needs the fix
        raise CharterError(f"{label}: could not load the dataset ({type(exc).__name__}: {exc}); check the "
                           f"name and split, and that it is saved locally (no download at run time)") from None
    if isinstance(loaded, (datasets.DatasetDict, dict)):
        splits = list(loaded.keys())
        chosen = split or ("train" if "train" in splits else splits[0] if len(splits) == 1 else None)
        if chosen not in loaded:
            raise CharterError(f"{label}: has splits {', '.join(splits)}; name one, e.g. "
                               f"hf:{name}:{splits[0]} (or --split {splits[0]})")
        loaded = loaded[chosen]
    return loaded


# -- writers -------------------------------------------------------------------------------------


def _write_lines(handle, rows: Iterable[dict], sort_keys: bool) -> int:
    count = 0
    for row in rows:
        handle.write(json.dumps(row, ensure_ascii=False, sort_keys=sort_keys) + "\n")
        count += 1
    return count


def _write_delimited(handle, rows: list[dict], delimiter: str) -> int:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.DictWriter(handle, fieldnames=columns, delimiter=delimiter)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
                         for k, v in row.items()})
    return len(rows)


def _write_parquet(path: str, rows: Iterable[dict], schema, group: int = 1000) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if schema is None:  # the types come from all the rows at once, as pyarrow infers them
        table = pa.Table.from_pylist(list(rows))
        pq.write_table(table, path)
        return table.num_rows
    count, buffer = 0, []
    with pq.ParquetWriter(path, schema) as writer:
        for row in rows:
            buffer.append(row)
            if len(buffer) >= group:
                writer.write_table(pa.Table.from_pylist(buffer, schema=schema))
                count, buffer = count + len(buffer), []
        if buffer:  # an empty dataset is a file with the columns and no row groups
            writer.write_table(pa.Table.from_pylist(buffer, schema=schema))
            count += len(buffer)
    return count
