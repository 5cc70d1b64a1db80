"""`charter generate STAGE` and `charter data stats|export`: synthetic data in a resumable run folder.

Every generate command takes --constitution, --engine, --out, --limit, --seed and --new-run; rerun
the same command after an interruption and it resumes where the store left off. Each command only
parses its options, opens a session (charter.session) and calls its stage's `run_*` function.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import typer
from rich.table import Table

from charter.commands._console import console, print_stage_summary, with_progress
from charter.commands._executor import executor_options
from charter.errors import CharterError

generate_app = typer.Typer(help="Generate synthetic training data from a constitution into a run folder.",
                           no_args_is_help=True)
data_app = typer.Typer(help="Look at and export the data in a run folder.", no_args_is_help=True)

EMBEDDED = "llamacpp:embedded"

# Options every generate command shares (typer reads these defaults as option declarations).
_CONSTITUTION = typer.Option(None, "--constitution", "-c", help="Constitution YAML (default: the example)")
_ENGINE = typer.Option(EMBEDDED, "--engine", "-e", help="Policy engine, e.g. llamacpp:embedded")
_OUT = typer.Option(..., "--out", "-o", help="Run folder (created, or resumed if it exists)")
_LIMIT = typer.Option(None, "--limit", "-n", min=1, help="At most this many prompts (or units)")
_SEED = typer.Option(0, "--seed", help="Run seed: same seed, same data")
_NEW_RUN = typer.Option(False, "--new-run", help="If --out holds a different run, use OUT-2, OUT-3, ...")
_PROMPTS = typer.Option(None, "--prompts", "-p",
                        help="Prompt source: FILE.jsonl|.json|.csv|.tsv|.parquet, a datasets folder or "
                             "hf:NAME[:split]; repeatable")
_COLUMN = typer.Option(None, "--column", help="Column holding the prompt text (default: prompt)")
_MAX_TOKENS = typer.Option(128, "--max-tokens", help="Tokens per generated answer")
_BATCH = typer.Option(32, "--batch-size", help="Prompts per engine call (and per write)")


def register(app: typer.Typer) -> None:
    app.add_typer(generate_app, name="generate")
    app.add_typer(data_app, name="data")


def _generate(constitution: Path | None, roles: dict[str, str | None], out: Path, new_run: bool,
              stage: Callable, executor=None) -> None:
    """Open the session, run `stage(session, progress)` under a progress bar, print its summary."""
    from charter.executor import LOCAL
    from charter.session import open_session

    with open_session(constitution, roles, out, new_run=new_run, executor=executor or LOCAL) as session:
        if session.folder != out:
            console.print(f"[yellow]{out} holds a different run; using {session.folder}[/]")
        summary = with_progress(lambda progress: stage(session, progress))
        print_stage_summary(summary, session.folder)


def _load_prompts(sources: list[str] | None, column: str | None, store, helpful: list[str] | None = None):
    from charter.data.promptgen import default_prompts
    from charter.data.prompts import interleave, load_prompts

    if not sources and not helpful:
        return default_prompts(store)
    lists = [load_prompts(s, column, "critique") for s in sources or ()]
    lists += [load_prompts(s, column, "answer") for s in helpful or ()]
    return interleave(lists)


# -- generate ------------------------------------------------------------------------------------


@generate_app.command("prompts")
@executor_options
def generate_prompts(
    constitution: Path | None = _CONSTITUTION, engine: str = _ENGINE, out: Path = _OUT,
    limit: int | None = _LIMIT, seed: int = _SEED, new_run: bool = _NEW_RUN,
    per_kind: int = typer.Option(1, "--per-kind", help="Prompts per clause and kind"),
    batch_size: int = _BATCH, executor=None,
) -> None:
    """Write new prompts per principle and trait: canonical, edge, look-alike, cannot-apply."""
    from charter.data.promptgen import run_prompts

    _generate(constitution, {"policy": engine}, out, new_run, executor=executor, stage=lambda s, p: run_prompts(
        s.store, s.constitution, s.engines["policy"], seed=seed, limit=limit, progress=p, per_kind=per_kind,
        batch_size=batch_size))


@generate_app.command("sl")
@executor_options
def generate_sl(
    constitution: Path | None = _CONSTITUTION, engine: str = _ENGINE, out: Path = _OUT,
    limit: int | None = _LIMIT, seed: int = _SEED, new_run: bool = _NEW_RUN,
    prompts: list[str] | None = _PROMPTS, column: str | None = _COLUMN,
    helpful: list[str] | None = typer.Option(None, "--helpful", help="Prompts answered without critique; repeatable"),
    rounds: int = typer.Option(2, "--rounds", help="Critique/revision rounds"),
    fewshot: Path | None = typer.Option(None, "--fewshot", help="Few-shot YAML (default: the example)"),
    fewshot_count: int = typer.Option(2, "--fewshot-count", help="Worked chains shown to the model"),
    max_tokens: int = _MAX_TOKENS, batch_size: int = _BATCH, executor=None,
) -> None:
    """SL-CAI: answer red-team prompts, then critique and revise against sampled principles."""
    from charter.data.critique import run_sl
    from charter.data.fewshot import load_fewshot

    shots = load_fewshot(fewshot)
    _generate(constitution, {"policy": engine}, out, new_run, executor=executor, stage=lambda s, p: run_sl(
        s.store, s.constitution, s.engines["policy"], _load_prompts(prompts, column, s.store, helpful),
        rounds=rounds, seed=seed, limit=limit, progress=p, max_tokens=max_tokens, fewshot=shots,
        fewshot_count=fewshot_count, batch_size=batch_size))


@generate_app.command("prefs")
@executor_options
def generate_prefs(
    constitution: Path | None = _CONSTITUTION, engine: str = _ENGINE, out: Path = _OUT,
    limit: int | None = _LIMIT, seed: int = _SEED, new_run: bool = _NEW_RUN,
    prompts: list[str] | None = _PROMPTS, column: str | None = _COLUMN,
    feedback_engine: str | None = typer.Option(None, "--feedback-engine", help="Judge engine (default: the policy)"),
    mode: str = typer.Option("auto", "--mode",
                             help="contrastive | judge | auto (contrastive when the judge is the embedded model)"),
    rejected: str = typer.Option("opposing", "--rejected", help="contrastive: plain | opposing system prompt"),
    principles: int = typer.Option(1, "--principles", help="judge: principles per pair (ensemble)"),
    cot: bool = typer.Option(False, "--cot", help="judge: reason first, clamp probabilities"),
    band: str = typer.Option("0.4,0.6", "--band", help="judge --cot: probability band LOW,HIGH"),
    general: bool = typer.Option(False, "--general", help="judge: one principle, 'best for humanity'"),
    judge_mode: str = typer.Option("auto", "--judge-mode", help="judge: auto | prefill | letter | generate "
                                   "(auto: prefill where the engine allows it, else the first token's logprobs)"),
    max_tokens: int = _MAX_TOKENS, batch_size: int = _BATCH, executor=None,
) -> None:
    """Preference pairs: contrastive (labelled by construction) or AI feedback (soft labels)."""
    from charter.data.feedback import JudgeConfig, run_prefs
    from charter.recipes import prefs_mode

    chosen = prefs_mode(mode, feedback_engine or engine)
    options = {"max_tokens": max_tokens, "batch_size": batch_size}
    if chosen == "contrastive":
        options["rejected"] = rejected
    else:
        options["config"] = JudgeConfig(principles=principles, cot=cot, band=_band(band), general=general,
                                        mode=judge_mode)
    _generate(constitution, {"policy": engine, "feedback": feedback_engine}, out, new_run, executor=executor,
              stage=lambda s, p: run_prefs(
        s.store, s.constitution, s.engines["policy"], _load_prompts(prompts, column, s.store),
        feedback_engine=s.engines.get("feedback", s.engines["policy"]), mode=chosen, seed=seed, limit=limit,
        progress=p, **options))


def _band(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise CharterError(f"--band '{text}' is not LOW,HIGH; write e.g. --band 0.4,0.6") from None
    if not 0 <= low < high <= 1:
        raise CharterError(f"--band {text}: need 0 <= LOW < HIGH <= 1, e.g. --band 0.4,0.6")
    return low, high


@generate_app.command("distill")
@executor_options
def generate_distill(
    constitution: Path | None = _CONSTITUTION, engine: str = _ENGINE, out: Path = _OUT,
    limit: int | None = typer.Option(48, "--limit", "-n", min=1, help="At most this many harmful prompts"),
    seed: int = _SEED, new_run: bool = _NEW_RUN,
    harmful: list[str] | None = typer.Option(None, "--harmful", help="Harmful prompts (default: the red-team set "
                                             "and the hard lines' examples); repeatable"),
    safe: list[str] | None = typer.Option(None, "--safe", help="Safe prompts (default: ordinary, look-dangerous "
                                          "and the hard lines' look-alikes); repeatable"),
    column: str | None = _COLUMN,
    safe_ratio: float = typer.Option(2.0, "--safe-ratio", help="Safe prompts per harmful prompt"),
    samples: int = typer.Option(1, "--samples", help="Pairs per prompt (more than one samples at temperature 0.7)"),
    needless_refusals: str = typer.Option("fixed", "--needless-refusals",
                                          help="fixed | matched: a safe prompt's constructed rejected refusal is "
                                               "one fixed sentence, or worded as a harmful prompt's chosen "
                                               "refusal would be"),
    max_tokens: int = _MAX_TOKENS, batch_size: int = _BATCH, executor=None,
) -> None:
    """Judge-free pairs and SFT rows (the default recipe of `charter run` for the embedded model)."""
    from charter.data.distill import default_prompts, run_distill
    from charter.data.prompts import interleave, load_prompts

    def loaded(sources, mode):
        return interleave([load_prompts(s, column, mode) for s in sources]) if sources else None

    def stage(s, p):
        prompts = default_prompts(s.constitution, limit, safe_ratio, loaded(harmful, "critique"),
                                  loaded(safe, "answer"))
        return run_distill(s.store, s.constitution, s.engines["policy"], prompts, seed=seed, samples=samples,
                           max_tokens=max_tokens, batch_size=batch_size, progress=p,
                           needless_refusals=needless_refusals)

    _generate(constitution, {"policy": engine}, out, new_run, stage, executor)


@generate_app.command("character")
@executor_options
def generate_character(
    constitution: Path | None = _CONSTITUTION, engine: str = _ENGINE, out: Path = _OUT,
    limit: int | None = _LIMIT, seed: int = _SEED, new_run: bool = _NEW_RUN,
    prompts: list[str] | None = typer.Option(None, "--prompts", "-p",
                                             help="Introspection prompts (default: the example set)"),
    column: str | None = _COLUMN,
    generated_per_trait: int = typer.Option(2, "--generated-per-trait", help="Model-written prompts per trait"),
    student_engine: str | None = typer.Option(None, "--student-engine",
                                              help="Answers without the constitution (default: the policy)"),
    max_tokens: int = _MAX_TOKENS, batch_size: int = _BATCH, executor=None,
) -> None:
    """Trait distillation pairs (teacher with the constitution, student without) and introspection data."""
    from charter.data.character import run_character
    from charter.data.prompts import interleave, load_prompts

    intro = interleave([load_prompts(s, column, "answer") for s in prompts]) if prompts else None
    _generate(constitution, {"policy": engine, "student": student_engine}, out, new_run, executor=executor,
              stage=lambda s, p: run_character(
        s.store, s.constitution, s.engines["policy"], intro, seed=seed, limit=limit, progress=p,
        generated_per_trait=generated_per_trait, max_tokens=max_tokens, student=s.engines.get("student"),
        batch_size=batch_size))


@generate_app.command("understanding")
@executor_options
def generate_understanding(
    constitution: Path | None = _CONSTITUTION, engine: str = _ENGINE, out: Path = _OUT,
    limit: int | None = _LIMIT, seed: int = _SEED, new_run: bool = _NEW_RUN,
    answers: str = typer.Option("both", "--answers", help="construction | model | both"),
    max_tokens: int = _MAX_TOKENS, batch_size: int = _BATCH, executor=None,
) -> None:
    """Q&A about the constitution's clauses and reasons, by construction and by the model."""
    from charter.data.understanding import run_understanding

    if answers not in ("construction", "model", "both"):
        raise CharterError(f"--answers '{answers}' is unknown; use construction, model or both")
    _generate(constitution, {"policy": engine}, out, new_run, executor=executor, stage=lambda s, p: run_understanding(
        s.store, s.constitution, s.engines["policy"], seed=seed, limit=limit, progress=p, answers=answers,
        max_tokens=max_tokens, batch_size=batch_size))


