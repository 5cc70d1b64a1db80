"""`charter run`: the whole pipeline in one command."""

from __future__ import annotations

from pathlib import Path

import typer

from charter.commands._console import console, progress_bar
from charter.commands._executor import executor_options
from charter.pipeline import STAGES, PipelineConfig, run_pipeline


def _default(name: str):
    """PipelineConfig's default for a field: the command states no default of its own."""
    return PipelineConfig.__dataclass_fields__[name].default


@executor_options
def run(
    constitution: Path | None = typer.Argument(None, help="Constitution file (default: the example one)"),
    out: Path = typer.Option(_default("out"), "--out", help="Run folder (reused to resume)"),
    policy: str = typer.Option(_default("policy"), "--policy", help="Engine that writes data and is trained"),
    base: str | None = typer.Option(_default("base"), "--base", help="Model to train: a .gguf, a transformers "
                                    "folder or a Hub name (default: the policy's own model; required for a server)"),
    feedback: str | None = typer.Option(_default("feedback"), "--feedback", help="Feedback engine (critique recipe)"),
    judge: str | None = typer.Option(_default("judge"), "--judge", help="Eval judge engine (default: rule-based only)"),
    judge_mode: str = typer.Option(_default("judge_mode"), "--judge-mode", help="auto | prefill | letter | generate: "
                                   "how judges answer (auto: prefill where the engine allows, else first-token "
                                   "logprobs; generate: written verdicts, for servers without logprobs)"),
    recipe: str = typer.Option(_default("recipe"), "--recipe", help="auto | contrastive | critique (auto: "
                               "contrastive when the judging engine, --feedback or --policy, is the embedded model)"),
    limit: int = typer.Option(_default("limit"), "--limit", min=1,
                              help="Harmful prompts (red-team set and hard-line examples)"),
    safe_ratio: float = typer.Option(_default("safe_ratio"), "--safe-ratio", help="Safe prompts per harmful prompt"),
    dpo_safe_ratio: float = typer.Option(_default("dpo_safe_ratio"), "--dpo-safe-ratio",
                                         help="Safe-prompt pairs per harmful-prompt pair in DPO (judge-free recipe)"),
    samples: int = typer.Option(_default("samples"), "--samples", help="Contrastive pairs per prompt"),
    minimal_pairs: int = typer.Option(_default("minimal_pairs"), "--minimal-pairs", min=0,
                                      help="Minimal pairs of the training pool added, both sides (a safe "
                                           "prompt and an unsafe one sharing its words)"),
    needless_refusals: str = typer.Option(_default("needless_refusals"), "--needless-refusals",
                                          help="fixed | matched: a safe prompt's constructed rejected refusal is "
                                               "one fixed sentence, or worded as a harmful prompt's chosen "
                                               "refusal would be (judge-free recipe)"),
    max_tokens: int = typer.Option(_default("max_tokens"), "--max-tokens", help="Tokens per generated answer"),
    rounds: int = typer.Option(_default("rounds"), "--rounds", help="Critique/revision rounds (critique recipe)"),
    max_steps: int = typer.Option(_default("max_steps"), "--max-steps", help="Optimizer steps per trainer"),
    sft_lr: float = typer.Option(_default("sft_learning_rate"), "--sft-lr", help="SFT learning rate (LoRA)"),
    dpo_lr: float = typer.Option(_default("dpo_learning_rate"), "--dpo-lr", help="DPO learning rate (LoRA)"),
    min_margin: float = typer.Option(_default("dpo_min_margin"), "--min-margin",
                                     help="DPO: drop judged pairs whose preference is within this of 0.5"),
    dpo_sft_weight: float = typer.Option(_default("dpo_sft_weight"), "--dpo-sft-weight",
                                         help="DPO: weight of the chosen answers' negative log-likelihood "
                                              "beside the preference loss (RPO; 0: off)"),
    eval_limit: int | None = typer.Option(_default("eval_limit"), "--eval-limit",
                                          help="Prompts per eval suite (default: all)"),
    eval_max_tokens: int = typer.Option(_default("eval_max_tokens"), "--eval-max-tokens",
                                        help="Tokens per eval answer"),
    suites: str = typer.Option(",".join(_default("suites")), "--suites", help="Eval suites, comma-separated"),
    conversations: int = typer.Option(_default("conversation_limit"), "--conversations",
                                      help="Scenarios of the conversations suite, spread over its kinds"),
    seed: int = typer.Option(_default("seed"), "--seed"),
    stages: str = typer.Option(",".join(STAGES), "--stages", help="Stages to run, comma-separated"),
    new_run: bool = typer.Option(False, "--new-run", help="Start a fresh folder beside --out if it holds another run"),
    offline: bool = typer.Option(False, "--offline", help="Never reach the Hugging Face Hub (HF_HUB_OFFLINE=1)"),
    executor=None,
) -> None:
    """Constitution -> data -> SFT -> DPO -> export (HF + GGUF) -> eval before/after -> report.html."""
    from charter.shipped import example_constitution_path

    config = PipelineConfig(
        constitution=constitution or example_constitution_path(), out=out, policy=policy, base=base,
        feedback=feedback, judge=judge, judge_mode=judge_mode, recipe=recipe, offline=offline, limit=limit,
        safe_ratio=safe_ratio, dpo_safe_ratio=dpo_safe_ratio, samples=samples, minimal_pairs=minimal_pairs,
        needless_refusals=needless_refusals, max_tokens=max_tokens,
        rounds=rounds, max_steps=max_steps, sft_learning_rate=sft_lr, dpo_learning_rate=dpo_lr,
        dpo_min_margin=min_margin, dpo_sft_weight=dpo_sft_weight, eval_limit=eval_limit,
        eval_max_tokens=eval_max_tokens,
        suites=tuple(s.strip() for s in suites.split(",") if s.strip()), conversation_limit=conversations,
        seed=seed, executor=executor,
        stages=tuple(s.strip() for s in stages.split(",") if s.strip()),
    )
    with progress_bar() as progress:
        report = run_pipeline(config, say=progress.console.print, progress=progress, new_run=new_run)
    console.print(f"\n[bold green]Report:[/] {report.resolve()}")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
