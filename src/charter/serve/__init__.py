"""`charter serve`: an OpenAI-compatible server with operator/user overlays and hard-line guards.

Python API:

    from charter.serve import create_app, ServeSettings, load_operators, add_operator
    app = create_app(constitution, engine, load_operators("operators.yaml"), ServeSettings())

Heavy pieces (FastAPI, the embedding model) load only when these names are used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GuardConfig", "ServeSettings", "add_operator", "create_app", "load_operators"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "ServeSettings"):
        from charter.serve import app

        return getattr(app, name)
    if name == "GuardConfig":
        from charter.serve.guard import GuardConfig

        return GuardConfig
    if name in ("add_operator", "load_operators"):
        from charter.serve import operators

        return getattr(operators, name)
    raise AttributeError(name)
