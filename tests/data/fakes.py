"""The deterministic engine for testing pure logic is the package's own `mock:` engine
(charter/engines/mock.py); the real embedded model is tested too."""

from __future__ import annotations

from charter.engines.mock import MockEngine


class FakeEngine(MockEngine):
    def __init__(self, name: str = "fake:engine", bias: float = 0.7, refuse_words: tuple[str, ...] = (),
                 position_bias: bool = False):
        super().__init__(name=name, bias=bias, refuse_words=refuse_words, position_bias=position_bias)
