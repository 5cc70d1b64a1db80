"""The run store: identity checks, stage parameters, --new-run folders, batched reads."""

from __future__ import annotations

import pytest

from charter.errors import StoreError
from charter.store import Record, RunStore, open_run


def test_a_different_constitution_or_engine_is_refused(tmp_path):
    RunStore.open(tmp_path / "run", constitution_hash="aaa", engines={"policy": "e1"}).close()
    with pytest.raises(StoreError, match="different constitution.*--new-run"):
        RunStore.open(tmp_path / "run", constitution_hash="bbb", engines={"policy": "e1"})
    with pytest.raises(StoreError, match="different policy engine.*--new-run"):
        RunStore.open(tmp_path / "run", constitution_hash="aaa", engines={"policy": "e2"})


def test_new_run_uses_the_next_folder_and_resumes_it(tmp_path):
    RunStore.open(tmp_path / "run", constitution_hash="aaa").close()
    second = open_run(tmp_path / "run", new_run=True, constitution_hash="bbb")
    assert second.folder == tmp_path / "run-2"
    second.put("k1", "sft", "sl", {"x": 1})
    second.close()
    again = open_run(tmp_path / "run", new_run=True, constitution_hash="bbb")  # same command, rerun
    assert again.folder == tmp_path / "run-2" and again.has("k1")
    again.close()
    with pytest.raises(StoreError):
        open_run(tmp_path / "run", constitution_hash="bbb")


def test_a_stage_rerun_with_another_seed_is_refused_but_a_new_limit_is_not(tmp_path):
    store = RunStore.open(tmp_path / "run", constitution_hash="aaa")
    store.begin_stage("sl", {"seed": 0, "limit": 4}, fixed=("seed",))
    store.begin_stage("sl", {"seed": 0, "limit": 12}, fixed=("seed",))
    with pytest.raises(StoreError, match="seed=0.*--new-run"):
        store.begin_stage("sl", {"seed": 1, "limit": 12}, fixed=("seed",))
    store.close()
    with pytest.raises(StoreError, match="seed"):
        RunStore.open(tmp_path / "run", stage="sl", params={"seed": 5}, fixed=("seed",))


def test_get_many_and_counts_by_stage(tmp_path):
    store = RunStore.open(tmp_path / "run")
    store.put_many(
        [
            Record(f"k{i}", "sft", "sl" if i % 2 else "character", f"{i:03d}", ("c",), {"i": i})
            for i in range(1200)
        ]
    )
    found = store.get_many([f"k{i}" for i in range(0, 1300, 100)])
    assert sorted(found) == sorted(f"k{i}" for i in range(0, 1200, 100))
    assert found["k500"].data == {"i": 500}
    assert store.count("sft", "sl") == 600 and store.count(stage="character") == 600
    store.close()


def _mark_done(folder: str, writer: int, count: int) -> None:
    from charter.store import RunStore

    store = RunStore.open(folder)
    for index in range(count):
        store.set_stage_done(f"w{writer}-{index}", {"index": index})
    store.close()


def test_concurrent_manifest_writers_lose_no_entry(tmp_path):
    """Six processes each mark 60 stages done in one folder: every entry is kept (the updates are
    read-modify-write; without the lock most were lost)."""
    import multiprocessing

    from charter.store import RunStore

    RunStore.open(tmp_path / "run").close()
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_mark_done, args=(str(tmp_path / "run"), w, 60)) for w in range(6)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=300)
        assert process.exitcode == 0
    done = RunStore.read(tmp_path / "run").manifest["done"]
    assert len(done) == 360
