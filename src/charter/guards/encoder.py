"""Fine-tuning the sentence encoder itself (the default head of `charter guard train`).

A frozen MiniLM places a request by its topic; a hard line is about intent on a topic ("write
ransomware" against "what is ransomware"), which a linear head on frozen embeddings learns only
from the few seeds a constitution has. Fine-tuning the encoder on the guard data moves intent into
the embedding. Measured on two source-folds of the example constitution's data (train+val, never
test; `python bench/guard_encoders.py RUN`): attacks blocked at 5% benign blocked 12.5% -> 36.7%,
mean ROC AUC 0.941 -> 0.975 (a logistic head on frozen MiniLM against two epochs of fine-tuning).
One encoder serves both stages, with a linear head per stage.

Deterministic for a seed on one machine (torch's CPU kernels; batches drawn from a seeded generator).
"""

from __future__ import annotations

import copy

import numpy as np

from charter.guards.classifier import Head

SCALE = 5.0  # unit-length embeddings times this before the head: logits of a usable range


def finetune(embedder, stages: dict[str, tuple[list[str], np.ndarray]], epochs: int = 1, batch_size: int = 32,
             seed: int = 0, progress=None):
    """Fit a copy of `embedder`'s model and one linear head per stage on (texts, targets); return
    (the fitted SentenceTransformer, {stage: Head}). Heads take the unit-length embedding."""
    import torch

    torch.manual_seed(seed)
    model = copy.deepcopy(embedder._model)
    model.train()
    heads = {stage: torch.nn.Linear((getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)(), y.shape[1])
             for stage, (_, y) in stages.items()}
    optimiser = torch.optim.AdamW([{"params": model.parameters(), "lr": 3e-5},
                                   {"params": [p for h in heads.values() for p in h.parameters()], "lr": 3e-3}])
    losses = {}
    for stage, (_, y) in stages.items():
        targets = torch.tensor(y, dtype=torch.float32)
        positives = targets.sum(0).clamp(min=1)
        losses[stage] = torch.nn.BCEWithLogitsLoss(pos_weight=((len(targets) - positives) / positives).clamp(max=50))
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(epochs):
        for stage, (texts, _) in stages.items():
            batches += [(stage, b) for b in torch.randperm(len(texts), generator=generator).split(batch_size)]
    order = torch.randperm(len(batches), generator=generator).tolist()
    for done, index in enumerate(order):
        stage, rows = batches[index]
        texts, y = stages[stage]
        optimiser.zero_grad()
        features = _features(model, [texts[i] for i in rows.tolist()])
        embedded = torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)
        loss = losses[stage](heads[stage](embedded * SCALE), torch.tensor(y[rows.numpy()], dtype=torch.float32))
        loss.backward()
        optimiser.step()
        if progress is not None and done % 8 == 0:
            progress("guard train: fine-tuning the encoder", done, len(order))
    model.eval()
    out = {stage: Head("logistic", {"w1": (head.weight.detach().numpy().T * SCALE).astype(np.float32),
                                    "b1": head.bias.detach().numpy().astype(np.float32)})
           for stage, head in heads.items()}
    return model, out


def _features(model, texts: list[str]):
    prepare = getattr(model, "preprocess", None) or model.tokenize
    return prepare(texts)
