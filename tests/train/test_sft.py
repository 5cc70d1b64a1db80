"""SFT on the embedded model: the loss is logged, the LoRA weights move, a killed run resumes."""

from __future__ import annotations

import json
import math

import pytest

from charter.train import SftSettings, train_sft

from .helpers import lora_tensors

pytestmark = pytest.mark.slow


def test_loss_is_logged_every_step(sft_run):
    result, _ = sft_run
    losses = [entry["loss"] for entry in result.log_history if "loss" in entry]
    assert len(losses) == 3 and all(math.isfinite(loss) and loss > 0 for loss in losses)
    saved = json.loads((result.adapter_dir / "log_history.json").read_text())
    assert saved == result.log_history


def test_lora_weights_moved(sft_run):
    tensors = lora_tensors(sft_run[0].adapter_dir)
    lora_b = [t for name, t in tensors.items() if "lora_B" in name]
    assert lora_b, "no LoRA B matrices saved"
    # PEFT starts every B at zero; training must have changed them.
    assert sum(float(t.abs().sum()) for t in lora_b) > 0
    targets = {name.split(".")[-3] for name in tensors if "lora_A" in name}
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_killed_run_resumed_from_its_last_checkpoint(sft_run):
    result, started_at = sft_run
    assert started_at == 2  # the rerun began at the step-2 checkpoint, not from scratch
    assert result.metrics["global_step"] == 3
    assert not any(p.name.endswith(".work") for p in result.adapter_dir.parent.iterdir())


def test_record_saves_settings_data_mix_and_provenance(sft_run):
    record = sft_run[0].record
    assert record["kind"] == "sft" and SftSettings.from_dict(record["settings"]).max_steps == 3
    groups = {g["group"].rsplit("[", 1)[1]: g["rows_used"] for g in record["data"]["files"]}
    assert groups == {"stage=helpful]": 2, "stage=sl]": 6}  # weights 1:3 of 8 rows
    assert record["base"]["path"].endswith(".gguf") and len(record["base"]["sha256_16"]) == 16
    assert {"torch", "transformers", "trl", "peft"} <= set(record["versions"])


def test_finished_run_is_skipped(sft_run, data_dir):
    result, _ = sft_run
    settings = SftSettings.from_dict(result.record["settings"])
    again = train_sft(settings, [data_dir / "sft.parquet"], result.adapter_dir)
    assert again.skipped and again.log_history == result.log_history
