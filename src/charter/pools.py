"""Which pool every shipped prompt file belongs to: *train*, *dev* or *test*.

- **train**: what data stages and guards learn from (the red-team, helpful, borderline and
  introspection prompts, the training minimal pairs, the example constitution's hard-line examples
  and look-alikes).
- **dev**: what recipe knobs and thresholds may be chosen on. The `harmful` and `overrefusal` eval
  suites are here because the embedded recipe's knobs were chosen while looking at them, and
  serve's attack/benign sets because guard thresholds were; so their figures flatter the recipe.
  Also the dev minimal pairs (`pairs_dev`).
- **test**: reported only, never looked at while choosing: the test minimal pairs (`pairs`).

The pools must not share prompts, exactly, after normalising, or by topic (tests/test_pools.py
checks all three). Files not listed (character statements, adherence items, conversations,
helpfulness, the judges' gold sets) are evals of other things and hold no refusal prompts to
choose knobs on.
"""

from __future__ import annotations

import re
from pathlib import Path

from charter.shipped import shipped_path

POOLS: dict[str, tuple[tuple[str, ...], ...]] = {
    "train": (("examples", "prompts", "red_team.jsonl"), ("examples", "prompts", "helpful.jsonl"),
              ("examples", "prompts", "borderline.jsonl"), ("examples", "prompts", "introspection.jsonl"),
              ("examples", "prompts", "minimal_pairs_train.jsonl")),
    "dev": (("evals", "data", "harmful.jsonl"), ("evals", "data", "overrefusal.jsonl"),
            ("evals", "data", "minimal_pairs_dev.jsonl"), ("serve", "data", "attacks.jsonl"),
            ("serve", "data", "benign.jsonl")),
    "test": (("evals", "data", "minimal_pairs_test.jsonl"),),
}
# Words that carry no topic; without them, word overlap measures what two prompts are about.
FILLER = frozenset("how do i a the to what is my in and of s can it for an with does why are that you me should "
                   "if on without best way what's did".split())


def pool_files(pool: str) -> list[Path]:
    return [shipped_path(*parts) for parts in POOLS[pool]]


def pool_prompts(pool: str) -> list[str]:
    """Every prompt text of a pool (for train, the example constitution's hard-line texts too)."""
    from charter.rows import read_rows

    prompts: list[str] = []
    for path in pool_files(pool):
        for row in read_rows(path):
            if row.get("prompt"):
                prompts.append(str(row["prompt"]))
            for message in row.get("messages") or []:
                if message.get("role") == "user":
                    prompts.append(str(message["content"]))
    if pool == "train":
        from charter.constitution import load_constitution
        from charter.shipped import example_constitution_path

        for hard in load_constitution(example_constitution_path()).hard_lines:
            prompts += list(hard.requests) + list(hard.lookalikes)
    return prompts


def normalised(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def topic_words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower())) - FILLER


def topic_overlap(first: str, second: str) -> float:
    """Jaccard similarity of two prompts' topic words (paraphrases score well above 0.5)."""
    a, b = topic_words(first), topic_words(second)
    return len(a & b) / len(a | b) if a | b else 1.0
