"""`charter scrutinize`: find where a constitution conflicts with itself."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from charter.commands._console import console, with_progress
from charter.errors import CharterError

FAIL_ON = ("error", "warning", "never")


def scrutinize_command(
    constitution: Path = typer.Argument(..., help="Constitution (YAML, JSON or Markdown)"),
    out: Path = typer.Option(None, "--out", "-o", help="Run folder: findings as records, scrutiny.md and "
                             "scrutiny.html (needed for probes)"),
    engine: str = typer.Option(None, "--engine", "-e", help="Model that answers the trade-off probes, e.g. "
                               "llamacpp:embedded; without it only the static checks run"),
    judge: list[str] = typer.Option(None, "--judge", "-j", help="Judge of the probes (repeat for several; "
                                    "default: --engine)"),
    prompts: list[str] = typer.Option(None, "--prompts", help="Prompt sets whose clause_id column counts as "
                                      "exercising a clause (repeatable)"),
    max_pairs: int = typer.Option(4, "--max-pairs", min=1, help="Pairs of clauses probed, most likely to interact first"),
    scenarios: int = typer.Option(2, "--scenarios", min=1, help="Scenarios per pair"),
    samples: int = typer.Option(2, "--samples", min=1, help="Whole-constitution answers per scenario"),
    seed: int = typer.Option(0, "--seed"),
    fail_on: str = typer.Option("never", "--fail-on", help="Exit 1 when a finding is this severe: error, "
                                "warning or never (for CI)"),
    new_run: bool = typer.Option(False, "--new-run", help="If --out holds another run, use OUT-2, OUT-3, ..."),
) -> None:
    """Static checks (duplicates, contradictions, tensions no tier settles, gaps) and, with --engine,
    trade-off probes; findings ordered by severity, each with the fix a person would make."""
    from charter.scrutiny.findings import counts, fails
    from charter.scrutiny.probes import ProbeSettings
    from charter.scrutiny.run import scrutinize
    from charter.session import open_session

    if fail_on not in FAIL_ON:
        raise CharterError(f"--fail-on {fail_on!r} is not one of {', '.join(FAIL_ON)}")
    if judge and not engine:
        raise CharterError("--judge judges the probes, which need --engine to answer them")
    if engine and out is None:
        raise CharterError("probes keep their answers and judgments in a run folder; give --out")
    roles = {"policy": engine, **{("judge" if n == 0 else f"judge{n + 1}"): spec for n, spec in enumerate(judge or [])}}
    settings = ProbeSettings(max_pairs=max_pairs, scenarios=scenarios, samples=samples, seed=seed)
    with open_session(constitution, roles, out, new_run=new_run) as session:
        result = with_progress(lambda progress: scrutinize(session, prompts=prompts or [], probe=settings,
                                                             progress=progress))
    _print(result.findings)
    tally = counts(result.findings)
    console.print(f"{tally['error']} errors, {tally['warning']} warnings, {tally['info']} notes", highlight=False)
    if result.report_md is not None:
        console.print(f"report: {result.report_md} and {result.report_html}", highlight=False)
    if fails(result.findings, fail_on):
        raise typer.Exit(1)


def _print(findings) -> None:
    table = Table(title="scrutiny findings, most severe first")
    for column in ("severity", "check", "clauses", "finding"):
        table.add_column(column)
    for f in findings:
        table.add_row(f.severity, f.check, ", ".join(f.clauses), f.message)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("scrutinize")(scrutinize_command)
