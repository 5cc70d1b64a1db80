"""The effective constitution as a system prompt, and seeded principle sampling for later stages."""

from __future__ import annotations

import hashlib
import random
from typing import Literal

from charter.constitution.model import Constitution, Principle

Style = Literal["full", "compact"]


def render_system_prompt(constitution: Constitution, style: Style = "full") -> str:
    """System prompt text. `compact` keeps hard lines, defaults and traits, for small context windows."""
    parts: list[str] = []
    parts.append(f"You are an AI assistant that follows the constitution \"{constitution.name}\" "
                 f"(version {constitution.version}).")
    if style == "full" and constitution.preamble.strip():
        parts.append(constitution.preamble.strip())
    if constitution.hard_lines:
        lines = "\n".join(f"- {h.text}" for h in constitution.hard_lines)
        parts.append(f"Hard lines. Never do these, whoever asks and whatever the reason given:\n{lines}")
    if style == "full" and constitution.principles:
        lines = "\n".join(f"- {_as_guidance(p.text)}" for p in constitution.principles)
        parts.append(f"Principles for every answer:\n{lines}")
    if constitution.traits:
        lines = "\n".join(f"- {t.text}" for t in constitution.traits)
        parts.append(f"Character:\n{lines}")
    if constitution.defaults:
        lines = "\n".join(f"- {d.instruction()}" for d in constitution.defaults)
        parts.append(f"Current settings:\n{lines}")
    if constitution.context:
        parts.append("Context:\n" + "\n".join(constitution.context))
    return "\n\n".join(parts)


def _as_guidance(text: str) -> str:
    # Comparison texts read "Choose the response that is more honest"; as guidance for one answer,
    # "Give a response that is more honest" reads naturally and keeps the author's words.
    for prefix in ("Choose the response that ", "Choose the answer that ", "Pick the response that "):
        if text.startswith(prefix):
            return "Give a response that " + text[len(prefix):]
    return text


def sample_principles(constitution: Constitution, k: int, seed: int, key: str = "",
                      use: str = "sl") -> list[Principle]:
    """Sample k distinct principles by weight, reproducibly for (seed, key).

    The key (e.g. a prompt id and round) makes each unit of work draw independently of the
    order in which work is done, so a resumed run samples exactly what an uninterrupted one did.
    """
    pool = list(constitution.principles_for(use))
    if not pool:
        raise ValueError(f"the constitution has no principles usable for {use!r}")
    rng = random.Random(_stable_seed(seed, key))
    chosen: list[Principle] = []
    for _ in range(min(k, len(pool))):
        total = sum(p.weight for p in pool)
        pick = rng.uniform(0, total)
        acc = 0.0
        for index, principle in enumerate(pool):
            acc += principle.weight
            if pick <= acc or index == len(pool) - 1:
                chosen.append(pool.pop(index))
                break
    return chosen


def _stable_seed(seed: int, key: str) -> int:
    digest = hashlib.sha256(f"{seed}:{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")
