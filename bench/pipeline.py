"""Time the whole `charter run` and measure its peak memory (the README's main job).

    python bench/pipeline.py [--out runs/bench] [-- extra charter run options]

Prints wall time and the peak resident memory of the pipeline process tree, next to the targets
(15 minutes, 6 GB on a 2-core machine). A benchmark, not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="runs/bench")
    parser.add_argument("--keep", action="store_true", help="Reuse an existing run folder (measures a resume)")
    parser.add_argument("extra", nargs="*")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists() and not args.keep:
        shutil.rmtree(out)
    charter = shutil.which("charter") or str(Path(sys.executable).parent / "charter")
    command = [charter, "run", "--out", str(out), *args.extra]
    print("running:", " ".join(command), flush=True)
    start = time.perf_counter()
    child = subprocess.Popen(command)
    process = psutil.Process(child.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, tree_rss(process))
            except psutil.Error:
                pass
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = child.wait()
    done.set()
    sampler.join()
    seconds = time.perf_counter() - start
    print(f"\nexit code        {code}")
    print(f"wall time        {seconds / 60:.1f} min  (target <= 15 min; ratio {seconds / 900:.2f})")
    print(f"peak memory      {peak / 2**30:.2f} GiB (target < 6 GiB; ratio {peak / (6 * 2**30):.2f})")
    sys.exit(code)


if __name__ == "__main__":
    main()
