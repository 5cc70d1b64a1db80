"""`charter doctor`: versions, CPU, builds, and a crash-safe engine check."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console()


def doctor(cached: bool = typer.Option(False, "--cached",
                                       help="Reuse a passing engine check of this build (default: run it afresh)"),
           expect_build: str = typer.Option(None, "--expect-build",
                                            help="Fail unless the llama.cpp build is of this kind: "
                                                 "portable | all-variants")) -> None:
    """Print what charter runs on and check that its engine works here; exit 1 if a check fails."""
    from charter.doctor import diagnose

    report = diagnose(use_cache=cached, expect=expect_build)
    for name, value in report.facts:
        console.print(f"[bold]{name:>22}[/]  {value}", highlight=False, soft_wrap=True)
    console.print()
    for check in report.checks:
        mark = "[green]ok  [/]" if check.ok else "[bold red]FAIL[/]"
        console.print(f"{mark} {check.name}: {check.detail}", highlight=False, soft_wrap=True)
        if not check.ok and check.fix:
            console.print(f"     fix: {check.fix}", highlight=False, soft_wrap=True, markup=False)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
