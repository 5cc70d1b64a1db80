"""`charter view` in headless Chromium on two small real runs made by `charter run`: what is on
screen (text and counts, checked against the stores), the filters, a record followed from an eval
finding to its prompt and back, a pair's other side, datasets linked to records, the comparison of
two runs, training curves and keyboard navigation. A screenshot of each page is saved in the
test's temporary folder."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

pytestmark = pytest.mark.slow


def count(run, where: str = "1", args: tuple = ()) -> int:
    with sqlite3.connect(f"file:{run / 'records.sqlite'}?mode=ro", uri=True) as db:
        return db.execute(f"SELECT count(*) FROM records WHERE {where}", args).fetchone()[0]


def shot(page, tmp_path, name: str) -> None:
    page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


def test_the_index_and_a_run_page_show_what_the_store_holds(viewer, two_runs, page, tmp_path):
    url, _ = viewer
    first, second = two_runs
    page.goto(url + "/")
    table = page.inner_text("table")
    assert first.name in table and second.name in table
    assert str(count(first)) in table and str(count(second)) in table
    shot(page, tmp_path, "index")
    page.click(f"text={first.name}")
    assert page.inner_text("h1") == f"Run {first.name}"
    body = page.inner_text("main")
    for stage in ("pipeline:data", "pipeline:sft", "pipeline:dpo", "pipeline:eval"):
        assert stage in body
    assert "harmful_physical" in body or "harmlessness" in body  # the constitution's clause ids
    shot(page, tmp_path, "run")


def test_records_filter_search_and_page(viewer, two_runs, page, tmp_path):
    url, _ = viewer
    first, _ = two_runs
    page.goto(url + "/run/0/records")
    assert page.inner_text("#count").startswith(f"{count(first)} records")
    page.select_option("select[name=stage]", "distill")
    page.click("button[type=submit]")
    assert page.inner_text("#count").startswith(f"{count(first, 'stage = ?', ('distill',))} records")
    rows = page.locator("table tr").count() - 1
    assert rows == min(50, count(first, "stage = ?", ("distill",)))
    page.select_option("select[name=side]", "chosen")
    page.click("button[type=submit]")
    chosen = count(first, "stage = 'distill' AND json_extract(data, '$.side') = 'chosen'")
    assert page.inner_text("#count").startswith(f"{chosen} records")
    shot(page, tmp_path, "records-filtered")
    page.goto(url + "/run/0/records?q=bomb")
    found = int(page.inner_text("#count").split()[0])
    assert found >= 1 and "bomb" in page.inner_text("table").lower()
    shot(page, tmp_path, "records-search")


def test_from_an_eval_finding_to_its_prompt_and_the_other_model(viewer, page, tmp_path):
    url, _ = viewer
    page.goto(url + "/run/0/evals")
    assert page.inner_text("#gate").startswith("Regression gate (base → trained")
    assert "base" in page.inner_text("table") and "trained" in page.inner_text("table")
    shot(page, tmp_path, "evals")
    first_finding = page.locator("#suite-harmful ~ table a").first
    answer = first_finding.inner_text()
    first_finding.click()
    assert page.inner_text("h1").startswith("Record ")
    prompt = page.inner_text("#prompt")
    assert prompt and answer.rstrip(".")[:40] in page.inner_text("main")
    shot(page, tmp_path, "finding")
    page.locator("text=Same prompt").wait_for()
    page.locator("h2:has-text('Same prompt') + table a").first.click()  # the other model's answer
    assert page.inner_text("#prompt") == prompt
    page.go_back()
    assert page.inner_text("#prompt") == prompt


def test_a_pair_shows_its_other_side_and_datasets_link_to_records(viewer, two_runs, page, tmp_path):
    url, _ = viewer
    page.goto(url + "/run/0/records?stage=distill&side=rejected")
    page.locator("table a").first.click()  # the model's own answer, the rejected side
    assert "rejected" in page.inner_text("main")
    page.locator("h2:has-text('Same prompt') + table tr:has-text('pref') a").first.click()
    headings = page.locator("h2").all_inner_texts()  # the preference pair built from it
    assert {"Prompt", "chosen", "rejected", "label_source"} <= set(headings)
    shot(page, tmp_path, "pair")
    page.goto(url + "/run/0/datasets")
    rows = json.loads((two_runs[0] / "manifest.json").read_text())["done"]["pipeline:datasets"]["dpo"]
    assert re.search(rf"\bdpo\s+{rows}\b", page.inner_text("table"))
    page.click("text=dpo")
    assert page.inner_text("#count").startswith(f"{rows} rows")
    shot(page, tmp_path, "dataset")
    page.locator("table td a").first.click()
    assert page.inner_text("h1").startswith("Record ")


def test_comparing_two_runs_and_training_curves(viewer, page, tmp_path):
    url, _ = viewer
    page.goto(url + "/compare?a=0&b=1")
    assert page.inner_text("h1").startswith("Compare seed0 and seed1")
    assert page.locator("#gate").count() == 1 and page.locator("#moved tr").count() >= 2
    shot(page, tmp_path, "compare")
    page.goto(url + "/run/0/training")
    assert page.locator("svg polyline").count() >= 2  # SFT and DPO
    assert "sft" in page.inner_text("main") and "dpo" in page.inner_text("main")
    shot(page, tmp_path, "training")


def test_keyboard_reaches_a_record_and_enter_opens_it(viewer, page):
    url, _ = viewer
    page.goto(url + "/run/0/records")
    target = page.locator("table a").first.get_attribute("href")
    for _ in range(200):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.getAttribute('href')") == target:
            break
    else:
        pytest.fail("Tab never reached the first record")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(".*/record/.*"))
    assert page.inner_text("h1").startswith("Record ")


def test_a_script_in_a_record_never_runs(browser, tmp_path):
    from charter.view.app import ViewApp, serve_in_thread
    from charter.view.runs import RunCatalog

    from .conftest import make_store

    store = make_store(tmp_path / "run", 10, texts=['<script>document.title="owned"</script>'])
    server, url = serve_in_thread(ViewApp(RunCatalog([store])))
    try:
        tab = browser.new_page()
        tab.goto(url + "/run/0/record/k0000000")
        assert tab.title() != "owned" and tab.evaluate("document.scripts.length") == 0
        assert '<script>document.title="owned"</script>' in tab.inner_text("main")
        tab.close()
    finally:
        server.shutdown()


def test_a_critique_chain_reads_round_by_round(browser, sl_run, tmp_path):
    from charter.view.app import ViewApp, serve_in_thread
    from charter.view.runs import RunCatalog

    catalog = RunCatalog([sl_run])
    server, url = serve_in_thread(ViewApp(catalog))
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(url + "/run/0/records?kind=sft")
        assert page.inner_text("#count").startswith("1 records")
        page.locator("table a").first.click()
        rows = page.locator("#critique-chain tr").all_inner_texts()[1:]
        assert [row.split("\t")[1] for row in rows] == ["answer", "critique", "revision", "critique", "revision"]
        principles = [row.split("\t")[2] for row in rows]
        assert principles[0] == "" and all(principles[1:])  # every critique and revision names its principle
        with sqlite3.connect(f"file:{sl_run / 'records.sqlite'}?mode=ro", uri=True) as db:
            final = db.execute("SELECT json_extract(data, '$.text') FROM records WHERE kind = 'sl_revision' "
                               "ORDER BY json_extract(data, '$.round') DESC LIMIT 1").fetchone()[0]
        assert final.strip()[:40] in page.inner_text("#critique-chain")
        shot(page, tmp_path, "critique-chain")
        page.locator("#critique-chain a:has-text('critique')").first.click()  # one step of the chain
        assert "sl_critique" in page.inner_text("main") and page.locator("#critique-chain tr.current").count() == 1
    finally:
        context.close()
        server.shutdown()
        catalog.close()
