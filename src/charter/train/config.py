"""Typed settings for charter's trainers, with CPU-friendly defaults for the embedded 135M model.

Every field is documented where it is declared. The resolved settings are written beside every
artifact (`charter_train.json`), so a trained adapter says exactly how it was made. The same
settings drive a GPU run: only `precision` (and perhaps `batch_size`, `gradient_checkpointing`)
need changing; accelerate decides the device.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from charter.errors import CharterError

# PEFT's shorthand for every linear layer but the output head, found in the model itself: the
# attention and MLP projections of any architecture (for Llama exactly q/k/v/o/gate/up/down_proj).
ALL_LINEAR = "all-linear"
PRECISIONS = ("fp32", "bf16", "fp16")
SOFT_LABEL_MODES = ("robust", "hard")
SFT_LOSS_ON = ("last_assistant", "all")


@dataclass(frozen=True)
class LoraSettings:
    r: int = 8  # rank of the low-rank update
    alpha: int = 16  # scaling numerator: the update is scaled by alpha / r
    dropout: float = 0.05  # dropout on the adapter input during training
    target_modules: tuple[str, ...] = (ALL_LINEAR,)  # module names, or every linear layer but the head

    def peft_config(self, task_type: str = "CAUSAL_LM"):
        from peft import LoraConfig

        targets = ALL_LINEAR if self.target_modules == (ALL_LINEAR,) else list(self.target_modules)
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=targets, bias="none", task_type=task_type)


@dataclass(frozen=True)
class TrainSettings:
    """Settings every trainer shares."""

    base: str | None = None  # "embedded", a .gguf file or a transformers folder; None: the starting
    # adapter's base when training on top of one, else the embedded model
    max_steps: int | None = 60  # optimizer steps; None trains for `epochs` instead
    epochs: float = 1.0  # passes over the data when max_steps is None
    learning_rate: float = 2e-4
    batch_size: int = 4  # examples (SFT) or pairs (DPO, reward) per device per step
    grad_accum: int = 1  # micro-batches accumulated per optimizer step
    max_length: int = 512  # tokens per sequence (prompt + response); longer ones are truncated
    warmup: float = 0.0  # warmup steps; a float in [0, 1) is a fraction of all steps
    lr_scheduler: str = "linear"
    seed: int = 0  # data shuffling, LoRA initialisation and dropout
    logging_steps: int = 1  # log every step: the training curve is saved as log_history.json
    save_steps: int = 25  # checkpoint every N steps so a killed run resumes there
    precision: str = "fp32"  # "fp32" on CPU; "bf16" on recent GPUs
    gradient_checkpointing: bool = False  # saves memory on GPUs, costs ~20% time; off on CPU
    padding_free: bool = True  # run each padded batch as one packed row (train/unpadded.py): the same
    # computation without the padding tokens (4 steps of the default run: SFT 1.21x, DPO 1.54x faster)
    share_prefixes: bool = True  # with padding_free: a prefix several rows share (a DPO pair's prompt, the
    # chat header) is computed once; off, each row draws its own LoRA dropout there, as padded training does
    lora: LoraSettings = field(default_factory=LoraSettings)

    def __post_init__(self):
        problems = []
        if self.max_steps is not None and self.max_steps < 1:
            problems.append(f"max_steps must be >= 1 or None, got {self.max_steps}")
        for name in ("batch_size", "grad_accum", "max_length", "save_steps", "logging_steps"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate must be > 0, got {self.learning_rate}")
        problems.extend(self._extra_problems())
        if problems:
            raise CharterError(f"invalid {type(self).__name__}: {'; '.join(problems)}")

    def _extra_problems(self) -> list[str]:
        return []

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["lora"]["target_modules"] = list(self.lora.target_modules)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CharterError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
        data = dict(data)
        if isinstance(data.get("lora"), dict):
            lora = dict(data["lora"])
            lora["target_modules"] = tuple(lora.get("target_modules", (ALL_LINEAR,)))
            data["lora"] = LoraSettings(**lora)
        return cls(**data)

    def with_overrides(self, **overrides):
        """A copy with the given fields replaced; None values are ignored (unset CLI options)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def trainer_arguments(self, output_dir: str) -> dict[str, Any]:
        """Keyword arguments shared by TRL's SFTConfig, DPOConfig and RewardConfig."""
        return dict(
            output_dir=output_dir,
            max_steps=self.max_steps if self.max_steps is not None else -1,
            num_train_epochs=self.epochs,
            learning_rate=self.learning_rate,
            per_device_train_batch_size=self.batch_size,
            gradient_accumulation_steps=self.grad_accum,
            max_length=self.max_length,
            warmup_steps=self.warmup,
            lr_scheduler_type=self.lr_scheduler,
            seed=self.seed,
            data_seed=self.seed,
            logging_steps=self.logging_steps,
            logging_first_step=True,
            save_strategy="steps",
            save_steps=self.save_steps,
            save_total_limit=2,
            eval_strategy="no",
            report_to="none",
            disable_tqdm=True,  # charter shows its own progress bar
            bf16=self.precision == "bf16",
            fp16=self.precision == "fp16",
            dataloader_num_workers=0,
            dataloader_pin_memory=_has_gpu(),
            **_checkpointing_argument(self.gradient_checkpointing),
        )


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def _checkpointing_argument(enabled: bool) -> dict[str, bool]:
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing (old name warns).
    from transformers import TrainingArguments

    if "activation_checkpointing" in TrainingArguments.__dataclass_fields__:
        return {"activation_checkpointing": enabled}
    return {"gradient_checkpointing": enabled}


