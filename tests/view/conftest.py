"""Fixtures for `charter view`: a synthetic store for the fast tests, two small real runs made by
`charter run` for the browser tests, the viewer on a loopback port, and headless Debian Chromium
driven by Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from charter.store import RunStore

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As root, with this machine's closed network: no sandbox, no background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]
TINY = ["--limit", "4", "--samples", "1", "--max-steps", "2", "--eval-limit", "6", "--max-tokens", "48",
        "--eval-max-tokens", "32", "--suites", "harmful,overrefusal"]


def make_store(folder: Path, records: int, texts=None) -> Path:
    """A run folder holding `records` synthetic records of three stages, with clause ids."""
    store = RunStore.open(folder, constitution_hash="test0000test0000")
    batch = []
    from charter.store import Record

    for i in range(records):
        text = texts[i] if texts and i < len(texts) else f"answer number {i} about topic {i % 17}"
        stage = ("distill", "critique", "eval:harmful")[i % 3]
        data = {"prompt": f"prompt {i}: how do I deal with topic {i % 17}?", "text": text,
                "prompt_id": f"set/p-{i // 2}#0", "side": "chosen" if i % 2 else "rejected",
                "label_source": "constructed-refusal" if i % 5 == 0 else "contrastive:teacher"}
        batch.append(Record(f"k{i:07d}", "pair_sample", stage, f"{stage}/{i:08d}",
                            ("harmlessness",) if i % 4 else ("honesty", "helpfulness"), data))
        if len(batch) == 5000:
            store.put_many(batch)
            batch = []
    if batch:
        store.put_many(batch)
    store.close()
    return folder


def charter(*args: str, timeout: float = 2400) -> subprocess.CompletedProcess:
    exe = shutil.which("charter") or str(Path(sys.executable).parent / "charter")
    result = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, check=False,
                            env={**os.environ, "COLUMNS": "160"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory):
    """Two small real runs of the embedded model: the default seed, and seed 1 with one DPO step."""
    root = tmp_path_factory.mktemp("view-runs")
    first, second = root / "seed0", root / "seed1"
    charter("run", "--out", str(first), *TINY)
    charter("run", "--out", str(second), *TINY[:4], "--max-steps", "1", *TINY[6:], "--seed", "1")
    return first, second


@pytest.fixture(scope="session")
def viewer(two_runs):
    from charter.view.app import ViewApp, serve_in_thread
    from charter.view.runs import RunCatalog

    catalog = RunCatalog(list(two_runs))
    server, url = serve_in_thread(ViewApp(catalog))
    yield url, catalog
    server.shutdown()
    catalog.close()


@pytest.fixture(scope="session")
def browser():
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it with apt-get)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context()
    tab = context.new_page()
    yield tab
    context.close()


@pytest.fixture(scope="session")
def sl_run(tmp_path_factory):
    """A small real SL-CAI run of the embedded model: one prompt, two rounds of critique and revision."""
    folder = tmp_path_factory.mktemp("view-sl") / "sl"
    charter("generate", "sl", "--out", str(folder), "--limit", "1", "--rounds", "2", "--max-tokens", "32")
    return folder
