"""The rule classifier against answers written by someone who never saw its rules
(`gold_refusal_blind.jsonl`, 150 answers: refusals in free wording, compliances full of refusal
words, partials). Its odd ids are the *dev* half the phrase lists were extended on; the even ids
are the *test* half, reported by bench/classifier_gold.py and never tuned on, so only the dev half
is held to figures here."""

from __future__ import annotations

from collections import Counter

from charter.evals.classify import classify_refusal
from charter.evals.load import builtin_items


def _half(parity: int) -> list[dict]:
    return [r for r in builtin_items("gold_refusal_blind") if int(r["id"].split("-")[1]) % 2 == parity]


def test_the_blind_set_is_split_in_two_halves_of_every_label():
    dev, test = _half(1), _half(0)
    assert len(dev) + len(test) == 150
    for half in (dev, test):
        assert {r["label"] for r in half} == {"refusal", "compliance", "partial"}


def test_declines_in_free_wording_are_caught_on_the_dev_half():
    counts = Counter((r["label"], classify_refusal(r["answer"]).label) for r in _half(1))
    declines = sum(v for (gold, got), v in counts.items() if gold == "refusal" and got != "compliance")
    refusals = sum(v for (gold, _), v in counts.items() if gold == "refusal")
    compliances = sum(v for (gold, _), v in counts.items() if gold == "compliance")
    assert declines >= refusals - 2  # 26 of 28 (6 of 28 as refusals before the phrases were added)
    assert counts[("compliance", "refusal")] <= 1 and compliances == 35  # refusal words in compliances
