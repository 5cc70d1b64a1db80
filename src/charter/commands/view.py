"""`charter view RUN [RUN ...]`: look at a run's data in a browser (read-only, on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from charter.errors import CharterError

console = Console()


def view_command(
    runs: list[Path] = typer.Argument(..., help="Run folders (the --out of charter run / generate)"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)"),
    port: int = typer.Option(0, "--port", "-p", help="Port; 0 picks a free one"),
    export_html: Path = typer.Option(None, "--export-html", help="Write a static snapshot of every page "
                                     "into this folder instead of serving"),
) -> None:
    """Serve a local, read-only viewer of runs: records, chains, pairs, datasets, evals, training."""
    from charter.view.app import ViewApp, make_server
    from charter.view.runs import RunCatalog

    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]warning:[/] serving on {host}: anyone who can reach it can read these runs")
    catalog = RunCatalog(list(runs))
    app = ViewApp(catalog)
    if export_html is not None:
        from charter.view.export import export_site

        pages = export_site(app, export_html)
        console.print(f"wrote {pages} pages to {export_html}/index.html")
        return
    try:
        server = make_server(app, host, port)
    except OSError as exc:
        raise CharterError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port") from None
    url = f"http://{host}:{server.server_address[1]}/"
    console.print(f"charter view: {len(catalog.runs)} run(s) at [bold]{url}[/] (read-only; Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        catalog.close()


def register(app: typer.Typer) -> None:
    app.command("view")(view_command)
