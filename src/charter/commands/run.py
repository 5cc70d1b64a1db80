"""`charter run`: the whole pipeline in one command."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()


def run(
    constitution: Path | None = typer.Argument(None, help="Constitution file (default: the example one)"),
    out: Path = typer.Option(Path("runs/example"), "--out", help="Run folder (reused to resume)"),
    policy: str = typer.Option("llamacpp:embedded", "--policy", help="Engine that writes data and is trained"),
    feedback: str | None = typer.Option(None, "--feedback", help="Feedback engine (critique recipe)"),
    judge: str | None = typer.Option(None, "--judge", help="Eval judge engine (default: rule-based only)"),
    recipe: str = typer.Option("auto", "--recipe", help="auto | contrastive | critique"),
    limit: int = typer.Option(48, "--limit", help="Harmful prompts (red-team set and hard-line examples)"),
    safe_ratio: float = typer.Option(2.0, "--safe-ratio", help="Safe prompts per harmful prompt"),
    dpo_safe_ratio: float = typer.Option(1.5, "--dpo-safe-ratio",
                                         help="Safe-prompt pairs per harmful-prompt pair in DPO (judge-free recipe)"),
    samples: int = typer.Option(1, "--samples", help="Contrastive pairs per prompt"),
    max_tokens: int = typer.Option(128, "--max-tokens", help="Tokens per generated answer"),
    rounds: int = typer.Option(2, "--rounds", help="Critique/revision rounds (critique recipe)"),
    max_steps: int = typer.Option(30, "--max-steps", help="Optimizer steps per trainer"),
    sft_lr: float = typer.Option(1e-3, "--sft-lr", help="SFT learning rate (LoRA)"),
    dpo_lr: float = typer.Option(2e-4, "--dpo-lr", help="DPO learning rate (LoRA)"),
    eval_limit: int | None = typer.Option(None, "--eval-limit", help="Prompts per eval suite (default: all)"),
    eval_max_tokens: int = typer.Option(96, "--eval-max-tokens", help="Tokens per eval answer"),
    suites: str = typer.Option("harmful,overrefusal,character", "--suites", help="Eval suites, comma-separated"),
    seed: int = typer.Option(0, "--seed"),
    stages: str = typer.Option(",".join(("prompts", "data", "datasets", "sft", "dpo", "export", "eval", "report")),
                               "--stages", help="Stages to run, comma-separated"),
    new_run: bool = typer.Option(False, "--new-run", help="Start a fresh folder beside --out if it holds another run"),
) -> None:
    """Constitution -> data -> SFT -> DPO -> export (HF + GGUF) -> eval before/after -> report.html."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from charter.commands.constitution import example_path
    from charter.pipeline import PipelineConfig, run_pipeline
    from charter.store import next_free_run_folder

    if new_run:
        out = next_free_run_folder(out)
    config = PipelineConfig(
        constitution=constitution or example_path("constitution.yaml"), out=out, policy=policy, feedback=feedback,
        judge=judge, recipe=recipe, limit=limit, safe_ratio=safe_ratio, dpo_safe_ratio=dpo_safe_ratio, samples=samples,
        max_tokens=max_tokens, rounds=rounds,
        max_steps=max_steps, sft_learning_rate=sft_lr, dpo_learning_rate=dpo_lr, eval_limit=eval_limit,
        eval_max_tokens=eval_max_tokens,
        suites=tuple(s.strip() for s in suites.split(",") if s.strip()), seed=seed,
        stages=tuple(s.strip() for s in stages.split(",") if s.strip()),
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        report = run_pipeline(config, say=progress.console.print, progress=progress)
    console.print(f"\n[bold green]Report:[/] {report.resolve()}")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
