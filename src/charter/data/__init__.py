"""Synthetic data from a constitution, stored in a resumable run store (see docs/data.md).

Each stage is a plain function the pipeline calls directly; each returns a summary dict:

    run_prompts(store, constitution, engine, ...)        prompts per clause, four kinds
    run_sl(store, constitution, engine, prompts, ...)    SL-CAI critique/revision chains
    run_prefs(store, constitution, engine, prompts, ...) preference pairs (contrastive or AI feedback)
    run_character(store, constitution, engine, ...)      trait distillation pairs + introspection
    run_understanding(store, constitution, engine, ...)  Q&A about the constitution itself

`export_run(store, out, fmt)` writes the SFT and preference datasets; `run_stats(store)` sums a run.
Imports are lazy so `import charter.data` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "run_prompts": "charter.data.promptgen",
    "generated_prompts": "charter.data.promptgen",
    "run_sl": "charter.data.critique",
    "run_prefs": "charter.data.feedback",
    "run_judged": "charter.data.feedback",
    "JudgeConfig": "charter.data.feedback",
    "run_contrastive": "charter.data.contrastive",
    "run_character": "charter.data.character",
    "run_understanding": "charter.data.understanding",
    "export_run": "charter.data.export",
    "run_stats": "charter.data.stats",
    "PromptItem": "charter.data.prompts",
    "load_prompts": "charter.data.prompts",
    "example_prompts": "charter.data.prompts",
    "default_prompts": "charter.data.promptgen",
    "interleave": "charter.data.prompts",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'charter.data' has no attribute {name!r}")
