"""Many sequences at once through llama.cpp's low-level API: continuous batching + prefix sharing.

One context holds `slots` sequences, each in its own KV stream (kv_unified=False): a sequence's
attention then only reads its own cells, which on a CPU matters more than sharing cells. Every
step decodes one token for each running sequence (plus pending prompt chunks) in one llama_decode,
so the weights are read once per step instead of once per sequence and token.

Prefix sharing, within one call: a slot keeps its KV after its sequence ends. A new prompt that
shares at least `min_shared_prefix` tokens with any slot's KV copies that stream
(llama_memory_seq_cp, a buffer copy) and trims it, instead of recomputing the prefix; a prompt that shares a prefix with one
being computed in this very step waits one step to copy it. This covers both n > 1 samples of one
prompt and different requests with the same long system prompt.
"""

from __future__ import annotations

import ctypes
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from charter.engines.common import stop_if_cancelled
from charter.engines.sampling import sample_rows
from charter.errors import EngineError

KV_BUDGET_BYTES = 2 << 30  # f16 keys+values of all slots; SmolLM2-135M: 23 KB per token


@dataclass
class Job:
    prompt: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    stop: tuple[bytes, ...]
    rng: np.random.Generator


@dataclass
class JobResult:
    tokens: list[int]
    finish_reason: str  # "stop" | "length"


@dataclass
class _Slot:
    seq: int
    kv: list[int] = field(default_factory=list)  # tokens whose K/V sit at positions 0..len-1
    job_id: int = -1  # -1: idle (its KV stays, as a prefix others may copy)
    feed: list[int] = field(default_factory=list)  # tokens to decode next step
    out: list[int] = field(default_factory=list)
    text: bytearray = field(default_factory=bytearray)  # output bytes, for stop-string checks


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(np.asarray(a[:n]) != np.asarray(b[:n]))
    return int(diff[0]) if diff.size else n


class NumpyBatch:
    """A llama_batch whose arrays are numpy buffers, so a step is filled with slice assignments
    rather than one ctypes call per token. Each token belongs to exactly one sequence."""

    def __init__(self, capacity: int):
        import llama_cpp

        self.capacity = capacity
        self.token = np.zeros(capacity, np.int32)
        self.pos = np.zeros(capacity, np.int32)
        self.n_seq_id = np.ones(capacity, np.int32)
        self.seq = np.zeros(capacity, np.int32)
        self.logits = np.zeros(capacity, np.int8)
        i32p = ctypes.POINTER(ctypes.c_int32)
        base = self.seq.ctypes.data
        self._seq_ptrs = (i32p * capacity)(*[ctypes.cast(base + 4 * i, i32p) for i in range(capacity)])
        self.struct = llama_cpp.llama_batch(
            n_tokens=0, token=self.token.ctypes.data_as(i32p), embd=None,
            pos=self.pos.ctypes.data_as(i32p), n_seq_id=self.n_seq_id.ctypes.data_as(i32p),
            seq_id=ctypes.cast(self._seq_ptrs, ctypes.POINTER(i32p)),
            logits=self.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)))
        self.n = 0

    def clear(self) -> None:
        self.n = 0

    def add(self, tokens: list[int], start_pos: int, seq: int, logits_from: int) -> None:
        """Append tokens of one sequence; output logits for tokens at index >= logits_from."""
        k, n = len(tokens), self.n
        if n + k > self.capacity:
            raise EngineError(f"internal: batch overflow ({n + k} > {self.capacity} tokens)")
        self.token[n:n + k] = tokens
        self.pos[n:n + k] = np.arange(start_pos, start_pos + k)
        self.seq[n:n + k] = seq
        self.logits[n:n + k] = 0
        self.logits[n + max(0, logits_from):n + k] = 1
        self.n += k
        self.struct.n_tokens = self.n


def new_context(model, *, n_ctx: int, n_seq_max: int, n_batch: int, threads: int, unified: bool,
                adapters: list[tuple[object, float]], flash_attn: bool | None = None,
                n_ubatch: int = 512):
    """A llama.cpp context on an already loaded model, with the engine's LoRA adapters applied."""
    import llama_cpp

    params = llama_cpp.llama_context_default_params()
    params.n_ctx, params.n_seq_max, params.kv_unified = n_ctx, n_seq_max, unified
    params.n_batch, params.n_ubatch = n_batch, min(n_batch, n_ubatch)
    params.n_threads = params.n_threads_batch = threads
    params.no_perf = True
    if flash_attn is not None:  # None: llama.cpp decides (on where the backend supports it)
        params.flash_attn_type = int(bool(flash_attn))
    ctx = llama_cpp.llama_init_from_model(model, params)
    if not ctx:  # a NULL pointer
        raise EngineError(f"llama.cpp could not create a context of {n_ctx} tokens x {n_seq_max} "
                          f"sequences; lower batch_size or n_ctx")
    try:
        apply_adapters(ctx, adapters)
    except EngineError:
        llama_cpp.llama_free(ctx)
        raise
    return ctx


