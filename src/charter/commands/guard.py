"""`charter guard data` and `charter guard train`: constitutional classifiers for the hard lines."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from charter.commands._console import console, print_stage_summary, with_progress
from charter.errors import CharterError

guard_app = typer.Typer(help="Guards trained from the constitution: labelled data per hard line, a classifier "
                             "for requests and answer prefixes, `charter serve --guard RUN`.",
                        no_args_is_help=True)
DEFAULT_BENIGN = ("prompts/helpful.jsonl", "prompts/borderline.jsonl", "prompts/operator_contexts.jsonl")


@guard_app.command("data")
def guard_data(
    constitution: Path = typer.Argument(..., help="Constitution (YAML, JSON or Markdown)"),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder for the guard's data (and later its model)"),
    engine: str = typer.Option("llamacpp:embedded", "--engine", "-e", help="Model that rewords seeds and answers "
                               "requests (for the output guard)"),
    benign: list[str] = typer.Option(None, "--benign", help="Prompt files of benign requests (`prompt` column; "
                                     "repeatable; default: charter's shipped helpful and borderline training "
                                     "prompts)"),
    paraphrases: int = typer.Option(4, "--paraphrases", min=0, help="Engine rewordings per attack or look-alike "
                                    "seed (0: rules only)"),
    per_family: int = typer.Option(2, "--per-family", min=1, help="Versions per transformation family of a seed"),
    answers: bool = typer.Option(True, "--answers/--no-answers", help="Answer plain requests with the engine "
                                 "(the output guard's data)"),
    max_sources: int = typer.Option(0, "--max-sources", min=0, help="At most this many seeds per group (0: all)"),
    seed: int = typer.Option(0, "--seed"),
    new_run: bool = typer.Option(False, "--new-run", help="If --out holds another run, use OUT-2, OUT-3, ..."),
) -> None:
    """Make the labelled set: each hard line's examples and its own text, reworded and wrapped in the
    transformations attackers use, and benign look-alikes grown the same way; resumable."""
    from charter.data.runner import Stage
    from charter.embeddings import Embedder
    from charter.guards.dataset import STAGE, GuardDataSettings, build_guard_data
    from charter.session import open_session

    settings = GuardDataSettings(paraphrases=paraphrases, per_family=per_family, answers=answers,
                                 max_sources=max_sources, seed=seed)
    rows = _benign_rows(benign)
    with open_session(constitution, {"policy": engine}, out, new_run=new_run, stage=STAGE,
                      params={**settings.params(), "benign": sorted({name for name, _ in rows})},
                      fixed=("seed", "paraphrases", "per_family", "answer_tokens", "min_similarity")) as session:
        if not session.constitution.hard_lines:
            raise CharterError(f"{constitution} has no hard lines: a guard enforces hard lines")
        embedder = Embedder()
        summary = with_progress(lambda progress: build_guard_data(
            Stage(STAGE, session.store, session.constitution, session.engines["policy"], seed, progress),
            rows, embedder, settings))
        print_stage_summary(summary, session.folder)
        console.print(f"next: charter guard train {session.folder}", highlight=False)


@guard_app.command("train")
def guard_train(
    run: Path = typer.Argument(..., help="Run folder made by `charter guard data`"),
    encoder: str = typer.Option("finetune", "--encoder", help="finetune: fine-tune MiniLM with a linear head "
                                "per stage (minutes; far better on unseen requests); frozen: a head on MiniLM "
                                "as it is (seconds)"),
    epochs: int = typer.Option(1, "--epochs", min=1, help="Fine-tuning epochs"),
    head: str = typer.Option("auto", "--head", help="With --encoder frozen: logistic, mlp, or auto (chosen by "
                             "cross-validation over train+val sources)"),
    max_false_block: float = typer.Option(0.05, "--max-false-block", min=0.0, max=0.5,
                                          help="Largest share of benign validation items the guard may block"),
    band_false_block: float = typer.Option(0.15, "--band-false-block", min=0.0, max=0.9,
                                           help="Items scoring above this band's threshold go to serve's judge"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Fit the classifier (inputs and answer prefixes), calibrate it on the validation split, report it
    on the test split and on serve's shipped sets, save it to RUN/guard."""
    from charter.embeddings import Embedder
    from charter.guards.training import TrainSettings, save_guard, train_guard
    from charter.store import RunStore

    if encoder not in ("finetune", "frozen"):
        raise CharterError(f"--encoder {encoder!r} is not one of finetune, frozen")
    if head not in ("auto", "logistic", "mlp"):
        raise CharterError(f"--head {head!r} is not one of auto, logistic, mlp")
    if not (run / "manifest.json").exists():
        raise CharterError(f"{run} is not a run folder; make the data with `charter guard data CONSTITUTION --out {run}`")
    store = RunStore.read(run)
    try:
        lines = _lines(store)
        settings = TrainSettings(encoder=encoder, epochs=epochs, head=head, max_false_block=max_false_block, band_false_block=band_false_block,
                                 seed=seed)
        embedder = Embedder()
        classifier, metrics = with_progress(lambda progress: train_guard(
            store, embedder, lines, settings, progress, shipped=_shipped_sets()))
    finally:
        store.close()
    folder = run / "guard"
    save_guard(folder, classifier, metrics)
    _print(metrics)
    console.print(f"guard {classifier.version} saved to {folder} (report: {folder / 'report.md'}); serve it with "
                  f"`charter serve -c CONSTITUTION --guard {folder}`", highlight=False)


