"""What a suite is: the context a suite function receives, how the evaluated model answers, and
the registration record. Suites (`suites.py`, `helpfulness.py`) and the runner both import this;
nothing here imports them, so `evals/` has no import circle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from charter.engines.base import Engine, GenerationRequest
from charter.errors import CharterError
from charter.evals.grading import Judge, Verdict
from charter.evals.result import Finding, Metric, SuiteResult


@dataclass
class EvalConfig:
    """How the evaluated model answers. Defaults are greedy, so a rerun reproduces an answer."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    system_prompt: str | None = None  # e.g. the constitution's; None tests the model as it is
    # Items per engine call, store transaction and progress step. 32 rather than 8: the embedded
    # model answers the default suites 1.19x faster (33.2 vs 39.5 s on an Intel Xeon, same answers
    # to the token, greedy), since fewer calls means fewer decode steps spent on a short tail.
    batch_size: int = 32

    def sampling(self) -> dict:
        system = (
            hashlib.sha256(self.system_prompt.encode()).hexdigest()[:12]
            if self.system_prompt
            else None
        )
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "system_prompt": system,
        }


@dataclass
class Context:
    """Everything a suite function may use."""

    engine: Engine
    judge: Judge | None = None
    config: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    constitution: Any = None  # charter.constitution.Constitution, for clause texts
    against: list[Engine] = field(default_factory=list)
    user_engine: Engine | None = None  # plays the user in conversations; None: the scripted user

    def messages(self, prompt: str) -> tuple[dict, ...]:
        system = (
            ({"role": "system", "content": self.config.system_prompt},)
            if self.config.system_prompt
            else ()
        )
        return (*system, {"role": "user", "content": prompt})

    def answer(self, prompts: list[str], engine: Engine | None = None) -> list[str]:
        """One answer per prompt (greedy by default) from `engine`, the evaluated one by default."""
        return self.reply([[{"role": "user", "content": p}] for p in prompts], engine)

    def reply(self, conversations: list[list[dict]], engine: Engine | None = None) -> list[str]:
        """The next assistant turn in each conversation (one engine call), from `engine` or the
        evaluated model, with the config's system prompt and sampling."""
        config = self.config
        system = ({"role": "system", "content": config.system_prompt},) if config.system_prompt else ()
        requests = [GenerationRequest(messages=(*system, *messages), max_tokens=config.max_tokens,
                                      temperature=config.temperature, top_p=config.top_p, seed=self.seed)
                    for messages in conversations]
        return [completions[0].text.strip() for completions in (engine or self.engine).generate(requests)]

    def provenance(self) -> dict:
        hashed = self.constitution.content_hash() if self.constitution is not None else None
        return {
            "constitution_hash": hashed,
            "engine": self.engine.fingerprint,
            "engine_name": self.engine.name,
            "judge": self.judge.describe() if self.judge else None,
            "against": [e.fingerprint for e in self.against],
            **({"user_engine": self.user_engine.fingerprint} if self.user_engine is not None else {}),
            "sampling": self.config.sampling(),
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Suite:
    """A suite as registered: how it turns items into findings, and what it measures."""

    run: Callable[[Context, list[dict]], list[Finding]]
    metrics: Callable[[Context], list[tuple[str, Metric]]]
    group_field: str  # the item field that names a finding's row in the per-clause table
    uses_judge: bool
    spread_by: tuple[str, ...] = ()  # fields a --limit sample balances (default: group_field)
    keep_together: str | None = None  # items sharing this field are taken or left together (pairs)
    check: Callable[[Context], None] = lambda ctx: None
    finish: Callable[[Context, SuiteResult], None] = lambda ctx, result: None


def metric(name: str, description: str, higher_is_better: bool = True, judged: bool = False):
    return name, Metric(name, description, higher_is_better, judged)


def exchange(question: str, verdict: Verdict) -> dict:
    """One judge exchange as a finding keeps it: the question asked, prompt, reply, verdict."""
    return {"question": question, **verdict.as_dict()}


def needs_judge(suite: str) -> Callable[[Context], None]:
    def check(ctx: Context) -> None:
        if ctx.judge is None:
            raise CharterError(
                f"suite '{suite}' needs a judge; pass --judge-engine (e.g. llamacpp:embedded)"
            )

    return check


def clause_text(constitution, clause_id: str) -> str:
    """The instruction a clause gives (what adherence items and judge checks quote)."""
    try:
        clause = constitution.clause(clause_id)
    except KeyError:
        raise CharterError(
            f"adherence item names clause '{clause_id}', which the constitution "
            f"'{constitution.name}' does not have; pass --constitution or fix the item"
        ) from None
    return clause.instruction() if hasattr(clause, "instruction") else clause.text
