"""DPO on top of the SFT adapter, on soft-labelled pairs with provenance columns."""

from __future__ import annotations

import math

import pytest

from .helpers import lora_tensors

pytestmark = pytest.mark.slow


def test_loss_and_reward_margins_are_logged(dpo_run):
    steps = [entry for entry in dpo_run.log_history if "loss" in entry]
    assert len(steps) == 2
    assert all(math.isfinite(e["loss"]) and "rewards/margins" in e for e in steps)
    # Step 1: the new adapter is zero, so policy == reference and every log-ratio is 0: loss = log 2.
    assert steps[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)


def test_lora_weights_moved(dpo_run):
    lora_b = [t for name, t in lora_tensors(dpo_run.adapter_dir).items() if "lora_B" in name]
    assert lora_b and sum(float(t.abs().sum()) for t in lora_b) > 0


def test_soft_labels_filtered_swapped_and_set_the_label_noise(dpo_run):
    data = dpo_run.record["data"]
    # conftest PAIRS: one coin flip (0.52) dropped, one contradicted pair (0.25) swapped.
    assert data["pairs"] == {"rows_in": 5, "kept": 4, "dropped_uncertain": 1, "swapped": 1}
    # kept preferences 0.9, 0.8, 0.75 (swapped), 0.7 -> mean doubt 0.2125, used as rDPO's epsilon
    assert data["label_noise"] == pytest.approx(0.2125)


def test_trained_on_top_of_the_sft_adapter(dpo_run, sft_run):
    assert dpo_run.record["parents"] == [str(sft_run[0].adapter_dir.resolve())]
    same = ("path", "sha256_16")
    assert [dpo_run.record["base"][k] for k in same] == [sft_run[0].record["base"][k] for k in same]


def test_the_sft_term_adds_the_chosen_answers_nll(tmp_path, data_dir, sft_run):
    """RPO: with `sft_weight` the first step's loss is DPO's log 2 (policy == reference, hard labels)
    plus the weight times the chosen answers' mean negative log-likelihood per token (several nats
    for this small model on these answers; TRL does not log the term apart)."""
    from charter.train import DpoSettings, train_dpo

    settings = DpoSettings(max_steps=1, batch_size=2, max_length=96, learning_rate=1e-3, sft_weight=0.5,
                           soft_labels="hard")
    result = train_dpo(settings, [data_dir / "prefs.parquet"], tmp_path / "rpo", sft_adapter=sft_run[0].adapter_dir)
    step = next(entry for entry in result.log_history if "loss" in entry)
    assert result.record["settings"]["sft_weight"] == 0.5
    assert step["loss"] > math.log(2) + 0.5 * 1.0
    assert step["rewards/margins"] == pytest.approx(0.0, abs=1e-4)  # the DPO part is still at its start
