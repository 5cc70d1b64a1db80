"""Where the data stages' engine calls run: in this process (`local`), or on Ray actors (`ray`).

The driver (the charter command) always plans the work: the same fixed work batches and unit
keys as a local run. With `--executor ray` each role's engine becomes a pool of Ray actors, each
holding one engine made from the same engine string (llama.cpp or transformers on CPU nodes, vLLM
on GPU nodes, an OpenAI client anywhere); every engine call goes whole to one idle actor, and the
stage runs as many work batches side by side as the pool has actors (data/runner.for_batches).
Results come back to the driver, which alone writes the store, in the same transactions as a
local run. A call computed whole by one actor is the call a local engine would make, so the
exported datasets of a Ray run equal a local run's byte for byte (tests/executor).

Ray is optional (`pip install 'charter[ray]'`); nothing here imports it until a pool is made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from charter.errors import CharterError

EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class ExecutorSettings:
    """How engine calls are spread. `address`: a Ray cluster ("ray://host:10001", "host:6379" or
    "auto"); None reads RAY_ADDRESS, and with neither a local Ray instance is started for the run."""

    kind: str = "local"
    address: str | None = None
    workers: int = 2  # actors per engine (each holds one engine)
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    call_timeout: float = 900.0  # seconds one engine call may take before its actor is replaced
    retries: int = 2  # further tries of a call on another actor after a worker is lost

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise CharterError(f"--executor must be one of {', '.join(EXECUTORS)}, got '{self.kind}'")
        if self.workers < 1:
            raise CharterError(f"--workers must be at least 1, got {self.workers}")
        if self.gpus_per_worker < 0 or self.cpus_per_worker <= 0:
            raise CharterError("--gpus-per-worker must be >= 0 and the CPUs per worker > 0")

    @property
    def ray_address(self) -> str | None:
        return self.address or os.environ.get("RAY_ADDRESS") or None

    def describe(self) -> str:
        if self.kind == "local":
            return "local"
        where = self.ray_address or "a local Ray instance"
        return f"ray ({self.workers} worker(s) per engine on {where})"


LOCAL = ExecutorSettings()


def make_engine_for(spec: str, settings: ExecutorSettings = LOCAL, **options):
    """The engine for `spec` under `settings`: the engine itself, or a pool of Ray actors that
    each hold one (`engines/ray_pool.RayEnginePool`, which speaks the same Engine protocol)."""
    from charter.engines.registry import make_engine

    if settings.kind == "local":
        return make_engine(spec, **options)
    from charter.engines.ray_pool import RayEnginePool

    return RayEnginePool(spec, settings, options)
