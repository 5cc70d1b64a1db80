"""charter.rows: one reader and one atomic writer for every row-file format."""

from __future__ import annotations

import json

import pytest

from charter.errors import CharterError
from charter.rows import atomic_path, iter_rows, read_rows, write_json_atomic, write_rows, write_text_atomic

ROWS = [{"prompt": "How do I bake bread?", "category": "food"},
        {"prompt": "What is a prime number?", "category": "maths"}]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".tsv", ".parquet"])
def test_every_format_round_trips(tmp_path, suffix):
    path = tmp_path / f"rows{suffix}"
    assert write_rows(path, ROWS) == 2
    assert read_rows(path) == ROWS
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def test_nested_values_survive_jsonl_json_and_parquet(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "hi"}], "score": 0.5}]
    for suffix in (".jsonl", ".json", ".parquet"):
        write_rows(tmp_path / f"r{suffix}", rows)
        assert read_rows(tmp_path / f"r{suffix}") == rows


def test_json_forms(tmp_path):
    (tmp_path / "array.json").write_text(json.dumps(ROWS))
    (tmp_path / "wrapped.json").write_text(json.dumps({"data": ROWS}))
    (tmp_path / "lines.json").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    for name in ("array.json", "wrapped.json", "lines.json"):
        assert read_rows(tmp_path / name) == ROWS, name
    (tmp_path / "scalar.json").write_text("3")
    with pytest.raises(CharterError, match=r"scalar\.json: a \.json file must hold a list"):
        read_rows(tmp_path / "scalar.json")


def test_line_numbers_name_the_bad_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok"}\n\n{"prompt": \n')
    with pytest.raises(CharterError, match=r"bad\.jsonl:3: not valid JSON"):
        read_rows(path)
    path.write_text('{"prompt": "ok"}\n[1, 2]\n')
    with pytest.raises(CharterError, match=r"bad\.jsonl:2: expected a JSON object"):
        read_rows(path)
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("prompt\nfirst\nsecond\n")
    assert [n for n, _ in iter_rows(csv_path)] == [2, 3]


def test_missing_unknown_and_damaged_files_say_what_they_are(tmp_path):
    with pytest.raises(CharterError, match=r"prompt file .*nope\.jsonl does not exist"):
        read_rows(tmp_path / "nope.jsonl", what="prompt file")
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(CharterError, match=r"unknown dataset file type '\.txt'"):
        read_rows(tmp_path / "x.txt", what="dataset file")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(CharterError, match="not a readable Parquet file"):
        read_rows(tmp_path / "broken.parquet")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(CharterError, match=r"empty\.csv:1: no header row"):
        read_rows(tmp_path / "empty.csv")


def test_datasets_folders_and_hf_specs(tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS),
                          "test": datasets.Dataset.from_list(ROWS[:1])}).save_to_disk(str(tmp_path / "saved"))
    assert read_rows(tmp_path / "saved") == ROWS  # "train" when there are several
    assert read_rows(tmp_path / "saved", split="test") == ROWS[:1]
    assert read_rows(f"hf:{tmp_path / 'saved'}:test") == ROWS[:1]
    with pytest.raises(CharterError, match="has splits train, test"):
        read_rows(tmp_path / "saved", split="validation")
    (tmp_path / "files").mkdir()
    write_rows(tmp_path / "files" / "train.jsonl", ROWS)
    assert read_rows(f"hf:{tmp_path / 'files'}:train") == ROWS
    with pytest.raises(CharterError, match="could not load the dataset.*no download"):
        read_rows("hf:no-such-owner/no-such-dataset-xyz")


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "rows.jsonl"
    write_rows(path, ROWS)

    def broken():
        yield ROWS[0]
        raise RuntimeError("disk gone")
    with pytest.raises(RuntimeError):
        write_rows(path, broken())
    assert read_rows(path) == ROWS
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]
    with pytest.raises(CharterError, match="cannot write '.txt'"):
        write_rows(tmp_path / "rows.txt", ROWS)


def test_parquet_with_a_schema_keeps_columns_when_empty(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    schema = pa.schema([("prompt", pa.string()), ("score", pa.float64())])
    assert write_rows(tmp_path / "empty.parquet", [], schema) == 0
    assert pq.read_table(tmp_path / "empty.parquet").schema.names == ["prompt", "score"]
    many = [{"prompt": str(i), "score": float(i)} for i in range(2500)]
    assert write_rows(tmp_path / "many.parquet", iter(many), schema) == 2500
    assert read_rows(tmp_path / "many.parquet") == many


def test_text_and_json_writers(tmp_path):
    write_json_atomic(tmp_path / "m.json", {"b": 1, "a": [1]})
    assert (tmp_path / "m.json").read_text() == '{\n  "a": [\n    1\n  ],\n  "b": 1\n}'
    write_text_atomic(tmp_path / "secret.yaml", "x: 1\n", mode=0o600)
    assert (tmp_path / "secret.yaml").stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError), atomic_path(tmp_path / "never.txt") as tmp:
        open(tmp, "w").write("half")
        raise ValueError
    assert not (tmp_path / "never.txt").exists() and len(list(tmp_path.iterdir())) == 2


def test_a_killed_writers_leftover_is_removed_by_the_next_write(tmp_path):
    """SIGKILL skips every cleanup, so a killed export leaves `.NAME.PID.XXXX.tmp` behind; the next
    write of NAME removes it, but never a file a live process is still writing."""
    import os

    from charter.rows import write_rows

    target = tmp_path / "rows.jsonl"
    dead = tmp_path / ".rows.jsonl.999999999.abcd.tmp"  # no such pid
    live = tmp_path / f".rows.jsonl.{os.getpid()}.efgh.tmp"
    other = tmp_path / ".other.jsonl.999999999.abcd.tmp"
    for leftover in (dead, live, other):
        leftover.write_text("partial")
    write_rows(target, [{"a": 1}])
    assert not dead.exists() and live.exists() and other.exists() and target.exists()
