"""Work batches side by side (a pool engine) and failed units (recorded, reported, retried).

The engine here is the package's mock engine with a pool's `parallel_calls`, for the logic only;
tests/executor/test_ray.py runs the same stages on real Ray actors holding the embedded model."""

from __future__ import annotations

import threading
import time

import pytest

from charter.constitution import load_constitution
from charter.data.critique import run_sl
from charter.data.export import export_run
from charter.data.prompts import PromptItem
from charter.engines.mock import MockEngine
from charter.errors import StageIncomplete, UnitsFailed
from charter.shipped import example_constitution_path
from charter.store import RunStore

PROMPTS = [PromptItem(uid=f"p{i}", prompt=f"Question number {i}: how do I do thing {i}?", source="test",
                      mode="critique")
           for i in range(10)]


class PoolLike(MockEngine):
    """The mock engine, taking `parallel_calls` calls at once (as a pool of workers does), slowed a
    little so calls overlap; it counts the most calls it saw in flight together."""

    def __init__(self, parallel: int, fail_on: set[str] = frozenset(), **kw):
        super().__init__(name="mock:pool", **kw)
        self.parallel_calls = parallel
        self.fail_on = set(fail_on)
        self.in_flight = self.most_in_flight = 0
        self._lock = threading.Lock()

    def generate(self, requests):
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(0.02)
            failed = [i for i, r in enumerate(requests)
                      if any(word in r.messages[-1]["content"] for word in self.fail_on)]
            out = super().generate(requests)
            if failed:
                raise UnitsFailed("endpoint lost", failed=failed,
                                  results=[None if i in failed else o for i, o in enumerate(out)], attempts=3)
            return out
        finally:
            with self._lock:
                self.in_flight -= 1


def _run(folder, engine, **kw):
    constitution = load_constitution(example_constitution_path())
    with RunStore.open(folder, constitution.content_hash(), {"policy": engine.fingerprint}) as store:
        return run_sl(store, constitution, engine, PROMPTS, rounds=1, batch_size=3, **kw)


def _export(folder, out):
    with RunStore.read(folder) as store:
        export_run(store, out, "jsonl")
    return (out / "sft.jsonl").read_bytes()


def test_batches_side_by_side_export_what_one_at_a_time_exports(tmp_path):
    pooled = PoolLike(parallel=3)
    _run(tmp_path / "pooled", pooled)
    _run(tmp_path / "serial", PoolLike(parallel=1))
    assert pooled.most_in_flight > 1  # the batches really overlapped
    assert _export(tmp_path / "pooled", tmp_path / "e1") == _export(tmp_path / "serial", tmp_path / "e2")


def test_a_failed_unit_is_recorded_reported_and_retried_without_duplicates(tmp_path, cli):
    # Prompt 4 fails past its retries: the rest of its batch and every other batch are stored.
    with pytest.raises(StageIncomplete, match="rerun the same command"):
        _run(tmp_path / "run", PoolLike(parallel=2, fail_on={"thing 4?"}))
    with RunStore.read(tmp_path / "run") as store:
        failures = store.failures("sl")
        assert not store.stage_done("sl")
    assert len(failures) == 1 and len(failures[0]["keys"]) == 1 and "endpoint lost" in failures[0]["error"]
    stats = cli("data", "stats", str(tmp_path / "run"))
    assert stats.exit_code == 0 and "failed units" in stats.output and "sl: 1" in stats.output

    summary = _run(tmp_path / "run", PoolLike(parallel=2))  # the same command, the endpoint back
    assert summary["records"] > 0 and summary["reused"] > 0
    with RunStore.read(tmp_path / "run") as store:
        assert store.failures() == [] and store.stage_done("sl")
    _run(tmp_path / "clean", PoolLike(parallel=2))
    assert _export(tmp_path / "run", tmp_path / "e1") == _export(tmp_path / "clean", tmp_path / "e2")


def test_endpoints_that_all_fail_leave_a_resumable_run_through_the_cli(tmp_path, cli, scripted_server):
    """Real HTTP: both endpoints fail every request; the command exits 2 naming the failures,
    `data stats` lists them; rerun with other endpoints (same model), it completes and the folder
    holds every unit once."""
    from tests.fault_proxy import FaultProxy

    broken = [FaultProxy(scripted_server().url, share=1.0, faults=("error",)) for _ in range(2)]
    try:
        engine = "openai:" + ",".join(p.url for p in broken) + "#m@max_retries=1@backoff=0.01@set_aside=0.1"
        first = cli("generate", "understanding", "-e", engine, "--out", str(tmp_path / "run"), "--answers",
                    "model", "--limit", "5", "--batch-size", "2")
    finally:
        for proxy in broken:
            proxy.close()
    assert isinstance(first.exception, StageIncomplete), first.output  # main() prints it, exits 2
    assert "failed past their retries" in str(first.exception) and "rerun the same command" in str(first.exception)
    stats = cli("data", "stats", str(tmp_path / "run"))
    assert "failed units" in stats.output and "understanding: 3 (5 request(s))" in stats.output

    healthy = ",".join(scripted_server().url for _ in range(2))
    second = cli("generate", "understanding", "-e", f"openai:{healthy}#m", "--out", str(tmp_path / "run"),
                 "--answers", "model", "--limit", "5", "--batch-size", "2")
    assert second.exit_code == 0, second.output
    with RunStore.read(tmp_path / "run") as store:
        assert store.failures() == [] and store.stage_done("understanding")
        assert store.count(stage="understanding", kind="sft") == 5
