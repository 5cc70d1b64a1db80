"""Mistakes a user makes with paths and files end in one line and exit code 2, never a traceback
(issue 16, item 7): an --out that is a file or below one, a damaged run store, YAML tags that do
not fit their value, a lone surrogate escape."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def charter(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("charter") or str(Path(sys.executable).parent / "charter")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**os.environ, "COLUMNS": "300"})


def assert_one_line(done: subprocess.CompletedProcess, *words: str) -> None:
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "Traceback" not in out and all(w in out for w in words), out


@pytest.fixture
def example(tmp_path, example_constitution_path) -> Path:
    return Path(shutil.copy(example_constitution_path, tmp_path / "c.yaml"))


def test_an_out_that_is_a_file_or_below_one(tmp_path):
    (tmp_path / "afile").write_text("x")
    assert_one_line(charter("generate", "distill", "--engine", "mock:x", "--limit", "1", "--out", "afile",
                            cwd=tmp_path), "is a file, not a folder")
    assert_one_line(charter("generate", "distill", "--engine", "mock:x", "--limit", "1", "--out", "afile/run",
                            cwd=tmp_path), "is below a file")


@pytest.mark.parametrize("content", [b"not a database at all", b""])
def test_a_damaged_run_store(tmp_path, content):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "records.sqlite").write_bytes(content * 100)
    (tmp_path / "run" / "manifest.json").write_text("{}")
    assert_one_line(charter("data", "stats", "run", cwd=tmp_path), "not a charter run store")
    if content:  # an empty file is an empty SQLite database: a new store may be made in it
        assert_one_line(charter("generate", "distill", "--engine", "mock:x", "--limit", "1", "--out", "run",
                                cwd=tmp_path), "not a charter run store")


@pytest.mark.parametrize("old, new, words", [
    ('version: "1.0"', "version: !!float abc", ("c.yaml:", "!!float")),
    ("  - id: harmlessness", "  - id: !!int harmlessness", ("c.yaml:", "!!int")),
    ("  - id: harmlessness", "  - id: !!bool maybe", ("c.yaml:", "!!bool")),
    ("  - id: harmlessness", '  - id: "harm\\ud800lessness"', ("c.yaml:", "lone surrogate")),
])
def test_yaml_values_that_used_to_crash(example, old, new, words):
    text = example.read_text()
    assert old in text
    example.write_text(text.replace(old, new, 1))
    assert_one_line(charter("lint", str(example), cwd=example.parent), *words)


def test_a_read_only_run_folder_is_read_without_writing(tmp_path, monkeypatch):
    """WAL needs a -shm file beside the store; a folder charter cannot write is opened immutable.
    (os.access is patched: as root, a chmod-ed folder is still writable, so the real case can't be
    made here.)"""
    from charter.store import RunStore

    store = RunStore.open(tmp_path / "run")
    store.close()
    for leftover in (tmp_path / "run").glob("records.sqlite-*"):
        leftover.unlink()
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    readonly = RunStore.read(tmp_path / "run")
    assert readonly.count("pref") == 0
    assert not list((tmp_path / "run").glob("records.sqlite-*"))
    readonly.close()


def test_a_read_only_filesystem_is_one_line(tmp_path):
    """/sys is mounted read-only here: creating a run folder there fails with EROFS (or a
    permission error), which is one line, not a traceback."""
    target = Path("/sys/charter-test-run")
    try:
        target.mkdir()
    except OSError:
        pass
    else:
        target.rmdir()
        pytest.skip("/sys is writable on this machine")
    done = charter("generate", "distill", "--engine", "mock:x", "--limit", "1", "--out", str(target), cwd=tmp_path)
    assert_one_line(done, "charter-test-run")


@pytest.mark.parametrize("code, words", [("ENOSPC", "free some disk space"), ("EFBIG", "size limit")])
def test_a_full_disk_is_one_line(tmp_path, code, words):
    """The disk-full handler of cli.main, reached the way a write would reach it (a real full disk
    cannot be made here without root tricks on a shared machine)."""
    script = (f"import errno, sys\nimport charter.data.distill as distill\n"
              f"def full(*a, **k):\n    raise OSError(errno.{code}, 'No space left', 'records.sqlite')\n"
              f"distill.run_distill = full\nfrom charter.cli import main\n"
              f"sys.argv = ['charter', 'generate', 'distill', '--engine', 'mock:x', '--limit', '1', '--out', 'run']\n"
              f"main()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "COLUMNS": "300"})
    assert_one_line(done, words, "rerun the same command to resume")
