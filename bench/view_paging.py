"""How fast `charter view` opens and pages a big run: a generated store of N records (default
100,000), each page rendered through the same ViewApp the server uses.

    python bench/view_paging.py [--records 100000] [--out /tmp/bench_view]

Prints the open time (attaching the store, counts and filter values), the first search (which
builds the in-memory full-text index for the run) and each page's time in milliseconds (median
of 5). A benchmark, not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path


def generate(folder: Path, records: int) -> None:
    from charter.store import Record, RunStore

    store = RunStore.open(folder, constitution_hash="bench000bench000")
    batch = []
    for i in range(records):
        stage = ("distill", "critique", "eval:harmful", "eval:overrefusal")[i % 4]
        data = {"prompt": f"prompt {i}: what should I know about subject {i % 997} and its risks?",
                "text": f"An answer of about this length, number {i}, on subject {i % 997}, with some detail.",
                "prompt_id": f"set/p-{i // 2}", "side": "chosen" if i % 2 else "rejected",
                "label_source": ("contrastive:teacher", "constructed-refusal", "judged")[i % 3]}
        batch.append(Record(f"k{i:08d}", "pair_sample", stage, f"{stage}/{i:09d}",
                            ("harmlessness",) if i % 4 else ("honesty", "helpfulness"), data))
        if len(batch) == 10_000:
            store.put_many(batch)
            batch = []
    store.put_many(batch)
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_view"))
    args = parser.parse_args()
    from charter.view.app import ViewApp
    from charter.view.runs import RunCatalog

    shutil.rmtree(args.out, ignore_errors=True)
    started = time.perf_counter()
    generate(args.out, args.records)
    print(f"generated {args.records} records in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    app = ViewApp(RunCatalog([args.out]))
    print(f"open (attach, counts, filter values): {(time.perf_counter() - started) * 1000:.0f} ms")
    started = time.perf_counter()
    assert app.handle("/run/0/records", {"q": ["subject 7"]}).status == 200
    print(f"first full-text search (builds the index): {(time.perf_counter() - started) * 1000:.0f} ms")
    last_page = args.records // 50
    pages = {
        "records, page 1": ("/run/0/records", {}),
        f"records, page {last_page} (the last)": ("/run/0/records", {"page": [str(last_page)]}),
        "records, stage filter, page 100": ("/run/0/records", {"stage": ["critique"], "page": ["100"]}),
        "records, clause filter": ("/run/0/records", {"clause": ["honesty"]}),
        "records, side + label filters": ("/run/0/records", {"side": ["chosen"], "label_source": ["judged"]}),
        "records, full-text search": ("/run/0/records", {"q": ["subject 512"]}),
        "one record with its related records": (f"/run/0/record/k{args.records // 2:08d}", {}),
        "run page (counts by stage and clause)": ("/run/0", {}),
    }
    for label, (path, query) in pages.items():
        times = []
        for _ in range(5):
            started = time.perf_counter()
            page = app.handle(path, query)
            times.append((time.perf_counter() - started) * 1000)
            assert page.status == 200, (label, page.status)
        print(f"{label}: {statistics.median(times):.0f} ms")


if __name__ == "__main__":
    main()