def apply_adapters(ctx, adapters: list[tuple[object, float]]) -> None:
    """Put the engine's LoRA adapters (pointer, scale) on a context; each context needs its own call."""
    import llama_cpp

    if not adapters:
        return
    arr = (llama_cpp.llama_adapter_lora_p_ctypes * len(adapters))(*[a for a, _ in adapters])
    scales = (ctypes.c_float * len(adapters))(*[s for _, s in adapters])
    if llama_cpp.llama_set_adapters_lora(ctx, arr, len(adapters), scales) != 0:
        raise EngineError("llama.cpp refused the LoRA adapter for this model; check it was made "
                          "for the same base model")


class BatchedDecoder:
    """Runs generation jobs through one multi-sequence context, `slots` sequences at a time."""

    def __init__(self, model, vocab, *, slots: int, threads: int, adapters, piece, is_eog,
                 min_shared_prefix: int = 16, flash_attn: bool | None = None):
        self._model, self._vocab, self._slots_wanted = model, vocab, slots
        self._threads, self._adapters = threads, adapters
        self._piece, self._is_eog = piece, is_eog  # token -> bytes, token -> bool
        self._min_share = min_shared_prefix
        self._flash_attn = flash_attn
        self._ctx = None
        self._ctx_per_slot = 0
        self._slots: list[_Slot] = []
        self.step_budget = 512  # prompt tokens per step, on top of one token per running sequence
        self.stats = {"steps": 0, "prefill_tokens": 0, "shared_prefix_tokens": 0}

    def _ensure_context(self, need: int) -> None:
        """A context whose slots each hold `need` tokens, with as many slots as the KV budget
        allows (up to batch_size): 64 slots x 4k tokens would not fit in memory on most machines."""
        import llama_cpp

        model = self._model
        per_slot = min(-(-need // 256) * 256, llama_cpp.llama_model_n_ctx_train(model))
        head_dim = llama_cpp.llama_model_n_embd(model) // max(1, llama_cpp.llama_model_n_head(model))
        layers, kv_heads = llama_cpp.llama_model_n_layer(model), llama_cpp.llama_model_n_head_kv(model)
        cell_bytes = 2 * 2 * layers * kv_heads * head_dim  # keys and values, f16
        slots = max(1, min(self._slots_wanted, KV_BUDGET_BYTES // (per_slot * cell_bytes)))
        if self._ctx is not None and per_slot <= self._ctx_per_slot and slots <= len(self._slots):
            return
        self.close()
        self._batch = NumpyBatch(self.step_budget + slots)
        self._ctx = new_context(model, n_ctx=slots * per_slot, n_seq_max=slots,
                                n_batch=self._batch.capacity, threads=self._threads,
                                unified=False, adapters=self._adapters, flash_attn=self._flash_attn)
        self._ctx_per_slot = llama_cpp.llama_n_ctx_seq(self._ctx)
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self._slots = [_Slot(seq=i) for i in range(slots)]

    def close(self) -> None:
        if self._ctx is not None:
            import llama_cpp

            llama_cpp.llama_free(self._ctx)
            self._ctx = None

    def run(self, jobs: list[Job], cancel=None) -> list[JobResult]:
        """Every job's result; with `cancel` (a threading.Event) set, GenerationCancelled between steps."""
        results: list[JobResult | None] = [None] * len(jobs)
        for _ in self.iter_run(jobs, results):
            stop_if_cancelled(cancel, "llama.cpp")
        return results  # type: ignore[return-value]

    def iter_run(self, jobs: list[Job], results: list) -> Iterator[tuple[int, int]]:
        """Decode `jobs`, yielding (job index, token) for each token as it is sampled (streaming);
        each job's JobResult is in `results[index]` once it has finished."""
        if not jobs:
            return
        import llama_cpp

        self._ensure_context(max(len(j.prompt) + j.max_tokens for j in jobs) + 1)
        # Start every call from an empty cache: a call's output then depends only on its own jobs.
        # Reusing KV left by an earlier call would be faster but not bit-identical (that KV was
        # computed in differently shaped batches), and resumed runs must redo a batch exactly.
        llama_cpp.llama_memory_clear(self._mem, False)
        for slot in self._slots:
            slot.kv, slot.feed, slot.job_id = [], [], -1
        pending = deque(range(len(jobs)))
        while pending or any(s.job_id >= 0 for s in self._slots):
            self._admit(jobs, pending)
            yield from self._step(jobs, results)

    def _admit(self, jobs: list[Job], pending: deque) -> None:
        import llama_cpp

        idle = [s for s in self._slots if s.job_id < 0]
        while pending and idle:
            prompt = jobs[pending[0]].prompt
            # A slot's `kv` is computed (or copied) already, also for one admitted this step.
            source, shared = max(((s, common_prefix(s.kv, prompt)) for s in self._slots),
                                 key=lambda pair: pair[1])
            # If a slot is still computing a longer piece of this prompt (a long shared system
            # prompt takes several steps), wait and copy it rather than compute it again.
            coming = max((common_prefix(s.kv + s.feed, prompt) for s in self._slots
                          if s.job_id >= 0 and len(s.feed) > 1), default=0)
            if coming >= shared + self._min_share:
                return
            if shared < self._min_share:
                shared = 0
            # Reuse the source's own slot when it is idle (no copy); else the idle slot that
            # already holds the longest piece of this prompt.
            target = source if source in idle else max(idle, key=lambda s: common_prefix(s.kv, prompt))
            shared = min(shared, len(prompt) - 1)  # feed at least one token to get its logits
            if target is not source and shared > 0:
                llama_cpp.llama_memory_seq_cp(self._mem, source.seq, target.seq, -1, -1)
            llama_cpp.llama_memory_seq_rm(self._mem, target.seq, shared if shared > 0 else -1, -1)
            idle.remove(target)
            target.job_id = pending.popleft()
            target.kv, target.feed = list(prompt[:shared]), list(prompt[shared:])
            target.out, target.text = [], bytearray()
            self.stats["shared_prefix_tokens"] += shared

    def _step(self, jobs: list[Job], results: list) -> list[tuple[int, int]]:
        """One llama_decode over every running sequence; returns the (job, token) pairs sampled."""
        import llama_cpp

        batch, budget = self._batch, self.step_budget
        batch.clear()
        fed: list[tuple[_Slot, int]] = []
        outputs: list[_Slot] = []
        # Running sequences first (one token each), then prompt chunks within the budget.
        for slot in sorted((s for s in self._slots if s.job_id >= 0), key=lambda s: len(s.feed)):
            take = len(slot.feed) if len(slot.feed) == 1 else min(len(slot.feed), budget)
            if take == 0:
                continue
            if len(slot.feed) > 1:
                budget -= take
                self.stats["prefill_tokens"] += take
            last = take == len(slot.feed)
            batch.add(slot.feed[:take], len(slot.kv), slot.seq, take - 1 if last else take)
            fed.append((slot, take))
            if last:
                outputs.append(slot)
        if batch.n == 0:
            return []
        code = llama_cpp.llama_decode(self._ctx, batch.struct)
        if code != 0:
            raise EngineError(f"llama.cpp decode failed (code {code}) with {len(fed)} sequences; "
                              f"lower batch_size")
        self.stats["steps"] += 1
        for slot, take in fed:
            slot.kv.extend(slot.feed[:take])
            slot.feed = slot.feed[take:]
        if not outputs:
            return []
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(self._ctx),
                                       shape=(len(outputs), llama_cpp.llama_vocab_n_tokens(self._vocab)))
        picked = sample_rows(logits, [jobs[s.job_id].temperature for s in outputs],
                             [jobs[s.job_id].top_p for s in outputs], [jobs[s.job_id].rng for s in outputs])
        sampled = []
        for slot, token in zip(outputs, picked):
            job_id = slot.job_id
            if self._advance(slot, token, jobs[job_id], results):
                sampled.append((job_id, token))
        return sampled

    def _advance(self, slot: _Slot, token: int, job: Job, results: list) -> bool:
        """Take one sampled token; False when it was the end of the turn (not part of the text)."""
        reason = None
        if self._is_eog(token):
            reason = "stop"
        else:
            slot.out.append(token)
            piece = self._piece(token)
            slot.text += piece
            if job.stop:
                tail = bytes(slot.text[-(len(piece) + max(map(len, job.stop))):])
                if any(s in tail for s in job.stop):
                    reason = "stop"
            if reason is None and (len(slot.out) >= job.max_tokens
                                   or len(slot.kv) + 1 >= self._ctx_per_slot):
                reason = "length"
        if reason is None:
            slot.feed = [token]
            return True
        results[slot.job_id] = JobResult(slot.out, reason)
        slot.job_id, slot.feed = -1, []
        return not self._is_eog(token)
