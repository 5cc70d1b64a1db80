"""The trained guard against sets it never saw, beside the similarity fast pass, and what it costs.

    python bench/guard_classifier.py RUN/guard [--heldout bench/data/guard_heldout.jsonl] [--engine SPEC]

`bench/data/guard_heldout.jsonl` was written by a helper who saw only the three hard lines' texts of
the example constitution (not their examples, look-alikes, charter's templates or this code): 75
attacks and 105 benign requests across the same transformation families (translations written in
the other language, encodings, split turns), and 60 answer openings (30 hard-line, 30 fine or
refusals). It is a reporting set: nothing may be chosen by it.

Prints, side by side in one run:
- requests: attacks blocked per technique and benign blocked per kind, for the trained classifier
  (its thresholds), and for serve's similarity fast pass with its uncertain band allowed and blocked;
- answers: the share of hard-line answers the output classifier stops within 16/32/48/64 tokens,
  and the share of fine answers it stops;
- latency: the input classifier per request, as a ratio to the engine generating 64 tokens for it.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
from rich.console import Console
from rich.table import Table

from charter.rows import read_rows


def pct(flags: list[bool]) -> str:
    if not flags:
        return "-"
    n, k = len(flags), sum(flags)
    # Wilson 95% interval: each held-out row is its own source.
    z, p = 1.96, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"{p:.0%} [{max(0, centre - half):.0%}, {min(1, centre + half):.0%}] {k}/{n}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("guard", help="RUN/guard, from `charter guard train`")
    parser.add_argument("--heldout", default="bench/data/guard_heldout.jsonl")
    parser.add_argument("--engine", default="llamacpp:embedded", help="For the latency ratio ('none': skip)")
    args = parser.parse_args()

    from charter.constitution import load_constitution
    from charter.embeddings import Embedder
    from charter.guards.classifier import GuardClassifier
    from charter.guards.features import token_prefixes
    from charter.serve.guard import Guard, GuardConfig, input_pieces
    from charter.shipped import example_constitution_path

    console = Console()
    rows = read_rows(args.heldout)
    requests = [r for r in rows if r["kind"] == "request"]
    answers = [r for r in rows if r["kind"] == "answer"]
    classifier = GuardClassifier.load(args.guard)
    embedder = Embedder()
    constitution = load_constitution(example_constitution_path())
    similarity = Guard(constitution, embedder, None, GuardConfig(uncertain="allow"))

    texts = ["\n".join(m["content"] for m in r["messages"] if m["role"] == "user") for r in requests]
    started = time.perf_counter()
    scores = classifier.text_scores("input", embedder, texts)
    classifier_seconds = time.perf_counter() - started
    trained = list((scores >= classifier.stages["input"].block).any(axis=1))
    fast, band = [], []
    for r in requests:
        verdict = similarity.screen(input_pieces(r["messages"]), "input", [])
        fast.append(verdict.blocked)
        band.append(verdict.blocked or bool(verdict.uncertain))

    table = Table(title=f"held-out requests ({len(requests)}): share blocked")
    for column in ("set", "group", "trained guard", "similarity, band allowed", "similarity, band blocked"):
        table.add_column(column)
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, r in enumerate(requests):
        groups[(r["label"], "all")].append(i)
        groups[(r["label"], f"technique {r['technique']}")].append(i)
        line = r.get("hard_line_id") or r.get("near_hard_line_id") or "(everyday)"
        groups[(r["label"], f"line {line}")].append(i)
    for (label, group), idx in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] != "all", kv[0][1])):
        table.add_row(label, group, pct([trained[i] for i in idx]), pct([fast[i] for i in idx]),
                      pct([band[i] for i in idx]))
    console.print(table)

    tokenizer = embedder.tokenizer
    stream = Table(title=f"held-out answers ({len(answers)}): stopped by the output guard within N tokens")
    stream.add_column("answers")
    for n in (16, 32, 48, 64):
        stream.add_column(f"{n}")
    block = classifier.stages["output"].block
    stopped = {label: np.zeros(sum(a["label"] == label for a in answers), dtype=bool) for label in ("attack", "benign")}
    cells = {label: [] for label in stopped}
    for n in (16, 32, 48, 64):
        for label in stopped:
            chosen = [a for a in answers if a["label"] == label]
            prefixes = [token_prefixes(tokenizer, a["answer"], (n,))[n] for a in chosen]
            stopped[label] |= (classifier.text_scores("output", embedder, prefixes) >= block).any(axis=1)
            cells[label].append(pct(list(stopped[label])))
    stream.add_row("hard-line", *cells["attack"])
    stream.add_row("fine or refusal", *cells["benign"])
    console.print(stream)

    per_request = classifier_seconds / max(1, len(requests))
    if args.engine != "none":
        from charter.engines.base import GenerationRequest
        from charter.engines.registry import make_engine

        engine = make_engine(args.engine)
        sample = [texts[i] for i in range(0, len(texts), max(1, len(texts) // 8))][:8]
        started = time.perf_counter()
        for text in sample:  # one at a time, as a server answers one request
            engine.generate([GenerationRequest(messages=({"role": "user", "content": text},), max_tokens=64,
                                               temperature=0.0)])
        generation = (time.perf_counter() - started) / len(sample)
        engine.close()
        console.print(f"latency: input classifier {per_request * 1000:.1f} ms per request; {args.engine} "
                      f"generating 64 tokens {generation * 1000:.0f} ms; ratio {per_request / generation:.3f}",
                      highlight=False)
    else:
        console.print(f"latency: input classifier {per_request * 1000:.1f} ms per request", highlight=False)


if __name__ == "__main__":
    main()
