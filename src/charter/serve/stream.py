"""Streaming answers (SSE) with the output guard on a sliding window.

Text reaches the client only after a window containing it has passed the guard's fast pass: the
producer (a worker thread holding the engine's lock) pushes pieces into a queue; every
`window_step` characters the consumer screens the last `window_chars` characters. A clear hit
stops generation and ends the stream with `finish_reason: "content_filter"`; an uncertain window
holds back everything after it until the answer is complete and the judge has ruled on it (the
judge may be the generating engine, whose lock the producer holds until it finishes).

Engines with a `stream(request)` generator (llama.cpp, the OpenAI-compatible engine) yield text as
their tokens are sampled and return the whole Completion at the end (token counts, finish reason).
For the others (transformers, vLLM in process, mock) the answer is generated whole and then sent in
word-sized pieces through the same windowed check: the client gets the same events, only later.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

from anyio import to_thread

from charter.engines.base import GenerationRequest
from charter.serve import chat
from charter.serve.audit import AuditEntry
from charter.serve.guard import Guard, Verdict, output_pieces
from charter.serve.slots import EngineSlot

_WORDS = re.compile(r"\S+\s*|\s+")


@dataclass
class StreamJob:
    request_id: str
    model: str
    slot: EngineSlot
    request: GenerationRequest
    messages: list[dict]
    guard: Guard | None
    entry: AuditEntry
    charter: dict
    include_usage: bool = False
    usage: dict = field(default_factory=lambda: {"prompt": 0, "completion": 0})


def text_pieces(job: StreamJob, cancel: threading.Event) -> Iterator[str]:
    if job.slot.streams:
        finished: list = []
        for piece in job.slot.stream(job.request, cancel, finished):
            job.usage["completion"] += 1  # a piece per token until the engine's own count arrives
            yield piece
        if finished:  # the engine returns the whole Completion at the end
            _record_usage(job, finished[0])
        return
    completion = job.slot.generate([job.request])[0][0]
    job.usage.update(prompt=completion.prompt_tokens, completion=completion.completion_tokens)
    job.usage["finish_reason"] = completion.finish_reason
    yield from _WORDS.findall(completion.text)


def _record_usage(job: StreamJob, completion) -> None:
    if completion is not None:
        job.usage.update(prompt=completion.prompt_tokens, completion=completion.completion_tokens,
                         finish_reason=completion.finish_reason)


async def stream_answer(job: StreamJob, on_done) -> AsyncIterator[bytes]:
    """SSE events for one answer; `on_done(entry)` writes the audit row however the stream ends."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()

    def produce() -> None:
        try:
            for piece in text_pieces(job, cancel):
                loop.call_soon_threadsafe(queue.put_nowait, ("piece", piece))
            loop.call_soon_threadsafe(queue.put_nowait, ("end", None))
        except Exception as exc:  # noqa: BLE001 - any engine failure must reach the client as an error event
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

    step = job.guard.config.window_step if job.guard else 1
    window = job.guard.config.window_chars if job.guard else 0
    text, sent, checked = "", 0, 0
    uncertain: set[str] = set()
    finish, blocked, delivered = "stop", None, False
    producer = loop.run_in_executor(None, produce)
    try:
        yield chat.chunk(job.request_id, job.model, {"role": "assistant", "content": ""})
        while True:
            kind, value = await queue.get()
            if kind == "error":
                job.entry.status, job.entry.outcome, job.entry.error = 500, "error", str(value)[:300]
                yield chat.sse({"error": {"message": f"generation failed: {value}", "type": "server_error",
                                          "code": "engine_error", "param": None}})
                return
            ended = kind == "end"
            text += value or ""
            if job.guard is None:
                if text[sent:]:
                    yield chat.chunk(job.request_id, job.model, {"content": text[sent:]})
                sent = len(text)
            elif len(text) - checked >= step or (ended and checked < len(text)):
                # Everything new since the last check, with one window of what came before it.
                pieces = output_pieces(text[max(0, min(len(text) - window, checked - step)):], job.guard.config)
                verdict = await to_thread.run_sync(job.guard.screen, pieces, "output", [])
                checked = len(text)
                job.entry.guards.append({"stage": "output", "window_end": checked, **_brief(verdict)})
                if verdict.blocked:
                    blocked = verdict
                    break
                uncertain.update(verdict.uncertain)
                # Hold back the last step: it is screened again next time, with what follows it.
                ready = len(text) if ended else len(text) - step
                if not uncertain and ready > sent:
                    yield chat.chunk(job.request_id, job.model, {"content": text[sent:ready]})
                    sent = ready
            if ended:
                break
        if blocked is None and uncertain:
            verdict = Verdict("output", uncertain=sorted(uncertain))
            verdict = await to_thread.run_sync(job.guard.judge_output, verdict, text, job.messages)
            job.entry.guards.append(verdict.as_record())
            blocked = verdict if verdict.blocked else None
        if blocked is not None:
            cancel.set()
            finish = "content_filter"
            job.charter.update(blocked_by=blocked.clause_id, stage="output")
            job.entry.outcome, job.entry.blocked_by, job.entry.blocked_stage = "blocked", blocked.clause_id, "output"
            notice = ("\n\n" if sent else "") + chat.refusal_text(blocked.clause_id, "output")
            yield chat.chunk(job.request_id, job.model, {"content": notice})
        elif text[sent:]:
            yield chat.chunk(job.request_id, job.model, {"content": text[sent:]})
        if blocked is None:
            finish = job.usage.get("finish_reason", "stop")
        yield chat.chunk(job.request_id, job.model, {}, finish, charter=job.charter)
        if job.include_usage:
            yield chat.sse({"id": job.request_id, "object": "chat.completion.chunk", "model": job.model,
                            "choices": [], "usage": chat.usage(job.usage["prompt"], job.usage["completion"])})
        yield chat.sse("[DONE]")
        delivered = True
    finally:
        # Also reached when the client goes away: stop the producer (it checks between tokens, so
        # generation ends within a token), audit the request as dropped, and write the row once
        # the producer has really finished (no await here: a cancelled task may not await again).
        if not delivered and job.entry.outcome == "served":
            job.entry.outcome = "dropped"
        cancel.set()
        producer.add_done_callback(lambda _: _finish(job, on_done))


def _finish(job: StreamJob, on_done) -> None:
    job.entry.prompt_tokens, job.entry.completion_tokens = job.usage["prompt"], job.usage["completion"]
    on_done(job.entry)


def _brief(verdict: Verdict) -> dict:
    return {"blocked": verdict.blocked, "clause_id": verdict.clause_id, "uncertain": verdict.uncertain,
            "by": verdict.by, "classifier": verdict.classifier}
