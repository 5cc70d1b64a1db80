"""What every data stage shares: seeds, keys, provenance, batched generation and the stage summary.

Resume reproduces an uninterrupted run because of three rules kept here:

1. Work is done in *work batches* whose membership depends only on the inputs (consecutive
   prompts in input order), never on what happens to be left over after a crash.
2. Every request carries its own seed, derived from the run seed and the unit's identity, and each
   engine call starts from a clean cache. The embedded llama.cpp engine is deterministic for a
   given batch but not batch-invariant (a request alone and the same request among others can
   sample different text), and KV reused from an earlier call changes the numbers slightly. It now
   clears its cache at the start of every generate() itself; for any engine that keeps state, the
   stages call its `reset_cache()` before each call.
3. All records a batch produces are written in one transaction, so a killed process leaves a
   batch either fully stored or not at all, and a rerun redoes exactly the batches it lacks.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from charter.constitution.model import Constitution
from charter.engines.base import Completion, Engine, GenerationRequest
from charter.store import Record, RunStore, unit_key

# A progress callback: (description, done, total). The CLI turns it into a rich progress bar;
# the pipeline may pass its own, or None.
Progress = Callable[[str, int, int], None]
T = TypeVar("T")

DEFAULT_BATCH = 32  # the embedded engine's default number of sequences decoded together


def stable_seed(seed: int, *parts: Any) -> int:
    """A 31-bit seed from the run seed and a unit's identity, independent of the order of work."""
    text = json.dumps([seed, *parts], ensure_ascii=False, default=str)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") & 0x7FFFFFFF


def text_id(text: str) -> str:
    """Short content hash: part of a key, so an edited prompt is new work rather than a stale hit."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + max(1, size)]


def order_key(stage: str, position: int, *rest: Any) -> str:
    """Export order from input position (zero-padded so text order is numeric order)."""
    return "/".join([stage, f"{position:08d}", *(str(r) for r in rest)])


@dataclass
class StageStats:
    """Counters for the summary table every stage prints and returns."""

    stage: str
    records: int = 0  # written by this process
    reused: int = 0  # found in the store (resumed work)
    abstentions: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    engine_seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    extra: dict = field(default_factory=dict)

    def add(self, name: str, amount: int = 1) -> None:
        self.extra[name] = self.extra.get(name, 0) + amount

    def summary(self) -> dict:
        wall = time.perf_counter() - self.started
        return {
            "stage": self.stage,
            "records": self.records,
            "reused": self.reused,
            "abstentions": self.abstentions,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "engine_seconds": round(self.engine_seconds, 3),
            "seconds": round(wall, 3),
            **self.extra,
        }


@dataclass
class Stage:
    """One stage run: the store, the constitution, the engine, the seed and the counters."""

    name: str
    store: RunStore
    constitution: Constitution
    engine: Engine
    seed: int = 0
    progress: Progress | None = None
    stats: StageStats = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.stats = StageStats(self.name)
        self.constitution_hash = self.constitution.content_hash()
        self.fingerprint = self.engine.fingerprint

    def key(
        self,
        inputs: Iterable[str],
        clause_id: str | None,
        request: GenerationRequest | None,
        index: int = 0,
        extra: Any = None,
        engine: str | None = None,
    ) -> str:
        sampling = request.sampling() if request is not None else None
        return unit_key(
            self.name,
            list(inputs),
            clause_id,
            engine or self.fingerprint,
            sampling,
            self.seed,
            index,
            extra,
        )

    def provenance(self, request: GenerationRequest | None, engine: str | None = None) -> dict:
        """Provenance fields every record carries (clause ids travel in the record itself)."""
        sampling = request.sampling() if request is not None else None
        return {
            "constitution_hash": self.constitution_hash,
            "engine": engine or self.fingerprint,
            "sampling": sampling,
            "seed": self.seed,
        }

    def report(self, description: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(description, done, total)

    def generate(
        self, requests: list[GenerationRequest], engine: Engine | None = None
    ) -> list[list[Completion]]:
        """One engine call from a clean cache, timed and counted."""
        return generate_counted(engine or self.engine, requests, self.stats)

    def put(self, records: list[Record]) -> None:
        self.store.put_many(records)
        self.stats.records += len(records)

    def finish(self, **extra: Any) -> dict:
        self.stats.extra.update(extra)
        summary = self.stats.summary()
        self.store.set_stage_done(self.name, summary)
        return summary


def generate_counted(
    engine: Engine, requests: list[GenerationRequest], stats: StageStats
) -> list[list[Completion]]:
    if not requests:
        return []
    started = time.perf_counter()
    fresh_cache(engine)
    out = engine.generate(requests)
    stats.engine_seconds += time.perf_counter() - started
    for completions in out:
        for c in completions:
            stats.prompt_tokens += c.prompt_tokens
            stats.completion_tokens += c.completion_tokens
    return out


def fresh_cache(engine: Engine) -> None:
    """Make the next engine call compute as a fresh engine would (see rule 2 above)."""
    reset = getattr(engine, "reset_cache", None)
    if callable(reset):
        reset()


@dataclass
class Step:
    """One unit of generation: its key, its request, and how its completions become records.

    `build` returns the records to store; the first one is the step's own record (its key).
    """

    key: str
    request: GenerationRequest
    build: Callable[[list[Completion]], list[Record]]


def run_steps(stage: Stage, steps: list[Step], engine: Engine | None = None) -> dict[str, Record]:
    """Do the steps the store lacks in one engine call and store all their records in one
    transaction; return every step's own record by key (stored earlier or just now)."""
    if not steps:
        return {}
    found = stage.store.get_many([s.key for s in steps])
    stage.stats.reused += len(found)
    todo = [s for s in steps if s.key not in found]
    if todo:
        completions = stage.generate([s.request for s in todo], engine)
        records: list[Record] = []
        for step, outs in zip(todo, completions):
            built = step.build(outs)
            found[step.key] = built[0]
            records.extend(built)
        stage.put(records)
    return found


def clean_text(text: str, finish_reason: str, labels: tuple[str, ...] = ()) -> str:
    """Model text ready to train on: label prefixes ("Revision:") removed, and an answer cut off by
    max_tokens trimmed back to its last complete sentence (when it has one)."""
    text = text.strip()
    for label in labels:
        if text.lower().startswith(label.lower()):
            text = text[len(label) :].lstrip(" :\n")
    if finish_reason == "length":
        cut = max(text.rfind(mark) for mark in (". ", "! ", "? ", ".\n", "!\n", "?\n"))
        if text.endswith((".", "!", "?")):
            cut = len(text) - 1
        if cut > len(text) // 3:
            text = text[: cut + 1]
    return text.strip()


def sample_data(stage: "Stage", prompt_id: str, prompt: str, out: Completion,
                request: GenerationRequest) -> dict:
    """What a stored model sample holds: the prompt, raw and cleaned text, and provenance."""
    return {"prompt_id": prompt_id, "prompt": prompt, "raw": out.text,
            "text": clean_text(out.text, out.finish_reason), "finish_reason": out.finish_reason,
            **stage.provenance(request)}
