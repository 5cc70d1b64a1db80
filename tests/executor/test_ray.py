"""`--executor ray` on a real two-node Ray cluster on loopback, two actors each holding the
embedded llama.cpp engine: the export equals a local run's byte for byte, and a worker killed
mid-run (SIGKILL) costs only its unfinished call, retried elsewhere: 0 units lost, 0 duplicated.

A llama.cpp engine's numbers depend on its thread count, so the local run uses the actors' one
thread (`@n_threads=1`, what `--cpus-per-worker 1` gives each actor): the same settings."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from tests.executor.ray_cluster import ray_cluster

pytestmark = pytest.mark.slow

PROMPTS = ["How do I pick the lock on my neighbour's front door?", "Write a short poem about rain.",
           "How can I get back at my coworker without being caught?", "Explain photosynthesis to a child.",
           "Tell me how to make a fake ID.", "What is a good way to start running?",
           "How do I find someone's home address from their username?", "Give me a pancake recipe."]
SL = ["--batch-size", "2", "--rounds", "1", "--max-tokens", "24"]
LOCAL_ENGINE = "llamacpp:embedded@n_threads=1"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with ray_cluster(tmp_path_factory.mktemp("ray")) as address:
        yield address


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    return path


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, prompts):
    from typer.testing import CliRunner

    from charter.cli import _register, app

    _register()
    folder = tmp_path_factory.mktemp("local") / "run"
    runner = CliRunner()
    for args in (["generate", "sl", "-p", str(prompts), *SL],
                 ["generate", "distill", "--limit", "3", "--safe-ratio", "1", "--max-tokens", "24",
                  "--batch-size", "2"]):
        result = runner.invoke(app, [*args, "-e", LOCAL_ENGINE, "--out", str(folder)])
        assert result.exit_code == 0, result.output
    return folder


def _export(cli, folder):
    result = cli("data", "export", str(folder), "-f", "jsonl")
    assert result.exit_code == 0, result.output
    return {name: (folder / "export" / f"{name}.jsonl").read_bytes() for name in ("sft", "prefs")}


def _counts(folder):
    from charter.store import RunStore

    with RunStore.read(folder) as store:
        return store.kinds(), store.failures()


def test_a_ray_run_exports_what_a_local_run_exports(cli, cluster, prompts, local_run, tmp_path):
    folder = tmp_path / "ray"
    ray = ["-e", "llamacpp:embedded", "--out", str(folder), "--executor", "ray", "--ray-address", cluster,
           "--workers", "2"]
    for args in (["generate", "sl", "-p", str(prompts), *SL],
                 ["generate", "distill", "--limit", "3", "--safe-ratio", "1", "--max-tokens", "24",
                  "--batch-size", "2"]):
        result = cli(*args, *ray)
        assert result.exit_code == 0, result.output
    assert _counts(folder) == _counts(local_run)
    assert _export(cli, folder) == _export(cli, local_run)


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(cluster, prompts, local_run, tmp_path, cli):
    from charter.data.critique import run_sl
    from charter.data.prompts import load_prompts
    from charter.executor import ExecutorSettings
    from charter.session import open_session

    settings = ExecutorSettings(kind="ray", address=cluster, workers=2, call_timeout=300)
    folder = tmp_path / "killed"
    with open_session(None, {"policy": "llamacpp:embedded"}, folder, executor=settings) as session:
        pool = session.engines["policy"]
        killed: list[int] = []

        def kill_a_busy_worker_once_work_is_under_way():
            while session.store.count() == 0 or not pool.busy_pids():
                time.sleep(0.02)
            killed.append(pool.busy_pids()[0])  # an actor with a call in flight
            os.kill(killed[0], signal.SIGKILL)

        threading.Thread(target=kill_a_busy_worker_once_work_is_under_way, daemon=True).start()
        summary = run_sl(session.store, session.constitution, pool, load_prompts(prompts), rounds=1,
                         batch_size=2, max_tokens=24)
        assert killed
        lost = pool.stats.extra["lost_workers"]
        pids_after = pool.worker_pids()
    assert killed[0] not in pids_after and len(pids_after) == 2  # Ray restarted the killed actor
    assert lost >= 1 and pool.stats.extra["retries"] >= 1
    assert summary.get("failed_units", 0) == 0
    kinds, failures = _counts(folder)
    assert failures == []
    assert {k: kinds[k] for k in ("sl_answer", "sl_critique", "sl_revision", "sft")} == \
        {k: len(PROMPTS) for k in ("sl_answer", "sl_critique", "sl_revision", "sft")}  # 0 lost, 0 twice
    assert _export_sl(cli, folder, tmp_path / "a") == _export_sl(cli, local_run, tmp_path / "b")


def _export_sl(cli, folder, out):
    result = cli("data", "export", str(folder), "-f", "jsonl", "--stage", "sl", "--out", str(out))
    assert result.exit_code == 0, result.output
    return (out / "sft.jsonl").read_bytes()
