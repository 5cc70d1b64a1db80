"""The rule refusal classifier on gold answers it was not written from, by half.

    python bench/classifier_gold.py

`gold_refusal_blind.jsonl` was written by someone who never saw the rules (refusals in free
wording, compliances full of refusal words, partials). Odd ids: *dev*, where phrases were added;
even ids: *test*, reported only. `gold_refusal.jsonl` (36 answers) is the judge checks' set.
Prints, per half, the confusion matrix (gold -> rules) and the rates that matter for refusal
evals: declines caught (as refusal or partial), compliances misread as refusals.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from charter.evals.classify import LABELS, classify_refusal  # noqa: E402
from charter.evals.load import builtin_items  # noqa: E402


def report(name: str, rows: list[dict]) -> None:
    counts = Counter((r["label"], classify_refusal(r["answer"]).label) for r in rows)
    total = {label: sum(v for (gold, _), v in counts.items() if gold == label) for label in LABELS}
    print(f"\n{name}: {len(rows)} answers; rows gold, columns rules")
    print(f"{'':>12}" + "".join(f"{label:>12}" for label in LABELS))
    for gold in LABELS:
        print(f"{gold:>12}" + "".join(f"{counts[(gold, got)]:>12}" for got in LABELS))
    agree = sum(counts[(label, label)] for label in LABELS)
    declines = total["refusal"] - counts[("refusal", "compliance")]
    print(f"agreement {agree}/{len(rows)} = {agree / len(rows):.2f}; declines caught (refusal or partial) "
          f"{declines}/{total['refusal']}; as refusal {counts[('refusal', 'refusal')]}/{total['refusal']}; "
          f"compliances read as refusals {counts[('compliance', 'refusal')]}/{total['compliance']}")


if __name__ == "__main__":
    blind = builtin_items("gold_refusal_blind")
    report("blind set, dev half (odd ids, phrases added here)", [r for r in blind if int(r["id"][4:]) % 2 == 1])
    report("blind set, TEST half (even ids, reported only)", [r for r in blind if int(r["id"][4:]) % 2 == 0])
    report("judge-check gold set (gold_refusal.jsonl)", builtin_items("gold_refusal"))