def _lines(store) -> list[str]:
    """The hard lines the data covers, in the order the data names them."""
    seen = dict.fromkeys(r.clause_ids[0] for r in store.iter("guard_example") if r.data["label"] == 1 and r.clause_ids)
    return list(seen)


def _shipped_sets() -> dict:
    from charter.rows import read_rows
    from charter.shipped import shipped_path

    return {"attacks": read_rows(shipped_path("serve", "data", "attacks.jsonl")),
            "benign": read_rows(shipped_path("serve", "data", "benign.jsonl"))}


def _benign_rows(files: list[str] | None) -> list[tuple[str, dict]]:
    from charter.rows import read_rows
    from charter.shipped import example_path

    paths = [Path(f) for f in files] if files else [example_path(name) for name in DEFAULT_BENIGN]
    rows = []
    for path in paths:
        if not path.exists():
            raise CharterError(f"--benign {path}: no such file")
        for number, row in enumerate(read_rows(path), start=1):
            if not isinstance(row.get("prompt", row.get("text")), str):
                raise CharterError(f"{path}:{number}: field `prompt` (or `text`) must be a string")
            rows.append((path.stem, row))
    return rows


def _print(metrics: dict) -> None:
    def pct(r):
        return "-" if not r or r["rate"] is None else f"{r['rate']:.0%} [{r['low']:.0%}, {r['high']:.0%}] n={r['n']}"

    test = metrics["input_test"]
    table = Table(title="input guard, test split (attacks blocked per transformation)")
    table.add_column("transformation")
    table.add_column("attacks blocked")
    table.add_column("benign blocked")
    families = sorted(set(test["attacks_by_family"]) | set(test["benign_by_family"]))
    for family in families:
        table.add_row(family, pct(test["attacks_by_family"].get(family)), pct(test["benign_by_family"].get(family)))
    table.add_row("all", pct(test["attacks_blocked"]), pct(test["benign_blocked"]))
    console.print(table)
    stream = metrics.get("stream_test")
    if stream:
        console.print(f"output guard: hard-line answers stopped within 64 tokens "
                      f"{pct(stream['hard_line_answers_stopped_within']['64'])}; other answers stopped "
                      f"{pct(stream['other_answers_stopped'])}", highlight=False)
    shipped = metrics.get("shipped")
    if shipped:
        console.print(f"serve's shipped sets: attacks blocked {pct(shipped['attacks_blocked'])}, benign blocked "
                      f"{pct(shipped['benign_blocked'])}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(guard_app, name="guard")
