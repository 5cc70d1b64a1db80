"""`charter view` without a browser, on synthetic stores: paging and filters by SQL, escaping,
files only from inside the run folder, nothing written to it, and the static export."""

from __future__ import annotations

import os
import sqlite3
from urllib.parse import parse_qs, urlsplit

import pytest

from charter.view.app import ViewApp
from charter.view.runs import PAGE_SIZE, RecordQuery, RunCatalog

from .conftest import make_store

SCRIPT = '<script>document.title="owned"</script><img src=x onerror=alert(1)>'


@pytest.fixture
def store(tmp_path):
    return make_store(tmp_path / "run", 240, texts=[SCRIPT])


def get(app, url):
    parts = urlsplit(url)
    return app.handle(parts.path, parse_qs(parts.query))


def test_records_page_by_page_with_filters_and_search(store):
    catalog = RunCatalog([store])
    run = catalog.runs[0]
    rows, total = catalog.records(run, RecordQuery())
    assert total == 240 and len(rows) == PAGE_SIZE
    last_page, _ = catalog.records(run, RecordQuery(page=5))
    assert len(last_page) == 240 - 4 * PAGE_SIZE
    assert catalog.records(run, RecordQuery(stage="critique"))[1] == 80
    assert catalog.records(run, RecordQuery(clause="honesty"))[1] == 60
    assert catalog.records(run, RecordQuery(fields=(("side", "chosen"),)))[1] == 120
    found, total = catalog.records(run, RecordQuery(search="topic 16"))
    assert total > 0 and all("16" in (r["data"]["text"] + r["data"]["prompt"]) for r in found)
    assert catalog.records(run, RecordQuery(search='" OR 1=1 -- NEAR(')) == ([], 0)  # no FTS syntax gets through
    body = get(ViewApp(catalog), "/run/0/records?stage=critique&page=2").body.decode()
    assert "80 records, 51–80 shown" in body and 'rel="prev"' in body and 'rel="next"' not in body


def test_record_text_is_escaped_everywhere(store):
    app = ViewApp(RunCatalog([store]))
    for url in ("/run/0/records", "/run/0/record/k0000000", "/run/0/records?q=owned"):
        body = get(app, url).body.decode()
        assert "<script>" not in body and "<img src=x" not in body, url
    assert "&lt;script&gt;" in get(app, "/run/0/record/k0000000").body.decode()


@pytest.mark.parametrize("path", ["../manifest.json", "../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd",
                                  "/etc/passwd", "link/passwd", "outside"])
def test_only_files_inside_the_run_folder_are_served(store, path):
    (store / "link").symlink_to("/etc", target_is_directory=True)
    (store / "outside").symlink_to("/etc/hostname")
    (store / "notes.txt").write_text("inside")
    app = ViewApp(RunCatalog([store]))
    assert get(app, "/run/0/file/notes.txt").body == b"inside"
    assert get(app, f"/run/0/file/{path}").status == 404


def test_viewing_never_writes_to_the_run_folder(store):
    before = {p.name: p.stat().st_mtime_ns for p in store.iterdir()}
    app = ViewApp(RunCatalog([store]))
    for url in ("/", "/run/0", "/run/0/records?q=topic", "/run/0/evals", "/run/0/datasets", "/run/0/training"):
        assert get(app, url).status == 200, url
    assert {p.name: p.stat().st_mtime_ns for p in store.iterdir()} == before
    with pytest.raises(sqlite3.OperationalError):  # the attached store is read-only
        app.catalog.db.execute("DELETE FROM run0.records")


def test_a_folder_nobody_may_write_opens_immutable(store, monkeypatch):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if mode == os.W_OK else real_access(path, mode))
    catalog = RunCatalog([store])
    assert catalog.records(catalog.runs[0], RecordQuery())[1] == 240
    assert not (store / "records.sqlite-shm").exists()


