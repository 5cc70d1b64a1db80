"""SL-CAI chains: structure, batching, principle sampling, resume; and one run on the embedded model."""

from __future__ import annotations

import pytest

from charter.data.critique import run_sl
from charter.data.export import export_run

from .conftest import items
from .fakes import FakeEngine


def test_chains_have_answer_critiques_revisions_and_one_sft_row(
    fake, open_store, example_constitution
):
    store = open_store(fake)
    summary = run_sl(store, example_constitution, fake, items(2, 1), rounds=2)
    kinds = store.kinds()
    assert kinds == {"sft": 3, "sl_answer": 3, "sl_critique": 4, "sl_revision": 4}
    assert summary["records"] == sum(kinds.values()) and summary["prompts"] == 3
    sft = {r.data["prompt_id"]: r for r in store.iter("sft")}
    final = next(
        r
        for r in store.iter("sl_revision")
        if r.data["prompt_id"] == "t/h0" and r.data["round"] == 2
    )
    assert sft["t/h0"].data["messages"][1]["content"] == final.data["text"]
    assert (
        sft["t/h0"].data["example_kind"] == "sl_revision"
        and sft["t/a0"].data["example_kind"] == "helpful"
    )
    assert sft["t/a0"].clause_ids == ()
    # every record carries provenance
    for record in store.iter("sl_critique"):
        d = record.data
        assert (
            d["constitution_hash"] == example_constitution.content_hash()
            and d["engine"] == fake.fingerprint
        )
        assert d["sampling"]["max_tokens"] == 128 and d["seed"] == 0
        assert record.clause_ids == (d["principle_id"],)


def test_critiques_use_the_principle_text_after_the_fewshot_prefix(
    fake, open_store, example_constitution
):
    store = open_store(fake)
    run_sl(store, example_constitution, fake, items(1), rounds=1)
    critique = next(store.iter("sl_critique"))
    principle = example_constitution.clause(critique.data["principle_id"])
    assert critique.data["request"][-1]["content"] == f"Critique request: {principle.critique}"
    revision = next(store.iter("sl_revision"))
    assert revision.data["request"][-1]["content"] == f"Revision request: {principle.revision}"


def test_steps_are_batched_across_prompts(open_store, example_constitution):
    engine = FakeEngine()
    run_sl(open_store(engine), example_constitution, engine, items(4, 2), rounds=2, batch_size=4)
    # batch 1 (4 red-team prompts): answers, then critique and revision x 2 rounds; batch 2 (2 helpful
    # prompts): answers only
    assert engine.calls == [4, 4, 4, 4, 4, 2]
    assert engine.resets == len(engine.calls)  # every call starts from a clean cache


def test_principles_are_seeded_per_prompt_and_round(open_store, example_constitution):
    def principles(seed, prompts):
        engine = FakeEngine()
        store = open_store(engine, f"run-{seed}-{len(prompts)}")
        run_sl(store, example_constitution, engine, prompts, rounds=2, seed=seed)
        return {
            (r.data["prompt_id"], r.data["round"]): r.data["principle_id"]
            for r in store.iter("sl_critique")
        }

    both = principles(0, items(4))
    assert principles(0, items(4)[2:]) == {
        k: v for k, v in both.items() if k[0] in ("t/h2", "t/h3")
    }
    assert len(set(both.values())) > 1


class Crash(RuntimeError):
    pass


class CrashingEngine(FakeEngine):
    def __init__(self, after: int):
        super().__init__()
        self.after = after

    def generate(self, requests):
        if len(self.calls) >= self.after:
            raise Crash("killed")
        return super().generate(requests)


@pytest.mark.parametrize("after", [1, 3, 6])
def test_an_interrupted_run_resumes_to_identical_exports(
    tmp_path, open_store, example_constitution, after
):
    whole = FakeEngine()
    store = open_store(whole, "whole")
    run_sl(store, example_constitution, whole, items(4, 2), rounds=2, batch_size=3)
    export_run(store, tmp_path / "a", "jsonl")

    crashing = CrashingEngine(after)
    store = open_store(crashing, "resumed")
    with pytest.raises(Crash):
        run_sl(store, example_constitution, crashing, items(4, 2), rounds=2, batch_size=3)
    summary = run_sl(store, example_constitution, FakeEngine(), items(4, 2), rounds=2, batch_size=3)
    assert summary["reused"] > 0
    export_run(store, tmp_path / "b", "jsonl")
    for name in ("sft.jsonl",):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.slow
def test_sl_on_the_embedded_model(embedded, open_store, example_constitution):
    store = open_store(embedded)
    summary = run_sl(
        store, example_constitution, embedded, items(1, 1), rounds=1, max_tokens=24, fewshot_count=1
    )
    assert store.kinds() == {"sft": 2, "sl_answer": 2, "sl_critique": 1, "sl_revision": 1}
    assert summary["completion_tokens"] > 0 and summary["engine_seconds"] > 0
    for record in store.iter("sl_answer"):
        assert record.data["raw"].strip() and record.data["finish_reason"] in ("stop", "length")
    assert all(r.data["messages"][1]["content"] for r in store.iter("sft"))
