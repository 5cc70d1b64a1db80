"""The author's example conversations reach the data: SFT seeds and author-labelled pairs, each
traced to its clause, stored once (a rerun reuses them) and exported in TRL's columns."""

from __future__ import annotations

from charter.constitution import load_constitution
from charter.data.export import pref_rows, sft_rows
from charter.data.understanding import run_understanding
from charter.shipped import example_path
from charter.store import RunStore


def test_example_conversations_become_sft_rows_and_pairs(tmp_path, fake):
    constitution = load_constitution(example_path("short_constitution.yaml"))
    store = RunStore.open(tmp_path / "run", constitution_hash=constitution.content_hash(),
                          engines={"policy": fake.fingerprint})
    try:
        run_understanding(store, constitution, fake, answers="construction")
        seeds = [r for r in sft_rows(store) if r["example_kind"] == "constitution_example"]
        with_good = [(c.id, e) for cl in constitution.clauses_by_kind().values() for c in cl
                     for e in c.examples if e.good]
        assert len(seeds) == len(with_good) and fake.calls == []  # no model: the author wrote the answers
        multi = next(r for r in seeds if len(r["messages"]) > 2)
        assert [m["role"] for m in multi["messages"]][-2:] == ["user", "assistant"]
        pairs = [r for r in pref_rows(store) if r["label_source"] == "constitution_example"]
        assert len(pairs) == sum(1 for _, e in with_good if e.bad)
        assert all(len(p["clause_ids"]) == 1 and p["score_chosen"] == 1.0 for p in pairs)
        why = [r for r in sft_rows(store) if r["prompt_id"].endswith("/author")]
        assert why and all(r["messages"][-1]["content"] for r in why)
        before = store.count("sft"), store.count("pref")
        run_understanding(store, constitution, fake, answers="construction")
        assert (store.count("sft"), store.count("pref")) == before
    finally:
        store.close()
