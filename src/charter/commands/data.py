"""`charter generate STAGE` and `charter data stats|export`: synthetic data in a resumable run folder.

Every generate command takes --constitution, --engine, --out, --limit, --seed and --new-run; rerun
the same command after an interruption and it resumes where the store left off.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from charter.errors import CharterError

console = Console()
generate_app = typer.Typer(
    help="Generate synthetic training data from a constitution into a run folder.",
    no_args_is_help=True,
)
data_app = typer.Typer(help="Look at and export the data in a run folder.", no_args_is_help=True)

EMBEDDED = "llamacpp:embedded"

# Options every generate command shares (typer reads these defaults as option declarations).
_CONSTITUTION = typer.Option(
    None, "--constitution", "-c", help="Constitution YAML (default: the example)"
)
_ENGINE = typer.Option(EMBEDDED, "--engine", "-e", help="Policy engine, e.g. llamacpp:embedded")
_OUT = typer.Option(..., "--out", "-o", help="Run folder (created, or resumed if it exists)")
_LIMIT = typer.Option(None, "--limit", "-n", help="At most this many prompts (or units)")
_SEED = typer.Option(0, "--seed", help="Run seed: same seed, same data")
_NEW_RUN = typer.Option(
    False, "--new-run", help="If --out holds a different run, use OUT-2, OUT-3, ..."
)
_PROMPTS = typer.Option(
    None,
    "--prompts",
    "-p",
    help="Prompt source: FILE.jsonl|.csv|.parquet or hf:NAME[:split]; repeatable",
)
_COLUMN = typer.Option(None, "--column", help="Column holding the prompt text (default: prompt)")
_MAX_TOKENS = typer.Option(128, "--max-tokens", help="Tokens per generated answer")
_BATCH = typer.Option(32, "--batch-size", help="Prompts per engine call (and per write)")


def register(app: typer.Typer) -> None:
    app.add_typer(generate_app, name="generate")
    app.add_typer(data_app, name="data")


# -- shared plumbing -----------------------------------------------------------------------------


@contextmanager
def _stage_run(
    constitution: Path | None, engines: dict[str, str], out: Path, new_run: bool
) -> Iterator[tuple]:
    """Load the constitution, make the engines (same spec -> one engine), open the run folder."""
    from charter.constitution import load_constitution
    from charter.engines.registry import make_engine
    from charter.store import open_run

    charter_constitution = load_constitution(constitution or _example_constitution())
    made: dict[str, object] = {}
    by_role = {}
    try:
        for role, spec in engines.items():
            if spec not in made:
                made[spec] = make_engine(spec)
            by_role[role] = made[spec]
        fingerprints = {role: engine.fingerprint for role, engine in by_role.items()}
        store = open_run(
            out,
            new_run=new_run,
            constitution_hash=charter_constitution.content_hash(),
            engines=fingerprints,
        )
        if store.folder != out:
            console.print(f"[yellow]{out} holds a different run; using {store.folder}[/]")
        try:
            yield charter_constitution, by_role, store
        finally:
            store.close()
    finally:
        for engine in made.values():
            engine.close()


def _example_constitution() -> Path:
    from importlib import resources

    return Path(str(resources.files("charter") / "examples" / "constitution.yaml"))


def _progress_run(call: Callable[[Callable], dict]) -> dict:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def update(description: str, done: int, total: int) -> None:
            bar.update(task, description=description, completed=done, total=total)

        return call(update)


def _summary(summary: dict, folder: Path) -> None:
    table = Table(title=f"{summary['stage']}: {folder}")
    for column in (
        "records",
        "reused",
        "abstentions",
        "prompt tokens",
        "completion tokens",
        "engine s",
        "total s",
    ):
        table.add_column(column, justify="right")
    table.add_row(
        *(
            str(summary[k])
            for k in (
                "records",
                "reused",
                "abstentions",
                "prompt_tokens",
                "completion_tokens",
                "engine_seconds",
                "seconds",
            )
        )
    )
    console.print(table)
    rest = {
        k: v
        for k, v in summary.items()
        if k
        not in {
            "stage",
            "records",
            "reused",
            "abstentions",
            "prompt_tokens",
            "completion_tokens",
            "engine_seconds",
            "seconds",
        }
    }
    if rest:
        console.print("  " + ", ".join(f"{k}={v}" for k, v in rest.items()), highlight=False)


def _load_prompts(
    sources: list[str] | None,
    column: str | None,
    store,
    mode: str = "critique",
    helpful: list[str] | None = None,
):
    from charter.data.promptgen import default_prompts
    from charter.data.prompts import interleave, load_prompts

    if not sources and not helpful:
        return default_prompts(store)
    lists = [load_prompts(s, column, mode) for s in sources or ()]
    lists += [load_prompts(s, column, "answer") for s in helpful or ()]
    return interleave(lists)


# -- generate ------------------------------------------------------------------------------------


@generate_app.command("prompts")
def generate_prompts(
    constitution: Path | None = _CONSTITUTION,
    engine: str = _ENGINE,
    out: Path = _OUT,
    limit: int | None = _LIMIT,
    seed: int = _SEED,
    new_run: bool = _NEW_RUN,
    per_kind: int = typer.Option(1, "--per-kind", help="Prompts per clause and kind"),
    batch_size: int = _BATCH,
) -> None:
    """Write new prompts per principle and trait: canonical, edge, look-alike, cannot-apply."""
    from charter.data.promptgen import run_prompts

    with _stage_run(constitution, {"policy": engine}, out, new_run) as (c, engines, store):
        summary = _progress_run(
            lambda p: run_prompts(
                store,
                c,
                engines["policy"],
                seed=seed,
                limit=limit,
                progress=p,
                per_kind=per_kind,
                batch_size=batch_size,
            )
        )
        _summary(summary, store.folder)


@generate_app.command("sl")
def generate_sl(
    constitution: Path | None = _CONSTITUTION,
    engine: str = _ENGINE,
    out: Path = _OUT,
    limit: int | None = _LIMIT,
    seed: int = _SEED,
    new_run: bool = _NEW_RUN,
    prompts: list[str] | None = _PROMPTS,
    column: str | None = _COLUMN,
    helpful: list[str] | None = typer.Option(
        None, "--helpful", help="Prompts answered without critique; repeatable"
    ),
    rounds: int = typer.Option(2, "--rounds", help="Critique/revision rounds"),
    fewshot: Path | None = typer.Option(
        None, "--fewshot", help="Few-shot YAML (default: the example)"
    ),
    fewshot_count: int = typer.Option(
        2, "--fewshot-count", help="Worked chains shown to the model"
    ),
    max_tokens: int = _MAX_TOKENS,
    batch_size: int = _BATCH,
) -> None:
    """SL-CAI: answer red-team prompts, then critique and revise against sampled principles."""
    from charter.data.critique import run_sl
    from charter.data.fewshot import load_fewshot

    shots = load_fewshot(fewshot)
    with _stage_run(constitution, {"policy": engine}, out, new_run) as (c, engines, store):
        items = _load_prompts(prompts, column, store, helpful=helpful)
        summary = _progress_run(
            lambda p: run_sl(
                store,
                c,
                engines["policy"],
                items,
                rounds=rounds,
                seed=seed,
                limit=limit,
                progress=p,
                max_tokens=max_tokens,
                fewshot=shots,
                fewshot_count=fewshot_count,
                batch_size=batch_size,
            )
        )
        _summary(summary, store.folder)


@generate_app.command("prefs")
def generate_prefs(
    constitution: Path | None = _CONSTITUTION,
    engine: str = _ENGINE,
    out: Path = _OUT,
    limit: int | None = _LIMIT,
    seed: int = _SEED,
    new_run: bool = _NEW_RUN,
    prompts: list[str] | None = _PROMPTS,
    column: str | None = _COLUMN,
    feedback_engine: str | None = typer.Option(
        None, "--feedback-engine", help="Judge engine (default: the policy)"
    ),
    mode: str = typer.Option(
        "auto", "--mode", help="contrastive | judge | auto (contrastive for the embedded model)"
    ),
    rejected: str = typer.Option(
        "opposing", "--rejected", help="contrastive: plain | opposing system prompt"
    ),
    principles: int = typer.Option(1, "--principles", help="judge: principles per pair (ensemble)"),
    cot: bool = typer.Option(False, "--cot", help="judge: reason first, clamp probabilities"),
    band: str = typer.Option("0.4,0.6", "--band", help="judge --cot: probability band LOW,HIGH"),
    general: bool = typer.Option(
        False, "--general", help="judge: one principle, 'best for humanity'"
    ),
    max_tokens: int = _MAX_TOKENS,
    batch_size: int = _BATCH,
) -> None:
    """Preference pairs: contrastive (labelled by construction) or AI feedback (soft labels)."""
    from charter.data.feedback import JudgeConfig, run_prefs

    roles = {"policy": engine, **({"feedback": feedback_engine} if feedback_engine else {})}
    with _stage_run(constitution, roles, out, new_run) as (c, engines, store):
        items = _load_prompts(prompts, column, store)
        judge = engines.get("feedback", engines["policy"])
        chosen = (
            mode if mode != "auto" else ("contrastive" if "embedded" in judge.name else "judge")
        )
        options = {"max_tokens": max_tokens, "batch_size": batch_size}
        if chosen == "contrastive":
            options["rejected"] = rejected
        else:
            options["config"] = JudgeConfig(
                principles=principles, cot=cot, band=_band(band), general=general
            )
        summary = _progress_run(
            lambda p: run_prefs(
                store,
                c,
                engines["policy"],
                items,
                feedback_engine=judge,
                mode=chosen,
                seed=seed,
                limit=limit,
                progress=p,
                **options,
            )
        )
        _summary(summary, store.folder)


def _band(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise CharterError(f"--band '{text}' is not LOW,HIGH; write e.g. --band 0.4,0.6") from None
    if not 0 <= low < high <= 1:
        raise CharterError(f"--band {text}: need 0 <= LOW < HIGH <= 1, e.g. --band 0.4,0.6")
    return low, high


@generate_app.command("character")
def generate_character(
    constitution: Path | None = _CONSTITUTION,
    engine: str = _ENGINE,
    out: Path = _OUT,
    limit: int | None = _LIMIT,
    seed: int = _SEED,
    new_run: bool = _NEW_RUN,
    prompts: list[str] | None = typer.Option(
        None, "--prompts", "-p", help="Introspection prompts (default: the example set)"
    ),
    column: str | None = _COLUMN,
    generated_per_trait: int = typer.Option(
        2, "--generated-per-trait", help="Model-written prompts per trait"
    ),
    student_engine: str | None = typer.Option(
        None, "--student-engine", help="Answers without the constitution (default: the policy)"
    ),
    max_tokens: int = _MAX_TOKENS,
    batch_size: int = _BATCH,
) -> None:
    """Trait distillation pairs (teacher with the constitution, student without) and introspection data."""
    from charter.data.character import run_character
    from charter.data.prompts import interleave, load_prompts

    roles = {"policy": engine, **({"student": student_engine} if student_engine else {})}
    with _stage_run(constitution, roles, out, new_run) as (c, engines, store):
        intro = (
            interleave([load_prompts(s, column, "answer") for s in prompts]) if prompts else None
        )
        summary = _progress_run(
            lambda p: run_character(
                store,
                c,
                engines["policy"],
                intro,
                seed=seed,
                limit=limit,
                progress=p,
                generated_per_trait=generated_per_trait,
                max_tokens=max_tokens,
                student=engines.get("student"),
                batch_size=batch_size,
            )
        )
        _summary(summary, store.folder)


@generate_app.command("understanding")
def generate_understanding(
    constitution: Path | None = _CONSTITUTION,
    engine: str = _ENGINE,
    out: Path = _OUT,
    limit: int | None = _LIMIT,
    seed: int = _SEED,
    new_run: bool = _NEW_RUN,
    answers: str = typer.Option("both", "--answers", help="construction | model | both"),
    max_tokens: int = _MAX_TOKENS,
    batch_size: int = _BATCH,
) -> None:
    """Q&A about the constitution's clauses and reasons, by construction and by the model."""
    from charter.data.understanding import run_understanding

    if answers not in ("construction", "model", "both"):
        raise CharterError(f"--answers '{answers}' is unknown; use construction, model or both")
    with _stage_run(constitution, {"policy": engine}, out, new_run) as (c, engines, store):
        summary = _progress_run(
            lambda p: run_understanding(
                store,
                c,
                engines["policy"],
                seed=seed,
                limit=limit,
                progress=p,
                answers=answers,
                max_tokens=max_tokens,
                batch_size=batch_size,
            )
        )
        _summary(summary, store.folder)


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
        console.print(
            f"[bold]{section}[/]: " + ", ".join(f"{k}={v}" for k, v in numbers[section].items()),
            highlight=False,
        )


@data_app.command("export")
def export(
    run: Path = typer.Argument(..., help="Run folder"),
    fmt: str = typer.Option("parquet", "--format", "-f", help="parquet | jsonl"),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Folder for sft.* and prefs.* (default: RUN/export)"
    ),
    stage: list[str] | None = typer.Option(
        None, "--stage", help="Only rows from this stage; repeatable"
    ),
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
