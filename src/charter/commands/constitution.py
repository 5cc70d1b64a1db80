"""`charter init`, `charter lint`, `charter show`: write, check and look at a constitution."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from charter.errors import CharterError, ConstitutionError
from charter.shipped import example_path as shipped_example_path

console = Console()

# What `charter init` writes: (package resource, name in the target folder).
_INIT_FILES = (
    ("constitution.yaml", "constitution.yaml"),
    ("operator.yaml", "operator.yaml"),
    ("user.yaml", "user.yaml"),
    ("short_constitution.yaml", "examples/short_constitution.yaml"),
    ("long_constitution.md", "examples/long_constitution.md"),
    ("prompts/red_team.jsonl", "prompts/red_team.jsonl"),
    ("prompts/helpful.jsonl", "prompts/helpful.jsonl"),
    ("prompts/borderline.jsonl", "prompts/borderline.jsonl"),
    ("prompts/introspection.jsonl", "prompts/introspection.jsonl"),
)


def example_path(name: str) -> Path:
    """Path of a file shipped in charter's examples package data."""
    return shipped_example_path(name)


def init(directory: Path = typer.Argument(Path("."), help="Folder to write the example files into"),
         force: bool = typer.Option(False, "--force", help="Overwrite files that exist")) -> None:
    """Write an example constitution, overlays and small prompt sets to start from."""
    targets = [(example_path(src), directory / dst) for src, dst in _INIT_FILES]
    clashes = [str(dst) for _, dst in targets if dst.exists()]
    if clashes and not force:
        raise CharterError(f"{clashes[0]} already exists; pass --force to overwrite or choose another folder")
    for src, dst in targets:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    console.print(f"Wrote {len(targets)} files to {directory}/. Next: [bold]charter lint "
                  f"{directory / 'constitution.yaml'}[/]")


def lint(file: Path = typer.Argument(..., help="Constitution YAML or JSON"),
         strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings too")) -> None:
    """Validate a constitution and print its clauses by kind and every problem with its location."""
    from charter.constitution.lint import lint as lint_constitution
    from charter.constitution.load import clause_lines, load_constitution

    try:
        constitution = load_constitution(file)
    except ConstitutionError as exc:
        _print_problems(exc.problems)
        raise typer.Exit(2) from None
    table = Table(title=f"{constitution.name} v{constitution.version}  (hash {constitution.content_hash()})")
    table.add_column("kind")
    table.add_column("count", justify="right")
    table.add_column("ids")
    for kind, clauses in constitution.clauses_by_kind().items():
        table.add_row(kind, str(len(clauses)), ", ".join(c.id for c in clauses))
    console.print(table)
    warnings = lint_constitution(constitution, file, clause_lines(file))
    if warnings:
        _print_problems(warnings)
    else:
        console.print("[green]no problems found[/]")
    if strict and any(w.severity == "warning" for w in warnings):
        raise typer.Exit(1)


def _print_problems(problems) -> None:
    table = Table(title="problems")
    for column in ("severity", "location", "field", "message"):
        table.add_column(column, overflow="fold")
    for p in problems:
        colour = {"error": "red", "warning": "yellow"}.get(p.severity, "cyan")
        table.add_row(f"[{colour}]{p.severity}[/]", Text(f"{p.file}:{p.line}"), Text(p.field), Text(p.message))
    console.print(table)


def show(file: Path = typer.Argument(..., help="Constitution YAML or JSON"),
         operator: Path | None = typer.Option(None, "--operator", help="Operator overlay"),
         user: Path | None = typer.Option(None, "--user", help="User overlay"),
         style: str = typer.Option("full", "--style", help="System prompt style: full | compact")) -> None:
    """Print the effective constitution (base + overlays) and the system prompt it renders."""
    from charter.constitution import load_constitution, load_overlay, render_system_prompt, resolve

    if style not in ("full", "compact"):
        raise CharterError(f"--style {style!r} is not known; use full or compact")
    base = load_constitution(file)
    effective = resolve(base, load_overlay(operator) if operator else None, load_overlay(user) if user else None)
    table = Table(title=f"effective constitution: {effective.name} v{effective.version}")
    table.add_column("layers")
    table.add_column("hash")
    table.add_row(" -> ".join(effective.layers), effective.content_hash())
    console.print(table)
    defaults = Table(title="defaults in effect")
    for column in ("id", "value", "adjustable by", "instruction"):
        defaults.add_column(column, overflow="fold")
    for d in effective.defaults:
        defaults.add_row(d.id, d.value, Text(permissions(d)), Text(d.instruction()))
    console.print(defaults)
    if effective.waived:
        console.print("waived protections: " + ", ".join(effective.waived))
    console.rule("system prompt")
    # Plain print, not rich: the prompt is meant to be copied, so no wrapping or markup.
    print(render_system_prompt(effective, style))


def import_markdown(file: Path = typer.Argument(..., help="A Markdown constitution (headings become sections)"),
                    out: Path | None = typer.Option(None, "--out", help="YAML file to write (default: FILE.yaml)"),
                    force: bool = typer.Option(False, "--force", help="Overwrite the output file")) -> None:
    """Write a Markdown document out as a constitution YAML file: prose as titled sections, front matter kept."""
    from charter.constitution.load import read_markdown_data
    from charter.constitution.markdown import markdown_to_yaml
    from charter.rows import write_text_atomic

    target = out or file.with_suffix(".yaml")
    if target.exists() and not force:
        raise CharterError(f"{target} already exists; pass --force to overwrite or choose another --out")
    data = read_markdown_data(file)
    write_text_atomic(target, markdown_to_yaml(data))
    console.print(f"Wrote {target}: {len(data.get('sections', []))} sections. Next: write its rules as clauses "
                  f"and run [bold]charter lint {target}[/]")


def permissions(default) -> str:
    """Who may switch a default in the effective constitution, with limits and locks named."""
    who = [f"{p} (only {', '.join(default.allowed_values[p])})" if p in default.allowed_values else p
           for p in default.adjustable_by]
    locks = [f"{p} locked by {label}" for p, label in default.locked_by.items()]
    return "; ".join(filter(None, [", ".join(who) or "no one", ", ".join(locks)]))


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("lint")(lint)
    app.command("show")(show)
    app.command("import")(import_markdown)