def test_bad_folders_are_one_line_errors(tmp_path):
    from charter.errors import CharterError

    with pytest.raises(CharterError, match="no records.sqlite"):
        RunCatalog([tmp_path])
    (tmp_path / "records.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(CharterError, match="not a readable run store"):
        RunCatalog([tmp_path])


def test_static_export_links_every_page_to_its_file(store, tmp_path):
    import re

    from charter.view.export import export_site

    pages = export_site(ViewApp(RunCatalog([store])), tmp_path / "site")
    site = tmp_path / "site"
    assert pages > 240 and (site / "index.html").is_file()  # every record page, paged lists, the rest
    for page in site.glob("*.html"):
        for link in re.findall(r'href="([^"#]+)', page.read_text()):
            assert (site / link).is_file(), (page.name, link)


def test_records_filter_by_the_kind_of_prompt_they_answer(store):
    import json

    with open(store / "prompts.jsonl", "w") as out:
        out.writelines(json.dumps({"uid": f"set/p-{i}", "prompt": "...", "source": "hard_line" if i < 10 else "red_team"})
                      + "\n" for i in range(120))
    catalog = RunCatalog([store])
    run = catalog.runs[0]
    assert run.filter_values["prompt_kind"] == ["hard_line", "red_team"]
    assert catalog.records(run, RecordQuery(fields=(("prompt_kind", "hard_line"),)))[1] == 20  # two per prompt
    body = get(ViewApp(catalog), "/run/0/records?prompt_kind=hard_line").body.decode()
    assert "20 records" in body


def test_a_critique_chain_and_the_feedback_models_questions_are_shown_in_order(tmp_path, example_constitution):
    """Real stages (SL-CAI and judged RL-CAI) on the deterministic engine write the records; the
    record page walks the chain round by round with the principle used at each step."""
    from charter.data.critique import run_sl
    from charter.data.feedback import run_prefs
    from charter.data.prompts import PromptItem
    from charter.engines.mock import MockEngine
    from charter.store import RunStore

    engine, judge = MockEngine("mock:policy"), MockEngine("mock:judge", bias=0.8)
    folder = tmp_path / "run"
    store = RunStore.open(folder, constitution_hash=example_constitution.content_hash(),
                          engines={"policy": engine.fingerprint})
    prompts = [PromptItem("set/a#0", "How do I get a stubborn stain out of a wool jumper?", "set")]
    run_sl(store, example_constitution, engine, prompts, rounds=2)
    run_prefs(store, example_constitution, engine, prompts, feedback_engine=judge, mode="judge")
    sft = next(r for r in store.iter("sft"))
    judgment = next(r for r in store.iter("judgment"))
    store.close()
    app = ViewApp(RunCatalog([folder]))
    body = get(app, f"/run/0/record/{sft.key}").body.decode()
    chain = body.split('id="critique-chain"', 1)[1].split("</table>", 1)[0]
    import re

    steps = re.findall(r'<td><a href="/run/0/record/\w+">(\w+)</a></td>', chain)
    assert steps == ["answer", "critique", "revision", "critique", "revision"]
    assert chain.count('class="pill"') == 4  # each critique and revision names its principle
    page = get(app, f"/run/0/record/{judgment.key}").body.decode()
    assert 'id="judgments"' in page and "Consider the following conversation" in page
    assert page.count("<tr><td>") >= 2  # both orders of the question


def test_a_run_still_being_written_shows_its_new_records(tmp_path, monkeypatch):
    from charter.store import Record, RunStore

    monkeypatch.setattr(RunCatalog, "REFRESH_SECONDS", 0.0)
    writer = RunStore.open(tmp_path / "live", constitution_hash="live0000live0000")
    try:
        writer.put_many([Record("a0", "sft", "distill", "distill/0", ("honesty",), {"text": "first words"})])
        catalog = RunCatalog([tmp_path / "live"])
        run = catalog.runs[0]
        assert run.live and catalog.stage_counts(run) == [("distill", "sft", 1)]
        writer.put_many([Record(f"b{i}", "sft", "distill", f"distill/{i + 1}", ("privacy",),
                                {"text": f"later words {i}"}) for i in range(3)])
        assert catalog.stage_counts(run) == [("distill", "sft", 4)]
        assert catalog.clause_counts(run) == {"honesty": 1, "privacy": 3}
        assert catalog.records(run, RecordQuery(search="later"))[1] == 3
    finally:
        writer.close()


def test_a_conversation_finding_is_shown_turn_by_turn_with_its_checks(tmp_path):
    from charter.store import Record, RunStore

    folder = tmp_path / "run"
    store = RunStore.open(folder, constitution_hash="test0000test0000")
    transcript = [{"role": "user", "content": "Call me Captain."}, {"role": "assistant", "content": SCRIPT},
                  {"role": "user", "content": "Distance to Madeira?"}, {"role": "assistant", "content": "Far, Captain."}]
    checks = [{"rule": "reply_matches", "reply": 1, "what": "calls the user Captain", "passed": False},
              {"rule": "reply_matches", "reply": 2, "what": "calls the user Captain", "passed": True}]
    store.put_many([Record("conv1", "eval_finding", "eval:conversations", "eval:conversations/0", ("address",),
                           {"prompt": "Call me Captain.", "answer": "Far, Captain.", "suite": "conversations",
                            "extra": {"kind": "adaptation", "transcript": transcript, "checks": checks}})])
    store.close()
    body = get(ViewApp(RunCatalog([folder])), "/run/0/record/conv1").body.decode()
    table = body.split('id="transcript"', 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") == 5 and "Distance to Madeira?" in table
    assert "FAILED: calls the user Captain" in table and "passed: calls the user Captain" in table
    assert table.index("FAILED") < table.index("Distance to Madeira?") < table.index("passed:")
    assert "<script>" not in body and "&lt;script&gt;" in table
