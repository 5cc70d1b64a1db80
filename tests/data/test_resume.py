"""Crash safety on the real embedded engine: SIGKILL a stage mid-run, rerun the same command, and the
exported datasets are byte-identical to an uninterrupted run. Plus the engine property this rests on."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from charter.engines.base import GenerationRequest

CHARTER = [sys.executable, "-m", "charter.cli"]
STAGES = {
    # 2 red-team + 2 helpful prompts, 2 per work batch: six engine calls, six transactions
    "sl": [
        "generate",
        "sl",
        "--limit",
        "4",
        "--rounds",
        "1",
        "--max-tokens",
        "24",
        "--batch-size",
        "2",
        "--fewshot-count",
        "1",
    ],
    "prefs": ["generate", "prefs", "--limit", "4", "--max-tokens", "24", "--batch-size", "2"],
    "character": ["generate", "character", "--limit", "2", "--generated-per-trait", "0", "--max-tokens", "24",
                  "--batch-size", "2"],
    "understanding": ["generate", "understanding", "--limit", "4", "--answers", "model", "--max-tokens", "24",
                      "--batch-size", "2"],
}


def _run(args, **kw):
    return subprocess.run(
        CHARTER + args, capture_output=True, text=True, timeout=900, check=False, **kw
    )


def _count(folder: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{folder / 'records.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return 0


def _kill_after(args, folder: Path, records: int) -> int:
    """Start the stage, SIGKILL it once the store holds at least `records` records."""
    process = subprocess.Popen(CHARTER + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while process.poll() is None and _count(folder) < records:
            time.sleep(0.05)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    return _count(folder)


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["sl", "prefs", "character", "understanding"])
def test_sigkill_then_rerun_exports_byte_identical_data(tmp_path, stage):
    args = STAGES[stage]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    done = _run(args + ["--out", str(whole)])
    assert done.returncode == 0, done.stderr
    total = _count(whole)

    seen = [_kill_after(args + ["--out", str(resumed)], resumed, 1)]
    if seen[-1] < total:
        seen.append(_kill_after(args + ["--out", str(resumed)], resumed, seen[-1] + 1))
    assert 0 < seen[0] < total, f"the first kill should land mid-run (stored {seen} of {total})"
    finished = _run(args + ["--out", str(resumed)])
    assert finished.returncode == 0, finished.stderr
    assert _count(resumed) == total

    for folder in (whole, resumed):
        exported = _run(
            ["data", "export", str(folder), "--format", "jsonl", "--out", str(folder / "x")]
        )
        assert exported.returncode == 0, exported.stderr
    for name in ("sft.jsonl", "prefs.jsonl"):
        a, b = whole / "x" / name, resumed / "x" / name
        assert a.exists() == b.exists()
        if a.exists():
            assert a.read_bytes() == b.read_bytes(), (
                f"{name} differs after resume (kills at {seen})"
            )


@pytest.mark.slow
def test_a_batch_redone_from_a_clean_cache_gives_the_same_text(embedded):
    """The property resume relies on. The engine is NOT batch-invariant (a request alone and the
    same request in a batch may sample different text) and its prefix cache carries state between
    calls; the same batch from a clean cache (`reset_cache`) is reproducible."""
    system = {
        "role": "system",
        "content": "You are a helpful assistant who answers briefly and kindly. " * 4,
    }
    batch = [
        GenerationRequest(
            messages=(system, {"role": "user", "content": q}), max_tokens=16, seed=7 + i
        )
        for i, q in enumerate(["Why is the sea salty?", "Name a fruit.", "What is rain?"])
    ]
    other = [
        GenerationRequest(
            messages=(system, {"role": "user", "content": "Tell me about owls."}),
            max_tokens=8,
            seed=1,
        )
    ]
    embedded.reset_cache()
    first = [c[0].text for c in embedded.generate(batch)]
    embedded.generate(other)  # leaves different cached prefixes behind
    embedded.reset_cache()
    assert [c[0].text for c in embedded.generate(batch)] == first
