"""The before/after figures of `charter run` are only worth something if the eval prompts are
held out: no shipped training prompt (red-team, helpful, borderline, hard-line examples and
look-alikes) may repeat or closely paraphrase an eval prompt."""

import re

import pytest

from charter.commands.constitution import example_path
from charter.constitution import load_constitution
from charter.data.prompts import EXAMPLE_SETS, example_prompts
from charter.evals.load import builtin_items

# Words that carry no topic; without them, word overlap measures what the prompts are about.
FILLER = set("how do i a the to what is my in and of s can it for an with does why are that you me should if "
             "on without best way what's did".split())
MAX_OVERLAP = 0.5  # Jaccard similarity of topic words; paraphrases score well above it


def _topic_words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower())) - FILLER


def _training_prompts() -> list[str]:
    prompts = [item.prompt for name in EXAMPLE_SETS for item in example_prompts(name)]
    for hard in load_constitution(example_path("constitution.yaml")).hard_lines:
        prompts += list(hard.requests) + list(hard.lookalikes)
    return prompts


def _eval_prompts() -> list[str]:
    return [row["prompt"] for name in ("harmful", "overrefusal") for row in builtin_items(name)]


def test_every_shipped_prompt_set_is_loaded():
    assert {name: len(example_prompts(name)) for name in EXAMPLE_SETS} == {
        "red_team": 48, "helpful": 48, "borderline": 48, "introspection": 24}


@pytest.mark.parametrize("eval_prompt", _eval_prompts())
def test_eval_prompt_is_not_in_training_data(eval_prompt):
    words = _topic_words(eval_prompt)
    closest = max(_training_prompts(), key=lambda p: len(words & _topic_words(p)) / len(words | _topic_words(p)))
    overlap = len(words & _topic_words(closest)) / len(words | _topic_words(closest))
    assert overlap < MAX_OVERLAP, f"eval prompt {eval_prompt!r} is close to training prompt {closest!r}"
