"""An engine that is a pool of Ray actors, each holding one engine made from the same string.

Every call (generate, choose_many, tokenize) goes whole to one idle actor, so a pool's answer to a
call is exactly what one engine of that string answers (charter/executor.py explains why that
keeps a Ray run's export equal to a local run's). `parallel_calls` tells the stages how many calls
may be in flight at once: one per live actor.

Faults. A call whose actor dies (its process killed, its node lost) or does not answer within
`call_timeout` is tried again on another actor, up to `retries` more times; the lost actor is
restarted by Ray (up to MAX_RESTARTS times) and rejoins the pool, and one that keeps failing is
set aside. A call that fails past its retries raises UnitsFailed, which the stage records as a
failed unit and retries on its next run. An error raised by the engine itself (a bad request, a
server refusing a model name) is the user's to fix and is raised as it was, not retried.
"""

from __future__ import annotations

import math
import os
import queue
import re
import threading
import time
from typing import Any

from charter.engines.base import ChoiceRequest, Completion, EngineStats, GenerationRequest
from charter.errors import CharterError, EngineError, UnitsFailed

MAX_RESTARTS = 4  # times Ray restarts a lost actor before it is gone for good
SET_ASIDE_AFTER = 2  # consecutive lost calls after which an actor leaves the pool
_started_here = {"pools": 0, "init": False}  # a Ray instance this process started, and its users
_init_lock = threading.Lock()


class EngineWorker:
    """What each actor holds: one engine, made in the actor's own process."""

    def __init__(self, spec: str, options: dict):
        from charter.engines.registry import make_engine

        self.engine = make_engine(spec, **options)

    def describe(self) -> dict:
        from charter.engines.base import supports_prefill
        from charter.engines.common import context_tokens

        return {"fingerprint": self.engine.fingerprint, "pid": os.getpid(),
                "supports_prefill": supports_prefill(self.engine),
                "context_tokens": context_tokens(self.engine),
                "node": os.uname().nodename}

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        reset = getattr(self.engine, "reset_cache", None)
        if callable(reset):  # a fresh cache per call, as the stages ask of a local engine
            reset()
        return self.engine.generate(requests)

    def choose_many(self, requests: list[ChoiceRequest]) -> list[dict[str, float]]:
        from charter.engines.base import choose_many

        return choose_many(self.engine, requests)

    def tokenize(self, text: str) -> list[int]:
        return list(self.engine.tokenize(text))


