"""Engines shared by the server's worker threads: one lock per engine, one engine per spec.

llama.cpp (and most in-process engines) are not thread-safe, and request handlers run on a thread
pool, so every call into an engine holds that engine's lock. The generating engine and the judge
engine may be the same object; then they share the lock too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from charter.engines.base import (
    ChoiceRequest,
    Completion,
    Engine,
    GenerationRequest,
    supports_cancel,
)


class EngineSlot:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.engine.name

    def generate(self, requests: list[GenerationRequest],
                 cancel: threading.Event | None = None) -> list[list[Completion]]:
        """The engine's completions under this slot's lock; an engine that takes `cancel` stops
        between tokens once it is set (GenerationCancelled), others finish."""
        with self.lock:
            if cancel is not None and self.cancels:
                return self.engine.generate(requests, cancel=cancel)
            return self.engine.generate(requests)

    @property
    def cancels(self) -> bool:
        """Whether the engine's generate() stops when its `cancel` event is set."""
        return supports_cancel(self.engine)

    def choose(self, request: ChoiceRequest) -> dict[str, float]:
        with self.lock:
            return self.engine.choose(request)

    @property
    def streams(self) -> bool:
        """Whether the engine yields tokens as it generates (`stream`, a generator that returns
        the whole Completion)."""
        return hasattr(self.engine, "stream")

    def stream(self, request: GenerationRequest, cancel: threading.Event, result: list) -> Iterator[str]:
        """The engine's stream under this slot's lock: text as it is generated, stopped between
        tokens once `cancel` is set (the engine's stream is closed, so its generation ends there);
        a stream that finishes appends its Completion to `result`."""
        with self.lock:
            pieces = self.engine.stream(request)
            try:
                while not cancel.is_set():
                    try:
                        piece = next(pieces)
                    except StopIteration as done:
                        result.append(done.value)
                        return
                    yield piece
            finally:
                pieces.close()


class EnginePool:
    """Engines by spec string, made on first use (at startup, so a bad spec fails early)."""

    def __init__(self, make: Callable[[str], Engine]):
        self._make = make
        self._slots: dict[str, EngineSlot] = {}
        self._lock = threading.Lock()

    def add(self, spec: str, engine: Engine) -> EngineSlot:
        with self._lock:
            slot = self._slots[spec] = EngineSlot(engine)
            return slot

    def get(self, spec: str) -> EngineSlot:
        with self._lock:
            if spec not in self._slots:
                self._slots[spec] = EngineSlot(self._make(spec))
            return self._slots[spec]

    def close(self, keep: tuple[Engine, ...] = ()) -> None:
        """Close the engines this pool made; engines handed in by the caller stay the caller's."""
        with self._lock:
            for slot in self._slots.values():
                if not any(slot.engine is kept for kept in keep):
                    slot.engine.close()
            self._slots.clear()
