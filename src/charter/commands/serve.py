"""`charter serve` (the OpenAI-compatible server) and `charter operators` (API keys and overlays)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from charter.errors import CharterError

console = Console()
operators_app = typer.Typer(help="Manage who may call `charter serve`: API keys (stored hashed), overlays, "
                                 "limits.", no_args_is_help=True)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve_command(
    constitution: Path = typer.Option(..., "--constitution", "-c", help="Base constitution (YAML/JSON)"),
    engine: str = typer.Option("llamacpp:embedded", "--engine", "-e", help="Model that answers, e.g. "
                               "llamacpp:embedded"),
    operators: Path = typer.Option(Path("operators.yaml"), "--operators", help="Operators file (keys, "
                                   "overlays, limits); add one with `charter operators add`"),
    guard_engine: str = typer.Option(None, "--guard-engine", "-g", help="Judge model for hard-line guards "
                                     "(default: --engine; operators may choose their own)"),
    guard: Path = typer.Option(None, "--guard", help="A trained guard (`charter guard train RUN` writes "
                               "RUN/guard): its classifier screens requests and answers for its hard lines"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (loopback by default)"),
    port: int = typer.Option(8000, "--port", "-p"),
    audit: Path = typer.Option(Path("charter-audit.sqlite"), "--audit", help="Audit log (SQLite)"),
    model_name: str = typer.Option("charter", "--model-name", help="Model id clients send and /v1/models lists"),
    prompt_style: str = typer.Option("auto", "--prompt-style", help="auto, full or compact system prompt "
                                     "(auto: compact for llama.cpp engines)"),
    max_body_bytes: int = typer.Option(256 * 1024, "--max-body-bytes", help="Larger request bodies get 413"),
    guard_reads_overlays: bool = typer.Option(False, "--guard-reads-overlays", help="Also refuse an operator "
                                              "whose overlay sentence the input guard reads as crossing a hard "
                                              "line (catches instructions without lifting words; refuses more "
                                              "benign texts too)"),
) -> None:
    """Serve the constitution over an OpenAI-compatible API, with overlays and hard-line guards."""
    import uvicorn

    from charter.session import open_session

    if prompt_style not in ("auto", "full", "compact"):
        raise CharterError(f"--prompt-style {prompt_style!r} is not one of auto, full, compact")
    listed = _operators(operators)
    # The server's engines live as long as the session: opened before it starts, closed after it stops.
    with ExitStack() as stack:
        with console.status(f"loading {engine}, the guard model and {len(listed)} operator(s) ..."):
            session = stack.enter_context(open_session(constitution, {"policy": engine,
                                                                      "guard": guard_engine or engine}))
            app = _app(session, listed, audit, model_name, prompt_style, max_body_bytes, guard,
                       guard_reads_overlays)
        _print_summary(app.state.server, host, port)
        if host not in LOOPBACK:
            console.print(f"[yellow]warning:[/] listening on {host}: put TLS in front of it; keys travel in "
                          f"headers")
        uvicorn.run(app, host=host, port=port, log_level="warning")


def _trained(state) -> str:
    classifier = state.guard.classifier if state.guard else None
    return f"{classifier.version} ({len(classifier.lines)} lines)" if classifier else "-"


def _operators(path: Path) -> list:
    from charter.serve.operators import load_operators

    listed = load_operators(path)
    if not listed:
        raise CharterError(f"{path} lists no operators, so no key could call the server; add one with "
                           f"`charter operators add ID --operators {path}`")
    return listed


def _app(session, listed, audit, model_name, prompt_style, max_body_bytes, guard=None,
         reads_overlays=False):
    from charter.serve.app import ServeSettings, create_app

    settings = ServeSettings(model_name=model_name, audit_path=audit, prompt_style=prompt_style,
                             max_body_bytes=max_body_bytes, guard_model=guard,
                             guard_reads_overlays=reads_overlays)
    main, guard = session.engines["policy"], session.engines["guard"]
    return create_app(session.constitution, main, listed, settings,
                      guard_engine=guard if guard is not main else None)


def _print_summary(server, host: str, port: int) -> None:
    table = Table(title=f"charter serve on http://{host}:{port}/v1  (model '{server.settings.model_name}')")
    for column in ("operator", "constitution hash", "layers", "hard lines", "guard judge", "trained guard",
                   "rpm / burst", "max_tokens"):
        table.add_column(column)
    for state in server.states.values():
        limits = state.operator.limits
        judge = state.guard.judge_slot.name if state.guard and state.guard.judge_slot else "-"
        table.add_row(state.operator.id, state.constitution.content_hash(), " > ".join(state.constitution.layers),
                      str(len(state.constitution.hard_lines)), judge, _trained(state),
                      f"{limits.requests_per_minute:g} / "
                      f"{limits.burst}", str(limits.max_tokens))
    console.print(table)
    console.print(f"engine {server.slot.name}; system prompt {server.style}; audit log "
                  f"{server.settings.audit_path}")


@operators_app.command("add")
def add_command(
    operator_id: str = typer.Argument(..., help="Operator id, e.g. acme"),
    operators: Path = typer.Option(Path("operators.yaml"), "--operators", help="Operators file (created if "
                                   "missing)"),
    overlay: str = typer.Option(None, "--overlay", help="Overlay file, relative to the operators file"),
    guard_engine: str = typer.Option(None, "--guard-engine", help="Judge model for this operator's guards"),
    requests_per_minute: float = typer.Option(60.0, "--rpm", help="Rate limit (token bucket refill)"),
    burst: int = typer.Option(10, "--burst", help="Requests allowed at once"),
    max_tokens: int = typer.Option(512, "--max-tokens", help="Largest max_tokens a request may ask for"),
    rotate: bool = typer.Option(False, "--rotate", help="Give an existing operator a new key (the old one stops "
                                "working)"),
) -> None:
    """Add an operator (or rotate its key) and print its API key once; only the key's hash is stored."""
    from charter.serve.operators import add_operator, load_operators

    limits = {"requests_per_minute": requests_per_minute, "burst": burst, "max_tokens": max_tokens}
    key = add_operator(operators, operator_id, overlay=overlay, guard_engine=guard_engine, limits=limits,
                       rotate=rotate)
    load_operators(operators)  # the file must still load, overlay included
    console.print(f"operator [bold]{operator_id}[/] {'has a new key' if rotate else 'added'} in {operators}.")
    console.print("API key (shown once, store it now; only its hash is kept):")
    print(key)


@operators_app.command("list")
def list_command(operators: Path = typer.Option(Path("operators.yaml"), "--operators")) -> None:
    """List operators, their overlays and limits (never keys or hashes)."""
    from charter.serve.operators import load_operators

    table = Table(title=str(operators))
    for column in ("operator", "overlay", "guard judge", "rpm / burst", "max_tokens"):
        table.add_column(column)
    for op in load_operators(operators):
        overlay = (op.overlay.name or "(inline)") if op.overlay else "-"
        table.add_row(op.id, overlay, op.guard_engine or "(server's)", f"{op.limits.requests_per_minute:g} / "
                      f"{op.limits.burst}", str(op.limits.max_tokens))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    app.add_typer(operators_app, name="operators")
