"""Settings: validated on creation, saved and reloaded unchanged, turned into TRL arguments."""

from __future__ import annotations

import pytest

from charter.errors import CharterError
from charter.train.config import DpoSettings, LoraSettings, RewardSettings, SftSettings


def test_defaults_are_cpu_friendly():
    s = SftSettings()
    assert (s.precision, s.lora.r, s.lora.alpha, s.max_length, s.logging_steps) == ("fp32", 8, 16, 512, 1)
    assert set(s.lora.target_modules) >= {"q_proj", "v_proj", "gate_proj", "down_proj"}
    args = s.trainer_arguments("/tmp/x")
    assert args["bf16"] is False and args["eval_strategy"] == "no" and args["logging_steps"] == 1


@pytest.mark.parametrize("bad", [{"max_steps": 0}, {"precision": "fp8"}, {"batch_size": 0},
                                 {"loss_on": "everything"}, {"mix_by": "stage"}])
def test_sft_settings_refuse_bad_values(bad):
    with pytest.raises(CharterError, match="invalid SftSettings"):
        SftSettings(**bad)


def test_dpo_and_reward_settings_check_their_own_fields():
    with pytest.raises(CharterError, match="min_margin"):
        DpoSettings(min_margin=0.5)
    with pytest.raises(CharterError, match="soft_labels"):
        DpoSettings(soft_labels="fuzzy")
    with pytest.raises(CharterError, match="margin_scale"):
        RewardSettings(margin_scale=-1)


def test_settings_round_trip_through_a_dict():
    s = DpoSettings(max_steps=5, beta=0.2, lora=LoraSettings(r=4, target_modules=("q_proj",)))
    assert DpoSettings.from_dict(s.to_dict()) == s
    with pytest.raises(CharterError, match="unknown DpoSettings field"):
        DpoSettings.from_dict({"betta": 0.1})


def test_overrides_ignore_unset_values():
    s = SftSettings().with_overrides(max_steps=7, learning_rate=None)
    assert s.max_steps == 7 and s.learning_rate == SftSettings().learning_rate
