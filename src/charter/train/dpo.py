"""Preference training (RL-CAI without the RL): a LoRA adapter trained with TRL's DPOTrainer.

Soft labels (see docs/training.md, "Soft labels"): each pair's preference p comes from its
scores; pairs within `min_margin` of a coin flip are dropped, pairs the scores contradict are
swapped, and with `soft_labels="robust"` the remaining uncertainty, mean(1 - p), is the label-noise
rate of robust DPO (rDPO, TRL's `loss_type="robust"`), which de-biases the loss for flipped labels.

Continuing from an SFT adapter merges it into the base first; that merged model is both the
starting policy and the frozen reference (the new adapter, disabled, gives the reference).

The LM head computes logits only where TRL reads them, at the positions that predict a completion
token (train/completion_logits.py): the trainer below sets those positions around each loss.
"""

from __future__ import annotations

from pathlib import Path

from charter.train.artifacts import ProgressFn, TrainResult, make_record, resolve_start, run_stage
from charter.train.config import DpoSettings
from charter.train.data import DataFile, label_noise, read_preferences, to_dataset


def train_dpo(settings: DpoSettings, pref_files: list[str | Path], out_dir: str | Path,
              sft_adapter: str | Path | None = None, progress: ProgressFn | None = None,
              callbacks: list | None = None) -> TrainResult:
    """Train a DPO LoRA adapter into `out_dir`, on the base or on base + `sft_adapter`."""
    files = [DataFile(Path(f)) for f in pref_files]
    rows, counts = read_preferences([f.path for f in files], settings.min_margin)
    noise = label_noise(rows, settings.max_label_noise) if settings.soft_labels == "robust" else 0.0
    base, parents = resolve_start(settings.base, Path(sft_adapter) if sft_adapter else None)
    data = {"files": [f.describe() for f in files], "pairs": counts, "label_noise": noise}
    record = make_record("dpo", settings, base, data, parents)

    def build_trainer(checkpoint_dir: Path):
        from trl import DPOConfig

        from charter.train.base_model import causal_lm_trainer_inputs
        from charter.train.completion_logits import enable_completion_logits

        args = DPOConfig(**settings.trainer_arguments(str(checkpoint_dir)), beta=settings.beta,
                         **dpo_loss(noise, settings.sft_weight))
        inputs = causal_lm_trainer_inputs(base, settings, parents)
        enable_completion_logits(inputs["model"])
        return completion_logits_trainer()(args=args, train_dataset=to_dataset(rows), **inputs)

    return run_stage(Path(out_dir), record, build_trainer, progress, callbacks)


def completion_logits_trainer():
    """TRL's DPOTrainer, its loss computed with the head and the log-softmax limited to completion
    positions (train/completion_logits.py)."""
    import trl.trainer.dpo_trainer as trl_dpo

    from charter.train.completion_logits import completion_logits_for, masked_rows_in

    class CompletionLogitsDPOTrainer(trl_dpo.DPOTrainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            if "completion_mask" not in inputs:
                return super().compute_loss(model, inputs, *args, **kwargs)
            with completion_logits_for(inputs["completion_mask"]), masked_rows_in(trl_dpo):
                return super().compute_loss(model, inputs, *args, **kwargs)

    return CompletionLogitsDPOTrainer


def dpo_loss(noise: float, sft_weight: float = 0.0) -> dict:
    """DPOConfig loss arguments: plain sigmoid DPO for clean labels, rDPO for noisy ones; with
    `sft_weight` > 0 the chosen answers' negative log-likelihood is added with that weight (RPO)."""
    arguments = {"loss_type": ["sigmoid"]} if noise <= 0.0 else {"loss_type": ["robust"], "label_smoothing": noise}
    if sft_weight > 0.0:
        arguments["loss_type"].append("sft")
        arguments["loss_weights"] = [1.0, sft_weight]
    return arguments
