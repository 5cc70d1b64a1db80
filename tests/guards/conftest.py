from __future__ import annotations

import pytest

from tests.serve.conftest import counting_engine, real_engine  # noqa: F401  (the real engine, shared)


@pytest.fixture(scope="session")
def embedder():
    from charter.embeddings import Embedder

    return Embedder()
