"""Files shipped inside the charter package, located in one place.

  examples/   the example constitution, overlays, few-shot chains and prompt sets (`charter init`)
  evals/data/ the built-in eval sets
  serve/data/ the guard's gold sets
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped_path(*parts: str) -> Path:
    """A file or folder inside the installed package, e.g. shipped_path("examples", "user.yaml")."""
    return Path(str(resources.files("charter").joinpath(*parts)))


def example_path(name: str) -> Path:
    """An example file: constitution.yaml, fewshot.yaml, operator.yaml, prompts/red_team.jsonl, ..."""
    return shipped_path("examples", name)


def example_constitution_path() -> Path:
    return example_path("constitution.yaml")
