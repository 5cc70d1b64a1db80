"""`charter chat` through the real entry point: generate, --choose, and a bad engine string."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def charter(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("charter") or str(Path(sys.executable).parent / "charter")
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([exe, *args], check=False, capture_output=True, text=True, env=env,
                          timeout=300)


def test_chat_generates_with_the_embedded_engine():
    result = charter("chat", "Say hello.", "--max-tokens", "8", "--temperature", "0", "--seed", "1",
                     "--system", "You are terse.")
    assert result.returncode == 0, result.stderr
    assert "tokens, finish:" in result.stdout and "llamacpp:" in result.stdout


def test_chat_choose_prints_probabilities():
    result = charter("chat", "What is the capital of France?", "--choose", "Paris,London")
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.strip().splitlines()]
    assert [line[1] for line in lines] == ["Paris", "London"]
    assert abs(sum(float(line[0]) for line in lines) - 1) < 1e-3


def test_chat_bad_engine_is_one_line_and_exit_2():
    result = charter("chat", "hi", "--engine", "nosuch:x")
    assert result.returncode == 2
    assert "unknown engine scheme 'nosuch'" in result.stderr
