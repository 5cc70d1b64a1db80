"""Prompt sets: load them from JSONL, CSV, Parquet or a Hugging Face dataset, and deduplicate them.

A source is a path (`.jsonl`/`.json`, `.csv`, `.parquet`) or `hf:NAME[:split]`, where NAME is a
folder written by `Dataset.save_to_disk`, a folder of data files, or a Hub dataset already in the
local cache (nothing is downloaded at run time). Every bad row is a CharterError naming the file,
the line (or row) and the field.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from charter.errors import CharterError

EXAMPLE_SETS = ("red_team", "helpful", "borderline", "introspection")
PROMPT_COLUMNS = ("prompt", "question", "instruction")  # tried in order when no column is named


@dataclass(frozen=True)
class PromptItem:
    """One prompt. `uid` is unique across sources ("red_team/rt-001"); `mode` tells SL-CAI whether
    to critique its answer ("critique") or just answer it ("answer")."""

    uid: str
    prompt: str
    source: str
    category: str = ""
    clause_id: str | None = None  # set for generated prompts: the clause it was written for
    kind: str | None = None  # generated prompts: canonical | edge | lookalike | cannot_apply
    mode: str = "critique"

    def with_mode(self, mode: str) -> PromptItem:
        return replace(self, mode=mode)


def example_prompts_path(name: str) -> Path:
    """A prompt set shipped with charter: red_team, helpful, borderline (safe prompts that look
    dangerous) or introspection."""
    return Path(str(resources.files("charter") / "examples" / "prompts" / f"{name}.jsonl"))


def load_prompts(
    source: str | Path, column: str | None = None, mode: str = "critique", name: str | None = None
) -> list[PromptItem]:
    """Load one prompt source. `column` names the text column (default: prompt, question,
    instruction, or the first user turn of a `messages` column)."""
    text = str(source)
    if text.startswith("hf:"):
        rows = _hf_rows(text[3:])
        label = name or Path(text[3:].split(":")[0]).name or "hf"
        where = text
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise CharterError(f"prompt file {path} does not exist; check the --prompts path")
        label, where = name or path.stem, str(path)
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".json", ".ndjson"):
            rows = _jsonl_rows(path)
        elif suffix == ".csv":
            rows = _csv_rows(path)
        elif suffix in (".parquet", ".pq"):
            rows = _parquet_rows(path)
        else:
            raise CharterError(
                f"{path}: unknown prompt file type '{suffix}'; use .jsonl, .csv, .parquet "
                f"or hf:NAME[:split]"
            )
    items = []
    for line, row in rows:
        prompt = _prompt_of(row, column, where, line)
        ident = row.get("id")
        uid = f"{label}/{ident if ident not in (None, '') else line}"
        items.append(PromptItem(uid, prompt, label, str(row.get("category") or ""), mode=mode))
    if not items:
        raise CharterError(f"{where}: no prompts found; the file is empty")
    return items


def load_sources(
    sources: Iterable[str | Path], column: str | None = None, mode: str = "critique"
) -> list[PromptItem]:
    items: list[PromptItem] = []
    for source in sources:
        items.extend(load_prompts(source, column, mode))
    return items


def example_prompts(name: str, mode: str = "critique") -> list[PromptItem]:
    return load_prompts(example_prompts_path(name), mode=mode, name=name)


def interleave(lists: Iterable[list[PromptItem]]) -> list[PromptItem]:
    """Round-robin merge, so that a --limit run still draws from every source."""
    lists = [list(x) for x in lists]
    merged: list[PromptItem] = []
    for index in range(max((len(x) for x in lists), default=0)):
        merged += [x[index] for x in lists if index < len(x)]
    return merged


def normalize(text: str) -> str:
    """Text for near-duplicate detection: case, accents' forms, punctuation and spacing ignored."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def deduplicate(items: Iterable[PromptItem]) -> tuple[list[PromptItem], int]:
    """Keep the first of prompts whose exact or normalized text repeats; return (kept, dropped)."""
    seen: set[str] = set()
    kept: list[PromptItem] = []
    dropped = 0
    for item in items:
        keys = {item.prompt.strip(), normalize(item.prompt)}
        if keys & seen:
            dropped += 1
            continue
        seen.update(keys)
        kept.append(item)
    return kept, dropped


