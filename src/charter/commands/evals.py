"""`charter eval` and `charter compare`: evidence about a model, and the regression gate."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape as esc  # metric names like refusal_rate[rules] are not markup
from rich.panel import Panel
from rich.table import Table

from charter.commands._console import console, progress_bar
from charter.commands._executor import executor_options
from charter.errors import CharterError
from charter.evals.evaluate import SUITE_CHOICES


@executor_options
def eval_command(
    engine: str = typer.Option(
        ..., "--engine", "-e", help="Model to evaluate, e.g. llamacpp:embedded"
    ),
    suite: str = typer.Option("all", "--suite", "-s", help=f"One of: {', '.join(SUITE_CHOICES)}"),
    prompts: str = typer.Option(
        None,
        "--prompts",
        help="External set: .jsonl/.json/.csv/.parquet, "
        "a save_to_disk folder or hf:NAME (replaces the built-in set)",
    ),
    column: list[str] = typer.Option(
        [], "--column", help="Map a field to a column: prompt=question, label=type (repeatable)"
    ),
    split: str = typer.Option("train", "--split", help="Split of an HF dataset"),
    judge_engine: str = typer.Option(
        None,
        "--judge-engine",
        "-j",
        help="Judge model (default: the evaluated engine itself; 'none' for rules only)",
    ),
    judge_mode: str = typer.Option(
        "choose",
        "--judge-mode",
        help="choose (option log-probs) or generate (rationale + VERDICT line)",
    ),
    against: list[str] = typer.Option(
        [], "--against", help="Engine(s) to compare with (helpfulness)"
    ),
    user_engine: str = typer.Option(
        None, "--user-engine", help="Model that plays the user in conversations (default: the scripted user)"
    ),
    out: Path = typer.Option(
        Path("runs/eval"), "--out", "-o", help="Run folder for records, eval.json"
    ),
    limit: int = typer.Option(
        None, "--limit", "-n", min=1, help="At most N items per suite, spread over clauses"
    ),
    html: bool = typer.Option(False, "--html", help="Also write report.html into the run folder"),
    seed: int = typer.Option(0, "--seed"),
    max_tokens: int = typer.Option(
        256, "--max-tokens", help="Answer length limit of the evaluated model"
    ),
    constitution: Path = typer.Option(
        None, "--constitution", "-c", help="Constitution for clause texts (default: the example)"
    ),
    system_prompt: str = typer.Option(
        "none",
        "--system-prompt",
        help="none, compact or full: give the evaluated model the constitution as a system prompt",
    ),
    check_limit: int = typer.Option(8, "--check-limit", help="Gold items per judge check"),
    new_run: bool = typer.Option(
        False,
        "--new-run",
        help="If --out holds a different run (another engine or constitution), use OUT-2, OUT-3, ...",
    ),
    executor=None,
) -> None:
    """Run eval suites on a model: findings into the run store, eval.json, (--html) a report."""
    from charter.evals.evaluate import evaluate_engines, keep_other_suites, suite_names
    from charter.evals.load import load_items, parse_columns
    from charter.evals.runner import note_skipped

    if judge_mode not in ("choose", "generate"):
        raise CharterError(f"--judge-mode '{judge_mode}' is not choose or generate")
    if system_prompt not in ("none", "compact", "full"):
        raise CharterError(f"--system-prompt '{system_prompt}' is not none, compact or full")
    names = suite_names(suite, against, prompts)
    loaded = {n: load_items(n, prompts, parse_columns(column), split) if prompts else (None, 0) for n in names}
    specs = {"engine": engine, "judge": judge_engine, "judge_mode": judge_mode, "against": against,
             "user_engine": user_engine}
    settings = {"limit": limit, "seed": seed, "max_tokens": max_tokens, "system_prompt": system_prompt,
                "check_limit": check_limit}
    with progress_bar() as progress:
        run, out = evaluate_engines(names, {n: items for n, (items, _) in loaded.items()}, specs, settings, out,
                                    constitution, new_run=new_run, progress=progress, executor=executor)
    for name, (_, skipped) in loaded.items():
        note_skipped(run.suites[name], skipped)
    _print_run(run)
    path = keep_other_suites(run, out).save(out)
    console.print(f"Wrote {path}")
    if html:
        from charter.evals.report import render_eval_html
        from charter.rows import write_text_atomic

        write_text_atomic(out / "report.html", render_eval_html(run))
        console.print(f"Wrote {out / 'report.html'}")


def _print_discrimination(result) -> None:
    """Minimal pairs: refusal on each side, the gap, and what happened to each pair, per kind."""
    from charter.evals.report import fmt
    from charter.evals.stats import Estimate

    overall = result.extra.get("discrimination")
    if not overall:
        return
    table = Table(title=esc(f"{result.suite}: telling unsafe from safe-sounding (rules)"))
    for name in ("kind", "refused unsafe [95% CI]", "refused safe [95% CI]", "gap", "pairs: told apart",
                 "refused both", "answered both", "inverted"):
        table.add_column(name)
    for kind, d in [*result.extra.get("by_kind", {}).items(), ("all", overall)]:
        gap = "n/a" if d["gap"] is None else f"{d['gap']:+.2f}"
        table.add_row(kind, fmt(Estimate(**d["refused_unsafe"])), fmt(Estimate(**d["refused_safe"])), gap,
                      f"{d['discriminated']}/{d['pairs']}", str(d["refused_both"]), str(d["answered_both"]),
                      str(d["inverted"]), style="bold" if kind == "all" else None)
    console.print(table)


def _print_run(run) -> None:
    from charter.evals.report import fmt

    for warning in run.warnings:  # first, in words, before any number
        console.print(
            Panel(
                esc(warning),
                title="[bold red]do not trust the judged numbers[/]",
                border_style="red",
            )
        )
    if run.judge_checks:
        checks = Table(title="Judge checks")
        for name in ("check", "value", "pass mark", "result"):
            checks.add_column(name)
        marks = {True: "[green]pass[/]", False: "[bold red]FAIL[/]", None: "n/a"}
        for c in run.judge_checks["checks"]:
            value = "n/a" if c["value"] is None else f"{c['value']:.2f}"
            checks.add_row(c["name"], value, f"{c['threshold']:.2f}", marks[c["passed"]])
        console.print(checks)
    for result in run.suites.values():
        table = Table(title=esc(f"{result.suite}  ({result.engine['name']})"))
        for name in ("metric", "value [95% CI]", "n", "unscored", "evidence?"):
            table.add_column(name)
        for name, estimate in result.summary().items():
            trusted = result.trusted(name)
            table.add_row(
                esc(name),
                fmt(estimate),
                str(estimate.n),
                str(estimate.unscored),
                "yes" if trusted else "no: judge failed checks",
                style=None if trusted else "dim",
            )
        console.print(table)
        _print_groups(result)
        _print_discrimination(result)
        for warning in result.warnings[1 if result.judge_trusted is False else 0 :]:
            console.print(f"[yellow]note:[/] {esc(warning)}")


def _print_groups(result) -> None:
    """The per-clause (or per-category) table of the suite's first metric."""
    from charter.evals.report import fmt

    first = next(iter(result.metrics))
    groups = result.by_group()[first]
    if len(groups) < 2:
        return
    note = "" if result.trusted(first) else "  [dim](untrusted judge)[/]"
    table = Table(title=esc(f"{result.suite}: {first} per clause / category") + note)
    for name in ("clause", "value [95% CI]", "n"):
        table.add_column(name)
    for group, estimate in groups.items():
        table.add_row(esc(group), fmt(estimate), str(estimate.n))
    console.print(table)


