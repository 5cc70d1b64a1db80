"""Stage folders are all-or-nothing: complete ones are skipped, half-written ones never trusted."""

from __future__ import annotations

import json

import pytest

from charter.errors import CharterError
from charter.train.artifacts import MARKER, TrainResult, last_checkpoint, read_record, run_stage


def never_build(_checkpoints):
    raise AssertionError("the trainer must not be built")


def test_last_checkpoint_ignores_half_written_ones(tmp_path):
    assert last_checkpoint(tmp_path / "none") is None
    for step, complete in ((1, True), (2, True), (3, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")


def test_complete_stage_is_skipped(tmp_path):
    out = tmp_path / "sft"
    out.mkdir()
    (out / "log_history.json").write_text(json.dumps([{"loss": 1.0, "step": 1}]))
    (out / MARKER).write_text(json.dumps({"kind": "sft", "metrics": {"global_step": 1}}))
    result = run_stage(out, {"settings": {"seed": 0}}, never_build)
    assert isinstance(result, TrainResult) and result.skipped and result.log_history[0]["loss"] == 1.0


def test_unfinished_foreign_folder_is_refused(tmp_path):
    out = tmp_path / "sft"
    out.mkdir()
    (out / "adapter_model.safetensors").write_text("half")
    with pytest.raises(CharterError, match="not a finished training folder"):
        run_stage(out, {"settings": {"seed": 0}}, never_build)
    with pytest.raises(CharterError, match="no charter_train.json"):
        read_record(out)
