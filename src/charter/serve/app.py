"""`charter serve`: an OpenAI-compatible chat server whose hard lines hold, whoever configures it.

A request goes: body size (413) -> API key (401) -> rate (429) -> schema (400) -> model (404) ->
max_tokens (400) -> user overlay (400, naming the clause) -> input guard -> generation (in a worker
thread, under the engine's lock) -> output guard -> response. Every request, served or refused,
leaves one audit row. Nothing reaches the model before the input guard has passed it.
"""

from __future__ import annotations

import secrets
import sys
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import anyio
from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from charter.constitution import Constitution, render_system_prompt, resolve
from charter.constitution.load import parse_overlay
from charter.engines.base import Engine, GenerationRequest
from charter.errors import CharterError, ConstitutionError, GenerationCancelled, LayerError
from charter.serve import chat
from charter.serve.audit import AuditEntry, AuditLog
from charter.serve.auth import KeyRing
from charter.serve.guard import Guard, GuardConfig
from charter.serve.limits import BodyLimitMiddleware, InFlight, Place, RateLimiter
from charter.serve.operators import Operator
from charter.serve.similarity import Embedder
from charter.serve.slots import EnginePool, EngineSlot
from charter.serve.stream import StreamJob, stream_answer


@dataclass
class ServeSettings:
    model_name: str = "charter"
    audit_path: Path = Path("charter-audit.sqlite")
    max_body_bytes: int = 256 * 1024
    default_max_tokens: int = 256
    # "auto": compact for llama.cpp engines (small context, and a long prompt costs seconds on CPU).
    prompt_style: Literal["auto", "full", "compact"] = "auto"
    guard: GuardConfig = field(default_factory=GuardConfig)
    # A trained guard's folder (`charter guard train`): its classifier is the fast pass for its lines.
    guard_model: Path | None = None
    # Python API only, for measuring what guards cost (bench/serve.py). The CLI has no such switch.
    guards: bool = True
    # Also ask the input guard about each sentence of an overlay (`--guard-reads-overlays`). Off by
    # default: on overlay texts written blind to it, it refused 3 more of 40 hard benign operator
    # texts for 2 more of 40 attacks (docs/bring-your-own-constitution.md).
    guard_reads_overlays: bool = False
    max_in_flight: int = 32  # requests held at once (queued or generating); more get 503
    max_in_flight_per_key: int = 8  # of those, per operator key; more get 429


@dataclass
class OperatorState:
    operator: Operator
    constitution: Constitution  # base + this operator's overlay
    guard: Guard | None