class RayEnginePool:
    """The Engine protocol over `settings.workers` Ray actors (see the module docstring)."""

    def __init__(self, spec: str, settings, options: dict | None = None):
        ray = _ray()
        self.name, self.settings = spec, settings
        self.stats = EngineStats(extra={"retries": 0, "lost_workers": 0, "failed_calls": 0,
                                        "set_aside": 0})
        self._owns_ray = _connect(ray, settings)
        worker_class = ray.remote(EngineWorker)
        options = _worker_options(spec, settings, dict(options or {}))
        self._actors = [
            worker_class.options(num_cpus=settings.cpus_per_worker, num_gpus=settings.gpus_per_worker,
                                 max_restarts=MAX_RESTARTS, max_task_retries=0,
                                 max_concurrency=1).remote(spec, options)
            for _ in range(settings.workers)]
        try:
            described = ray.get([a.describe.remote() for a in self._actors], timeout=settings.call_timeout)
        except Exception as exc:  # noqa: BLE001 - any start failure becomes one line
            self.close()
            cause = _cause(exc)
            if isinstance(cause, CharterError):
                raise EngineError(f"engine '{spec}' failed to start on a Ray worker: {cause}") from None
            raise EngineError(f"engine '{spec}' failed to start on a Ray worker ({_last_error(exc)}); "
                              f"check the same charter, model and engine build are installed on every "
                              f"node") from None
        fingerprints = {d["fingerprint"] for d in described}
        if len(fingerprints) > 1:
            self.close()
            raise EngineError(f"engine '{spec}' differs between Ray workers ({sorted(fingerprints)}); "
                              f"install the same model file and llama.cpp build on every node")
        self._described = described
        self._fingerprint = described[0]["fingerprint"]
        self.supports_prefill = bool(described[0]["supports_prefill"])
        self._context = described[0]["context_tokens"]
        self._idle: queue.Queue = queue.Queue()
        for actor in self._actors:
            self._idle.put(actor)
        self._lost_in_a_row = {id(a): 0 for a in self._actors}
        self._started_pids = {id(a): d["pid"] for a, d in zip(self._actors, described)}
        self._busy: set[int] = set()
        self._live = len(self._actors)
        self._lock = threading.Lock()

    # -- Engine protocol ----------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def parallel_calls(self) -> int:
        return max(1, self._live)

    def worker_pids(self) -> list[int]:
        """Each actor's process id now (tests and `bench/scale.py` kill one by it)."""
        ray = _ray()
        return [d["pid"] for d in ray.get([a.describe.remote() for a in self._actors],
                                          timeout=self.settings.call_timeout)]

    def busy_pids(self) -> list[int]:
        """Process ids (as last seen) of the actors with a call in flight now."""
        with self._lock:
            return [self._started_pids[key] for key in self._busy if key in self._started_pids]

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        if not requests:
            return []
        out = self._call("generate", requests, len(requests))
        with self._lock:
            for completions in out:
                for c in completions:
                    self.stats.prompt_tokens += c.prompt_tokens
                    self.stats.completion_tokens += c.completion_tokens
        return out

    def choose(self, request: ChoiceRequest) -> dict[str, float]:
        return self.choose_many([request])[0]

    def choose_many(self, requests: list[ChoiceRequest]) -> list[dict[str, float]]:
        return self._call("choose_many", requests, len(requests)) if requests else []

    def tokenize(self, text: str) -> list[int]:
        return self._call("tokenize", text, 1)

    def context_tokens(self) -> int | None:
        return self._context

    def close(self) -> None:
        ray = _ray()
        for actor in getattr(self, "_actors", []):
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._actors = []
        if getattr(self, "_owns_ray", False):
            self._owns_ray = False
            with _init_lock:
                _started_here["pools"] -= 1
                if _started_here["pools"] == 0 and _started_here["init"]:
                    _started_here["init"] = False
                    ray.shutdown()

    # -- dispatch -----------------------------------------------------------------------------
    def _call(self, method: str, payload: Any, size: int):
        ray = _ray()
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        last = "no worker answered"
        for attempt in range(self.settings.retries + 1):
            actor = self._take()
            if actor is None:
                last = "every Ray worker of this engine was lost"
                break
            started = time.perf_counter()
            ref = getattr(actor, method).remote(payload)
            try:
                result = ray.get(ref, timeout=self.settings.call_timeout)
            except GetTimeoutError:
                last = f"a worker gave no answer within {self.settings.call_timeout:g} s"
                ray.kill(actor, no_restart=False)  # Ray restarts it; the call goes elsewhere
                self._lost(actor, last)
            except RayTaskError as exc:  # the engine itself raised: not a fault of the worker
                self._give_back(actor)
                cause = _cause(exc)
                if isinstance(cause, CharterError):
                    raise cause from None
                raise EngineError(f"engine '{self.name}' failed on a Ray worker: {_last_error(exc)}") from None
            except RayActorError as exc:  # the actor's process or node is gone
                last = f"a Ray worker was lost ({type(exc).__name__})"
                self._lost(actor, last)
            else:
                self._give_back(actor)
                with self._lock:
                    self.stats.calls += 1
                    self.stats.seconds += time.perf_counter() - started
                return result
            if attempt < self.settings.retries:
                with self._lock:
                    self.stats.extra["retries"] += 1
        with self._lock:
            self.stats.extra["failed_calls"] += 1
        raise UnitsFailed(f"engine '{self.name}': {last}, after {self.settings.retries + 1} tries",
                          failed=list(range(size)), attempts=self.settings.retries + 1)

    def _take(self):
        """An idle actor, waiting for one; None once no actor is left in the pool."""
        while True:
            with self._lock:
                if self._live == 0:
                    return None
            try:
                actor = self._idle.get(timeout=1.0)
            except queue.Empty:
                continue
            with self._lock:
                self._busy.add(id(actor))
            return actor

    def _give_back(self, actor) -> None:
        with self._lock:
            self._lost_in_a_row[id(actor)] = 0
            self._busy.discard(id(actor))
        self._idle.put(actor)

    def _lost(self, actor, reason: str) -> None:
        """A call's actor died or hung: count it, and wait in the background for Ray's restart
        (its `describe` answering) before it rejoins the pool, so no call is sent to an actor
        still coming back. One that does not come back, or is lost SET_ASIDE_AFTER times in a
        row, leaves the pool for good."""
        with self._lock:
            self._busy.discard(id(actor))
            self.stats.extra["lost_workers"] += 1
            self._lost_in_a_row[id(actor)] += 1
            if self._lost_in_a_row[id(actor)] >= SET_ASIDE_AFTER:
                self._set_aside()
                return

        def rejoin() -> None:
            ray = _ray()
            try:
                described = ray.get(actor.describe.remote(), timeout=self.settings.call_timeout)
            except Exception:  # noqa: BLE001 - it did not come back
                with self._lock:
                    self._set_aside()
                return
            with self._lock:
                self._started_pids[id(actor)] = described["pid"]
            self._idle.put(actor)

        threading.Thread(target=rejoin, name="charter-ray-rejoin", daemon=True).start()

    def _set_aside(self) -> None:  # under self._lock
        self._live -= 1
        self.stats.extra["set_aside"] += 1


