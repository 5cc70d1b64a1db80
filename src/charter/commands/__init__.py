"""CLI command groups; each module has `register(app)` and keeps its heavy imports inside commands."""
