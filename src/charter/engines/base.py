"""The one interface every stage uses to talk to a model.

Engines know nothing of constitutions: they take chat messages and sampling parameters and
return text, token counts and option probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to complete `n` times. Same request + same seed -> same completions (per engine)."""

    messages: tuple[Message, ...]
    n: int = 1
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    seed: int = 0

    def sampling(self) -> dict:
        """Sampling parameters as plain data, for provenance and unit-of-work keys."""
        return {"n": self.n, "max_tokens": self.max_tokens, "temperature": self.temperature,
                "top_p": self.top_p, "stop": list(self.stop), "seed": self.seed}


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" (model ended or hit a stop string) | "length" (hit max_tokens)
    prompt_tokens: int
    completion_tokens: int
    index: int = 0  # sample index within the request's n


@dataclass(frozen=True)
class ChoiceRequest:
    """Ask which option the model gives as its next answer after the chat prompt.

    The prompt is the chat template applied to `messages` with the assistant turn opened, followed
    by `assistant_prefix` (e.g. "The answer is (" so that options are "A" / "B").
    """

    messages: tuple[Message, ...]
    options: tuple[str, ...]
    assistant_prefix: str = ""


@runtime_checkable
class Engine(Protocol):
    name: str  # the engine string it was made from, e.g. "llamacpp:embedded"

    @property
    def fingerprint(self) -> str:
        """Model file hash or model name, plus engine version; recorded in provenance."""

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        """One list of `request.n` completions per request, in request order.

        In-process engines also take `cancel` (a threading.Event): once it is set, decoding stops
        between tokens and GenerationCancelled is raised (`supports_cancel` says which do)."""

    def choose(self, request: ChoiceRequest) -> dict[str, float]:
        """Probability of each option as the next answer, normalised over the options.

        Computed from log-probabilities (multi-token options sum their tokens' log-probs).
        Raises EngineError if the engine cannot give log-probabilities; never guesses.
        """

    def close(self) -> None:
        ...


@dataclass
class EngineStats:
    """Counters an engine may keep; benchmarks and the summary table read them."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    calls: int = 0
    extra: dict = field(default_factory=dict)


def choose_many(engine: Engine, requests: list[ChoiceRequest]) -> list[dict[str, float]]:
    """Score many choice requests; engines that can batch them provide `choose_many` themselves."""
    batched = getattr(engine, "choose_many", None)
    if batched is not None:
        return batched(requests)
    return [engine.choose(r) for r in requests]


def supports_prefill(engine: Engine) -> bool:
    """Whether `choose` may carry an `assistant_prefix` (text the answer turn starts with).

    Local engines render the chat template themselves, so they always can; an OpenAI-compatible
    server can only if it continues a final assistant message (vLLM with prefill=continue).
    Judges ask for a bare option letter where this is False (data/judging.py, evals/grading.py)."""
    return bool(getattr(engine, "supports_prefill", True))


def supports_cancel(engine) -> bool:
    """Whether `engine.generate` takes a `cancel` event (stops between tokens once it is set)."""
    import inspect

    try:
        return "cancel" in inspect.signature(engine.generate).parameters
    except (TypeError, ValueError):
        return False
