"""A tiny deterministic engine for testing pure logic (the real embedded model is tested too)."""

from __future__ import annotations

import hashlib
import json

from charter.engines.base import ChoiceRequest, Completion, GenerationRequest
from charter.errors import EngineError


class FakeEngine:
    """Text is a function of (messages, seed, sample index); choose() prefers option A by `bias`
    unless the question contains a word in `refuse_words` (raises EngineError: an abstention)."""

    def __init__(
        self,
        name: str = "fake:engine",
        bias: float = 0.7,
        refuse_words: tuple[str, ...] = (),
        position_bias: bool = False,
    ):
        self.name = name
        self.position_bias = position_bias
        self.bias = bias
        self.refuse_words = refuse_words
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
                digest = hashlib.sha256(
                    json.dumps([request.messages, request.seed, index]).encode()
                ).hexdigest()
                last = request.messages[-1]["content"]
                text = f"Reply {digest[:8]} to: {last[:40]}. It is considered."
                samples.append(Completion(text, "stop", 10, 8, index))
            out.append(samples)
        return out

    def choose(self, request: ChoiceRequest) -> dict[str, float]:
        """Prefers the option whose text sorts first (order-consistent), with confidence `bias`;
        with `position_bias` set, always prefers option A instead."""
        text = request.messages[-1]["content"]
        if any(word in text for word in self.refuse_words):
            raise EngineError("fake engine cannot judge this")
        if self.position_bias:
            return {"A": self.bias, "B": 1 - self.bias}
        first = text.split("\n(A) ", 1)[1].split("\n(B) ", 1)
        a_text, b_text = first[0], first[1].split("\n\n", 1)[0]
        p_a = self.bias if a_text <= b_text else 1 - self.bias
        return {"A": p_a, "B": 1 - p_a}

    def close(self) -> None:
        pass
