"""A reward model (TRL RewardTrainer) on the same preference pairs as DPO, for RLHF-style pipelines
or as an automatic judge in evals.

The model is the base (or base + SFT adapter) with a one-output score head, trained as a LoRA
adapter (the head is saved in full beside it). Soft labels: the same orient-and-filter as DPO, then
each pair asks for a reward gap of at least margin_scale * (2p - 1) (TRL's `margin` column), so a
pair the labeller was sure of must be separated more than a pair it barely preferred.
"""

from __future__ import annotations

from pathlib import Path

from charter.train.artifacts import (
    ProgressFn,
    TrainResult,
    adapter_chain,
    make_record,
    read_record,
    resolve_start,
    run_stage,
)
from charter.train.config import RewardSettings
from charter.train.data import DataFile, read_preferences, to_dataset


def train_reward(settings: RewardSettings, pref_files: list[str | Path], out_dir: str | Path,
                 sft_adapter: str | Path | None = None, progress: ProgressFn | None = None,
                 callbacks: list | None = None) -> TrainResult:
    """Train a reward-model adapter into `out_dir` (same resume rules as SFT and DPO)."""
    files = [DataFile(Path(f)) for f in pref_files]
    rows, counts = read_preferences([f.path for f in files], settings.min_margin)
    if settings.margin_scale > 0:
        rows = [{**row, "margin": settings.margin_scale * (2 * row["preference"] - 1)} for row in rows]
    base, parents = resolve_start(settings.base, Path(sft_adapter) if sft_adapter else None)
    record = make_record("reward", settings, base, {"files": [f.describe() for f in files], "pairs": counts},
                         parents)

    def build_trainer(checkpoint_dir: Path):
        from trl import RewardConfig, RewardTrainer

        from charter.train.base_model import load_tokenizer, materialize_base

        folder = materialize_base(base)
        tokenizer = load_tokenizer(folder)
        args = RewardConfig(**settings.trainer_arguments(str(checkpoint_dir)))
        return RewardTrainer(model=reward_backbone(folder, parents, tokenizer), args=args,
                             train_dataset=to_dataset(rows), processing_class=tokenizer,
                             peft_config=settings.lora.peft_config("SEQ_CLS"))

    return run_stage(Path(out_dir), record, build_trainer, progress, callbacks)


def reward_backbone(folder: Path, parents: list[Path], tokenizer):
    """Sequence classifier (one output) whose transformer body is base + merged parent adapters."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from charter.train.base_model import load_causal_lm

    causal = load_causal_lm(folder, parents)
    config = causal.config
    config.num_labels = 1
    config.pad_token_id = tokenizer.pad_token_id
    model = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)
    model.base_model.load_state_dict(causal.base_model.state_dict())
    return model


def load_reward_model(adapter_dir: str | Path):
    """(model, tokenizer) of a trained reward model, ready to score conversations."""
    from peft import PeftModel

    from charter.train.base_model import load_tokenizer, materialize_base

    record = read_record(Path(adapter_dir))
    folder = materialize_base(record["base"]["path"])
    tokenizer = load_tokenizer(folder)
    parents = adapter_chain(Path(adapter_dir))[:-1]
    model = PeftModel.from_pretrained(reward_backbone(folder, parents, tokenizer), str(adapter_dir))
    return model.merge_and_unload().eval(), tokenizer


def reward_scores(model, tokenizer, conversations: list[list[dict]]) -> list[float]:
    """One scalar reward per conversation (a prompt plus the assistant reply to score)."""
    import torch

    scores = []
    with torch.no_grad():
        for messages in conversations:
            ids = tokenizer.apply_chat_template(messages, return_tensors="pt", return_dict=True)
            scores.append(float(model(**ids).logits[0, 0]))
    return scores
