"""How often does the embedded model, as a teacher, decline red-team prompts? (Why the judge-free
recipe constructs refusals.)

    python bench/teacher_refusals.py [--prompts 32] [--samples 2]

For three teacher prompts (compact constitution + contrastive few-shot turns; compact constitution +
SL-CAI revisions as turns; the turns alone) it samples answers to red-team and helpful prompts and
counts the rule classifier's labels. Measured here: 1/64, 0/64 and 2/64 red-team samples declined.
"""

from __future__ import annotations

import argparse
import collections

from charter.commands.constitution import example_path
from charter.constitution import load_constitution, render_system_prompt
from charter.data.fewshot import contrastive_turns, load_fewshot
from charter.engines.base import GenerationRequest
from charter.engines.registry import make_engine
from charter.evals.classify import classify_refusal
from charter.rows import read_rows


def turns(example: dict, side: str) -> list[dict]:
    return [{"role": "user", "content": example["prompt"].strip()},
            {"role": "assistant", "content": example[side].strip()}]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--samples", type=int, default=2)
    args = parser.parse_args()
    constitution = load_constitution(example_path("constitution.yaml"))
    fewshot = load_fewshot()
    read = lambda name: [row["prompt"] for row in read_rows(example_path(f"prompts/{name}.jsonl"))]
    sets = {"red_team": read("red_team")[: args.prompts], "helpful": read("helpful")[: args.prompts // 2]}
    system = {"role": "system", "content": render_system_prompt(constitution, "compact")}
    chains = fewshot.sl_chains
    revisions = [t for ex in chains for t in turns(ex, "revision")] + contrastive_turns(fewshot, "good", 1)
    teachers = {"constitution+contrastive turns": [system] + contrastive_turns(fewshot, "good", 3),
                "constitution+revision turns": [system] + revisions, "revision turns only": revisions}
    engine = make_engine("llamacpp:embedded")
    try:
        for name, prefix in teachers.items():
            for set_name, prompts in sets.items():
                requests = [GenerationRequest(messages=(*prefix, {"role": "user", "content": p}), max_tokens=40,
                                              temperature=0.8, seed=i, n=args.samples) for i, p in enumerate(prompts)]
                labels = collections.Counter(classify_refusal(c.text).label
                                             for out in engine.generate(requests) for c in out)
                print(f"{name:34s} {set_name:9s} {dict(labels)}", flush=True)
    finally:
        engine.close()


if __name__ == "__main__":
    main()
