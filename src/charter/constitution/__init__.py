"""The constitution as data: model, loading, layering, rendering, linting."""

from charter.constitution.load import load_constitution, load_overlay
from charter.constitution.layers import resolve
from charter.constitution.model import (
    Constitution,
    Default,
    HardLine,
    Overlay,
    Principle,
    Trait,
)
from charter.constitution.render import render_system_prompt, sample_principles

__all__ = [
    "Constitution",
    "Default",
    "HardLine",
    "Overlay",
    "Principle",
    "Trait",
    "load_constitution",
    "load_overlay",
    "render_system_prompt",
    "resolve",
    "sample_principles",
]
