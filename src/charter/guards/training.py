"""`charter guard train`: embed the guard data, fit a head per stage, calibrate, evaluate, save.

Pools, kept apart: *train* fits the heads; *val* chooses the head kind and the thresholds; *test*
is only reported (its sources and its frame templates were used for neither). The shipped
attack/benign sets of serve are reported too and never used for any choice.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charter.errors import CharterError
from charter.guards import evaluate
from charter.guards.classifier import GuardClassifier, StageModel, calibrate, fit_head, roc_auc
from charter.guards.dataset import STAGE
from charter.guards.features import embed, pieces, reveal, token_prefixes
from charter.guards.sources import OPERATOR_CONTEXT

PREFIX_TOKENS = (16, 32, 48, 64, 96)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class TrainSettings:
    encoder: str = "finetune"  # finetune (the encoder and a linear head) | frozen (a head on MiniLM)
    epochs: int = 1  # of fine-tuning
    head: str = "auto"  # frozen encoder only: logistic | mlp | auto (chosen by cross-validation)
    max_false_block: float = 0.05
    band_false_block: float = 0.15  # what serve's judge is asked about
    seed: int = 0


def load_items(store) -> tuple[list[dict], list[dict]]:
    examples = [{**r.data, "clause_id": r.clause_ids[0] if r.clause_ids else None}
                for r in store.iter("guard_example", STAGE)]
    answers = [{**r.data, "clause_id": r.clause_ids[0] if r.clause_ids else None}
               for r in store.iter("guard_answer", STAGE)]
    if not examples:
        raise CharterError(f"{store.folder} has no guard data; make it with `charter guard data CONSTITUTION "
                           f"--out {store.folder}`")
    return examples, answers


def data_hash(examples: list[dict], answers: list[dict]) -> str:
    digest = hashlib.sha256()
    for item in [*examples, *answers]:
        digest.update(json.dumps(item, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
    return digest.hexdigest()[:16]


def answer_prefixes(tokenizer, answers: list[dict], counts=PREFIX_TOKENS) -> list[dict]:
    out = []
    for a in answers:
        for n, text in token_prefixes(tokenizer, a["answer"] or " ", counts).items():
            out.append({**a, "text": text, "tokens": n, "answer_id": id(a)})
    return out


def with_pieces(items: list[dict], attack_pieces: bool = True) -> list[dict]:
    """Each item, and its pieces (features.pieces: sentences, turns, windows) as items of their own:
    serving scores every piece, so a frame's sentence on its own must have been seen as harmless.
    A piece of a benign item is benign; a piece of an attack is an attack when it holds most of
    the request's words (>= 60%), harmless when it holds almost none (<= 20%), and left out between.
    Answers (`attack_pieces=False`): which sentence of a hard-line answer crosses is not known, so
    only benign answers give pieces."""
    out = []
    for it in items:
        whole = reveal(it["text"])
        out.append(it)
        if it["label"] == 1 and not attack_pieces:
            continue
        request = _words(it.get("request") or it["text"])
        for piece in pieces(it["text"]):
            if piece == whole:
                continue
            overlap = len(_words(piece) & request) / max(1, len(request))
            if it["label"] == 0 or overlap <= 0.2:
                out.append({**it, "text": piece, "label": 0, "piece": True})
            elif overlap >= 0.6:
                out.append({**it, "text": piece, "piece": True})
    return out


def _words(text: str) -> set[str]:
    return set(_WORD.findall(reveal(text).lower()))


def targets(items: list[dict], lines: list[str]) -> np.ndarray:
    y = np.zeros((len(items), len(lines)), dtype=np.float32)
    for i, it in enumerate(items):
        if it["label"] == 1 and it["clause_id"] in lines:
            y[i, lines.index(it["clause_id"])] = 1.0
    return y


def train_guard(store, embedder, lines: list[str], settings: TrainSettings = TrainSettings(),
                progress=None, shipped: dict | None = None) -> tuple[GuardClassifier, dict]:
    """Fit and calibrate both stages; return the classifier and its metrics (test split, shipped sets)."""
    started = time.perf_counter()
    examples, answers = load_items(store)
    if not lines:
        raise CharterError("the constitution has no hard lines: there is nothing for a guard to enforce")
    report = _progress(progress)
    prefixes = answer_prefixes(embedder.tokenizer, answers)
    metrics: dict = {"data_hash": data_hash(examples, answers), "settings": settings.__dict__,
                     "counts": _counts(examples, answers)}
    stages = {}
    items = {"input": with_pieces(examples), "output": with_pieces(prefixes, attack_pieces=False)}
    for stage, rows in items.items():
        if not any(it["label"] == 1 for it in rows if it["split"] == "train"):
            raise CharterError(f"no {stage} positives in the training split; {_why(stage)}")
    encoder = None
    if settings.encoder == "finetune":
        from charter.embeddings import Embedder
        from charter.guards.encoder import finetune

        train = {stage: [it for it in rows if it["split"] == "train"] for stage, rows in items.items()}
        model, heads = finetune(embedder, {stage: ([reveal(it["text"]) for it in rows], targets(rows, lines))
                                           for stage, rows in train.items()},
                                epochs=settings.epochs, seed=settings.seed, progress=report)
        encoder = Embedder.from_model(model, "guard encoder (fine-tuned)")
        for stage, rows in items.items():
            report(f"guard train: calibrating the {stage} thresholds", 0, 1)
            stages[stage] = _calibrated(stage, heads[stage], rows, lines, encoder, settings)
            metrics[f"{stage}_choice"] = {"head": f"fine-tuned encoder ({settings.epochs} epoch) + linear",
                                          "cross_validation": {}}
    elif settings.encoder == "frozen":
        for number, (stage, rows) in enumerate(items.items()):
            report(f"guard train: {stage} head", number, 3)
            stages[stage], metrics[f"{stage}_choice"] = _fit_stage(stage, rows, lines, embedder, settings)
    else:
        raise CharterError(f"encoder {settings.encoder!r}: choose finetune or frozen")
    classifier = GuardClassifier(lines, stages, {"data_hash": metrics["data_hash"], "embedder": embedder.name,
                                                 "constitution_hash": store.manifest.get("constitution_hash"),
                                                 "max_false_block": settings.max_false_block,
                                                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
                                 encoder)
    report("guard train: test split", 2, 3)
    test = [e for e in examples if e["split"] == "test"]
    metrics["input_test"] = evaluate.input_report(classifier, classifier.text_scores("input", embedder,
                                                                                     [e["text"] for e in test]), test)
    test_answers = [a for a in answers if a["split"] == "test"]
    if test_answers:
        metrics["stream_test"] = stream_metrics(classifier, embedder, test_answers)
    if shipped:
        metrics["shipped"] = shipped_report(classifier, embedder, **shipped)
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    classifier.meta["metrics_summary"] = _summary(metrics)
    report("guard train: done", 3, 3)
    return classifier, metrics


def stream_metrics(classifier: GuardClassifier, embedder, answers: list[dict]) -> dict:
    """The output guard reading each answer as it streams: its first 16, 32, 48, 64 tokens."""
    scores = {}
    for n in evaluate.STREAM_TOKENS:
        texts = [token_prefixes(embedder.tokenizer, a["answer"] or " ", (n,))[n] for a in answers]
        scores[n] = classifier.text_scores("output", embedder, texts)
    return evaluate.stream_report(classifier, scores, answers)


def _fit_stage(stage: str, items: list[dict], lines: list[str], embedder, settings: TrainSettings):
    """The head kind chosen by cross-validation over train+val sources; the head fitted on train;
    thresholds from the validation split's benign items, scored as serving scores them."""
    x = embed(embedder, [it["text"] for it in items])
    y = targets(items, lines)
    train = np.array([it["split"] == "train" for it in items])
    whole = np.array([not it.get("piece") for it in items])
    kinds = ("logistic", "mlp") if settings.head == "auto" else (settings.head,)
    cv = {k: cross_validated(k, items, x, y, settings, whole) for k in kinds} if len(kinds) > 1 else {}
    kind = max(kinds, key=lambda k: (cv[k]["attacks_blocked"], cv[k]["auc"])) if cv else kinds[0]
    head = fit_head(kind, x[train], y[train], settings.seed)
    return _calibrated(stage, head, items, lines, embedder, settings), {"head": kind, "cross_validation": cv}


