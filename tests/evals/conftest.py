"""One real embedded engine for the whole test session, plus a CLI runner on the real app."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def embedded():
    from charter.engines.registry import make_engine

    engine = make_engine("llamacpp:embedded")
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def embedded_checks(embedded):
    """The judge checks of the embedded model, run once (small: 3 gold items per check)."""
    from charter.evals import Judge, check_judge

    return check_judge(Judge(embedded), limit=3)


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
