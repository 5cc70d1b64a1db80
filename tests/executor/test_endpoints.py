"""Three real llama.cpp servers on loopback behind one multi-endpoint engine: one is killed
mid-run, one sits behind the fault proxy (dropped connections, delays, 500s, 429s with
Retry-After for a share of requests). The stage completes with every unit stored once."""

from __future__ import annotations

import json
import threading
import time
from contextlib import ExitStack

import pytest

from tests.fault_proxy import FaultProxy
from tests.servers import llama_cpp_server

pytestmark = pytest.mark.slow

PROMPTS = [f"In one sentence, what is {thing}?" for thing in
           ("a river", "a violin", "rust on iron", "a glacier", "a lighthouse", "yeast", "a comet",
            "a library card", "a tide", "a kiln", "moss", "a compass")]


def test_a_stage_survives_a_killed_server_and_a_faulty_one(tmp_path, capsys):
    from charter.constitution import load_constitution
    from charter.data.critique import run_sl
    from charter.data.prompts import load_prompts
    from charter.engines.registry import embedded_model_path, make_engine
    from charter.shipped import example_constitution_path
    from charter.store import RunStore

    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    processes: list = []
    with ExitStack() as stack:
        urls = [stack.enter_context(llama_cpp_server(embedded_model_path(), "smol", tmp_path / f"s{i}.log",
                                                     threads=1, processes=processes))[0]
                for i in range(3)]
        proxy = FaultProxy(urls[1], share=0.3, seed=1, delay=0.3, retry_after=0.5)
        stack.callback(proxy.close)
        engine = make_engine(f"openai:{urls[0]},{proxy.url},{urls[2]}#smol", concurrency=2, backoff=0.05,
                             max_retries=8, timeout=60, set_aside=2)
        constitution = load_constitution(example_constitution_path())
        with RunStore.open(tmp_path / "run", constitution.content_hash(), {"policy": engine.fingerprint}) as store:
            def kill_the_third_once_work_is_under_way():
                while store.count() < 4:
                    time.sleep(0.05)
                processes[2].kill()

            threading.Thread(target=kill_the_third_once_work_is_under_way, daemon=True).start()
            summary = run_sl(store, constitution, engine, load_prompts(path), rounds=1, batch_size=4,
                             max_tokens=16)
            kinds, failures = store.kinds(), store.failures()
        assert processes[2].poll() is not None  # it really died mid-run
    assert failures == [] and summary.get("failed_units", 0) == 0
    assert {k: kinds[k] for k in ("sl_answer", "sl_critique", "sl_revision", "sft")} == \
        {k: len(PROMPTS) for k in ("sl_answer", "sl_critique", "sl_revision", "sft")}
    counts = engine.endpoint_counts()
    requests = sum(c["requests"] for c in counts.values())
    retried = engine.stats.extra["retries"]
    assert retried >= 1 and sum(proxy.counts[f] for f in ("drop", "error", "busy")) >= 1
    assert counts[urls[2]]["failed"] >= 1 and counts[urls[0]]["ok"] > 0
    with capsys.disabled():
        print(f"\n  3 endpoints, one killed, one faulty: {requests} requests, {retried} retried "
              f"({retried / requests:.0%}), 0 failed units; proxy {proxy.counts}; per endpoint {counts}")