def _calibrated(stage: str, head, items: list[dict], lines: list[str], embedder, settings: TrainSettings):
    """Thresholds from the validation split's whole benign items, scored as serving scores them.
    Answers are read while they stream, so an answer counts as blocked when any of its prefixes
    is: the output thresholds hold the share of fine answers *stopped*, not of prefixes flagged.
    Operators' system prompts are left out: the thresholds hold the share of benign *requests*
    blocked, and easy negatives of another kind would let more of the hard ones through that gate."""
    val = [it for it in items if it["split"] == "val" and not it.get("piece") and it.get("kind") != OPERATOR_CONTEXT]
    probe = GuardClassifier(lines, {stage: StageModel(head, np.ones(len(lines)), np.ones(len(lines)))})
    scores = probe.text_scores(stage, embedder, [it["text"] for it in val])
    if stage == "output":
        groups: dict[int, list[int]] = {}
        for i, it in enumerate(val):
            groups.setdefault(it["answer_id"], []).append(i)
        scores = np.stack([scores[idx].max(axis=0) for idx in groups.values()])
        val = [val[idx[0]] for idx in groups.values()]
    benign = np.array([it["label"] == 0 for it in val])
    block = calibrate(scores, benign, settings.max_false_block)
    band = np.minimum(calibrate(scores, benign, max(settings.band_false_block, settings.max_false_block)), block)
    return StageModel(head, block, band)