def _ray():
    try:
        import ray
    except ImportError:
        raise EngineError("--executor ray needs Ray: pip install 'charter[ray]' (or `pip install ray`), "
                          "or use --executor local") from None
    return ray


def _connect(ray, settings) -> bool:
    """Join the cluster at the settings' address, or start a local Ray instance for this process.
    Returns whether this pool counts as a user of a Ray instance this process started."""
    with _init_lock:
        if ray.is_initialized():
            if _started_here["init"]:
                _started_here["pools"] += 1
                return True
            return False
        address = settings.ray_address
        try:
            if address:
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            else:
                cpus = max(os.cpu_count() or 1, math.ceil(settings.workers * settings.cpus_per_worker))
                ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                         object_store_memory=256 * 1024 * 1024, configure_logging=False)
        except Exception as exc:  # noqa: BLE001
            where = address or "a local Ray instance"
            raise EngineError(f"cannot start or join {where} ({type(exc).__name__}: "
                              f"{str(exc).strip().splitlines()[0][:300]}); check --ray-address / "
                              f"RAY_ADDRESS and that `ray status` sees the cluster") from None
        _started_here["init"] = True
        _started_here["pools"] += 1
        return True


def _worker_options(spec: str, settings, options: dict) -> dict:
    """Options each actor's engine is made with. A llama.cpp engine uses as many threads as its
    actor has CPUs, unless the engine string says otherwise (every usable CPU would make actors
    on one node fight over cores)."""
    from charter.engines.registry import parse_spec

    scheme, _, spec_options = parse_spec(spec)
    if scheme == "llamacpp" and "n_threads" not in spec_options and "n_threads" not in options:
        options["n_threads"] = max(1, int(settings.cpus_per_worker))
    return options


def _last_error(exc: BaseException) -> str:
    """The line of a Ray error that names what went wrong inside the worker (its traceback's last
    "SomeError: ..." line), else the error's first line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    named = [line for line in lines if re.match(r"[\w.]+(?:Error|Exception):", line)]
    return (named[-1] if named else f"{type(exc).__name__}: {lines[0] if lines else ''}")[:300]


def _cause(exc: BaseException) -> BaseException:
    """The exception an actor's own code raised, where Ray carries it."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc
