"""Fixtures for serve tests: one real embedded engine (wrapped to count calls), one embedding model,
and a real uvicorn server on a free loopback port, driven with the official `openai` client."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from charter.engines.base import ChoiceRequest, GenerationRequest
from charter.serve.local import serve_in_thread


class CountingEngine:
    """The real engine, counting calls, so tests can assert that refused requests never reach it.
    Its stream() passes the real engine's stream through, noting how many pieces were produced
    and whether generation has finished, so a test can see what a client got before the end."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name
        self.generate_calls = 0
        self.choose_calls = 0
        self.stream_calls = 0
        self.produced = 0  # pieces the current stream has produced
        self.finished = True  # the current stream's last token has been produced
        self.last_requests: list[GenerationRequest] = []
        self.generation_cancelled = False  # the last generate() stopped because its client left

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    @property
    def calls(self) -> int:
        return self.generate_calls + self.choose_calls + self.stream_calls

    def generate(self, requests, cancel=None):
        from charter.errors import GenerationCancelled

        self.generate_calls += 1
        self.last_requests = list(requests)
        self.generation_cancelled = False
        try:
            return self.inner.generate(requests, cancel=cancel)
        except GenerationCancelled:
            self.generation_cancelled = True
            raise

    def stream(self, request):
        self.stream_calls += 1
        self.last_requests = [request]
        self.produced, self.finished = 0, False
        pieces = self.inner.stream(request)
        try:
            while True:
                try:
                    piece = next(pieces)
                except StopIteration as done:
                    return done.value
                self.produced += 1
                yield piece
        finally:
            self.finished = True

    def choose(self, request: ChoiceRequest):
        self.choose_calls += 1
        return self.inner.choose(request)

    def close(self) -> None:  # the session fixture owns the real engine
        pass


@pytest.fixture(scope="session")
def real_engine():
    from charter.engines.registry import make_engine

    engine = make_engine("llamacpp:embedded", batch_size=2, n_ctx=4096)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def embedder():
    from charter.serve.similarity import Embedder

    return Embedder()


@pytest.fixture(scope="session")
def counting_engine(real_engine) -> CountingEngine:
    return CountingEngine(real_engine)


@dataclass
class Deployment:
    url: str
    keys: dict[str, str]
    engine: CountingEngine
    audit_path: Path

    def client(self, operator: str = "acme", key: str | None = None):
        import openai

        return openai.OpenAI(base_url=self.url, api_key=key or self.keys[operator], max_retries=0, timeout=300)


def write_operators(folder: Path, example) -> tuple[Path, dict[str, str]]:
    """acme: the example operator overlay (users may switch address, response_length);
    beta: inline overlay (users may switch address only); tight: small limits."""
    from charter.serve.operators import add_operator

    shutil.copy(example("operator.yaml"), folder / "operator.yaml")
    path = folder / "operators.yaml"
    roomy = {"requests_per_minute": 6000, "burst": 200}
    keys = {"acme": add_operator(path, "acme", overlay="operator.yaml", limits=roomy)}
    keys["beta"] = add_operator(path, "beta", overlay={"name": "beta", "user_adjustable": ["address"]},
                                limits=roomy)
    keys["tight"] = add_operator(path, "tight", limits={"requests_per_minute": 0.5, "burst": 2, "max_tokens": 8})
    return path, keys


@pytest.fixture(scope="session")
def deployment(tmp_path_factory, counting_engine, embedder, example_constitution):
    from charter.commands.constitution import example_path
    from charter.serve import ServeSettings, create_app, load_operators

    folder = tmp_path_factory.mktemp("serve")
    path, keys = write_operators(folder, example_path)
    settings = ServeSettings(audit_path=folder / "audit.sqlite", max_body_bytes=16 * 1024)
    app = create_app(example_constitution, counting_engine, load_operators(path), settings, embedder=embedder)
    url, stop = serve_in_thread(app)
    yield Deployment(url, keys, counting_engine, settings.audit_path)
    stop()