@dataclass(frozen=True)
class SftSettings(TrainSettings):
    """Supervised fine-tuning on chat rows ({"messages": [...]})."""

    loss_on: str = "last_assistant"  # "last_assistant": learn only the final reply; "all": every token
    mix_by: str | None = None  # column whose values are mixed by weight, e.g. "stage"; None: by file
    mix_weights: dict[str, float] | None = None  # with mix_by: {value: weight}, e.g. {"sl": 3, "helpful": 1}
    mix_total: int | None = None  # rows in the weighted mixture; None: as many as the inputs hold

    def _extra_problems(self) -> list[str]:
        problems = []
        if self.loss_on not in SFT_LOSS_ON:
            problems.append(f"loss_on must be one of {', '.join(SFT_LOSS_ON)}, got '{self.loss_on}'")
        if (self.mix_by is None) != (self.mix_weights is None):
            problems.append("mix_by and mix_weights go together: name the column and a weight per value")
        return problems


@dataclass(frozen=True)
class DpoSettings(TrainSettings):
    """Direct preference optimisation on soft-labelled pairs (see docs/training.md)."""

    learning_rate: float = 5e-5
    beta: float = 0.1  # strength of the pull towards the reference model
    min_margin: float = 0.1  # drop pairs whose preference p is within this of 0.5 (coin flips)
    soft_labels: str = "robust"  # "robust": rDPO with label noise = mean(1 - p); "hard": plain DPO
    max_label_noise: float = 0.4  # cap on the estimated label noise (rDPO divides by 1 - 2 * noise)
    # Weight of a negative log-likelihood term on the chosen answers beside the preference loss
    # (RPO; TRL's loss_type "sft"): keeps the chosen answers likely instead of only more likely than
    # the rejected ones. 0 turns it off.
    sft_weight: float = 0.0

    def _extra_problems(self) -> list[str]:
        problems = []
        if not 0.0 <= self.min_margin < 0.5:
            problems.append(f"min_margin must be in [0, 0.5), got {self.min_margin}")
        if self.soft_labels not in SOFT_LABEL_MODES:
            problems.append(f"soft_labels must be one of {', '.join(SOFT_LABEL_MODES)}, got '{self.soft_labels}'")
        if not 0.0 <= self.max_label_noise < 0.5:
            problems.append(f"max_label_noise must be in [0, 0.5), got {self.max_label_noise}")
        if self.beta <= 0:
            problems.append(f"beta must be > 0, got {self.beta}")
        if not 0.0 <= self.sft_weight < float("inf"):
            problems.append(f"sft_weight must be a finite number >= 0, got {self.sft_weight}")
        return problems


@dataclass(frozen=True)
class RewardSettings(TrainSettings):
    """A Bradley-Terry reward model (sequence classifier) on the same preference pairs."""

    learning_rate: float = 1e-4
    min_margin: float = 0.1  # same pair filter as DPO
    margin_scale: float = 1.0  # required reward gap = margin_scale * (2p - 1); 0 turns it off

    def _extra_problems(self) -> list[str]:
        problems = []
        if not 0.0 <= self.min_margin < 0.5:
            problems.append(f"min_margin must be in [0, 0.5), got {self.min_margin}")
        if self.margin_scale < 0:
            problems.append(f"margin_scale must be >= 0, got {self.margin_scale}")
        return problems
