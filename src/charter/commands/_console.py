"""What every command prints with: one console, one progress bar (rate and ETA), one stage table."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

console = Console()
ProgressFn = Callable[[str, int, int], None]  # (description, done, total)


class RateColumn(ProgressColumn):
    """Units per second (or seconds per unit when slower than one a second)."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        if not speed:
            return Text("", style="progress.data.speed")
        text = f"{speed:.1f}/s" if speed >= 1 else f"{1 / speed:.1f}s/it"
        return Text(text, style="progress.data.speed")


def progress_bar(transient: bool = False) -> Progress:
    """Description, bar, done/total, rate, elapsed and time remaining."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
                    transient=transient)


def with_progress(call: Callable[[ProgressFn], dict]) -> dict:
    """Run `call(progress)` under one bar that the callback moves."""
    with progress_bar() as bar:
        task = bar.add_task("starting", total=None)

        def update(description: str, done: int, total: int) -> None:
            bar.update(task, description=description, completed=done, total=total)

        return call(update)


STAGE_COLUMNS = (("records", "records"), ("reused", "reused"), ("abstentions", "abstentions"),
                 ("prompt tokens", "prompt_tokens"), ("completion tokens", "completion_tokens"),
                 ("engine s", "engine_seconds"), ("total s", "seconds"))


def print_stage_summary(summary: dict, folder) -> None:
    """A data stage's figures as a table, then whatever else it reported on one line."""
    table = Table(title=f"{summary['stage']}: {folder}")
    for title, _ in STAGE_COLUMNS:
        table.add_column(title, justify="right")
    table.add_row(*(str(summary[key]) for _, key in STAGE_COLUMNS))
    console.print(table)
    shown = {"stage", *(key for _, key in STAGE_COLUMNS)}
    rest = {k: v for k, v in summary.items() if k not in shown}
    if rest:
        console.print("  " + ", ".join(f"{k}={v}" for k, v in rest.items()), highlight=False)
