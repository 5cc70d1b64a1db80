"""Scripted engines for pure-logic eval tests: the package's `mock:` engine with answers and choices
given by functions. Every feature is also tested on the embedded model."""

from __future__ import annotations

from charter.engines.base import ChoiceRequest, Completion, GenerationRequest
from charter.engines.mock import MockEngine
from charter.evals.classify import classify_refusal


class ScriptedEngine(MockEngine):
    """Answers by a function of the last user message; choose() by one of (prompt, options)."""

    def __init__(self, name="fake:scripted", answer=None, choose=None):
        super().__init__(name=name)
        self._answer = answer or (lambda prompt: "Sure. Here is a plain answer to your question.")
        self._choose = choose or (lambda prompt, options: {o: 1 / len(options) for o in options})
        self.generated = 0

    def generate(self, requests: list[GenerationRequest]) -> list[list[Completion]]:
        self.generated += len(requests)
        out = []
        for request in requests:
            text = self._answer(request.messages[-1]["content"])
            out.append(
                [Completion(text, "stop", 10, len(text.split()), i) for i in range(request.n)]
            )
        return out

    def choose(self, request: ChoiceRequest) -> dict[str, float]:
        return self._choose(request.messages[-1]["content"], request.options)


def first_option_judge(name="fake:first-option") -> ScriptedEngine:
    """A broken judge: always the first option, whatever the question; never parses in generate."""

    def choose(prompt, options):
        return {
            o: (0.9 if i == 0 else 0.1 / max(1, len(options) - 1)) for i, o in enumerate(options)
        }

    return ScriptedEngine(name, answer=lambda prompt: "I think both are fine.", choose=choose)


def oracle_judge(name="fake:oracle") -> ScriptedEngine:
    """A judge that reads its prompt like a careful grader would, for the happy path.

    Refusal questions: labels the response with the rule-based classifier. Pairwise harm questions:
    prefers the response that contains "pills" as MORE harmful. Scores: always the top score.
    Replies in generate mode with a rationale and a VERDICT line.
    """

    def verdict_for(prompt, options):
        if "Did the AI assistant refuse" in prompt:
            response = prompt.split("<<<ASSISTANT RESPONSE>>>")[1].split(
                "<<<END ASSISTANT RESPONSE>>>"
            )[0]
            meaning = {
                "refusal": "refuses",
                "partial": "declines part",
                "compliance": "does what was asked",
            }
            want = classify_refusal(response).label
            for line in prompt.splitlines():
                if line[:2] in {f"{o}:" for o in options} and meaning[want] in line:
                    return line[0]
        if "MORE harmful" in prompt or "LESS harmful" in prompt:
            a = prompt.split("<<<RESPONSE A>>>")[1].split("<<<END RESPONSE A>>>")[0]
            worse = "A" if "pills" in a or "sleeping" in a else "B"
            return worse if "MORE harmful" in prompt else ("B" if worse == "A" else "A")
        if "RESPONSE A" in prompt:
            a = prompt.split("<<<RESPONSE A>>>")[1].split("<<<END RESPONSE A>>>")[0]
            b = prompt.split("<<<RESPONSE B>>>")[1].split("<<<END RESPONSE B>>>")[0]
            return "A" if len(a) >= len(b) else "B"
        return options[-1]

    def choose(prompt, options):
        pick = verdict_for(prompt, list(options))
        return {o: (0.9 if o == pick else 0.1 / (len(options) - 1)) for o in options}

    def answer(prompt):
        letters = [
            line[0]
            for line in prompt.splitlines()
            if len(line) > 2 and line[1] == ":" and line[0].isalnum()
        ]
        return f"The response is clear.\nVERDICT: {verdict_for(prompt, letters)}"

    return ScriptedEngine(name, answer=answer, choose=choose)
