"""One training stage as a resumable, all-or-nothing folder.

    OUT/                      finished: adapter, tokenizer, log_history.json, charter_train.json
    .OUT.work/checkpoints/    while training: TRL checkpoints (a killed run resumes from the last)
    .OUT.work/final/          the finished folder being written; renamed to OUT when complete

`charter_train.json` is written last, so a folder that has it is complete; a rerun finds it and
skips the stage. A work folder whose settings differ from the current ones is discarded rather
than resumed, and a checkpoint without `trainer_state.json` (written last by the Trainer) is a
half-written one and is ignored.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charter.errors import CharterError
from charter.rows import write_json_atomic

MARKER = "charter_train.json"
LOG_HISTORY = "log_history.json"
ProgressFn = Callable[[int, int, dict], None]  # (step, total_steps, latest logs)


@dataclass
class TrainResult:
    adapter_dir: Path
    log_history: list[dict]
    metrics: dict[str, Any]
    record: dict[str, Any] = field(default_factory=dict)  # the charter_train.json contents
    skipped: bool = False  # True when the folder was already complete and nothing ran

    @classmethod
    def load(cls, folder: Path, skipped: bool = True) -> TrainResult:
        record = json.loads((folder / MARKER).read_text())
        history = json.loads((folder / LOG_HISTORY).read_text())
        return cls(folder, history, record.get("metrics", {}), record, skipped)


def is_complete(folder: Path) -> bool:
    return (Path(folder) / MARKER).is_file()


def read_record(adapter_dir: Path) -> dict:
    """charter_train.json of a finished stage, or a CharterError naming the folder."""
    marker = Path(adapter_dir) / MARKER
    if not marker.is_file():
        raise CharterError(f"{adapter_dir} is not a finished charter training folder (no {MARKER}); "
                           f"pass the --out folder of a completed `charter train` run")
    return json.loads(marker.read_text())


def run_stage(out_dir: Path, record: dict, build_trainer: Callable[[Path], Any],
              progress: ProgressFn | None = None, callbacks: list | None = None) -> TrainResult:
    """Train unless `out_dir` is complete; `build_trainer(checkpoint_dir)` returns a TRL trainer.

    `record` (settings, data, base, ...) is what identifies the run: it decides whether leftover
    checkpoints may be resumed, and is saved as charter_train.json with the metrics added.
    """
    out_dir = Path(out_dir)
    if is_complete(out_dir):
        return TrainResult.load(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise CharterError(f"{out_dir} exists but is not a finished training folder; remove it or pass "
                           f"another --out")
    work = out_dir.parent / f".{out_dir.name}.work"
    if is_main_process():
        _reset_if_settings_changed(work, record)
    from transformers import set_seed

    set_seed(record["settings"]["seed"])  # LoRA and score-head initialisation happen before the Trainer seeds
    threads = _set_torch_threads()
    trainer = build_trainer(work / "checkpoints")
    _attach_callbacks(trainer, progress, callbacks or [])
    output = trainer.train(resume_from_checkpoint=last_checkpoint(work / "checkpoints"))
    final = work / "final"
    if is_main_process():
        shutil.rmtree(final, ignore_errors=True)  # left by a run killed while publishing
    trainer.save_model(str(final))  # every process: sharded (FSDP, DeepSpeed) models gather here
    metrics = {**output.metrics, "global_step": trainer.state.global_step, "torch_threads": threads}
    if trainer.is_world_process_zero():
        _publish(final, out_dir, work, {**record, "metrics": metrics}, list(trainer.state.log_history))
    trainer.accelerator.wait_for_everyone()
    return TrainResult.load(out_dir, skipped=False)


def _publish(final: Path, out_dir: Path, work: Path, record: dict, history: list[dict]) -> None:
    write_json_atomic(final / LOG_HISTORY, history)
    write_json_atomic(final / MARKER, record)  # last: marks the folder complete
    if out_dir.exists():
        out_dir.rmdir()  # empty, checked before training
    os.replace(final, out_dir)
    shutil.rmtree(work, ignore_errors=True)


def _set_torch_threads() -> int:
    """torch's CPU threads for training: $CHARTER_TORCH_THREADS if set, else torch's default.

    torch defaults to the physical cores, so on a VM whose 2 vCPUs are one hyperthreaded core it
    trains on 1 thread while llama.cpp uses 2; whether 2 is faster there depends on the CPU (not
    measured here: this project's AMD machines report one thread per core). `charter doctor` shows
    both numbers."""
    import torch

    wanted = os.environ.get("CHARTER_TORCH_THREADS")
    if wanted:
        try:
            torch.set_num_threads(max(1, int(wanted)))
        except ValueError as exc:
            raise CharterError(f"CHARTER_TORCH_THREADS must be a whole number, got {wanted!r}") from exc
    return torch.get_num_threads()


def is_main_process() -> bool:
    """False in the extra processes of a multi-GPU `accelerate launch` (they must not move files)."""
    return os.environ.get("RANK", "0") == "0"


def _reset_if_settings_changed(work: Path, record: dict) -> None:
    identity = work / "run.json"
    wanted = json.dumps(record, sort_keys=True, default=str)
    if identity.is_file() and identity.read_text() != wanted:
        shutil.rmtree(work)  # checkpoints of a different run must not be resumed
    work.mkdir(parents=True, exist_ok=True)
    if not identity.is_file():
        identity.write_text(wanted)


def last_checkpoint(folder: Path) -> str | None:
    """The newest complete checkpoint-N folder, or None to start from scratch."""
    if not folder.is_dir():
        return None
    complete = [p for p in folder.glob("checkpoint-*")
                if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    if not complete:
        return None
    return str(max(complete, key=lambda p: int(p.name.split("-")[-1])))


def _attach_callbacks(trainer, progress: ProgressFn | None, callbacks: list) -> None:
    from transformers import PrinterCallback, TrainerCallback

    trainer.remove_callback(PrinterCallback)  # it prints every log dict; the progress bar replaces it

    class _Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if progress is not None and state.is_world_process_zero:
                progress(state.global_step, state.max_steps, dict(logs or {}))

    trainer.add_callback(_Progress())
    for callback in callbacks:
        trainer.add_callback(callback)


def make_record(kind: str, settings, base_spec: str, data: dict, parents: list[Path] = ()) -> dict:
    """What identifies a training run: kind, resolved settings, base model, data and parent adapters."""
    import peft
    import torch
    import transformers
    import trl

    from charter.engines.common import file_fingerprint
    from charter.train.base_model import resolve_base

    source = resolve_base(base_spec)
    return {
        "kind": kind,
        "settings": settings.to_dict(),
        "base": {"spec": str(base_spec), "path": str(source.resolve()), "sha256_16": file_fingerprint(source)},
        "parents": [str(Path(p).resolve()) for p in parents],
        "data": data,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "trl": trl.__version__, "peft": peft.__version__},
    }


def adapter_chain(adapter_dir: Path) -> list[Path]:
    """The adapters to merge, in order, to rebuild the model `adapter_dir` was trained into."""
    record = read_record(adapter_dir)
    chain = [Path(p) for p in record.get("parents", [])]
    for parent in chain:
        if not is_complete(parent):
            raise CharterError(f"adapter {adapter_dir} was trained on top of {parent}, which is missing; "
                               f"pass every adapter explicitly, in order: --adapter SFT_DIR --adapter {adapter_dir}")
    return [*chain, Path(adapter_dir)]


def resolve_start(base: str | None, start_adapter: Path | None) -> tuple[str, list[Path]]:
    """(base spec, adapters to merge first) for a stage that may continue from an earlier adapter.

    Continuing from an adapter means training on its own base: a different explicit --base would
    put the adapter's weights on a model they were not trained for, so that is refused.
    """
    if start_adapter is None:
        return base or "embedded", []
    record = read_record(start_adapter)
    if base is not None:
        from charter.engines.common import file_fingerprint
        from charter.train.base_model import resolve_base

        if file_fingerprint(resolve_base(base)) != record["base"]["sha256_16"]:
            raise CharterError(f"adapter {start_adapter} was trained on {record['base']['path']}, not on "
                               f"'{base}'; drop --base to use the adapter's own base")
    return record["base"]["path"], adapter_chain(start_adapter)
