"""Frozen MiniLM with a logistic head against a fine-tuned MiniLM, on guard data, by source folds.

    python bench/guard_encoders.py RUN [--folds 2] [--epochs 2]

RUN is a `charter guard data` folder. Only its train and val splits are used (the test split stays
for the guard's report): sources are put in folds by a hash, each fold is held out in turn, and the
out-of-fold scores of both encoders are calibrated to 5% of benign items blocked. Prints, per fold
so far, the share of attacks blocked and the mean ROC AUC over hard lines, side by side. This is
the measurement behind `charter guard train`'s default (`--encoder finetune`). Minutes per fold.
"""

from __future__ import annotations

import argparse
import hashlib

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--folds", type=int, default=2, help="Folds evaluated (of 5)")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    from charter.embeddings import Embedder
    from charter.guards.classifier import GuardClassifier, StageModel, calibrate, fit_head, roc_auc
    from charter.guards.encoder import finetune
    from charter.guards.features import embed, reveal
    from charter.guards.training import load_items, targets
    from charter.store import RunStore

    store = RunStore.read(args.run)
    examples, _ = load_items(store)
    store.close()
    items = [e for e in examples if e["split"] in ("train", "val")]
    lines = list(dict.fromkeys(e["clause_id"] for e in examples if e["label"] == 1))
    y = targets(items, lines)
    benign = np.array([e["label"] == 0 for e in items])
    fold = np.array([int(hashlib.sha256(e["source_id"].encode()).hexdigest(), 16) % 5 for e in items])
    embedder = Embedder()
    x = embed(embedder, [e["text"] for e in items])
    scores = {"frozen MiniLM + logistic": np.zeros_like(y), f"fine-tuned MiniLM ({args.epochs} epochs)": np.zeros_like(y)}
    names = list(scores)
    for k in range(args.folds):
        fit, held = fold != k, fold == k
        scores[names[0]][held] = fit_head("logistic", x[fit], y[fit]).scores(x[held])
        model, heads = finetune(embedder, {"input": ([reveal(items[i]["text"]) for i in np.where(fit)[0]], y[fit])},
                                epochs=args.epochs)
        tuned = Embedder.from_model(model, "fine-tuned")
        probe = GuardClassifier(lines, {"input": StageModel(heads["input"], np.ones(len(lines)), np.ones(len(lines)))})
        scores[names[1]][held] = probe.line_scores("input", embed(tuned, [items[i]["text"] for i in np.where(held)[0]]))
        seen = fold <= k
        print(f"folds 0-{k} held out ({seen.sum()} items):")
        for name, s in scores.items():
            block = calibrate(s[seen], benign[seen], 0.05)
            blocked = (s[seen] >= block).any(axis=1)
            aucs = [a for a in (roc_auc(s[seen][:, j], y[seen][:, j]) for j in range(len(lines))) if a is not None]
            print(f"  {name:32s} attacks blocked {blocked[~benign[seen]].mean():.1%} at "
                  f"{blocked[benign[seen]].mean():.1%} benign; mean AUC {np.mean(aucs):.3f}", flush=True)


if __name__ == "__main__":
    main()