def cross_validated(kind: str, items: list[dict], x: np.ndarray, y: np.ndarray, settings: TrainSettings,
                    whole: np.ndarray, folds: int = 5) -> dict:
    """Out-of-fold scores over train+val, folds by source (a source's versions never straddle a
    fold): the share of whole items' attacks blocked at the target false-block rate, and the mean
    AUC (pieces are fitted on, not scored)."""
    pool = np.array([it["split"] in ("train", "val") for it in items])
    fold = np.array([int(hashlib.sha256(f"{settings.seed}:{it['source_id']}".encode()).hexdigest(), 16) % folds
                     for it in items])
    oof = np.zeros_like(y)
    chosen = pool & whole
    for k in range(folds):
        fit_rows, held = pool & (fold != k), chosen & (fold == k)
        if held.any() and y[fit_rows].sum() > 0:
            oof[held] = fit_head(kind, x[fit_rows], y[fit_rows], settings.seed).scores(x[held])
    benign = np.array([it["label"] == 0 for it in items])[chosen]
    scores, labels = oof[chosen], y[chosen]
    block = calibrate(scores, benign, settings.max_false_block)
    attacks = labels.any(axis=1)
    aucs = [a for a in (roc_auc(scores[:, j], labels[:, j]) for j in range(labels.shape[1])) if a is not None]
    return {"attacks_blocked": round(float((scores[attacks] >= block).any(axis=1).mean()), 4) if attacks.any() else 0.0,
            "benign_blocked": round(float((scores[benign] >= block).any(axis=1).mean()), 4),
            "auc": round(float(np.mean(aucs)), 4) if aucs else 0.0}


def shipped_report(classifier: GuardClassifier, embedder, attacks: list[dict], benign: list[dict]) -> dict:
    """serve's shipped attack and benign sets (never used to fit or choose): block rates per technique."""

    def blocked(rows):
        texts = ["\n".join(m["content"] for m in row["messages"] if m["role"] == "user") for row in rows]
        return list((classifier.text_scores("input", embedder, texts) >= classifier.stages["input"].block).any(axis=1))

    a_flags, b_flags = blocked(attacks), blocked(benign)
    return {"attacks_blocked": evaluate.rate(a_flags, [r["id"] for r in attacks]),
            "attacks_by_technique": evaluate.grouped(a_flags, [r["id"] for r in attacks],
                                                     [r.get("technique", "?") for r in attacks]),
            "benign_blocked": evaluate.rate(b_flags, [r["id"] for r in benign])}


def save_guard(folder: Path, classifier: GuardClassifier, metrics: dict) -> None:
    """Write the whole guard beside the folder, then put it in place: a crash leaves the previous
    guard (or none), never heads from one training and thresholds or encoder from another."""
    import shutil

    from charter.guards.report import write_reports
    from charter.rows import write_json_atomic

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    classifier.save(partial)
    write_json_atomic(partial / "metrics.json", metrics)
    write_reports(partial, classifier, metrics)
    shutil.rmtree(folder, ignore_errors=True)
    partial.replace(folder)


def _counts(examples: list[dict], answers: list[dict]) -> dict:
    out: dict = {}
    for name, items in (("examples", examples), ("answers", answers)):
        for split in ("train", "val", "test"):
            chosen = [it for it in items if it["split"] == split]
            out[f"{name}_{split}"] = {"positive": sum(it["label"] == 1 for it in chosen),
                                      "negative": sum(it["label"] == 0 for it in chosen),
                                      "sources": len({it["source_id"] for it in chosen})}
    return out


def _summary(metrics: dict) -> dict:
    test = metrics["input_test"]
    out = {"input_attacks_blocked": test["attacks_blocked"]["rate"], "input_benign_blocked":
           test["benign_blocked"]["rate"], "input_auc": test["auc"]}
    if "stream_test" in metrics:
        out["stopped_within_64_tokens"] = metrics["stream_test"]["hard_line_answers_stopped_within"]["64"]["rate"]
    return out


def _why(stage: str) -> str:
    if stage == "input":
        return "the constitution's hard lines need examples (requests that cross them)"
    return ("the engine refused or barely answered every crossing request, so there is no hard-line answer to "
            "learn from; make the data with an engine that answers (the base model) or without --no-answers "
            "and train with --no-output")


def _progress(progress):
    def report(description, done, total):
        if progress is not None:
            progress(description, done, total)
    return report
