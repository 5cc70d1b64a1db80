"""A real two-node Ray cluster on 127.0.0.1 for the tests: a head and a second node process, each
`ray start --block` in the foreground (so stopping them stops exactly them), token auth off on
loopback, and this checkout's `src` first on the workers' path so they import the charter under
test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers import free_port

SRC = Path(__file__).resolve().parents[2] / "src"
RAY = [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]


@contextmanager
def ray_cluster(log_dir: Path, cpus_per_node: int = 1):
    pytest.importorskip("ray")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join([str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])])}
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", str(cpus_per_node), "--node-ip-address", "127.0.0.1", "--disable-usage-stats",
              "--block"]
    processes = []
    try:
        with open(log_dir / "head.log", "wb") as log:
            processes.append(subprocess.Popen([*RAY, "start", "--head", "--port", str(port),
                                               "--include-dashboard=false", *common],
                                              env=env, stdout=log, stderr=subprocess.STDOUT))
        _wait_for_nodes(address, 1, env, processes, log_dir)
        with open(log_dir / "node2.log", "wb") as log:
            processes.append(subprocess.Popen([*RAY, "start", "--address", address, *common],
                                              env=env, stdout=log, stderr=subprocess.STDOUT))
        _wait_for_nodes(address, 2, env, processes, log_dir)
        old = os.environ.get("RAY_AUTH_MODE")
        os.environ["RAY_AUTH_MODE"] = "disabled"  # the driver (this process) joins without a token
        try:
            yield address
        finally:
            if old is None:
                os.environ.pop("RAY_AUTH_MODE", None)
            else:
                os.environ["RAY_AUTH_MODE"] = old
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_for_nodes(address: str, count: int, env: dict, processes, log_dir: Path) -> None:
    deadline = time.monotonic() + 120
    probe = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
             "print(sum(1 for n in ray.nodes() if n['Alive']))")
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                logs = "\n".join(p.read_text()[-1500:] for p in log_dir.glob("*.log"))
                pytest.fail(f"a ray node exited early:\n{logs}")
        result = subprocess.run([sys.executable, "-c", probe, address], env=env, capture_output=True,
                                text=True, timeout=60)
        if result.returncode == 0 and result.stdout.strip().splitlines()[-1:] == [str(count)]:
            return
        time.sleep(1)
    pytest.fail(f"the Ray cluster at {address} did not show {count} node(s) within 120 s")