def compare_command(
    before: Path = typer.Argument(..., help="Run folder (or eval.json) before the change"),
    after: Path = typer.Argument(..., help="Run folder (or eval.json) after the change"),
    fail_on_regression: float = typer.Option(
        None,
        "--fail-on-regression",
        help="Exit 1 when a clause regresses by more than this, interval excluding 0",
    ),
    html: Path = typer.Option(None, "--html", help="Write the comparison as an HTML report"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Per-suite and per-clause deltas with 95% intervals; a CI gate with --fail-on-regression."""
    from charter.evals import compare_runs, load_eval
    from charter.evals.report import fmt, render_comparison_html

    threshold = fail_on_regression if fail_on_regression is not None else 0.05
    comparison = compare_runs(load_eval(before), load_eval(after), threshold=threshold, seed=seed)
    for warning in comparison.warnings:
        console.print(f"[bold red]warning:[/] {esc(warning)}")
    table = Table(title=esc(f"{before} -> {after}"))
    for name in ("suite", "metric", "clause", "before", "after", "delta [95% CI]", "status"):
        table.add_column(name)
    colours = {"improved": "green", "regressed": "red", "unchanged": "white"}
    for row in comparison.rows:
        status = f"[{colours[row.status]}]{row.status}[/]" + _status_note(row)
        table.add_row(
            esc(row.suite),
            esc(row.metric),
            esc(row.group),
            fmt(row.before),
            fmt(row.after),
            fmt(row.delta),
            status,
        )
    console.print(table)
    if html:
        html.write_text(render_comparison_html(comparison), encoding="utf-8")
        console.print(f"Wrote {html}")
    if fail_on_regression is None:
        return
    if comparison.failed:
        for row in comparison.regressions():
            where = esc(f"{row.suite}/{row.metric}/{row.group}")
            console.print(f"[bold red]REGRESSED[/] {where}: {fmt(row.delta)}")
        raise typer.Exit(1)
    console.print(
        f"[green]gate passed[/]: no regression larger than {threshold} with an interval "
        "excluding zero"
    )


def _status_note(row) -> str:
    if row.too_few:
        return f" (n={row.delta.n}: too few to tell)"
    return "" if row.gated else " (not gated)"


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
    app.command("compare")(compare_command)
