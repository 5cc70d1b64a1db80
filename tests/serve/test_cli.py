"""`charter operators` and `charter serve` through the real entry point, as the docs tell people to run them."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from charter.serve.operators import hash_key, load_operators


def charter(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "charter.cli", *args], check=False, capture_output=True, text=True,
                          env=env, timeout=300, **kwargs)


def test_operators_add_prints_a_key_once_and_stores_only_its_hash(tmp_path):
    path = tmp_path / "operators.yaml"
    first = charter("operators", "add", "acme", "--operators", str(path), "--rpm", "30")
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip().splitlines()[-1]
    stored = path.read_text()
    assert key.startswith("chk_") and key not in stored and hash_key(key) in stored
    assert load_operators(path)[0].limits.requests_per_minute == 30

    again = charter("operators", "add", "acme", "--operators", str(path))
    assert again.returncode == 2 and "--rotate" in again.stderr
    rotated = charter("operators", "add", "acme", "--operators", str(path), "--rotate")
    new_key = rotated.stdout.strip().splitlines()[-1]
    assert new_key != key and hash_key(key) not in path.read_text()
    listing = charter("operators", "list", "--operators", str(path))
    assert "acme" in listing.stdout and hash_key(new_key) not in listing.stdout


def test_quickstart_serve_the_example_with_a_fresh_key(tmp_path):
    """charter init; charter operators add acme --rotate; charter serve; call it with the key."""
    from charter.commands.constitution import example_path
    from charter.serve.local import free_port

    for name in ("constitution.yaml", "operator.yaml", "operators.yaml"):
        (tmp_path / name).write_bytes(example_path(name).read_bytes())
    added = charter("operators", "add", "acme", "--operators", str(tmp_path / "operators.yaml"), "--rotate")
    key = added.stdout.strip().splitlines()[-1]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "charter.cli", "serve", "--constitution", str(tmp_path / "constitution.yaml"),
         "--operators", str(tmp_path / "operators.yaml"), "--port", str(port), "--audit",
         str(tmp_path / "audit.sqlite")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})
    try:
        deadline, models = time.monotonic() + 240, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                models = httpx.get(f"http://127.0.0.1:{port}/v1/models",
                                   headers={"authorization": f"Bearer {key}"}, timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert models is not None and models.status_code == 200, server.stdout.read() if server.poll() else ""
        assert models.json()["data"][0]["id"] == "charter"
    finally:
        server.terminate()
        output = server.communicate(timeout=60)[0]
    assert "acme" in output and key not in output


def test_operator_limits_refuse_booleans_for_counts():
    """`max_tokens: true` in operators.yaml used to be read as 1."""
    from pydantic import ValidationError

    from charter.serve.operators import Limits

    for field in ("max_tokens", "burst"):
        with pytest.raises(ValidationError):
            Limits.model_validate({field: True})
    assert Limits.model_validate({"max_tokens": 64}).max_tokens == 64
