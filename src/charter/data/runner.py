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

Work batches are independent of one another, so `for_batches` may run several side by side: it
does when the stage's engine is a pool of workers (`engine.parallel_calls` > 1, e.g. Ray actors,
charter/executor.py). Each engine call still goes whole to one worker, so a batch is computed
exactly as a local run computes it and the exports are the same. A batch whose engine call fails
past its retries (UnitsFailed) keeps what succeeded, is recorded in the store's failures, and the
stage goes on with the other batches; it then ends with StageIncomplete instead of being marked
done, and the same command retries the failed units.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from charter.constitution.model import Constitution
from charter.engines.base import Completion, Engine, GenerationRequest
from charter.errors import StageIncomplete, UnitsFailed
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
    failed_units: int = 0  # engine calls that failed past their retries in this run
    failed_requests: int = 0
    started: float = field(default_factory=time.perf_counter)
    extra: dict = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def add(self, name: str, amount: int = 1) -> None:
        with self.lock:
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
            **({"failed_units": self.failed_units, "failed_requests": self.failed_requests}
               if self.failed_units else {}),
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
        self.store.clear_failures(self.name)  # this run retries whatever failed last time

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
        with self.stats.lock:
            self.stats.records += len(records)

    def finish(self, **extra: Any) -> dict:
        """The stage summary; the stage is marked done only if no unit failed in this run."""
        self.stats.extra.update(extra)
        summary = self.stats.summary()
        if self.stats.failed_units:
            last = self.store.failures(self.name)
            error = last[-1]["error"] if last else "unknown"
            raise StageIncomplete(
                f"{self.name}: {self.stats.failed_units} engine call(s) ({self.stats.failed_requests} "
                f"request(s)) failed past their retries, last: {error}; everything else is stored in "
                f"{self.store.folder} (`charter data stats` lists the failures): rerun the same "
                f"command to retry them")
        self.store.set_stage_done(self.name, summary)
        return summary

    def note_failure(self, unit: str, exc: UnitsFailed) -> None:
        """Record a unit of work that failed past its retries; the stage goes on without it."""
        self.store.record_failure(self.name, unit, exc.keys, str(exc), exc.attempts)
        with self.stats.lock:
            self.stats.failed_units += 1
            self.stats.failed_requests += len(exc.failed)


def generate_counted(
    engine: Engine, requests: list[GenerationRequest], stats: StageStats
) -> list[list[Completion]]:
    if not requests:
        return []
    started = time.perf_counter()
    fresh_cache(engine)
    try:
        out = engine.generate(requests)
    finally:
        with stats.lock:
            stats.engine_seconds += time.perf_counter() - started
    with stats.lock:
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
    with stage.stats.lock:
        stage.stats.reused += len(found)
    todo = [s for s in steps if s.key not in found]
    if todo:
        failure = None
        try:
            completions = stage.generate([s.request for s in todo], engine)
        except UnitsFailed as exc:  # keep what succeeded; the failed steps are redone next run
            failure, completions = exc, exc.results or [None] * len(todo)
            failure.keys = [todo[i].key for i in exc.failed]
        records: list[Record] = []
        for step, outs in zip(todo, completions):
            if outs is None:
                continue
            built = step.build(outs)
            found[step.key] = built[0]
            records.extend(built)
        stage.put(records)
        if failure is not None:
            raise failure
    return found


def for_batches(stage: Stage, items: Sequence[T], batch_size: int, work: Callable[[Sequence[T]], Any],
                description: str | None = None, total: int | None = None) -> list[Any]:
    """Run `work(batch)` for each work batch of `items` (fixed by input order, rule 1); return
    its results in batch order, None for a batch that failed past its retries.

    Batches run one after another, or side by side when the stage's engine takes several calls
    at once (`parallel_calls`, a pool of workers). A failed batch is recorded and skipped; the
    stage's `finish` then reports it (see the module docstring)."""
    batches = list(chunks(items, batch_size))
    results: list[Any] = [None] * len(batches)
    done = [0]
    total = len(items) if total is None else total

    def run(index: int) -> None:
        try:
            results[index] = work(batches[index])
        except UnitsFailed as exc:
            stage.note_failure(f"batch {index:06d}", exc)
        with stage.stats.lock:
            done[0] += len(batches[index])
            count = done[0]
        if description:
            stage.report(description, count, total)

    side_by_side(stage.engine, run, range(len(batches)), f"charter-{stage.name}")
    return results


def side_by_side(engine: Engine, work: Callable[[Any], None], jobs: Iterable[Any], name: str) -> None:
    """`work(job)` for every job: one after another, or as many at once as the engine takes calls
    (`parallel_calls`, a pool of workers). The first error, in job order, is raised once the
    running jobs end; jobs not yet started are dropped, as a local loop would never reach them."""
    jobs = list(jobs)
    workers = max(1, min(int(getattr(engine, "parallel_calls", 1) or 1), len(jobs)))
    if workers == 1:
        for job in jobs:
            work(job)
        return
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
    try:
        futures = [pool.submit(work, job) for job in jobs]
        wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            if future.done() and future.exception() is not None:
                raise future.exception()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


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
