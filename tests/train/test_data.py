"""Data rules that need no model: reading, weighted mixing, SFT rows, soft labels (docs/training.md)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from charter.errors import CharterError
from charter.train.data import (
    DataFile,
    label_noise,
    mix,
    preference,
    prepare_preferences,
    read_rows,
    sft_row,
)
from charter.train.dpo import dpo_loss


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def chat(i):
    return {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}


def test_data_file_parses_an_optional_weight(tmp_path):
    assert DataFile.parse("sl.parquet:0.7") == DataFile(Path("sl.parquet"), 0.7)
    assert DataFile.parse("sl.parquet").weight is None
    odd = tmp_path / "a:b.jsonl"  # an existing file whose name has a colon is taken whole
    odd.write_text("")
    assert DataFile.parse(str(odd)).path == odd


def test_read_rows_names_the_bad_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n{oops\n')
    with pytest.raises(CharterError, match=r"bad.jsonl:2"):
        read_rows(bad)
    with pytest.raises(CharterError, match="does not exist"):
        read_rows(tmp_path / "missing.jsonl")


def test_mix_without_weights_concatenates(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [chat(i) for i in range(3)])
    b = write_jsonl(tmp_path / "b.jsonl", [chat(i) for i in range(10, 12)])
    rows, report = mix([DataFile(a), DataFile(b)], seed=1)
    assert len(rows) == 5 and [g["rows_used"] for g in report] == [3, 2]


def test_mix_by_file_weight_oversamples_and_is_seeded(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [{**chat(i), "src": "a"} for i in range(2)])
    b = write_jsonl(tmp_path / "b.jsonl", [{**chat(i), "src": "b"} for i in range(8)])
    rows, _ = mix([DataFile(a, 3.0), DataFile(b, 1.0)], total=8, seed=0)
    assert Counter(r["src"] for r in rows) == {"a": 6, "b": 2}  # a's 2 rows repeated 3 times each
    assert Counter(json.dumps(r) for r in rows if r["src"] == "a").most_common(1)[0][1] == 3
    again, _ = mix([DataFile(a, 3.0), DataFile(b, 1.0)], total=8, seed=0)
    assert again == rows
    with pytest.raises(CharterError, match="every dataset file a weight"):
        mix([DataFile(a, 1.0), DataFile(b)])


def test_mix_by_column_weights_each_value(tmp_path):
    rows_in = [{**chat(i), "stage": "sl"} for i in range(6)] + [{**chat(i), "stage": "helpful"} for i in range(6)]
    path = write_jsonl(tmp_path / "sft.jsonl", rows_in)
    rows, report = mix([DataFile(path)], total=4, by="stage", weights={"sl": 1, "helpful": 3})
    assert Counter(r["stage"] for r in rows) == {"sl": 1, "helpful": 3}
    assert {g["group"].split("[")[1] for g in report} == {"stage=helpful]", "stage=sl]"}
    with pytest.raises(CharterError, match="stage=helpful but no weight"):
        mix([DataFile(path)], by="stage", weights={"sl": 1})


def test_sft_rows_train_the_last_reply_by_default():
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
           "clause_ids": ["warmth"]}
    assert sft_row(row, "last_assistant", "f:1") == {"prompt": row["messages"][:1],
                                                     "completion": row["messages"][1:]}
    assert sft_row(row, "all", "f:1") == {"messages": row["messages"]}
    with pytest.raises(CharterError, match="f:3: the last message must be the assistant"):
        sft_row({"messages": row["messages"][:1]}, "all", "f:3")


def test_preference_from_scores():
    assert preference({"score_chosen": 0.6, "score_rejected": 0.2}) == pytest.approx(0.75)  # normalised
    assert preference({"score_chosen": 0.7}) == 0.7
    assert preference({}) == 1.0  # labelled by construction (contrastive pairs)


def pair(sc, sr, **extra):
    return {"prompt": "p", "chosen": "good", "rejected": "bad", "score_chosen": sc, "score_rejected": sr, **extra}


def test_prepare_preferences_drops_coin_flips_and_swaps_contradicted_pairs():
    rows = [pair(0.9, 0.1), pair(0.55, 0.45), pair(0.2, 0.8, clause_ids=["honesty"])]
    kept, counts = prepare_preferences(rows, min_margin=0.1)
    assert counts == {"rows_in": 3, "kept": 2, "dropped_uncertain": 1, "swapped": 1}
    swapped = kept[1]
    assert swapped["chosen"] == [{"role": "assistant", "content": "bad"}]  # the scores preferred it
    assert swapped["preference"] == pytest.approx(0.8) and swapped["score_chosen"] == 0.8
    assert swapped["clause_ids"] == ["honesty"]  # provenance rides along
    assert kept[0]["prompt"] == [{"role": "user", "content": "p"}]  # strings become chat messages
    everything, _ = prepare_preferences(rows, min_margin=0.0)
    assert len(everything) == 3


def test_label_noise_is_the_mean_doubt_of_kept_pairs_capped():
    kept, _ = prepare_preferences([pair(0.9, 0.1), pair(0.7, 0.3)], min_margin=0.1)
    assert label_noise(kept, cap=0.4) == pytest.approx(0.2)
    assert label_noise(kept, cap=0.15) == 0.15
    sure, _ = prepare_preferences([{"prompt": "p", "chosen": "a", "rejected": "b"}], min_margin=0.1)
    assert label_noise(sure, cap=0.4) == 0.0


def test_dpo_loss_is_plain_dpo_for_clean_labels_and_rdpo_for_noisy_ones():
    assert dpo_loss(0.0) == {"loss_type": ["sigmoid"]}
    assert dpo_loss(0.2) == {"loss_type": ["robust"], "label_smoothing": 0.2}


def test_dpo_loss_adds_the_chosen_answers_nll_with_its_weight():
    assert dpo_loss(0.0, sft_weight=0.5) == {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.5]}
    assert dpo_loss(0.2, sft_weight=1.0) == {"loss_type": ["robust", "sft"], "label_smoothing": 0.2,
                                             "loss_weights": [1.0, 1.0]}


def test_preference_rows_must_have_the_contract_columns():
    with pytest.raises(CharterError, match="missing column"):
        prepare_preferences([{"prompt": "p", "chosen": "a"}], min_margin=0.1)
