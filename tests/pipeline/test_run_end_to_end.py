"""`charter run` end to end on the embedded model, scaled down: killed mid-training, rerun, finished.

Checks what a user relies on: the rerun skips finished stages instead of redoing them, the report
has before/after figures, and both exported models (Hugging Face folder and GGUF) load.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY = ["--limit", "4", "--samples", "1", "--max-steps", "2", "--eval-limit", "4", "--max-tokens", "48",
        "--eval-max-tokens", "32", "--suites", "harmful,overrefusal,conversations", "--conversations", "5"]


def charter_command(*args: str) -> list[str]:
    exe = shutil.which("charter") or str(Path(sys.executable).parent / "charter")
    return [exe, *args]


def done_stages(out: Path) -> set[str]:
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return set()
    return {k.split(":", 1)[1] for k in manifest.get("done", {}) if k.startswith("pipeline:")}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "example"
    env = {**os.environ, "COLUMNS": "160"}
    first = subprocess.Popen(charter_command("run", "--out", str(out), *TINY), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 1800
    while time.time() < deadline and first.poll() is None and "datasets" not in done_stages(out):
        time.sleep(1)
    killed = first.poll() is None
    if killed:
        first.send_signal(signal.SIGKILL)
    first.wait()
    assert "datasets" in done_stages(out), first.stdout.read()[-3000:]
    second = subprocess.run(charter_command("run", "--out", str(out), *TINY), env=env, capture_output=True,
                            text=True, timeout=2400)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    return out, second.stdout + second.stderr, killed


def test_rerun_after_kill_skips_finished_stages(finished_run):
    out, log, killed = finished_run
    assert killed, "the first run finished before it could be killed; the resume path was not exercised"
    assert "data: done in an earlier run, skipped" in log
    assert {"prompts", "data", "datasets", "sft", "dpo", "export", "eval", "report"} <= done_stages(out)


def test_report_has_before_after_figures(finished_run):
    out, log, _ = finished_run
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Before and after" in html and "harmful prompts refused" in html
    assert "data:image/png;base64," in html
    # What was run comes from the run's own records: prompt counts, trainer settings, engine fingerprints.
    assert "4 harmful, 8 safe" in html and "lr 0.001" in html and "lr 0.0002" in html
    assert "eval trained: llamacpp:model.f16.gguf:sha256=" in html
    assert "Report:" in log
    for label in ("base", "trained"):
        run = json.loads((out / "eval" / label / "eval.json").read_text())
        assert set(run["suites"]) == {"harmful", "overrefusal", "conversations"}
        kinds = [f["extra"]["kind"] for f in run["suites"]["conversations"]["findings"]]
        assert len(kinds) == len(set(kinds)) == 4  # --eval-limit 4 caps every suite: four kinds, one each


def test_exported_models_load(finished_run):
    out, _, _ = finished_run
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out / "model" / "hf")
    assert model.num_parameters() > 100_000_000
    ggufs = list((out / "model").glob("*.gguf"))
    assert len(ggufs) == 1
    from charter.engines.base import GenerationRequest
    from charter.engines.registry import make_engine

    engine = make_engine(f"llamacpp:{ggufs[0]}")
    try:
        [[completion]] = engine.generate([GenerationRequest(messages=({"role": "user", "content": "Hi"},),
                                                            max_tokens=8, temperature=0.0)])
        assert completion.completion_tokens > 0
    finally:
        engine.close()


def test_datasets_carry_provenance_and_load_with_datasets(finished_run):
    out, _, _ = finished_run
    import datasets

    prefs = datasets.load_dataset("parquet", data_files=str(out / "datasets" / "prefs.parquet"))["train"]
    sft = datasets.load_dataset("parquet", data_files=str(out / "datasets" / "sft.parquet"))["train"]
    assert {"prompt", "chosen", "rejected", "score_chosen", "score_rejected", "constitution_hash",
            "clause_ids", "engine", "seed"} <= set(prefs.column_names)
    assert "messages" in sft.column_names and len(sft) == len(prefs)
    dpo = datasets.load_dataset("parquet", data_files=str(out / "datasets" / "dpo.parquet"))["train"]
    prompts = {json.loads(line)["uid"]: json.loads(line)["harmful"]
               for line in (out / "prompts.jsonl").read_text().splitlines()}
    harmful = [prompts[p.split("#")[0]] for p in dpo["prompt_id"]]
    assert 0 < harmful.count(True) and harmful.count(False) <= round(1.5 * harmful.count(True))  # --dpo-safe-ratio
