"""`charter data stats RUN`: what a run holds, per clause and per label, read from the store."""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import pairwise

from charter.store import RunStore


def run_stats(store: RunStore) -> dict:
    """Counts and rates a person checks before training on a run's data."""
    per_clause: dict[str, Counter] = defaultdict(Counter)
    for kind in ("sft", "pref", "prompt"):
        for record in store.iter(kind):
            for clause_id in record.clause_ids or ("(none)",):
                per_clause[clause_id][kind] += 1
    return {
        "kinds": store.kinds(),
        "per_clause": {k: dict(v) for k, v in sorted(per_clause.items())},
        "sft": _sft(store),
        "prefs": _prefs(store),
        "judgments": _judgments(store),
        "prompts": _prompts(store),
        "stages": store.manifest.get("done", {}),
        "failed_units": _failed(store),
    }


def _failed(store: RunStore) -> dict:
    """Units of work that failed past their retries in each stage's last run (retried next run)."""
    failed: dict[str, dict] = {}
    for failure in store.failures():
        entry = failed.setdefault(failure["stage"], {"units": 0, "requests": 0, "last_error": ""})
        entry["units"] += 1
        entry["requests"] += len(failure["keys"])
        entry["last_error"] = failure["error"][:300]
    return failed


def _sft(store: RunStore) -> dict:
    by_kind = Counter(r.data.get("example_kind") or "?" for r in store.iter("sft"))
    return {"rows": sum(by_kind.values()), "by_example_kind": dict(sorted(by_kind.items()))}


def _prefs(store: RunStore) -> dict:
    labels: Counter = Counter()
    scores: list[float] = []
    biased = judged = 0
    for record in store.iter("pref"):
        labels[record.data.get("label_source") or "?"] += 1
        scores.append(float(record.data["score_chosen"]))
        if record.data.get("position_bias") is not None:
            judged += 1
            biased += bool(record.data["position_bias"])
    attempted = store.count("pair_samples") + _rejected_samples(store)
    rows = sum(labels.values())
    return {
        "rows": rows,
        "by_label_source": dict(sorted(labels.items())),
        "score_chosen_mean": round(sum(scores) / len(scores), 4) if scores else None,
        "score_chosen_histogram": _histogram(scores),
        "pairs_attempted": attempted,
        "pair_abstentions": max(0, attempted - rows),
        "pair_abstention_rate": round((attempted - rows) / attempted, 4) if attempted else None,
        "position_bias_rate": round(biased / judged, 4) if judged else None,
    }


def _rejected_samples(store: RunStore) -> int:
    # Contrastive and character pairs store one "pair_sample" per side; count pairs by their rejected side.
    return sum(1 for r in store.iter("pair_sample") if r.data.get("side") == "rejected")


def _judgments(store: RunStore) -> dict:
    total = abstained = 0
    reasons: Counter = Counter()
    for record in store.iter("judgment"):
        total += 1
        if record.data.get("abstained"):
            abstained += 1
            reasons[(record.data.get("reason") or "?")[:80]] += 1
    return {
        "judgments": total,
        "abstentions": abstained,
        "abstention_rate": round(abstained / total, 4) if total else None,
        "abstention_reasons": dict(reasons.most_common(5)),
    }


def _prompts(store: RunStore) -> dict:
    kinds: Counter = Counter()
    rejected = 0
    for record in store.iter("prompt"):
        if record.data.get("valid"):
            kinds[record.data.get("prompt_kind") or "?"] += 1
        else:
            rejected += 1
    return {"usable_by_kind": dict(sorted(kinds.items())), "rejected": rejected}


def _histogram(scores: list[float], edges=(0.5, 0.6, 0.7, 0.8, 0.9, 1.0)) -> dict[str, int]:
    if not scores:
        return {}
    bins: Counter = Counter()
    for s in scores:
        for low, high in pairwise(edges):
            if low <= s < high or (high == edges[-1] and s == high):
                bins[f"{low:.1f}-{high:.1f}"] += 1
                break
    return dict(sorted(bins.items()))
