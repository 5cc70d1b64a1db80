"""The CLI through its real entry point: refusals, --new-run, bad input, stats and export."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

CHARTER = [sys.executable, "-m", "charter.cli"]


def _run(*args):
    return subprocess.run(
        CHARTER + list(args), capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture
def other_constitution(tmp_path, example_constitution_path):
    data = yaml.safe_load(example_constitution_path.read_text(encoding="utf-8"))
    data["version"] = "1.1"
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_a_run_folder_refuses_another_constitution_and_new_run_moves_beside_it(
    tmp_path, other_constitution
):
    out = tmp_path / "run"
    first = _run(
        "generate", "understanding", "--answers", "construction", "--limit", "3", "--out", str(out)
    )
    assert first.returncode == 0, first.stderr
    assert "understanding" in first.stdout and "records" in first.stdout  # the summary table

    refused = _run(
        "generate",
        "understanding",
        "--answers",
        "construction",
        "--out",
        str(out),
        "--constitution",
        str(other_constitution),
    )
    assert refused.returncode == 2
    message = refused.stderr.strip()
    assert (
        len(message.splitlines()) == 1
        and "different constitution" in message
        and "--new-run" in message
    )

    moved = _run(
        "generate",
        "understanding",
        "--answers",
        "construction",
        "--limit",
        "3",
        "--out",
        str(out),
        "--constitution",
        str(other_constitution),
        "--new-run",
    )
    assert moved.returncode == 0, moved.stderr
    assert (tmp_path / "run-2" / "records.sqlite").exists()


def test_bad_prompt_file_is_one_line_naming_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "fine"}\n{"id": 2}\n', encoding="utf-8")
    result = _run("generate", "sl", "--prompts", str(bad), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert (
        f"{bad}:2: no prompt field" in result.stderr
        and len(result.stderr.strip().splitlines()) == 1
    )


def test_stats_and_export_commands(tmp_path):
    out = tmp_path / "run"
    assert (
        _run("generate", "understanding", "--answers", "construction", "--out", str(out)).returncode
        == 0
    )
    stats = _run("data", "stats", str(out), "--json")
    assert stats.returncode == 0, stats.stderr
    numbers = json.loads(stats.stdout)
    assert numbers["sft"]["by_example_kind"] == {
        "understanding:construction": numbers["sft"]["rows"]
    }
    exported = _run("data", "export", str(out), "--format", "parquet")
    assert exported.returncode == 0, exported.stderr
    assert (out / "export" / "sft.parquet").exists() and not (
        out / "export" / "prefs.parquet"
    ).exists()
    missing = _run("data", "stats", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "not a charter run folder" in missing.stderr
