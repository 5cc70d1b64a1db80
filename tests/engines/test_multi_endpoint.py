"""The OpenAI engine over several endpoints: least outstanding requests, health, Retry-After,
and requests that fail past their retries returned as UnitsFailed beside what succeeded. Scripted
servers and the fault proxy here; three real llama.cpp servers in tests/executor/test_endpoints.py."""

from __future__ import annotations

import pytest

from charter.engines.openai_http import SET_ASIDE_AFTER
from charter.engines.registry import make_engine
from charter.errors import EngineError, UnitsFailed
from tests.fault_proxy import FaultProxy

from .helpers import gen


def test_requests_spread_over_endpoints(scripted_server):
    servers = [scripted_server() for _ in range(3)]
    engine = make_engine("openai:" + ",".join(s.url for s in servers) + "#m", concurrency=2)
    out = engine.generate([gen(f"q{i}", seed=i) for i in range(12)])
    assert [len(o) for o in out] == [1] * 12
    seen = [len(s.requests) for s in servers]
    assert sum(seen) == 12 and min(seen) >= 3  # least outstanding: nobody idles while another queues
    assert engine.fingerprint == "openai:*#m"  # the model, not the addresses: resumable after a loss


def test_a_dead_endpoint_is_set_aside_and_the_work_goes_elsewhere(scripted_server):
    alive = scripted_server()
    dead = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
    engine = make_engine(f"openai:{dead},{alive.url}#m", backoff=0.01, set_aside=60)
    out = engine.generate([gen(f"q{i}", seed=i) for i in range(10)])
    assert all(o[0].text == "ok" for o in out)
    counts = engine.endpoint_counts()
    assert counts[dead]["ok"] == 0 and counts[dead]["set_aside"] >= 1
    assert counts[dead]["requests"] <= SET_ASIDE_AFTER + 2  # set aside, not hammered
    assert counts[alive.url]["ok"] == 10


def test_retry_after_rests_the_endpoint_that_said_so(scripted_server):
    busy = scripted_server([(429, {"Retry-After": "30"})])
    calm = scripted_server()
    engine = make_engine(f"openai:{busy.url},{calm.url}#m", concurrency=1)
    out = engine.generate([gen(f"q{i}", seed=i) for i in range(6)])
    assert all(o[0].text == "ok" for o in out)
    assert len(busy.requests) == 1 and len(calm.requests) == 6  # after its 429 it rests 30 s


def test_requests_failing_past_retries_come_back_beside_the_rest(scripted_server):
    good = scripted_server()
    broken = FaultProxy(scripted_server().url, share=1.0, faults=("error",))
    try:
        engine = make_engine(f"openai:{broken.url}#m", max_retries=1, backoff=0.01)
        with pytest.raises(UnitsFailed) as failed:
            engine.generate([gen("a"), gen("b")])
        assert failed.value.failed == [0, 1] and failed.value.results == [None, None]
        assert "HTTP 500" in str(failed.value)
    finally:
        broken.close()
    engine = make_engine(f"openai:{good.url}#m")
    assert engine.generate([gen("a")])[0][0].text == "ok"


def test_a_mistake_is_not_retried_elsewhere(scripted_server):
    refusing = scripted_server([(400, {})])
    other = scripted_server()
    engine = make_engine(f"openai:{refusing.url},{other.url}#m", concurrency=1)
    with pytest.raises(EngineError, match="HTTP 400") as error:
        engine.generate([gen("a")])
    assert not isinstance(error.value, UnitsFailed)


def test_every_endpoint_must_be_a_url():
    with pytest.raises(EngineError, match="http"):
        make_engine("openai:http://127.0.0.1:1/v1,ftp://x#m")


def test_the_fault_proxy_does_each_harm(scripted_server):
    upstream = scripted_server()
    proxy = FaultProxy(upstream.url, share=0.6, seed=3, delay=0.05, retry_after=0.05)
    try:
        engine = make_engine(f"openai:{proxy.url}#m", max_retries=12, backoff=0.01, timeout=5)
        out = engine.generate([gen(f"q{i}", seed=i) for i in range(20)])
        assert all(o[0].text == "ok" for o in out)
        assert all(proxy.counts[f] > 0 for f in ("drop", "error", "busy", "slow"))
        assert engine.stats.extra["retries"] == sum(proxy.counts[f] for f in ("drop", "error", "busy"))
    finally:
        proxy.close()
