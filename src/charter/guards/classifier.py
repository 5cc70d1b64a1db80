"""The constitutional classifier: one score per hard line, for requests and for answer prefixes.

A head on MiniLM sentence embeddings (features.py): logistic regression, or a one-hidden-layer MLP,
trained multi-label (an item crossing line A is a negative for line B) with each line's positives
weighted up to the negatives' mass. The head is chosen on the validation split (mean ROC AUC over
lines); thresholds are calibrated on the validation split's benign items so that the share of them
blocked by *any* line is at most `max_false_block`. A lower "band" threshold marks what serve's
judge is asked about.

Saved as `guard.json` (lines, thresholds, metrics, hashes) and `weights.npz` (plain arrays: loading
a guard never unpickles anything).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charter.errors import CharterError
from charter.rows import write_json_atomic

FORMAT = 1
STAGES = ("input", "output")


@dataclass
class Head:
    """Weights of one stage's head: logistic (w1, b1) or MLP (w1, b1 -> relu -> w2, b2)."""

    kind: str
    arrays: dict[str, np.ndarray]

    def logits(self, x: np.ndarray) -> np.ndarray:
        a = self.arrays
        h = x @ a["w1"] + a["b1"]
        if self.kind == "mlp":
            h = np.maximum(h, 0.0) @ a["w2"] + a["b2"]
        return h

    def scores(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.logits(x)))


@dataclass
class StageModel:
    head: Head
    block: np.ndarray  # per line: score >= block -> blocked
    band: np.ndarray  # per line: band <= score < block -> uncertain (serve asks its judge)


@dataclass
class GuardClassifier:
    lines: list[str]
    stages: dict[str, StageModel]
    meta: dict = field(default_factory=dict)
    # A fine-tuned encoder (an Embedder) whose embeddings the heads read; None: the bundled MiniLM,
    # i.e. whatever embedder the caller passes.
    encoder: object | None = None

    @property
    def version(self) -> str:
        return self.meta.get("version", "unsaved")

    def line_scores(self, stage: str, vectors: np.ndarray) -> np.ndarray:
        """(n texts) x (lines) scores."""
        return self.stages[stage].head.scores(vectors)

    def text_scores(self, stage: str, embedder, texts: list[str]) -> np.ndarray:
        """(n texts) x (lines): each line's highest score over a text's pieces (features.pieces)."""
        from charter.guards.features import embed_pieces

        if not texts:
            return np.zeros((0, len(self.lines)))
        vectors, offsets = embed_pieces(self.encoder or embedder, texts)
        scores = self.line_scores(stage, vectors)
        return np.stack([scores[offsets[i]:offsets[i + 1]].max(axis=0) for i in range(len(texts))])

    def piece_vectors(self, embedder, texts: list[str]) -> np.ndarray:
        """Vectors of every piece of `texts` together (serve: one text's windows and sentences)."""
        from charter.guards.features import embed_pieces

        return embed_pieces(self.encoder or embedder, texts)[0]

    def decide(self, stage: str, vectors: np.ndarray) -> tuple[str | None, list[str], dict[str, float]]:
        """Over all vectors (windows of one text): the blocked line (highest over its threshold),
        the uncertain lines, and each line's highest score."""
        model = self.stages[stage]
        best = self.line_scores(stage, vectors).max(axis=0) if len(vectors) else np.zeros(len(self.lines))
        over = best / np.maximum(model.block, 1e-9)
        blocked = None
        if (best >= model.block).any():
            blocked = self.lines[int(np.argmax(np.where(best >= model.block, over, -1)))]
        uncertain = [line for line, s, lo, hi in zip(self.lines, best, model.band, model.block) if lo <= s < hi]
        return blocked, uncertain, {line: round(float(s), 4) for line, s in zip(self.lines, best)}

    # -- saving --------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for stage, model in self.stages.items():
            for name, value in model.head.arrays.items():
                arrays[f"{stage}.{name}"] = value
            arrays[f"{stage}.block"], arrays[f"{stage}.band"] = model.block, model.band
        digest = hashlib.sha256()
        for name in sorted(arrays):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(arrays[name], dtype=np.float32).tobytes())
        if self.encoder is not None:
            _save_encoder(self.encoder, folder / "encoder", digest)
        self.meta["encoder"] = "encoder" if self.encoder is not None else None
        self.meta["version"] = digest.hexdigest()[:16]
        partial = folder / "weights.partial.npz"
        np.savez(partial, **{k: v.astype(np.float32) for k, v in arrays.items()})
        partial.replace(folder / "weights.npz")
        write_json_atomic(folder / "guard.json", {
            "format": FORMAT, "lines": self.lines,
            "heads": {stage: model.head.kind for stage, model in self.stages.items()},
            "thresholds": {stage: {"block": dict(zip(self.lines, map(float, model.block))),
                                   "band": dict(zip(self.lines, map(float, model.band)))}
                           for stage, model in self.stages.items()},
            **self.meta})

    @classmethod
    def load(cls, folder: str | Path) -> GuardClassifier:
        folder = Path(folder)
        if (folder / "guard").is_dir() and not (folder / "guard.json").exists():
            folder = folder / "guard"  # the run folder given instead of its guard/
        spec_path, weights_path = folder / "guard.json", folder / "weights.npz"
        if not spec_path.exists() or not weights_path.exists():
            raise CharterError(f"{folder} holds no trained guard (guard.json and weights.npz); make one with "
                               f"`charter guard train RUN`")
        try:
            spec = json.loads(spec_path.read_text(encoding="utf-8"))
            arrays = dict(np.load(weights_path, allow_pickle=False))
        except (ValueError, OSError) as exc:
            raise CharterError(f"{folder}: the guard's files cannot be read ({exc}); train it again") from None
        if spec.get("format") != FORMAT:
            raise CharterError(f"{spec_path}: format {spec.get('format')!r}, this charter reads {FORMAT}; "
                               f"train the guard again")
        stages = {}
        for stage, kind in spec["heads"].items():
            names = ("w1", "b1", "w2", "b2") if kind == "mlp" else ("w1", "b1")
            stages[stage] = StageModel(Head(kind, {n: arrays[f"{stage}.{n}"] for n in names}),
                                       arrays[f"{stage}.block"], arrays[f"{stage}.band"])
        meta = {k: v for k, v in spec.items() if k not in ("format", "lines", "heads", "thresholds")}
        encoder = None
        if meta.get("encoder"):
            from charter.embeddings import Embedder

            if not (folder / meta["encoder"]).is_dir():
                raise CharterError(f"{folder}: the guard's fine-tuned encoder ({meta['encoder']}/) is missing; "
                                   f"train the guard again")
            encoder = Embedder(path=str(folder / meta["encoder"]), name=f"guard encoder {meta.get('version')}")
        return cls(list(spec["lines"]), stages, meta, encoder)


