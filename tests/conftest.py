"""Shared fixtures. Area-specific fixtures (engines, servers) live in each tests/<area>/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from charter.commands.constitution import example_path
from tests.servers import (  # noqa: F401  (fixtures for every area)
    fake_hub,
    gemma_gguf,
    gemma_server,
    llama_server,
    scripted_server,
)


@pytest.fixture(scope="session")
def example_constitution_path() -> Path:
    return example_path("constitution.yaml")


@pytest.fixture(scope="session")
def example_constitution(example_constitution_path):
    from charter.constitution import load_constitution

    return load_constitution(example_constitution_path)


@pytest.fixture(scope="session")
def cli():
    """Invoke `charter ...` in-process through the real typer app, registered as main() does."""
    from typer.testing import CliRunner

    from charter.cli import _register, app

    _register()
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})

    return invoke
