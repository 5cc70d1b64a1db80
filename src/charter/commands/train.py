"""`charter train sft|dpo|reward` and `charter export`: LoRA training on charter data, then merge + GGUF.

Each training command writes one adapter folder (--out); rerunning a finished command skips it, and
rerunning a killed one resumes from its last checkpoint. Settings come from the defaults in
charter.train.config, then an optional --config JSON/YAML file, then the flags given.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from charter.errors import CharterError

console = Console()
train_app = typer.Typer(help="Fine-tune a LoRA adapter on charter data: sft, dpo or reward.",
                        no_args_is_help=True)

_DATA = typer.Option(..., "--data", "-d", help="Dataset file (.parquet/.jsonl/.json); repeat for several")
_OUT = typer.Option(..., "--out", "-o", help="Adapter folder to write (skipped if already complete)")
_BASE = typer.Option(None, "--base", help="Base model: embedded (default), FILE.gguf or a transformers folder")
_CONFIG = typer.Option(None, "--config", help="JSON/YAML file of settings (fields of charter.train.config)")
_MAX_STEPS = typer.Option(None, "--max-steps", help="Optimizer steps (default 60)")
_EPOCHS = typer.Option(None, "--epochs", help="Train for this many passes over the data instead of --max-steps")
_BATCH = typer.Option(None, "--batch-size", help="Examples (or pairs) per step")
_LR = typer.Option(None, "--lr", help="Learning rate")
_MAX_LENGTH = typer.Option(None, "--max-length", help="Tokens per sequence")
_SEED = typer.Option(None, "--seed", help="Seed for shuffling and initialisation")
_SAVE_STEPS = typer.Option(None, "--save-steps", help="Checkpoint every N steps (resume point)")
_PRECISION = typer.Option(None, "--precision", help="fp32 (CPU) | bf16 | fp16")
_SFT = typer.Option(None, "--sft", help="Continue from this SFT adapter folder (merged first)")
_MIN_MARGIN = typer.Option(None, "--min-margin", help="Drop pairs whose preference is within this of 0.5")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")
    app.command("export")(export_command)


@train_app.command("sft")
def sft_command(data: list[str] = _DATA, out: Path = _OUT, base: str | None = _BASE,
                config: Path | None = _CONFIG, max_steps: int | None = _MAX_STEPS,
                epochs: float | None = _EPOCHS, batch_size: int | None = _BATCH,
                lr: float | None = _LR, max_length: int | None = _MAX_LENGTH,
                seed: int | None = _SEED, save_steps: int | None = _SAVE_STEPS,
                precision: str | None = _PRECISION,
                loss_on: str | None = typer.Option(None, "--loss-on", help="last_assistant | all"),
                mix_by: str | None = typer.Option(None, "--mix-by", help="Column to mix by, e.g. stage"),
                mix: list[str] | None = typer.Option(None, "--mix", help="VALUE=WEIGHT for --mix-by; repeat"),
                mix_total: int | None = typer.Option(None, "--mix-total", help="Rows in the mixture")) -> None:
    """Supervised fine-tuning on {"messages": [...]} rows; FILE:WEIGHT mixes files by weight."""
    from charter.train.config import SftSettings
    from charter.train.sft import train_sft

    settings = _settings(SftSettings, config, base=base, max_steps=max_steps, epochs=epochs,
                         batch_size=batch_size, learning_rate=lr, max_length=max_length, seed=seed,
                         save_steps=save_steps, precision=precision, loss_on=loss_on, mix_by=mix_by,
                         mix_weights=_weights(mix), mix_total=mix_total)
    result = _with_progress("sft", lambda progress: train_sft(settings, data, out, progress=progress))
    _summary("sft", result, settings)


@train_app.command("dpo")
def dpo_command(data: list[str] = _DATA, out: Path = _OUT, sft: Path | None = _SFT,
                base: str | None = _BASE, config: Path | None = _CONFIG,
                max_steps: int | None = _MAX_STEPS, epochs: float | None = _EPOCHS,
                batch_size: int | None = _BATCH, lr: float | None = _LR,
                max_length: int | None = _MAX_LENGTH, seed: int | None = _SEED,
                save_steps: int | None = _SAVE_STEPS, precision: str | None = _PRECISION,
                beta: float | None = typer.Option(None, "--beta", help="Pull towards the reference"),
                min_margin: float | None = _MIN_MARGIN,
                soft_labels: str | None = typer.Option(None, "--soft-labels", help="robust | hard"),
                sft_weight: float | None = typer.Option(None, "--sft-weight", help="Weight of the chosen answers' "
                                                        "negative log-likelihood beside the DPO loss (RPO; 0: off)")
                ) -> None:
    """Direct preference optimisation on prompt/chosen/rejected rows with soft labels."""
    from charter.train.config import DpoSettings
    from charter.train.dpo import train_dpo

    settings = _settings(DpoSettings, config, base=base, max_steps=max_steps, epochs=epochs,
                         batch_size=batch_size, learning_rate=lr, max_length=max_length, seed=seed,
                         save_steps=save_steps, precision=precision, beta=beta, min_margin=min_margin,
                         soft_labels=soft_labels, sft_weight=sft_weight)
    result = _with_progress("dpo", lambda progress: train_dpo(settings, data, out, sft, progress=progress))
    _summary("dpo", result, settings)


@train_app.command("reward")
def reward_command(data: list[str] = _DATA, out: Path = _OUT, sft: Path | None = _SFT,
                   base: str | None = _BASE, config: Path | None = _CONFIG,
                   max_steps: int | None = _MAX_STEPS, epochs: float | None = _EPOCHS,
                   batch_size: int | None = _BATCH, lr: float | None = _LR,
                   max_length: int | None = _MAX_LENGTH, seed: int | None = _SEED,
                   save_steps: int | None = _SAVE_STEPS, precision: str | None = _PRECISION,
                   min_margin: float | None = _MIN_MARGIN,
                   margin_scale: float | None = typer.Option(None, "--margin-scale",
                                                                help="Reward gap asked of a sure pair")) -> None:
    """A reward model (sequence classifier + LoRA) on the same preference rows."""
    from charter.train.config import RewardSettings
    from charter.train.reward import train_reward

    settings = _settings(RewardSettings, config, base=base, max_steps=max_steps, epochs=epochs,
                         batch_size=batch_size, learning_rate=lr, max_length=max_length, seed=seed,
                         save_steps=save_steps, precision=precision, min_margin=min_margin,
                         margin_scale=margin_scale)
    result = _with_progress("reward", lambda progress: train_reward(settings, data, out, sft, progress=progress))
    _summary("reward", result, settings)


def export_command(adapter: list[Path] = typer.Option(..., "--adapter", "-a",
                                                      help="Adapter folder; repeat to merge several in order"),
                   out: Path = typer.Option(..., "--out", "-o", help="Export folder (hf/ and model.TYPE.gguf)"),
                   gguf: bool = typer.Option(True, "--gguf/--no-gguf", help="Also write a GGUF file"),
                   gguf_type: str = typer.Option("f16", "--gguf-type", help="f32 | f16 | q8_0"),
                   base: str | None = typer.Option(None, "--base", help="Base model (default: the adapter's)"),
                   tokenizer_gguf: Path | None = typer.Option(None, "--tokenizer-gguf",
                                                                 help="GGUF to copy the tokenizer from"),
                   push_to_hub: str | None = typer.Option(None, "--push-to-hub",
                                                          help="Also upload the export to this Hub repo (OWNER/NAME)"),
                   private: bool = typer.Option(False, "--private", help="With --push-to-hub: a private repo")) -> None:
    """Merge trained adapters into their base; save a transformers folder and a GGUF for llama.cpp/Ollama."""
    from charter.train.export import export

    with console.status("merging adapters and writing the model..."):
        result = export(base, adapter, out, gguf=gguf, gguf_type=gguf_type, tokenizer_gguf=tokenizer_gguf)
    table = Table(title=f"export {'(already complete, skipped)' if result.skipped else ''}")
    table.add_column("item")
    table.add_column("value", overflow="fold")
    table.add_row("adapters (merge order)", "\n".join(result.record["adapters"]))
    table.add_row("transformers folder", str(result.hf_dir))
    table.add_row("GGUF", str(result.gguf_path) if result.gguf_path else "-")
    console.print(table)
    modelfile = result.hf_dir.parent / "Modelfile"
    if result.gguf_path:
        ollama = f"ollama create my-model -f {modelfile.resolve()}" if modelfile.is_file() else \
            f"FROM {result.gguf_path.resolve()}"
        console.print(f"Try it: [bold]charter ... --engine llamacpp:{result.gguf_path}[/]  or in Ollama: {ollama}")
    if push_to_hub:
        from charter.hub import push_folder

        with console.status(f"uploading {out} to {push_to_hub} ..."):
            url = push_folder(out, push_to_hub, private=private)
        console.print(f"[bold green]Pushed:[/] {url}")


def _settings(cls, config: Path | None, **overrides):
    settings = cls.from_dict(_read_config(config)) if config else cls()
    if overrides.get("epochs") is not None and overrides.get("max_steps") is None:
        settings = dataclasses.replace(settings, max_steps=None)  # --epochs alone means: train by epochs
    return settings.with_overrides(**overrides)


def _read_config(path: Path) -> dict:
    if not path.is_file():
        raise CharterError(f"settings file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise CharterError(f"settings file {path} must hold a mapping of field: value")
    return data


def _weights(pairs: list[str] | None) -> dict[str, float] | None:
    if not pairs:
        return None
    weights = {}
    for pair in pairs:
        value, sep, weight = pair.rpartition("=")
        try:
            weights[value] = float(weight)
        except ValueError:
            sep = ""
        if not sep or not value:
            raise CharterError(f"--mix '{pair}' is not VALUE=WEIGHT, e.g. --mix sl=3 --mix helpful=1")
    return weights


def _with_progress(kind: str, call: Callable):
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"{kind}: preparing (loading model and data)", total=None)

        def progress(step: int, total: int, logs: dict) -> None:
            loss = logs.get("loss")
            text = f"{kind}: step {step}/{total}" + (f"  loss {loss:.4f}" if loss is not None else "")
            bar.update(task, completed=step, total=total, description=text)

        return call(progress)


def _summary(kind: str, result, settings) -> None:
    losses = [entry["loss"] for entry in result.log_history if "loss" in entry]
    data = result.record.get("data", {})
    table = Table(title=f"{kind} {'(already complete, skipped)' if result.skipped else 'done'}")
    table.add_column("item")
    table.add_column("value", overflow="fold")
    table.add_row("adapter", str(result.adapter_dir))
    table.add_row("steps", str(result.metrics.get("global_step")))
    if losses:
        table.add_row("loss first -> last", f"{losses[0]:.4f} -> {losses[-1]:.4f}")
    if "train_runtime" in result.metrics:
        table.add_row("train seconds", f"{result.metrics['train_runtime']:.1f}")
    if "rows" in data:
        table.add_row("SFT rows", str(data["rows"]))
    if "pairs" in data:
        pairs = data["pairs"]
        table.add_row("pairs kept / in", f"{pairs['kept']} / {pairs['rows_in']} "
                                         f"({pairs['dropped_uncertain']} too uncertain, {pairs['swapped']} swapped)")
    if "label_noise" in data:
        table.add_row("label noise (rDPO)", f"{data['label_noise']:.3f}")
    table.add_row("training curve", str(Path(result.adapter_dir) / "log_history.json"))
    console.print(table)
    if result.skipped and result.record.get("settings") != settings.to_dict():
        console.print(f"[yellow]note:[/] {result.adapter_dir} was trained with other settings; "
                      f"remove it (or pass another --out) to train with these")
