"""Settings: validated on creation, saved and reloaded unchanged, turned into TRL arguments."""

from __future__ import annotations

import pytest

from charter.errors import CharterError
from charter.train.config import DpoSettings, LoraSettings, RewardSettings, SftSettings


def test_defaults_are_cpu_friendly():
    s = SftSettings()
    assert (s.precision, s.lora.r, s.lora.alpha, s.max_length, s.logging_steps) == ("fp32", 8, 16, 512, 1)
    assert s.lora.target_modules == ("all-linear",)
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
    for bad in (-0.5, float("inf"), float("nan")):
        with pytest.raises(CharterError, match="sft_weight"):
            DpoSettings(sft_weight=bad)
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


def _tiny(config_class, **extra):
    from transformers import AutoModelForCausalLM

    config = config_class(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=16, **extra)
    return AutoModelForCausalLM.from_config(config)


@pytest.mark.parametrize("architecture", ["llama", "gemma3"])
def test_lora_targets_are_found_in_each_architecture(architecture):
    """The default targets are every linear layer of the decoder, whatever the architecture calls
    them, and never the output head: for Llama exactly the seven projections."""
    from peft import get_peft_model
    from transformers import Gemma3TextConfig, LlamaConfig

    config_class = {"llama": LlamaConfig, "gemma3": Gemma3TextConfig}[architecture]
    model = get_peft_model(_tiny(config_class), SftSettings().lora.peft_config())
    targeted = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")}
    assert targeted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert not any("lm_head" in name and hasattr(m, "lora_A") for name, m in model.named_modules())
