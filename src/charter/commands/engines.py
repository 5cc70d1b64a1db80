"""`charter chat`: one prompt through any engine, to check an engine string before a long run."""

from __future__ import annotations

import typer
from rich.console import Console

from charter.errors import CharterError

console = Console()


def chat(prompt: str = typer.Argument(..., help="The user message"),
         engine: str = typer.Option("llamacpp:embedded", "--engine", "-e",
                                    help="Engine string, e.g. llamacpp:embedded, hf:PATH, "
                                         "openai:URL#MODEL, vllm:MODEL (see docs/engines.md)"),
         system: str = typer.Option(None, "--system", help="System message"),
         max_tokens: int = typer.Option(256, "--max-tokens", min=1),
         temperature: float = typer.Option(0.7, "--temperature", min=0.0),
         seed: int = typer.Option(0, "--seed"),
         choose: str = typer.Option(None, "--choose",
                                    help="Comma-separated options: print each one's probability "
                                         "as the answer instead of generating"),
         prefix: str = typer.Option("", "--prefix",
                                    help="With --choose: text the answer starts with, e.g. 'The answer is ('")) -> None:
    """Send one prompt to an engine and print the answer (or option probabilities with --choose)."""
    from charter.engines.base import ChoiceRequest, GenerationRequest
    from charter.engines.registry import make_engine

    messages = (({"role": "system", "content": system},) if system else ()) + \
        ({"role": "user", "content": prompt},)
    model = make_engine(engine)
    try:
        if choose is not None:
            options = tuple(o.strip() for o in choose.split(",") if o.strip())
            if not options:
                raise CharterError("--choose needs options separated by commas, e.g. --choose A,B")
            probs = model.choose(ChoiceRequest(messages, options, assistant_prefix=prefix))
            for option, p in sorted(probs.items(), key=lambda kv: -kv[1]):
                console.print(f"{p:8.4f}  {option}", highlight=False)
            return
        request = GenerationRequest(messages, max_tokens=max_tokens, temperature=temperature, seed=seed)
        completion = model.generate([request])[0][0]
        console.print(completion.text, highlight=False, markup=False)
        console.print(f"[dim]{completion.completion_tokens} tokens, finish: "
                      f"{completion.finish_reason}, engine: {model.fingerprint}[/]", highlight=False)
    finally:
        model.close()


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
