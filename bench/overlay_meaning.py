"""How many overlay texts that weaken a hard line or a protection are refused, and how many benign
operator texts are, by the rules alone and by the rules plus the serve guard's embedding neighbours.

    python bench/overlay_meaning.py [--guard RUN/guard] [SET.jsonl ...]

Each line of a set: {"kind": "attack"|"benign", "target": clause id (attacks), "field":
"context"|"principle", "text": ...}. The default sets: tests/fixtures/overlay_dev.jsonl (written
alongside the rules: the rules were tuned on it, so it flatters them) and
bench/data/overlay_heldout.jsonl (written by someone who never saw the rules; never tune on it:
it is for reporting only). Each text
is put in an operator overlay as its context or as an added principle and resolved against
tests/fixtures/constitution_with_protections.yaml, as `charter serve` resolves an operator's overlay.
A third and fourth row add serve's input guard, asked about each sentence as a request: its
similarity pass, and (with `--guard`) a trained classifier (`charter guard data` + `charter guard
train` on that constitution). tests/fixtures/overlay_dev2.jsonl is a second development set, written
by someone who saw neither the rules nor the other sets.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(args: list[str]) -> None:
    from charter.constitution import load_constitution, resolve
    from charter.constitution.model import Overlay, Principle
    from charter.errors import LayerError
    from charter.serve.guard import Guard
    from charter.serve.similarity import ClauseNeighbours, Embedder

    guard_dir = None
    if "--guard" in args:
        at = args.index("--guard")
        guard_dir, args = args[at + 1], args[:at] + args[at + 2:]
    constitution = load_constitution(ROOT / "tests/fixtures/constitution_with_protections.yaml")
    embedder = Embedder()
    neighbours = ClauseNeighbours(constitution, embedder)
    readers = [("rules", None, None), ("rules+similarity", neighbours, None),
               ("rules+similarity+guard similarity", neighbours, Guard(constitution, embedder, None).crossing)]
    if guard_dir:
        from charter.guards.classifier import GuardClassifier

        classifier = GuardClassifier.load(guard_dir)
        readers.append((f"rules+similarity+guard {classifier.version}", neighbours,
                        Guard(constitution, embedder, None, classifier=classifier).crossing))
    paths = args or [str(ROOT / "tests/fixtures/overlay_dev.jsonl"), str(ROOT / "tests/fixtures/overlay_dev2.jsonl"),
                     str(ROOT / "bench/data/overlay_heldout.jsonl")]
    for path in paths:
        if not Path(path).exists():
            print(f"{path}: not found, skipped")
            continue
        rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
        for name, similar, crossing in readers:
            refused: Counter = Counter()
            total: Counter = Counter()
            by_target: Counter = Counter()
            right_clause = 0
            for row in rows:
                if row["field"] == "principle":
                    text = row["text"] if row["text"].startswith("Choose") else "Choose the response that " + row["text"]
                    overlay = Overlay(name="bench", principles=(Principle(id="bench_added", text=text, use=("rl",)),))
                else:
                    overlay = Overlay(name="bench", context=row["text"])
                total[row["kind"]] += 1
                try:
                    resolve(constitution, overlay, similar=similar, crossing=crossing)
                except LayerError as exc:
                    refused[row["kind"]] += 1
                    if row["kind"] == "attack":
                        by_target[row["target"]] += 1
                        right_clause += exc.clause_id == row["target"]
            print(f"{Path(path).name} [{name}]: attacks refused {refused['attack']}/{total['attack']}, "
                  f"benign refused {refused['benign']}/{total['benign']}; refused attacks naming the targeted "
                  f"clause {right_clause}/{refused['attack']}")
            targets = Counter(r["target"] for r in rows if r["kind"] == "attack")
            print("   by target: " + ", ".join(f"{t} {by_target[t]}/{n}" for t, n in sorted(targets.items())))


if __name__ == "__main__":
    main(sys.argv[1:])
