"""The feedback model's multiple-choice question, and how its answers become one soft label.

Pure functions, no engine: `feedback.py` asks the questions and stores the answers.

Three ways to ask (`JUDGE_MODES`; "auto" picks the first the engine allows):
- `prefill`: the answer turn is opened with "The answer is (" and the engine's option
  probabilities for "A"/"B" come next (Constitutional AI's own format). Needs an engine that
  continues a given assistant prefix: every local engine, vLLM's server with prefill=continue.
- `letter`: no prefix; the question asks for the single letter A or B and the probabilities are
  those of the answer's first token (OpenAI `top_logprobs`; llama.cpp's and vLLM's servers give
  them too). What any OpenAI-compatible server with log-probabilities can do.
- `generate`: for servers without log-probabilities: the judge writes its answer (greedy) and the
  first A or B in it is the verdict, a hard 1/0 label, counted as such in the stage's stats.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from charter.constitution.model import Constitution, Principle
from charter.data.fewshot import FewShot
from charter.engines.base import ChoiceRequest
from charter.judge_text import Markers

GENERAL = Principle(
    id="best_for_humanity", text="Choose the response that is best for humanity.", use=("rl",)
)
ANSWER_PREFIX = "The answer is ("
COT_REQUEST = "Think step by step about which option better fits the principle, in a few sentences."
JUDGE_MODES = ("auto", "prefill", "letter", "generate")
PREFILL_CLOSING = "Answer with (A) or (B)."
LETTER_CLOSING = "Answer with the single letter A or B and nothing else."
COT_FOLLOW_UP = "Therefore, which option is better? " + LETTER_CLOSING


def resolve_judge_mode(mode: str, engine) -> str:
    """The way to ask `engine`: `mode` itself, or for "auto" prefill where the engine allows it."""
    from charter.engines.base import supports_prefill
    from charter.errors import CharterError

    if mode not in JUDGE_MODES:
        raise CharterError(f"judge mode '{mode}' is unknown; use one of {', '.join(JUDGE_MODES)}")
    if mode == "auto":
        return "prefill" if supports_prefill(engine) else "letter"
    if mode == "prefill" and not supports_prefill(engine):
        raise CharterError(f"judge mode 'prefill' needs an engine that continues an assistant prefix, and "
                           f"'{engine.name}' does not (an OpenAI-compatible server: pass prefill=continue "
                           f"for vLLM); use --judge-mode letter or auto")
    return mode


# Model-written text must not fake the question's own markers ("(A)", "Options:").
MARKERS = Markers(rewrites=((r"\(([AB])\)", r"[\1]", 0), (r"^\s*options\s*:", "options -", re.I | re.M)))
neutralise = MARKERS.neutralise


def question_text(prompt: str, principle_text: str, first: str, second: str, mode: str = "prefill") -> str:
    closing = PREFILL_CLOSING if mode == "prefill" else LETTER_CLOSING
    return (
        "Consider the following conversation between a human and an assistant:\n\n"
        f"Human: {neutralise(prompt)}\n\n{principle_text}\n\nOptions:\n"
        f"(A) {neutralise(first)}\n(B) {neutralise(second)}\n\n{closing}"
    )


def feedback_examples(fewshot: FewShot, constitution: Constitution, count: int,
                      mode: str = "prefill") -> list[dict]:
    """Worked questions with their answers (in the format `mode` asks for), for principles this
    constitution has: the constitution's own examples with a good and a bad response first (the
    good one as A and as B in turn, so the examples teach no position), then the few-shot file's."""
    turns: list[dict] = []
    own = [(p, e) for p in constitution.principles_for("rl") for e in p.examples if e.good and e.bad]
    for index, (principle, example) in enumerate(own[:count]):
        first, second, letter = ((example.good, example.bad, "A") if index % 2 == 0
                                 else (example.bad, example.good, "B"))
        question = question_text(example.request, principle.text, first, second, mode)
        answer = f"{ANSWER_PREFIX}{letter})" if mode == "prefill" else letter
        turns += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    for example in fewshot.feedback:
        if len(turns) >= 2 * count:
            break
        try:
            principle = constitution.clause(example["principle_id"])
        except KeyError:
            continue
        question = question_text(
            example["prompt"], principle.text, example["response_a"], example["response_b"], mode
        )
        letter = example["answer"].strip()
        answer = f"{ANSWER_PREFIX}{letter})" if mode == "prefill" else letter
        turns += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return turns


def choice_request(examples: list[dict], question: str, reasoning: str | None,
                   mode: str = "prefill") -> ChoiceRequest:
    """Options A/B after "The answer is (", or after the model's own reasoning when given (CoT).

    Without prefill (modes letter and generate) the answer turn starts empty; with reasoning, the
    reasoning is the judge's own earlier turn and a follow-up asks for the letter."""
    if mode == "prefill":
        prefix = ANSWER_PREFIX
        if reasoning is not None:
            question += "\n\n" + COT_REQUEST
            prefix = f"{reasoning}\nTherefore, {ANSWER_PREFIX[0].lower()}{ANSWER_PREFIX[1:]}"
        messages = (*examples, {"role": "user", "content": question})
        return ChoiceRequest(messages=messages, options=("A", "B"), assistant_prefix=prefix)
    messages = (*examples, {"role": "user", "content": question})
    if reasoning is not None:
        messages = (*examples, {"role": "user", "content": question + "\n\n" + COT_REQUEST},
                    {"role": "assistant", "content": reasoning}, {"role": "user", "content": COT_FOLLOW_UP})
    return ChoiceRequest(messages=messages, options=("A", "B"))


# Capital letters only: "a good answer" must not read as option A.
_WRITTEN = re.compile(r"^[\s*\"'`]*(?i:(?:the )?answer(?: is)?\s*:?\s*)?[(\[]?\s*([AB])\b")


def written_verdict(reply: str) -> str | None:
    """The option a written answer starts with ("A", "(B)", "The answer is (A)"), else None."""
    match = _WRITTEN.match(reply or "")
    return match.group(1) if match else None


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
