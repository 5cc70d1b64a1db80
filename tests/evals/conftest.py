"""One real embedded engine for the whole test session (the CLI runner is in tests/conftest.py)."""

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
