"""`charter scrutinize` through the real entry point: static checks, exit codes, and trade-off probes
answered and judged by the embedded model, resumed from the store on a rerun."""

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from charter.shipped import example_path

DEV = Path(__file__).resolve().parents[1] / "fixtures" / "scrutiny"


def charter(*args, cwd):
    exe = shutil.which("charter") or str(Path(sys.executable).parent / "charter")
    return subprocess.run([exe, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"})


def kinds(folder: Path) -> dict[str, int]:
    with sqlite3.connect(folder / "records.sqlite") as db:
        return dict(db.execute("SELECT kind, COUNT(*) FROM records GROUP BY kind"))


def test_static_checks_fail_on_error_for_planted_problems_and_pass_a_clean_constitution(tmp_path):
    planted = charter("scrutinize", DEV / "dev_planted_1.yaml", "--out", tmp_path / "p", "--fail-on", "error",
                      cwd=tmp_path)
    assert planted.returncode == 1, planted.stderr
    assert "share_sources, hide_sources" in planted.stdout
    report = (tmp_path / "p" / "scrutiny.md").read_text()
    assert report.index("[error]") < report.index("[warning]")  # most severe first
    assert "**Fix:**" in report and "<script" not in (tmp_path / "p" / "scrutiny.html").read_text()
    assert kinds(tmp_path / "p")["finding"] >= 10
    clean = charter("scrutinize", DEV / "dev_clean_1.yaml", "--fail-on", "warning", cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr


def test_a_bad_fail_on_and_probes_without_a_folder_are_one_line_errors(tmp_path):
    bad = charter("scrutinize", DEV / "dev_clean_1.yaml", "--fail-on", "sometimes", cwd=tmp_path)
    assert bad.returncode == 2 and "--fail-on" in bad.stderr and "Traceback" not in bad.stderr
    no_out = charter("scrutinize", DEV / "dev_clean_1.yaml", "--engine", "mock:dry", cwd=tmp_path)
    assert no_out.returncode == 2 and "--out" in no_out.stderr


def test_probes_on_the_embedded_model_store_answers_and_judgments_and_resume(tmp_path):
    args = ("scrutinize", example_path("short_constitution.yaml"), "--out", tmp_path / "run", "--engine",
            "llamacpp:embedded", "--max-pairs", "1", "--scenarios", "1", "--samples", "2")
    first = charter(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    made = kinds(tmp_path / "run")
    assert made["probe_answer"] == 3  # the scenario under clause A alone, clause B alone, the whole
    assert made["probe_judgment"] == 4  # one per answer: both anchors and the two whole-constitution samples
    report = (tmp_path / "run" / "scrutiny.md").read_text()
    assert "(probes)" in report  # the pair's verdict: unscored, consistent, or a finding
    again = charter(*args, cwd=tmp_path)
    assert again.returncode == 0 and kinds(tmp_path / "run") == made
    assert (tmp_path / "run" / "scrutiny.md").read_text() == report


def test_probes_with_a_model_that_writes_its_own_scenarios_behind_a_loopback_server(gemma_server, tmp_path):
    """Gemma 3 270M behind llama.cpp's OpenAI-compatible server writes the scenarios (the path a
    capable engine takes), answers them and judges them by the letter's first-token logprobs."""
    base, model = gemma_server
    spec = f"openai:{base}#{model}"
    args = ("scrutinize", DEV / "dev_planted_1.yaml", "--out", tmp_path / "run", "--engine", spec, "--judge", spec,
            "--max-pairs", "1", "--scenarios", "1", "--samples", "1")
    result = charter(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    made = kinds(tmp_path / "run")
    assert made["probe_scenario"] == 1 and made["probe_answer"] == 3 and made["probe_judgment"] == 3
    with sqlite3.connect(tmp_path / "run" / "records.sqlite") as db:
        (scenarios,) = db.execute("SELECT data FROM records WHERE kind='probe_scenario'").fetchone()
        judgments = [row[0] for row in db.execute("SELECT data FROM records WHERE kind='probe_judgment'")]
    assert "scenarios" in scenarios and all('"mode": "letter"' in j for j in judgments)
