"""Prompt sets: load them from JSONL, CSV, Parquet or a Hugging Face dataset, and deduplicate them.

A source is any row file charter reads (charter.rows: `.jsonl`, `.json`, `.csv`, `.tsv`, `.parquet`, a
datasets folder) or `hf:NAME[:split]`, where NAME is a
folder written by `Dataset.save_to_disk`, a folder of data files, or a Hub dataset already in the
local cache (nothing is downloaded at run time). Every bad row is a CharterError naming the file,
the line (or row) and the field.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from charter.errors import CharterError
from charter.rows import iter_rows
from charter.shipped import example_path

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
    return example_path(f"prompts/{name}.jsonl")


def load_prompts(
    source: str | Path, column: str | None = None, mode: str = "critique", name: str | None = None
) -> list[PromptItem]:
    """Load one prompt source. `column` names the text column (default: prompt, question,
    instruction, or the first user turn of a `messages` column)."""
    text = str(source)
    if text.startswith("hf:"):
        label = name or Path(text[3:].split(":")[0]).name or "hf"
        where = text
    else:
        path = Path(source).expanduser()
        label, where = name or path.stem, str(path)
    rows = iter_rows(source, what="prompt file")
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