def _save_encoder(encoder, target: Path, digest) -> None:
    """Write the fine-tuned encoder beside the heads, whole or not at all, and fold its weights
    into the version digest."""
    import shutil

    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    encoder._model.save(str(partial))
    for path in sorted(partial.rglob("*.safetensors")):
        digest.update(path.read_bytes())
    shutil.rmtree(target, ignore_errors=True)
    partial.replace(target)


# -- training ---------------------------------------------------------------------------------

def fit_head(kind: str, x: np.ndarray, y: np.ndarray, seed: int = 0, hidden: int = 128) -> Head:
    """Multi-label head; y is (n, lines) of 0/1. Full-batch L-BFGS for the logistic head (a convex
    problem: no learning rate to choose), Adam for the MLP."""
    import torch

    torch.manual_seed(seed)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    positives = yt.sum(0).clamp(min=1)
    pos_weight = ((len(yt) - positives) / positives).clamp(max=50.0)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    lines = y.shape[1]
    if kind == "logistic":
        layer = torch.nn.Linear(x.shape[1], lines)
        optimiser = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=300, line_search_fn="strong_wolfe")

        def closure():
            optimiser.zero_grad()
            loss = loss_fn(layer(xt), yt) + 1e-3 * layer.weight.pow(2).sum()
            loss.backward()
            return loss

        optimiser.step(closure)
        return Head("logistic", {"w1": layer.weight.detach().numpy().T.copy(), "b1": layer.bias.detach().numpy().copy()})
    if kind != "mlp":
        raise CharterError(f"unknown guard head {kind!r}; choose logistic or mlp")
    first, second = torch.nn.Linear(x.shape[1], hidden), torch.nn.Linear(hidden, lines)
    model = torch.nn.Sequential(first, torch.nn.ReLU(), torch.nn.Dropout(0.2), second)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-2)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(60):
        model.train()
        for batch in torch.randperm(len(xt), generator=generator).split(128):
            optimiser.zero_grad()
            loss_fn(model(xt[batch]), yt[batch]).backward()
            optimiser.step()
    model.eval()
    return Head("mlp", {"w1": first.weight.detach().numpy().T.copy(), "b1": first.bias.detach().numpy().copy(),
                        "w2": second.weight.detach().numpy().T.copy(), "b2": second.bias.detach().numpy().copy()})


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half)."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    values = np.concatenate([pos, neg])[order]
    ranks_sorted = np.arange(1, len(order) + 1, dtype=float)
    # average ranks over ties
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and values[end + 1] == values[start]:
            end += 1
        ranks_sorted[start:end + 1] = (start + end + 2) / 2
        start = end + 1
    ranks[order] = ranks_sorted
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def mean_auc(head: Head, x: np.ndarray, y: np.ndarray) -> float:
    scores = head.scores(x)
    aucs = [roc_auc(scores[:, j], y[:, j]) for j in range(y.shape[1])]
    aucs = [a for a in aucs if a is not None]
    return float(np.mean(aucs)) if aucs else 0.0


def calibrate(scores: np.ndarray, benign: np.ndarray, max_false_block: float) -> np.ndarray:
    """Per-line thresholds, one shared quantile level: the lowest thresholds whose OR over lines
    blocks at most `max_false_block` of the benign rows (scores: rows x lines)."""
    benign_scores = scores[benign]
    if len(benign_scores) == 0:
        raise CharterError("the validation split has no benign items to calibrate thresholds on; add benign "
                           "prompts (--benign) or look-alikes to the constitution")
    best = np.full(scores.shape[1], 1.0)
    for level in np.linspace(0.0, max_false_block, 101):
        thresholds = np.quantile(benign_scores, 1.0 - level, axis=0, method="higher") + 1e-6
        thresholds = np.minimum(thresholds, 1.0)
        if (benign_scores >= thresholds).any(axis=1).mean() <= max_false_block:
            best = thresholds
    return best
