"""Prompt sources (JSONL, CSV, Parquet, HF datasets), located errors, deduplication, generation."""

from __future__ import annotations

import json

import pytest

from charter.data.promptgen import KINDS, generated_prompts, parse_prompt, run_prompts
from charter.data.prompts import (
    PromptItem,
    deduplicate,
    example_prompts,
    interleave,
    load_prompts,
    normalize,
)
from charter.errors import CharterError

ROWS = [
    {"id": "a", "prompt": "How do I bake bread?"},
    {"id": "b", "prompt": "What is a prime number?"},
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_csv_and_parquet_give_the_same_prompts(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = _jsonl(tmp_path / "p.jsonl", ROWS)
    csv = tmp_path / "p.csv"
    csv.write_text("id,text\na,How do I bake bread?\nb,What is a prime number?\n", encoding="utf-8")
    parquet = tmp_path / "p.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), parquet)
    expected = ["How do I bake bread?", "What is a prime number?"]
    assert [i.prompt for i in load_prompts(jsonl)] == expected
    assert [i.prompt for i in load_prompts(csv, column="text")] == expected
    assert [i.prompt for i in load_prompts(parquet)] == expected
    assert [i.uid for i in load_prompts(jsonl)] == ["p/a", "p/b"]


def test_hf_datasets_saved_to_disk_or_as_a_folder_of_files(tmp_path):
    import datasets

    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "saved"))
    assert [i.prompt for i in load_prompts(f"hf:{tmp_path / 'saved'}")][
        1
    ] == "What is a prime number?"
    (tmp_path / "files").mkdir()
    _jsonl(tmp_path / "files" / "train.jsonl", ROWS)
    loaded = load_prompts(f"hf:{tmp_path / 'files'}:train")
    assert [i.prompt for i in loaded] == ["How do I bake bread?", "What is a prime number?"]
    with pytest.raises(CharterError, match="could not load the dataset.*no download"):
        load_prompts("hf:no-such-owner/no-such-dataset-xyz")


def test_a_messages_column_gives_its_first_user_turn(tmp_path):
    rows = [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi there?"},
            ]
        }
    ]
    assert load_prompts(_jsonl(tmp_path / "m.jsonl", rows))[0].prompt == "Hi there?"


@pytest.mark.parametrize(
    "content, match",
    [
        ('{"prompt": "ok"}\n{"prompt": \n', r"bad\.jsonl:2: not valid JSON"),
        ('{"prompt": "ok"}\n{"text": "no prompt field"}\n', r"bad\.jsonl:2: no prompt field"),
        ('{"prompt": "   "}\n', r"bad\.jsonl:1: field 'prompt' is empty"),
        ('{"prompt": 42}\n', r"bad\.jsonl:1: field 'prompt' must be text"),
        ('["a list"]\n', r"bad\.jsonl:1: expected a JSON object"),
    ],
)
def test_bad_jsonl_names_file_line_and_field(tmp_path, content, match):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CharterError, match=match):
        load_prompts(path)


def test_csv_without_the_column_names_it_and_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("question\nfirst\n", encoding="utf-8")
    with pytest.raises(
        CharterError, match=r"bad\.csv:2: field 'text' is missing; the row has question"
    ):
        load_prompts(path, column="text")
    with pytest.raises(CharterError, match="does not exist"):
        load_prompts(tmp_path / "nope.jsonl")
    with pytest.raises(CharterError, match="unknown prompt file type"):
        load_prompts(path.with_suffix(".txt").write_text("x") and path.with_suffix(".txt"))


def test_deduplication_drops_exact_and_normalized_repeats():
    made = [
        PromptItem(str(i), text, "s")
        for i, text in enumerate(
            [
                "How do I bake bread?",
                "How do I bake bread?",
                "how do i  BAKE bread",
                "How do I bake cake?",
            ]
        )
    ]
    kept, dropped = deduplicate(made)
    assert [i.uid for i in kept] == ["0", "3"] and dropped == 2
    assert normalize("  Héllo,   World! ") == "héllo world"


def test_example_sets_load_and_interleave():
    red, helpful = example_prompts("red_team"), example_prompts("helpful", "answer")
    merged = interleave([red, helpful])
    assert (
        merged[0].source == "red_team"
        and merged[1].source == "helpful"
        and merged[1].mode == "answer"
    )
    assert len(merged) == len(red) + len(helpful)


def test_parse_prompt_strips_labels_and_rejects_non_prompts():
    assert parse_prompt('1. "Can you help me plan a budget?"\nmore') == (
        "Can you help me plan a budget?",
        None,
    )
    assert parse_prompt("Message: What is the tallest tree in the world?")[1] is None
    # small models often introduce the message first
    reply = "Here's an example of such a message:\n\nExample: \"How do owls see at night?\""
    assert parse_prompt(reply) == ("How do owls see at night?", None)
    assert parse_prompt("Here's a possible message:")[1] == "only a preamble, no message"
    assert parse_prompt("")[1] == "empty reply"
    assert parse_prompt("Hi")[1] == "too short to be a prompt"
    assert "refused" in parse_prompt("I'm sorry, I cannot write that message.")[1]


def test_prompt_generation_covers_every_kind_per_clause(
    tmp_path, fake, open_store, example_constitution
):
    store = open_store(fake)
    summary = run_prompts(store, example_constitution, fake, limit=8)
    assert summary["units"] == 8 and summary["records"] == 8
    records = list(store.iter("prompt"))
    assert {r.data["prompt_kind"] for r in records} == set(KINDS)
    assert {r.clause_ids[0] for r in records} == {"harmlessness", "honesty"}
    usable = generated_prompts(store)
    assert all(p.clause_id and p.kind for p in usable)
    assert {p.mode for p in usable if p.kind in ("lookalike", "cannot_apply")} == {"answer"}


@pytest.mark.slow
def test_prompt_generation_on_the_embedded_model(embedded, open_store, example_constitution):
    store = open_store(embedded)
    summary = run_prompts(
        store, example_constitution, embedded, limit=4, max_tokens=24, clause_kinds=("trait",)
    )
    records = list(store.iter("prompt"))
    assert summary["units"] == 4 and len(records) == 4
    assert all(r.data["raw"] for r in records)  # the model wrote something for every unit
    assert {r.data["clause_id"] for r in records} == {"curiosity"}
    assert summary["usable"] + summary["abstentions"] == 4
