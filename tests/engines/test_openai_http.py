"""The OpenAI-compatible HTTP engine: against a real llama-cpp-python server, and the retry path
against a scripted local server that fails on purpose."""

from __future__ import annotations

import pytest

from charter.engines.base import ChoiceRequest, Engine
from charter.engines.registry import make_engine
from charter.errors import EngineError

from tests.servers import free_port
from .helpers import CAPITAL, drain, gen, user


@pytest.fixture(scope="module")
def server_engine(llama_server):
    base, model = llama_server
    engine = make_engine(f"openai:{base}#{model}", concurrency=2)
    yield engine
    engine.close()


def test_generates_through_a_real_server(server_engine):
    assert isinstance(server_engine, Engine)
    out = server_engine.generate([gen("Say hello.", n=2, seed=3), gen("Name a colour.", seed=4)])
    assert [len(r) for r in out] == [2, 1]
    for completions in out:
        for i, c in enumerate(completions):
            assert c.index == i and isinstance(c.text, str)
            assert c.finish_reason in ("stop", "length")
            assert c.prompt_tokens > 10 and 0 < c.completion_tokens <= 12


def test_server_honours_seed(server_engine):
    request = gen("Write a sentence about the sea.", seed=11, temperature=1.0, max_tokens=10)
    assert server_engine.generate([request]) == server_engine.generate([request])


def test_streams_the_servers_tokens_as_they_come(server_engine):
    request = gen("Write a sentence about the sea.", seed=11, temperature=0.0, max_tokens=12)
    pieces, completion = drain(server_engine.stream(request))
    assert len(pieces) > 1 and "".join(pieces) == completion.text
    assert completion.completion_tokens > 1 and completion.finish_reason in ("stop", "length")
    assert completion.text == server_engine.generate([request])[0][0].text


def test_a_stream_the_server_refuses_is_one_clear_error(scripted_server):
    server = scripted_server([(400, {})])
    engine = make_engine(f"openai:{server.url}#m")
    with pytest.raises(EngineError, match="HTTP 400"):
        drain(engine.stream(gen("hi")))


def test_choose_from_server_logprobs(server_engine):
    probs = server_engine.choose(CAPITAL)
    assert list(probs) == list(CAPITAL.options)
    assert sum(probs.values()) == pytest.approx(1.0)
    assert max(probs, key=probs.get) == "Paris"


def test_choose_refuses_an_assistant_prefix_without_prefill(server_engine):
    with pytest.raises(EngineError, match="prefill=continue"):
        server_engine.choose(ChoiceRequest(user("Pick A or B."), ("A", "B"), assistant_prefix="("))


def test_server_down_is_one_clear_error():
    engine = make_engine(f"openai:http://127.0.0.1:{free_port()}/v1#m", max_retries=1, backoff=0.01)
    with pytest.raises(EngineError) as info:
        engine.generate([gen("Hi")])
    message = str(info.value)
    assert "failed 2 time(s)" in message and "cannot connect" in message and "\n" not in message


def test_retries_503_then_succeeds(scripted_server):
    server = scripted_server([(503, {}), (503, {})])
    engine = make_engine(f"openai:{server.url}#m", backoff=0.01)
    out = engine.generate([gen("Hi", seed=5)])
    assert out[0][0].text == "ok" and out[0][0].completion_tokens == 1
    assert len(server.requests) == 3 and engine.stats.extra["retries"] == 2
    assert server.requests[-1]["seed"] == 5 and server.requests[-1]["model"] == "m"


def test_429_waits_for_retry_after(scripted_server):
    server = scripted_server([(429, {"Retry-After": "1"})])
    engine = make_engine(f"openai:{server.url}#m", backoff=0.01)
    assert engine.choose(ChoiceRequest(user("A or B?"), ("A", "B")))["A"] > 0.9
    assert len(server.requests) == 2 and "HTTP 429" in engine.stats.extra["retry_reasons"][0]
    assert server.times[1] - server.times[0] >= 0.9  # waited as told, not its own 0.01 s backoff


def test_gives_up_after_max_retries(scripted_server):
    server = scripted_server([(500, {})] * 5)
    engine = make_engine(f"openai:{server.url}#m", max_retries=2, backoff=0.01)
    with pytest.raises(EngineError, match="failed 3 time"):
        engine.generate([gen("Hi")])
    assert len(server.requests) == 3


def test_client_errors_are_not_retried(scripted_server):
    server = scripted_server([(404, {})])
    engine = make_engine(f"openai:{server.url}#nosuch", backoff=0.01)
    with pytest.raises(EngineError, match="HTTP 404.*model name 'nosuch'"):
        engine.generate([gen("Hi")])
    assert len(server.requests) == 1


def test_api_key_from_environment(scripted_server, monkeypatch):
    monkeypatch.setenv("CHARTER_API_KEY", "sekret")
    server = scripted_server([])
    engine = make_engine(f"openai:{server.url}#m")
    engine.generate([gen("Hi")])
    assert "sekret" not in engine.fingerprint