class Server:
    def __init__(self, base: Constitution, engine: Engine, operators: list[Operator], settings: ServeSettings,
                 guard_engine: Engine | None = None, embedder: Embedder | None = None,
                 make_engine: Callable[[str], Engine] | None = None):
        from charter.engines.registry import make_engine as default_make

        self.base, self.settings = base, settings
        self.pool = EnginePool(make_engine or default_make)
        self.slot = self.pool.add(engine.name, engine)
        self._kept = tuple(e for e in (engine, guard_engine) if e is not None)
        judge_slot = self.pool.add(guard_engine.name, guard_engine) if guard_engine else self.slot
        self.embedder = (embedder or Embedder()) if settings.guards else None
        self.classifier = None
        if settings.guards and settings.guard_model is not None:
            from charter.guards.classifier import GuardClassifier

            self.classifier = GuardClassifier.load(settings.guard_model)
        self.keys = KeyRing(operators)
        self.rates = RateLimiter()
        self.in_flight = InFlight(settings.max_in_flight, settings.max_in_flight_per_key)
        self.audit = AuditLog(settings.audit_path)
        self.style = settings.prompt_style if settings.prompt_style != "auto" else \
            ("compact" if engine.name.startswith("llamacpp") else "full")
        self._prompts: dict[str, str] = {}
        self._clause_neighbours = None  # made on first use (_neighbours)
        self._overlay_guard = None  # made on first use (_crossing)
        guards: dict[tuple, Guard] = {}
        self.states = {op.id: self._state(op, judge_slot, guards) for op in operators}
        self.started = int(time.time())

    def _state(self, operator: Operator, judge_slot: EngineSlot, guards: dict) -> OperatorState:
        try:
            constitution = resolve(self.base, operator.overlay, similar=self._neighbours(), crossing=self._crossing())
        except CharterError as exc:
            raise CharterError(f"operator '{operator.id}': {exc}") from None
        guard = None
        if self.settings.guards:
            slot = self.pool.get(operator.guard_engine) if operator.guard_engine else judge_slot
            key = (tuple(h.model_dump_json() for h in constitution.hard_lines), id(slot))
            if key not in guards:  # operators that add no hard line share one index
                guards[key] = Guard(constitution, self.embedder, slot, self.settings.guard, self.classifier)
            guard = guards[key]
        return OperatorState(operator, constitution, guard)

    def _neighbours(self):
        """The guard's embedding neighbours for overlays checked by meaning (None without guards)."""
        if self.embedder is None:
            return None
        if self._clause_neighbours is None:
            from charter.serve.similarity import ClauseNeighbours

            self._clause_neighbours = ClauseNeighbours(self.base, self.embedder)
        return self._clause_neighbours

    def _crossing(self):
        """The input guard over the base constitution's hard lines, asked about each sentence of an
        overlay (None without guards, or unless `guard_reads_overlays`)."""
        if self.embedder is None or not self.settings.guard_reads_overlays:
            return None
        if self._overlay_guard is None:
            self._overlay_guard = Guard(self.base, self.embedder, None, self.settings.guard, self.classifier)
        return self._overlay_guard.crossing

    # -- routes -----------------------------------------------------------------------------------
    async def models(self, request: Request) -> Response:
        entry = AuditEntry(chat.new_id(), "/v1/models")
        try:
            self._authorise(request, entry)
        except chat.ApiError as exc:
            return self._refuse(exc, entry)
        self.audit.write(entry)
        return JSONResponse({"object": "list", "data": [{
            "id": self.settings.model_name, "object": "model", "created": self.started, "owned_by": "charter",
            "charter": {"engine": self.slot.name, "constitution": self.base.name,
                        "version": self.base.version}}]})

    async def chat(self, request: Request) -> Response:
        entry = AuditEntry(chat.new_id(), "/v1/chat/completions")
        try:
            state = self._authorise(request, entry)
            body = chat.parse_request(await request.body())
            place = self.in_flight.admit(state.operator.id)
        except chat.ApiError as exc:
            return self._refuse(exc, entry)
        try:
            response = await self._complete(state, body, entry, place, request)
        except chat.ApiError as exc:
            place.release()
            return self._refuse(exc, entry)
        except BaseException:
            place.release()
            raise
        if not place.handed_over:
            place.release()  # a stream gives its place back when it ends (or its client leaves)
        return response

    # -- steps ------------------------------------------------------------------------------------
    def _authorise(self, request: Request, entry: AuditEntry) -> OperatorState:
        operator = self.keys.find(request.headers.get("authorization"))
        if operator is None:
            raise chat.ApiError(401, "missing or invalid API key; send `Authorization: Bearer KEY` with a key "
                                     "from `charter operators add`", "invalid_api_key", type_="authentication_error")
        entry.operator_id = operator.id
        limits = operator.limits
        wait = self.rates.wait_needed(operator.id, limits.requests_per_minute, limits.burst)
        if wait > 0:
            error = chat.ApiError(429, f"rate limit of {limits.requests_per_minute:g} requests/minute "
                                       f"(burst {limits.burst}) reached; retry in {wait:.1f} s",
                                  "rate_limit_exceeded", type_="rate_limit_error")
            error.headers["retry-after"] = str(max(1, round(wait)))
            raise error
        return self.states[operator.id]

    async def _complete(self, state: OperatorState, body: chat.ChatRequest, entry: AuditEntry,
                        place: Place, http: Request | None = None) -> Response:
        if body.model != self.settings.model_name:
            raise chat.ApiError(404, f"model '{body.model}' is not served here; use '{self.settings.model_name}' "
                                     f"(see /v1/models)", "model_not_found", param="model")
        if body.stream and body.n > 1:
            raise chat.ApiError(400, "n > 1 cannot be streamed; set n=1 or stream=false", "invalid_request",
                                param="n")
        max_tokens = self._max_tokens(state, body)
        constitution = self._effective(state, body)
        entry.constitution_hash, entry.stream = constitution.content_hash(), body.stream
        charter = {"constitution_hash": entry.constitution_hash, "layers": list(constitution.layers)}
        messages = chat.plain_messages(body)
        if state.guard is not None:
            started = time.perf_counter()
            verdict = await to_thread.run_sync(state.guard.check_input, messages)
            entry.time("guard_input", started)
            entry.guards.append(verdict.as_record())
            if verdict.blocked:
                return self._blocked(body, entry, charter, verdict.clause_id)
        request = GenerationRequest(
            messages=chat.with_constitution(self._system_prompt(constitution), messages), n=body.n,
            max_tokens=max_tokens, temperature=body.temperature, top_p=body.top_p,
            stop=tuple([body.stop] if isinstance(body.stop, str) else body.stop or ()),
            seed=body.seed if body.seed is not None else secrets.randbelow(2**31))
        if body.stream:
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            job = StreamJob(entry.request_id, self.settings.model_name, self.slot, request, messages, state.guard,
                            entry, charter, include_usage)

            def done(finished: AuditEntry) -> None:
                place.release()
                self.audit.write(finished)

            place.handed_over = True
            return StreamingResponse(stream_answer(job, done), media_type="text/event-stream")
        return await self._answer(state, request, messages, entry, charter, http)

    async def _generate(self, request: GenerationRequest, http: Request | None) -> list | None:
        """The completions; None when the client left first (checked every quarter second). A
        one-sample request on an engine that streams is generated through its stream, and any other
        on an engine whose generate() takes a cancel event with one, so that a client gone away stops
        the generation between tokens instead of after the whole answer."""
        if http is None or not (self.slot.cancels or self.slot.streams and request.n == 1):
            return await to_thread.run_sync(self.slot.generate, [request])
        cancel = threading.Event()

        def run() -> list | None:
            if request.n != 1 or not self.slot.streams:
                try:
                    return self.slot.generate([request], cancel)
                except GenerationCancelled:
                    return None
            finished: list = []
            for _ in self.slot.stream(request, cancel, finished):
                pass
            return [finished] if finished else None

        async def watch() -> None:
            while not cancel.is_set():
                if await http.is_disconnected():
                    cancel.set()
                    return
                await anyio.sleep(0.25)

        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            try:
                result = await to_thread.run_sync(run)
            finally:
                cancel.set()
        return result

    async def _answer(self, state: OperatorState, request: GenerationRequest, messages: list[dict],
                      entry: AuditEntry, charter: dict, http: Request | None = None) -> Response:
        started = time.perf_counter()
        try:
            generated = await self._generate(request, http)
        except CharterError as exc:
            raise chat.ApiError(400, f"the engine could not answer: {exc}", "engine_error") from None
        entry.time("generate", started)
        if generated is None:  # nobody to answer: audit it, send nothing
            entry.outcome = "dropped"
            self.audit.write(entry)
            return Response(status_code=499)
        completions = generated[0]
        choices = []
        for completion in completions:
            text, reason = completion.text, completion.finish_reason
            if state.guard is not None:
                started = time.perf_counter()
                verdict = await to_thread.run_sync(state.guard.check_output, text, messages)
                entry.time("guard_output", started)
                entry.guards.append(verdict.as_record())
                if verdict.blocked:
                    text, reason = chat.refusal_text(verdict.clause_id, "output"), "content_filter"
                    charter.update(blocked_by=verdict.clause_id, stage="output")
                    entry.outcome, entry.blocked_by, entry.blocked_stage = "blocked", verdict.clause_id, "output"
            choices.append(chat.choice(completion.index, text, reason))
        entry.prompt_tokens = completions[0].prompt_tokens
        entry.completion_tokens = sum(c.completion_tokens for c in completions)
        self.audit.write(entry)
        return JSONResponse(chat.completion_body(entry.request_id, self.settings.model_name, choices,
                                                 chat.usage(entry.prompt_tokens, entry.completion_tokens), charter))

    def _blocked(self, body: chat.ChatRequest, entry: AuditEntry, charter: dict, clause_id: str) -> Response:
        charter.update(blocked_by=clause_id, stage="input")
        entry.outcome, entry.blocked_by, entry.blocked_stage = "blocked", clause_id, "input"
        entry.prompt_tokens = entry.completion_tokens = 0
        self.audit.write(entry)
        text, model, rid = chat.refusal_text(clause_id, "input"), self.settings.model_name, entry.request_id
        if body.stream:
            events = [chat.chunk(rid, model, {"role": "assistant", "content": ""}),
                      chat.chunk(rid, model, {"content": text}),
                      chat.chunk(rid, model, {}, "content_filter", charter=charter), chat.sse("[DONE]")]
            return StreamingResponse(iter(events), media_type="text/event-stream")
        choices = [chat.choice(i, text, "content_filter") for i in range(body.n)]
        return JSONResponse(chat.completion_body(rid, model, choices, chat.usage(0, 0), charter))

    def _max_tokens(self, state: OperatorState, body: chat.ChatRequest) -> int:
        limit = state.operator.limits.max_tokens
        asked = body.max_completion_tokens or body.max_tokens
        if asked is not None and asked > limit:
            raise chat.ApiError(400, f"max_tokens={asked} is over this key's limit of {limit}; ask for at most "
                                     f"{limit}", "max_tokens_exceeded", param="max_tokens")
        return asked or min(self.settings.default_max_tokens, limit)

    def _effective(self, state: OperatorState, body: chat.ChatRequest) -> Constitution:
        data = body.charter.user_overlay if body.charter else None
        if data is None:
            return state.constitution
        try:
            # No guard reading here: a user overlay carries no text of its own (refused above in
            # layers), and the operator's was read when the server started; reading it again would
            # embed every operator sentence on every request that carries a user overlay.
            return resolve(self.base, state.operator.overlay, parse_overlay(data, source="charter.user_overlay"),
                           similar=self._neighbours())
        except LayerError as exc:
            raise chat.ApiError(400, str(exc), "overlay_refused", param="charter.user_overlay",
                                clause_id=exc.clause_id, reason=exc.reason) from None
        except ConstitutionError as exc:
            raise chat.ApiError(400, f"user overlay is invalid: {exc}", "overlay_invalid",
                                param="charter.user_overlay", clause_id=None) from None

    def _system_prompt(self, constitution: Constitution) -> str:
        key = constitution.content_hash()
        if key not in self._prompts:
            if len(self._prompts) > 256:
                self._prompts.clear()
            self._prompts[key] = self._render(constitution)
        return self._prompts[key]

    def _render(self, constitution: Constitution) -> str:
        """The style asked for, or the richest render below it that fits the engine's context."""
        from charter.constitution.render import fit_for_engine

        fitted = fit_for_engine(constitution, self.slot.engine, self.style)
        if fitted is None:
            return render_system_prompt(constitution, style=self.style)
        if fitted.warning:
            print(f"charter serve: warning: {constitution.name}: {fitted.warning}", file=sys.stderr, flush=True)
        return fitted.text

    def _refuse(self, exc: chat.ApiError, entry: AuditEntry) -> Response:
        entry.status, entry.outcome, entry.error = exc.status, "refused" if exc.status < 500 else "error", exc.code
        self.audit.write(entry)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    def refused_body(self, scope) -> None:
        """Audit a request the body-size middleware refused before any route ran."""
        entry = AuditEntry(chat.new_id(), scope.get("path", ""), status=413, outcome="refused",
                           error="body_too_large")
        self.audit.write(entry)

    def close(self) -> None:
        self.pool.close(keep=self._kept)
        self.audit.close()


def create_app(base: Constitution, engine: Engine, operators: list[Operator],
               settings: ServeSettings | None = None, **server_options) -> FastAPI:
    """The FastAPI app. `server_options`: guard_engine, embedder, make_engine (see Server)."""
    server = Server(base, engine, operators, settings or ServeSettings(), **server_options)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        server.close()

    app = FastAPI(title="charter serve", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.server = server
    app.add_api_route("/v1/chat/completions", server.chat, methods=["POST"])
    app.add_api_route("/v1/models", server.models, methods=["GET"])
    app.add_middleware(BodyLimitMiddleware, max_bytes=server.settings.max_body_bytes,
                       on_refused=server.refused_body)
    return app
