"""Supervised fine-tuning (SL-CAI): a LoRA adapter trained with TRL's SFTTrainer on chat rows.

Input: dataset files of `{"messages": [...]}` rows (SL-CAI revisions, helpful answers, character
introspection...), optionally weighted (`sl.parquet:0.7 helpful.parquet:0.3`). By default the loss
covers only the final assistant reply (rows become TRL prompt/completion pairs), so the model
learns the revised answers rather than to reproduce user prompts.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from charter.train.artifacts import ProgressFn, TrainResult, make_record, run_stage
from charter.train.config import SftSettings
from charter.train.data import DataFile, mix, sft_row, to_dataset


def train_sft(settings: SftSettings, datasets: list[DataFile | str | Path], out_dir: str | Path,
              progress: ProgressFn | None = None, callbacks: list | None = None) -> TrainResult:
    """Train a LoRA adapter into `out_dir` (skipped if already complete; resumes a killed run)."""
    files = [d if isinstance(d, DataFile) else DataFile.parse(d) for d in datasets]
    convert = partial(_checked_sft_row, loss_on=settings.loss_on)
    rows, report = mix(files, settings.mix_total, settings.seed, settings.mix_by, settings.mix_weights, convert)
    base = settings.base or "embedded"
    record = make_record("sft", settings, base, {"files": report, "rows": len(rows)})

    def build_trainer(checkpoint_dir: Path):
        from trl import SFTConfig, SFTTrainer

        from charter.train.base_model import causal_lm_trainer_inputs

        args = SFTConfig(**settings.trainer_arguments(str(checkpoint_dir)), packing=False)
        return SFTTrainer(args=args, train_dataset=to_dataset(rows), **causal_lm_trainer_inputs(base, settings))

    return run_stage(Path(out_dir), record, build_trainer, progress, callbacks)


def _checked_sft_row(row: dict, where: str, loss_on: str) -> dict:
    return sft_row(row, loss_on, where)
