"""The feedback model's multiple-choice question, and how its answers become one soft label.

Pure functions, no engine: `feedback.py` asks the questions and stores the answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from charter.constitution.model import Constitution, Principle
from charter.data.fewshot import FewShot
from charter.engines.base import ChoiceRequest

GENERAL = Principle(
    id="best_for_humanity", text="Choose the response that is best for humanity.", use=("rl",)
)
ANSWER_PREFIX = "The answer is ("
COT_REQUEST = "Think step by step about which option better fits the principle, in a few sentences."


def neutralise(text: str) -> str:
    """Model-written text must not fake the question's own markers ("(A)", "Options:")."""
    text = re.sub(r"\(([AB])\)", r"[\1]", text)
    return re.sub(r"(?im)^\s*options\s*:", "options -", text)


def question_text(prompt: str, principle_text: str, first: str, second: str) -> str:
    return (
        "Consider the following conversation between a human and an assistant:\n\n"
        f"Human: {neutralise(prompt)}\n\n{principle_text}\n\nOptions:\n"
        f"(A) {neutralise(first)}\n(B) {neutralise(second)}\n\nAnswer with (A) or (B)."
    )


def feedback_examples(fewshot: FewShot, constitution: Constitution, count: int) -> list[dict]:
    """Worked questions with their answers, for principles this constitution has."""
    turns: list[dict] = []
    for example in fewshot.feedback:
        if len(turns) >= 2 * count:
            break
        try:
            principle = constitution.clause(example["principle_id"])
        except KeyError:
            continue
        question = question_text(
            example["prompt"], principle.text, example["response_a"], example["response_b"]
        )
        answer = f"{ANSWER_PREFIX}{example['answer'].strip()})"
        turns += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return turns


def choice_request(examples: list[dict], question: str, reasoning: str | None) -> ChoiceRequest:
    """Options A/B after "The answer is (", or after the model's own reasoning when given (CoT)."""
    prefix = ANSWER_PREFIX
    if reasoning is not None:
        question += "\n\n" + COT_REQUEST
        prefix = f"{reasoning}\nTherefore, {ANSWER_PREFIX[0].lower()}{ANSWER_PREFIX[1:]}"
    messages = (*examples, {"role": "user", "content": question})
    return ChoiceRequest(messages=messages, options=("A", "B"), assistant_prefix=prefix)


@dataclass(frozen=True)
class Label:
    p_first: float  # probability that the pair's first sample is the better answer
    flips: int  # principles whose verdict changed with the order of the options
    principles: tuple[str, ...]  # principles with a judgment in both orders


def soft_label(judgments: Iterable[dict], band: tuple[float, float] | None = None) -> Label | None:
    """Average P(first sample better) over both orders of every principle judged in both.

    Each judgment is {"principle_id", "order": "ab"|"ba", "p_first": float|None}; None is an
    abstention. With `band` (CoT), each probability is clamped into it first. No complete
    principle: None (an abstention, never a guess).
    """
    by_principle: dict[str, dict[str, float]] = {}
    for j in judgments:
        if j["p_first"] is not None:
            by_principle.setdefault(j["principle_id"], {})[j["order"]] = j["p_first"]
    complete = {pid: orders for pid, orders in by_principle.items() if len(orders) == 2}
    if not complete:
        return None
    low, high = band or (0.0, 1.0)
    total = sum(min(high, max(low, p)) for orders in complete.values() for p in orders.values())
    flips = sum((o["ab"] > 0.5) != (o["ba"] > 0.5) for o in complete.values())
    return Label(round(total / (2 * len(complete)), 6), flips, tuple(complete))