# -- data stats / export -------------------------------------------------------------------------


@data_app.command("stats")
def stats(
    run: Path = typer.Argument(..., help="Run folder"),
    as_json: bool = typer.Option(False, "--json", help="Print the numbers as JSON"),
) -> None:
    """Per-clause counts, label distributions, abstention and position-bias rates."""
    from charter.data.stats import run_stats
    from charter.store import RunStore

    with RunStore.read(run) as store:
        numbers = run_stats(store)
    if as_json:
        console.print_json(json.dumps(numbers))
        return
    table = Table(title=f"per clause: {run}")
    for column in ("clause", "sft", "pref", "prompt"):
        table.add_column(column, justify="right" if column != "clause" else "left")
    for clause, counts in numbers["per_clause"].items():
        table.add_row(clause, *(str(counts.get(k, 0)) for k in ("sft", "pref", "prompt")))
    console.print(table)
    for section in ("sft", "prefs", "judgments", "prompts"):
        console.print(f"[bold]{section}[/]: " + ", ".join(f"{k}={v}" for k, v in numbers[section].items()),
                      highlight=False)
    if numbers["failed_units"]:
        console.print("[bold red]failed units[/] (retried by rerunning the stage's command): " + "; ".join(
            f"{stage}: {v['units']} ({v['requests']} request(s)), last: {v['last_error']}"
            for stage, v in numbers["failed_units"].items()), highlight=False, soft_wrap=True)


@data_app.command("export")
def export(
    run: Path = typer.Argument(..., help="Run folder"),
    fmt: str = typer.Option("parquet", "--format", "-f", help="parquet | jsonl"),
    out: Path | None = typer.Option(None, "--out", "-o", help="Folder for sft.* and prefs.* (default: RUN/export)"),
    stage: list[str] | None = typer.Option(None, "--stage", help="Only rows from this stage; repeatable"),
) -> None:
    """Write the run's SFT and preference datasets (TRL formats, provenance columns)."""
    from charter.data.export import export_run
    from charter.store import RunStore

    with RunStore.read(run) as store:
        results = export_run(store, out or run / "export", fmt, stage)
    table = Table(title=f"export: {run}")
    table.add_column("dataset")
    table.add_column("rows", justify="right")
    table.add_column("file")
    for name, info in results.items():
        table.add_row(name, str(info["rows"]), info["path"] or "(no rows, no file)")
    console.print(table)
