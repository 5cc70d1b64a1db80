"""Training rows in, trainer-ready rows out: reading files, weighted mixing, soft-label handling.

Pure Python over lists of dicts, so every rule here is cheap to test and needs no model.

SFT rows are `{"messages": [...]}` (or TRL's `prompt`/`completion`); preference rows are
`{"prompt", "chosen", "rejected", "score_chosen", "score_rejected", ...provenance}`, where a prompt
may be a string or a message list and chosen/rejected a string or an assistant message list.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from charter.errors import CharterError
from charter.rows import read_rows as read_row_file

PREFERENCE_COLUMNS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class DataFile:
    """A dataset file and, optionally, its share of the SFT mixture (relative weight)."""

    path: Path
    weight: float | None = None

    @classmethod
    def parse(cls, text: str | Path) -> DataFile:
        """"sl.parquet" or "sl.parquet:0.7" (weight after the last colon, unless the name exists)."""
        text = str(text)
        head, sep, tail = text.rpartition(":")
        if sep and not Path(text).exists():
            try:
                return cls(Path(head), float(tail))
            except ValueError:
                pass
        return cls(Path(text))

    def describe(self) -> dict:
        from charter.engines.common import file_fingerprint

        return {"path": str(self.path.resolve()), "weight": self.weight, "sha256_16": file_fingerprint(self.path)}


def read_rows(path: Path) -> list[dict]:
    """Rows of a dataset file: any format charter.rows reads (.jsonl, .json, .parquet, ...)."""
    return read_row_file(path, what="dataset file")


@dataclass
class _Group:
    label: str  # "FILE" or "FILE[stage=sl]"
    file: DataFile
    rows: list[dict]
    weight: float | None


def mix(files: list[DataFile], total: int | None = None, seed: int = 0, by: str | None = None,
        weights: dict[str, float] | None = None,
        convert: Callable[[dict, str], dict] | None = None) -> tuple[list[dict], list[dict]]:
    """Rows of several files, mixed by weight. Returns (rows, report: one entry per group).

    Groups are the files (weights from FILE:WEIGHT), or, with `by` (e.g. "stage", the column the
    data export writes), the values of that column in each file, weighted by `weights[value]`.
    Without any weights the files are simply concatenated. With weights, group i gets
    round(total * w_i / sum(w)) rows: a seeded shuffle of its rows, repeated if it needs more than
    it has. `total` defaults to the number of rows in all groups together. `convert(row, "file:row")`
    validates and reshapes each row.
    """
    convert = convert or (lambda row, where: row)
    groups = _groups(files, by, weights or {}, convert)
    weighted = [g.weight is not None for g in groups]
    if any(weighted) and not all(weighted):
        raise CharterError("give every dataset file a weight (FILE:WEIGHT) or none of them")
    if not any(weighted):
        counts = [len(g.rows) for g in groups]
    else:
        total = total or sum(len(g.rows) for g in groups)
        weight_sum = sum(g.weight for g in groups)
        if weight_sum <= 0 or any(g.weight < 0 for g in groups):
            raise CharterError("dataset weights must be >= 0 and not all 0")
        counts = [round(total * g.weight / weight_sum) for g in groups]
    rng = random.Random(seed)
    mixed, report = [], []
    for group, count in zip(groups, counts):
        order = list(range(len(group.rows)))
        rng.shuffle(order)
        mixed.extend(group.rows[order[i % len(order)]] for i in range(count))
        report.append({**group.file.describe(), "group": group.label, "weight": group.weight,
                       "rows_in_group": len(group.rows), "rows_used": count})
    rng.shuffle(mixed)
    return mixed, report


def _groups(files: list[DataFile], by: str | None, weights: dict[str, float], convert) -> list[_Group]:
    groups = []
    for f in files:
        raw = read_rows(f.path)
        if not raw:
            raise CharterError(f"dataset file {f.path} has no rows")
        if by is None:
            rows = [convert(row, f"{f.path}:{i}") for i, row in enumerate(raw, start=1)]
            groups.append(_Group(str(f.path), f, rows, f.weight))
            continue
        by_value: dict[str, list[dict]] = {}
        for i, row in enumerate(raw, start=1):
            if by not in row:
                raise CharterError(f"{f.path}:{i}: no '{by}' column to mix by; drop --mix-by or export "
                                   f"the data with that column")
            by_value.setdefault(str(row[by]), []).append(convert(row, f"{f.path}:{i}"))
        for value, rows in sorted(by_value.items()):
            if value not in weights:
                raise CharterError(f"{f.path} has rows with {by}={value} but no weight for them; add "
                                   f"--mix {value}=WEIGHT (0 leaves them out)")
            groups.append(_Group(f"{f.path}[{by}={value}]", f, rows, weights[value]))
    return groups


def sft_row(row: dict, loss_on: str, where: str) -> dict:
    """One SFT row in the form TRL trains: prompt/completion (loss on the last reply) or messages."""
    if "messages" not in row:
        if "prompt" in row and "completion" in row:
            return {"prompt": row["prompt"], "completion": row["completion"]}
        raise CharterError(f"{where}: an SFT row needs 'messages' (or 'prompt' and 'completion'); "
                           f"found columns {sorted(row)}")
    messages = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    if not messages or messages[-1]["role"] != "assistant":
        raise CharterError(f"{where}: the last message must be the assistant's reply to learn")
    if loss_on == "all":
        return {"messages": messages}
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def preference(row: dict) -> float:
    """How sure the labeller was that `chosen` beats `rejected`, as a probability p.

    p = score_chosen / (score_chosen + score_rejected) when both scores are there (they are the
    judge's option probabilities, which need not sum to 1 after clamping); score_chosen alone is
    taken as p; no scores means the pair is labelled by construction: p = 1.
    """
    chosen, rejected = row.get("score_chosen"), row.get("score_rejected")
    if chosen is None:
        return 1.0
    if rejected is None:
        return float(chosen)
    total = float(chosen) + float(rejected)
    return 0.5 if total <= 0 else float(chosen) / total


def prepare_preferences(rows: list[dict], min_margin: float) -> tuple[list[dict], dict]:
    """Orient, filter and normalise preference rows. Returns (kept rows, counts).

    - a pair whose scores favour `rejected` (p < 0.5) is swapped, so `chosen` is always preferred;
    - a pair with |p - 0.5| < min_margin is dropped (the labeller could not tell them apart);
    - each kept row gains `preference` (p >= 0.5 after orienting); other columns ride along;
    - string prompts/responses become chat messages so the model's chat template is applied.
    """
    kept, swapped, dropped = [], 0, 0
    for index, row in enumerate(rows):
        missing = [c for c in PREFERENCE_COLUMNS if c not in row]
        if missing:
            raise CharterError(f"preference row {index}: missing column(s) {', '.join(missing)}; rows need "
                               f"prompt, chosen, rejected (and optionally score_chosen, score_rejected)")
        p = preference(row)
        if abs(p - 0.5) < min_margin:
            dropped += 1
            continue
        row = dict(row)
        if p < 0.5:
            row["chosen"], row["rejected"] = row["rejected"], row["chosen"]
            row["score_chosen"], row["score_rejected"] = row.get("score_rejected"), row.get("score_chosen")
            p, swapped = 1.0 - p, swapped + 1
        row.update(as_conversation(row), preference=p)
        kept.append(row)
    return kept, {"rows_in": len(rows), "kept": len(kept), "dropped_uncertain": dropped, "swapped": swapped}


def as_conversation(row: dict) -> dict:
    """prompt/chosen/rejected as message lists (TRL's conversational preference format)."""
    prompt = row["prompt"]
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    return {"prompt": prompt, "chosen": _as_reply(row["chosen"]), "rejected": _as_reply(row["rejected"])}


def _as_reply(value) -> list[dict]:
    return [{"role": "assistant", "content": value}] if isinstance(value, str) else value


def label_noise(rows: list[dict], cap: float) -> float:
    """Estimated chance a kept label is wrong: mean(1 - p), capped (rDPO's epsilon)."""
    if not rows:
        return 0.0
    return min(cap, sum(1.0 - r["preference"] for r in rows) / len(rows))


def read_preferences(files: list[Path], min_margin: float) -> tuple[list[dict], dict]:
    rows = [row for path in files for row in read_rows(Path(path))]
    if not rows:
        raise CharterError(f"no preference rows in {', '.join(map(str, files))}")
    kept, counts = prepare_preferences(rows, min_margin)
    if not kept:
        raise CharterError(f"all {len(rows)} preference pairs were within {min_margin} of a coin flip; "
                           f"lower --min-margin or label more decisive pairs")
    return kept, counts


def to_dataset(rows: list[dict]):
    """A datasets.Dataset; provenance columns stay (trainers ignore unknown columns)."""
    from datasets import Dataset

    try:
        return Dataset.from_list(rows)
    except (TypeError, ValueError, ArithmeticError) as exc:
        # Provenance columns of mixed types across files cannot share one Arrow schema; the
        # trainers only read the contract columns, so keep those.
        contract = ("prompt", "chosen", "rejected", "completion", "messages", "preference", "margin")
        slim = [{k: v for k, v in row.items() if k in contract} for row in rows]
        try:
            return Dataset.from_list(slim)
        except (TypeError, ValueError, ArithmeticError):
            raise CharterError(f"training rows do not fit one table ({exc}); check the dataset files") from exc
