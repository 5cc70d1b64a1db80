"""The README's first steps through the real `charter` entry point: init, lint, show, and errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def charter(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("charter") or str(Path(sys.executable).parent / "charter")
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


def test_init_lint_show_quickstart(tmp_path):
    result = charter("init", str(tmp_path / "proj"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    proj = tmp_path / "proj"
    assert (proj / "constitution.yaml").exists() and (proj / "prompts" / "red_team.jsonl").exists()

    lint = charter("lint", "constitution.yaml", cwd=proj)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "principle" in lint.stdout and "hard_line" in lint.stdout

    show = charter("show", "constitution.yaml", "--operator", "operator.yaml", "--user", "user.yaml", cwd=proj)
    assert show.returncode == 0, show.stderr
    assert "system prompt" in show.stdout and "formal" in show.stdout
    assert "Traceback" not in show.stdout + show.stderr


def test_init_refuses_to_overwrite(tmp_path):
    assert charter("init", str(tmp_path), cwd=tmp_path).returncode == 0
    again = charter("init", str(tmp_path), cwd=tmp_path)
    assert again.returncode != 0
    assert "already exists" in again.stderr and "--force" in again.stderr


@pytest.mark.parametrize("content, expected", [
    ("name: t\nversion: 1\nprinciples:\n  - id: a\n    txt: x\n", "c.yaml:5"),
    ("name: [unclosed\n", "invalid YAML"),
])
def test_lint_reports_located_problems_with_nonzero_exit(tmp_path, content, expected):
    (tmp_path / "c.yaml").write_text(content, encoding="utf-8")
    result = charter("lint", "c.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert expected in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_show_refuses_overlay_that_touches_a_hard_line_in_one_line(tmp_path, example_constitution_path):
    attack = tmp_path / "evil.yaml"
    attack.write_text("remove: [malicious_code]\n", encoding="utf-8")
    result = charter("show", str(example_constitution_path), "--operator", str(attack), cwd=tmp_path)
    assert result.returncode == 2
    assert "malicious_code" in result.stderr and "operator" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2


def test_missing_file_is_one_clear_line(tmp_path):
    result = charter("show", "nope.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "nope.yaml" in result.stderr and "not found" in result.stderr