# -- readers: each yields (line or row number, row dict) ----------------------------------------


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CharterError(
                    f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno}); "
                    f"each line must be one JSON object"
                ) from None
            if not isinstance(row, dict):
                raise CharterError(
                    f'{path}:{number}: expected a JSON object like {{"prompt": "..."}}, '
                    f"got {type(row).__name__}"
                )
            yield number, row


def _csv_rows(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise CharterError(f"{path}:1: no header row; the first line must name the columns")
        for row in reader:
            yield reader.line_num, row


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise CharterError(f"{path}: not a readable Parquet file ({exc}); check the file") from None
    number = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            number += 1
            yield number, row


def _hf_rows(spec: str) -> Iterator[tuple[int, dict]]:
    yield from enumerate(_hf_dataset(spec), 1)


def _hf_dataset(spec: str):
    """`NAME[:split]`: a save_to_disk folder, a folder of data files, or a cached Hub dataset."""
    import datasets

    name, split = spec, None
    if ":" in spec and "/" not in spec.rsplit(":", 1)[1]:
        name, split = spec.rsplit(":", 1)
    folder = Path(name).expanduser()
    try:
        if folder.is_dir() and any(
            (folder / f).exists() for f in ("dataset_info.json", "dataset_dict.json", "state.json")
        ):
            loaded = datasets.load_from_disk(str(folder))
        else:
            loaded = datasets.load_dataset(str(folder) if folder.exists() else name, split=split)
    except Exception as exc:  # datasets raises many types; the user needs the name and the fix
        raise CharterError(
            f"hf:{spec}: could not load the dataset ({type(exc).__name__}: {exc}); check the "
            f"name and split, and that it is saved locally (no download at run time)"
        ) from None
    if isinstance(loaded, (datasets.DatasetDict, dict)):
        splits = list(loaded.keys())
        chosen = split or (
            "train" if "train" in splits else splits[0] if len(splits) == 1 else None
        )
        if chosen not in loaded:
            raise CharterError(
                f"hf:{spec}: has splits {', '.join(splits)}; name one, e.g. hf:{name}:{splits[0]}"
            )
        loaded = loaded[chosen]
    return loaded


def _prompt_of(row: dict, column: str | None, where: str, line: int) -> str:
    if column is not None:
        if column not in row:
            raise CharterError(
                f"{where}:{line}: field '{column}' is missing; the row has "
                f"{', '.join(map(str, row)) or 'no fields'} (use --column to name another)"
            )
        value = row[column]
        field_name = column
    else:
        field_name = next((c for c in PROMPT_COLUMNS if c in row), None)
        if field_name is None and "messages" in row:
            return _first_user_turn(row["messages"], where, line)
        if field_name is None:
            raise CharterError(
                f"{where}:{line}: no prompt field; expected one of "
                f"{', '.join(PROMPT_COLUMNS)} or messages (use --column to name it)"
            )
        value = row[field_name]
    if field_name == "messages" or isinstance(value, list):
        return _first_user_turn(value, where, line)
    if not isinstance(value, str):
        raise CharterError(
            f"{where}:{line}: field '{field_name}' must be text, got {type(value).__name__}"
        )
    if not value.strip():
        raise CharterError(
            f"{where}:{line}: field '{field_name}' is empty; remove the row or fill it in"
        )
    return value.strip()


def _first_user_turn(messages: Any, where: str, line: int) -> str:
    if isinstance(messages, list):
        for message in messages:
            if (
                isinstance(message, dict)
                and message.get("role") == "user"
                and str(message.get("content", "")).strip()
            ):
                return str(message["content"]).strip()
    raise CharterError(
        f"{where}:{line}: field 'messages' has no user turn with text; "
        f'expected [{{"role": "user", "content": "..."}}, ...]'
    )
