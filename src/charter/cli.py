"""The `charter` command: a thin typer app. Each command module parses, calls one function, prints.

Heavy libraries (torch, transformers, llama.cpp) are imported inside commands, so `charter --help`,
`lint` and `show` start instantly.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from charter.errors import CharterError

app = typer.Typer(
    name="charter",
    help="Constitutional AI: from a written constitution to data, a trained model, and evidence.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)


def _register() -> None:
    from charter.commands import constitution, data, doctor, engines, evals, run, serve, train

    for module in (constitution, engines, doctor, data, train, evals, serve, run):
        module.register(app)


def main() -> None:
    _register()
    try:
        app(prog_name="charter")
    except CharterError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]; rerun the same command to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
