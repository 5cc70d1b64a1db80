"""`mock:NAME`: a deterministic engine with no model, for dry runs and tests of pure logic.

    charter generate prefs --engine mock:dry --mode judge --limit 4 --out /tmp/dry   # seconds, no model

Text is a function of (messages, seed, sample index), so reruns and resumes are reproducible;
`choose` prefers the option whose text sorts first, with confidence `bias` (or always option A
with `position_bias=true`), and abstains (EngineError) on a question containing one of
`refuse_words` (comma-separated). It says nothing about a real model: every feature is also
tested on the embedded one.
"""

from __future__ import annotations

import hashlib
import json

from charter.engines.base import ChoiceRequest, Completion, GenerationRequest
from charter.errors import EngineError

OPTIONS = ("bias", "refuse_words", "position_bias")


class MockEngine:
    def __init__(self, name: str = "mock:engine", bias: float = 0.7, refuse_words: tuple[str, ...] | str = (),
                 position_bias: bool = False, **unknown):
        if unknown:
            raise EngineError(f"engine '{name}': unknown option(s) {', '.join(sorted(unknown))}; "
                              f"mock takes {', '.join(OPTIONS)}")
        self.name = name
        self.bias = float(bias)
        self.refuse_words = tuple(w for w in refuse_words.split(",") if w) if isinstance(refuse_words, str) \
            else tuple(refuse_words)
        self.position_bias = bool(position_bias)
        self.calls: list[int] = []  # batch sizes of generate calls
        self.resets = 0

    @property
    def fingerprint(self) -> str:
        return f"{self.name}:v1"

    def reset_cache(self) -> None:
        self.resets += 1

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        self.calls.append(len(requests))
        out = []
        for request in requests:
            samples = []
            for index in range(request.n):
                digest = hashlib.sha256(json.dumps([request.messages, request.seed, index]).encode()).hexdigest()
                last = request.messages[-1]["content"]
                samples.append(Completion(f"Reply {digest[:8]} to: {last[:40]}. It is considered.", "stop", 10, 8,
                                          index))
            out.append(samples)
        return out

    def choose(self, request: ChoiceRequest) -> dict[str, float]:
        text = request.messages[-1]["content"]
        if any(word in text for word in self.refuse_words):
            raise EngineError(f"engine '{self.name}' cannot judge this (a refuse word)")
        if self.position_bias:
            return {"A": self.bias, "B": 1 - self.bias}
        if "\n(A) " not in text or "\n(B) " not in text:
            return {option: 1 / len(request.options) for option in request.options}
        first = text.split("\n(A) ", 1)[1].split("\n(B) ", 1)
        a_text, b_text = first[0], first[1].split("\n\n", 1)[0]
        p_a = self.bias if a_text <= b_text else 1 - self.bias
        return {"A": p_a, "B": 1 - p_a}

    def close(self) -> None:
        pass
