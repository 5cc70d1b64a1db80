"""Counts must be counts: `--limit 0` or `-1` is refused up front (it used to write nothing and
exit 0, or quietly drop one prompt), in `charter run`, `generate` and `eval` alike."""

from __future__ import annotations

import subprocess

import pytest

from charter.errors import CharterError
from charter.pipeline import PipelineConfig
from tests.pipeline.test_run_end_to_end import charter_command


@pytest.mark.parametrize("args", [
    ["run", "--limit", "0"], ["run", "--limit", "-1"], ["generate", "sl", "--limit", "0"],
    ["generate", "distill", "--limit", "-1"], ["eval", "--limit", "0"],
])
def test_a_count_below_one_is_refused(args, tmp_path):
    done = subprocess.run(charter_command(*args, "--out", str(tmp_path / "out")), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "--limit" in done.stdout + done.stderr
    assert not (tmp_path / "out").exists()


def test_the_pipeline_settings_refuse_it_too(tmp_path):
    with pytest.raises(CharterError, match="--eval-limit must be >= 1"):
        PipelineConfig(constitution=tmp_path / "c.yaml", eval_limit=0)


def test_recipe_knobs_are_checked_up_front(tmp_path):
    with pytest.raises(CharterError, match="--dpo-sft-weight must be >= 0"):
        PipelineConfig(constitution=tmp_path / "c.yaml", dpo_sft_weight=-0.5)
    with pytest.raises(CharterError, match="unknown --needless-refusals 'polite'; choose fixed, matched"):
        PipelineConfig(constitution=tmp_path / "c.yaml", needless_refusals="polite")


def test_a_bad_recipe_knob_on_the_command_line_is_one_line_and_writes_nothing(tmp_path):
    done = subprocess.run(charter_command("run", "--needless-refusals", "polite", "--out", str(tmp_path / "out")),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "needless-refusals" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()
