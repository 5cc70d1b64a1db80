"""Training and export: LoRA SFT, DPO and reward models with TRL + PEFT; merge; GGUF.

    from charter.train import SftSettings, DpoSettings, train_sft, train_dpo, export

    sft = train_sft(SftSettings(max_steps=60), ["run/export/sft.parquet"], "run/train/sft")
    dpo = train_dpo(DpoSettings(max_steps=60), ["run/export/prefs.parquet"], "run/train/dpo",
                    sft_adapter=sft.adapter_dir)
    hf_dir, gguf_path = export(None, [dpo.adapter_dir], "run/model")

Importing this package is cheap: torch, transformers and TRL load when a function runs.
See docs/training.md.
"""

from charter.train.artifacts import TrainResult
from charter.train.config import (
           DpoSettings,
           LoraSettings,
           RewardSettings,
           SftSettings,
           TrainSettings,
)
from charter.train.data import DataFile
from charter.train.dpo import train_dpo
from charter.train.export import ExportResult, export
from charter.train.reward import load_reward_model, reward_scores, train_reward
from charter.train.sft import train_sft

__all__ = ["DataFile", "DpoSettings", "ExportResult", "LoraSettings", "RewardSettings", "SftSettings",
           "TrainResult", "TrainSettings", "export", "load_reward_model", "reward_scores", "train_dpo",
           "train_reward", "train_sft"]
