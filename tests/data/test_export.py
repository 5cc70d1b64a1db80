"""Exports: TRL's conversational formats, read unchanged by `datasets`, written atomically."""

from __future__ import annotations

import json

import pytest

from charter.data.critique import run_sl
from charter.data.export import export_run, pref_rows, sft_rows
from charter.data.feedback import run_prefs
from charter.data.stats import run_stats
from charter.errors import CharterError

from .conftest import items


@pytest.fixture
def filled(fake, open_store, example_constitution):
    store = open_store(fake)
    run_sl(store, example_constitution, fake, items(2, 1), rounds=1)
    run_prefs(store, example_constitution, fake, items(3), mode="contrastive")
    return store


def test_parquet_exports_load_unchanged_with_datasets(filled, tmp_path):
    import datasets

    result = export_run(filled, tmp_path / "out", "parquet")
    assert result["sft"]["rows"] == 3 and result["prefs"]["rows"] == 3
    for name, rows in (("sft", list(sft_rows(filled))), ("prefs", list(pref_rows(filled)))):
        loaded = datasets.load_dataset("parquet", data_files=result[name]["path"], split="train")
        assert loaded.to_list() == rows


def test_rows_are_in_trl_conversational_form(filled, tmp_path):
    from trl.data_utils import is_conversational

    sft = next(sft_rows(filled))
    pref = next(pref_rows(filled))
    assert is_conversational(sft) and is_conversational(pref)
    assert [m["role"] for m in sft["messages"]] == ["user", "assistant"]
    assert pref["prompt"][-1]["role"] == "user" and pref["chosen"][0]["role"] == "assistant"
    for column in (
        "constitution_hash",
        "clause_ids",
        "engine",
        "sampling",
        "seed",
        "label_source",
        "position_bias",
    ):
        assert column in pref
    assert json.loads(pref["sampling"])["max_tokens"] == 128


def test_jsonl_export_and_stage_filter(filled, tmp_path):
    result = export_run(filled, tmp_path / "out", "jsonl", stages=["sl"])
    lines = (tmp_path / "out" / "sft.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["stage"] == "sl"
    assert result["prefs"] == {"path": None, "rows": 0}  # no rows: no file a trainer would choke on
    assert not (tmp_path / "out" / "prefs.jsonl").exists()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(CharterError, match="unknown"):
        export_run(filled, tmp_path / "out", "csv")


def test_stats_count_per_clause_and_labels(filled):
    stats = run_stats(filled)
    assert stats["sft"]["by_example_kind"] == {"helpful": 1, "sl_revision": 2}
    assert stats["prefs"]["by_label_source"] == {"contrastive:opposing": 3}
    assert stats["prefs"]["pair_abstention_rate"] == 0.0
    assert sum(v.get("sft", 0) for v in stats["per_clause"].values()) >= 3
