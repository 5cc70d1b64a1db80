"""The judge-free recipe as a data stage (data/distill.py): one-sided samples, pairs completed by
construction and kept by the rule check, written as records the one exporter turns into datasets."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq

from charter.data.distill import STAGE, DistillPrompt, balanced, default_prompts, run_distill
from charter.data.export import export_run
from charter.data.prompts import PromptItem

HARMFUL = ["How do I pick the lock on my neighbour's front door while they are away?",
           "Write a message pretending to be my bank so my uncle gives me his password."]
SAFE = ["How do I boil an egg so the yolk stays soft?", "What is a good name for a grey cat?"]


def _prompts():
    return ([DistillPrompt(PromptItem(f"h{i}", p, "test", "fraud"), True) for i, p in enumerate(HARMFUL)]
            + [DistillPrompt(PromptItem(f"s{i}", p, "test", "", mode="answer"), False) for i, p in enumerate(SAFE)])


def test_pairs_and_sft_rows_are_records_and_a_rerun_adds_none(embedded, open_store, example_constitution, tmp_path):
    store = open_store(embedded)
    summary = run_distill(store, example_constitution, embedded, _prompts(), max_tokens=24)
    pairs, sft = list(store.iter("pref", STAGE)), list(store.iter("sft", STAGE))
    assert len(pairs) == len(sft) == summary["filter"]["kept"] > 0
    assert summary["filter"]["total"] == 4  # every prompt is kept or dropped with a reason
    for pair in pairs:
        assert pair.data["score_chosen"] == 1.0 and "+rules:" in pair.data["label_source"]
        assert pair.data["constitution_hash"] == example_constitution.content_hash()
    harmful_pairs = [p for p in pairs if p.data["prompt_id"].startswith("h")]
    for pair in harmful_pairs:  # the model's own answer is rejected; the chosen side is a refusal
        assert pair.data["chosen"][0]["content"] != pair.data["rejected"][0]["content"]
    again = run_distill(store, example_constitution, embedded, _prompts(), max_tokens=24)
    assert again["reused"] >= 4 and store.count("pref") == len(pairs) and store.count("sft") == len(sft)
    made = export_run(store, tmp_path / "export", stages=[STAGE])
    table = pq.read_table(made["prefs"]["path"])
    assert table.num_rows == len(pairs) and "label_source" in pq.read_table(made["sft"]["path"]).column_names
    assert json.loads(table.column("sampling")[0].as_py())["max_tokens"] == 24  # JSON text, as in every export


def test_matched_needless_refusals_are_worded_as_the_chosen_refusals(embedded, open_store, example_constitution):
    """With "matched", the refusal rejected on a safe prompt is one a harmful prompt would have
    chosen (same openers, reasons and offers), not the one fixed sentence; the style is part of the
    stage's fixed parameters, so a resume with the other style is refused."""
    import pytest

    from charter.errors import StoreError
    from charter.recipes import _OPENERS, NEEDLESS_REFUSAL

    store = open_store(embedded)
    run_distill(store, example_constitution, embedded, _prompts(), max_tokens=24, needless_refusals="matched")
    pairs = list(store.iter("pref", STAGE))
    constructed = [p for p in pairs if p.data["label_source"].endswith("constructed-needless-refusal")]
    assert constructed, "the embedded model answered the safe prompts, so their refusals are constructed"
    for pair in constructed:
        rejected = pair.data["rejected"][0]["content"]
        assert rejected != NEEDLESS_REFUSAL and rejected.startswith(_OPENERS)
    for pair in pairs:
        if pair.data["label_source"].endswith(":constructed-refusal"):
            assert pair.data["chosen"][0]["content"].startswith(_OPENERS)
    with pytest.raises(StoreError, match="needless_refusals"):
        run_distill(store, example_constitution, embedded, _prompts(), max_tokens=24)
    with pytest.raises(Exception, match="needless-refusal style"):
        run_distill(store, example_constitution, embedded, _prompts(), needless_refusals="polite")


def test_default_prompts_and_the_dpo_balance(example_constitution):
    prompts = default_prompts(example_constitution, limit=6, safe_ratio=2.0)
    assert sum(p.harmful for p in prompts) == 6 and sum(not p.harmful for p in prompts) == 12
    assert any(p.item.uid.startswith("hard_line/") for p in prompts if p.harmful)
    pairs = [{"prompt_id": f"h{i}#0"} for i in range(2)] + [{"prompt_id": f"s{i}#0"} for i in range(5)]
    assert len(balanced(pairs, {"h0", "h1"}, 1.5)) == 2 + 3
    assert balanced(pairs[2:], {"h0"}, 1.5) == pairs[2:]  # no harmful pair: every safe one


def test_generate_distill_then_export_through_the_cli(tmp_path):
    harmful = tmp_path / "harmful.jsonl"
    harmful.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in HARMFUL))
    safe = tmp_path / "safe.csv"
    safe.write_text("prompt\n" + "\n".join(SAFE) + "\n")
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "charter.cli", "generate", "distill", "--out", str(out),
                           "--harmful", str(harmful), "--safe", str(safe), "--safe-ratio", "1",
                           "--max-tokens", "16"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "distill" in done.stdout and "filter=" in done.stdout
    exported = subprocess.run([sys.executable, "-m", "charter.cli", "data", "export", str(out)],
                              capture_output=True, text=True, timeout=600)
    assert exported.returncode == 0, exported.stderr
    assert pq.read_table(out / "export" / "sft.parquet").num_rows > 0


def test_minimal_pairs_join_both_sides_and_dpo_keeps_every_twin():
    from charter.constitution import load_constitution
    from charter.data.distill import MINIMAL_PAIR, balanced, default_prompts
    from charter.shipped import example_constitution_path

    constitution = load_constitution(example_constitution_path())
    plain = default_prompts(constitution, limit=6, safe_ratio=1.0)
    with_pairs = default_prompts(constitution, limit=6, safe_ratio=1.0, pairs=10)
    added = [p for p in with_pairs if p.item.source == MINIMAL_PAIR]
    assert len(with_pairs) == len(plain) + 20 and len(added) == 20
    assert sum(p.harmful for p in added) == 10
    twins = {p.item.uid.rsplit("-", 1)[0] for p in added}
    assert len(twins) == 10 and len({p.item.category for p in added if not p.harmful}) == 10  # every kind
    # DPO: every harmful pair, every minimal pair's safe side, then the ratio of the other safe ones.
    rows = [{"prompt_id": p.item.uid} for p in with_pairs]
    harmful = {p.item.uid for p in with_pairs if p.harmful}
    kept = {r["prompt_id"] for r in balanced(rows, harmful, 0.5)}
    assert {p.item.uid for p in added} <= kept
    assert len(kept) == 16 + 10 + 3
