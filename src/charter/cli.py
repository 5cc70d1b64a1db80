"""The `charter` command: a thin typer app. Each command module parses, calls one function, prints.

Heavy libraries (torch, transformers, llama.cpp) are imported inside commands, so `charter --help`,
`lint` and `show` start instantly.
"""

from __future__ import annotations

import errno
import sqlite3
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
    from charter.commands import constitution, data, doctor, engines, evals, guard, run, scrutiny, serve, train, view

    for module in (constitution, engines, doctor, data, train, evals, scrutiny, guard, serve, run, view):
        module.register(app)


_MACHINE_ERRORS = {
    errno.ENOSPC: "free some disk space", errno.EDQUOT: "free some of your disk quota",
    errno.EROFS: "the filesystem is read-only; write to another --out", errno.EFBIG: "a file grew past the "
    "filesystem's size limit; use another filesystem", errno.EACCES: "check the permissions of that path",
    errno.EPERM: "check the permissions of that path",
}


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
    except OSError as exc:  # the machine, not the input: a full or read-only disk, a file too large
        if exc.errno not in _MACHINE_ERRORS:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        err_console.print(f"[bold red]error:[/] {exc.strerror}{where}; {_MACHINE_ERRORS[exc.errno]}. Finished "
                          f"work is kept: rerun the same command to resume", highlight=False, soft_wrap=True)
        sys.exit(2)
    except sqlite3.OperationalError as exc:  # SQLite's words for the same: disk full, read-only, I/O error
        text = str(exc)
        if not any(word in text for word in ("full", "readonly", "disk I/O", "unable to open")):
            raise
        err_console.print(f"[bold red]error:[/] the run store could not be written ({text}); free disk space or "
                          f"check the folder is writable, then rerun to resume", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
