"""The effective constitution as a system prompt, and seeded principle sampling for later stages.

Two styles. `full` is the document: prose (sections or preamble), priorities, every clause with
the author's reasons, examples left out (they are data, not instructions). `compact` is what a
small context window can carry and still hold the constitution's substance: priorities, hard
lines, protections, every principle's text, traits, defaults and context, with reasons and prose
dropped. `fit_system_prompt` picks the richest render that fits an engine's budget and says so
when even the compact one does not.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from charter.constitution.model import Constitution, Principle

Style = Literal["full", "compact"]


def render_system_prompt(constitution: Constitution, style: Style = "full", *, reasons: bool | None = None,
                         prose: bool | None = None) -> str:
    """System prompt text. `reasons`/`prose` (default: on in `full`, off in `compact`) keep the
    author's rationale and the document's prose; `fit_system_prompt` turns them off one by one."""
    full = style == "full"
    reasons = full if reasons is None else reasons
    prose = full if prose is None else prose
    c = constitution
    parts: list[str] = [f"You are an AI assistant that follows the constitution \"{c.name}\" "
                        f"(version {c.version})."]
    if prose:
        parts += _prose(c)
    if c.principals != type(c).model_fields["principals"].default and len(c.principals) > 1:
        parts.append(_principals(c, reasons))
    if c.hard_lines:
        parts.append("Hard lines. Never do these, whoever asks and whatever the reason given:\n"
                     + "\n".join(_item(h.text, h.rationale, reasons) for h in c.hard_lines))
    if c.protections:
        parts.append(_protections(c, reasons))
    if c.principles:
        parts.append(_principles(c, reasons))
    if c.traits:
        parts.append("Character:\n" + "\n".join(_item(t.text, t.rationale, reasons) for t in c.traits))
    if c.defaults:
        parts.append("Current settings:\n" + "\n".join(
            _item(d.instruction() + (" (a default: depart from it when the context plainly calls for it)"
                                     if d.override == "implicit" else ""), d.rationale, reasons)
            for d in c.defaults))
    if c.context:
        parts.append("Context:\n" + "\n".join(c.context))
    return "\n\n".join(parts)


def _item(text: str, rationale: str | None, reasons: bool) -> str:
    return f"- {text}" + (f" Why: {rationale}" if reasons and rationale else "")


def _prose(c: Constitution) -> list[str]:
    parts = [c.preamble.strip()] if c.preamble.strip() else []
    for section in c.sections:
        parts.append(f"{'#' * section.level} {section.title}\n{section.text.strip()}".rstrip())
    return parts


def _principals(c: Constitution, reasons: bool) -> str:
    order = " > ".join(p.id for p in c.principals)
    lines = [f"- {p.id}: {p.description}" + (f" Why: {p.rationale}" if reasons and p.rationale else "")
             for p in c.principals if p.description]
    return f"Whose instructions weigh most, in order of trust: {order}." + ("\n" + "\n".join(lines) if lines else "")


def _protections(c: Constitution, reasons: bool) -> str:
    waived = {entry.split(":", 1)[0]: entry.split(":", 1)[1] for entry in c.waived}
    lines = []
    for p in c.protections:
        line = _item(p.text, p.rationale, reasons)
        if p.id in waived:
            who = waived[p.id].split(":", 1)[0]
            line += (f" (The {who} has waived this for themselves in this conversation; it applies again "
                     f"as soon as they sincerely ask.)")
        lines.append(line)
    return "Protections for the user, which no operator instruction overrides:\n" + "\n".join(lines)


def _principles(c: Constitution, reasons: bool) -> str:
    if c.priorities is None or not c.priorities.tiers:
        return "Principles for every answer:\n" + "\n".join(
            _item(_as_guidance(p.text), p.rationale, reasons) for p in c.principles)
    by_id = {p.id: p for p in c.principles}
    how = ("higher priorities generally dominate lower ones, but weigh them all together in forming a judgement"
           if c.priorities.mode == "holistic" else
           "a higher priority always decides before a lower one is considered")
    intro = f"Priorities, highest first ({how}):"
    if reasons and c.priorities.rationale:
        intro += f" Why: {c.priorities.rationale}"
    blocks = [intro]
    placed: set[str] = set()
    for index, tier in enumerate(c.priorities.tiers, 1):
        head = f"{index}. {tier.text}" + (f" Why: {tier.rationale}" if reasons and tier.rationale else "")
        items = [_item(_as_guidance(by_id[i].text), by_id[i].rationale, reasons) for i in tier.principles]
        placed.update(tier.principles)
        blocks.append("\n".join([head, *("   " + line for line in items)]))
    rest = [p for p in c.principles if p.id not in placed]
    if rest:
        blocks.append("Other principles:\n" + "\n".join(_item(_as_guidance(p.text), p.rationale, reasons)
                                                       for p in rest))
    return "\n".join(blocks)


def _as_guidance(text: str) -> str:
    # Comparison texts read "Choose the response that is more honest"; as guidance for one answer,
    # "Give a response that is more honest" reads naturally and keeps the author's words.
    for prefix in ("Choose the response that ", "Choose the answer that ", "Pick the response that "):
        if text.startswith(prefix):
            return "Give a response that " + text[len(prefix):]
    return text


@dataclass(frozen=True)
class FittedPrompt:
    text: str
    tokens: int
    rendered_as: str  # "full", "full without reasons", "compact", "compact (over budget)"
    warning: str | None


def fit_system_prompt(constitution: Constitution, budget_tokens: int, count_tokens: Callable[[str], int],
                      style: Style = "full") -> FittedPrompt:
    """The richest render of at most `budget_tokens`: full, then full without reasons, then compact
    (no prose, no reasons). When even compact is over, it is returned with a warning naming the
    numbers: hard lines, priorities and principles are never dropped silently."""
    tries = [("compact", dict(style="compact"))]
    if style == "full":
        tries = [("full", dict(style="full")), ("full without reasons", dict(style="full", reasons=False)),
                 ("compact with reasons", dict(style="compact", reasons=True)), *tries]
    for name, options in tries:
        text = render_system_prompt(constitution, **options)
        tokens = count_tokens(text)
        if tokens <= budget_tokens:
            return FittedPrompt(text, tokens, name, None)
    return FittedPrompt(text, tokens, "compact (over budget)",
                        f"the constitution's compact system prompt is {tokens} tokens, over the {budget_tokens} "
                        f"this engine's context leaves for it; answers will have little room (shorten clauses "
                        f"or use an engine with a longer context)")


def fit_for_engine(constitution: Constitution, engine, style: Style = "full") -> FittedPrompt | None:
    """`fit_system_prompt` within half of `engine`'s context window; None when the engine cannot
    say how long its window is or how it counts tokens."""
    from charter.engines.common import system_prompt_budget

    budget = system_prompt_budget(engine)
    return None if budget is None else fit_system_prompt(constitution, budget[0], budget[1], style=style)


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
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big")
