"""Scale-out, measured side by side in one run and printed as ratios.

    python bench/scale.py                         # all three parts
    python bench/scale.py --parts workers --prompts 32 --max-tokens 32
    python bench/scale.py --parts bookkeeping --units 100000

workers      the same `sl` stage (answer, one critique round, revision) on N prompts with Ray
             actors that each hold the embedded llama.cpp engine on one thread: 1 worker vs 2
             (a local Ray instance; on a 2-core machine 2 is the most that can help).
endpoints    the same stage through the OpenAI engine on 1 vs 3 llama.cpp servers on loopback,
             one thread each.
bookkeeping  what the driver costs per unit with an instant engine (the package's mock engine):
             units per second through the stage loop, the store's transactions and the keys, at
             --units, one worker vs a pool of 4 (threads). Store writes must not become the
             bottleneck of a cluster that generates thousands of units a second.

Each config runs in a fresh run folder; the exported SFT rows are checked equal across worker
counts (the engines are deterministic for a given call), and printed with the throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))  # tests.servers: the llama.cpp server launcher the tests use

from charter.constitution import load_constitution  # noqa: E402
from charter.data.critique import run_sl  # noqa: E402
from charter.data.export import export_run  # noqa: E402
from charter.data.prompts import PromptItem, load_prompts  # noqa: E402
from charter.shipped import example_constitution_path, shipped_path  # noqa: E402
from charter.store import RunStore  # noqa: E402


def prompts(count: int) -> list[PromptItem]:
    """The shipped red-team and helpful training prompts, interleaved, the first `count`."""
    red = load_prompts(shipped_path("examples", "prompts", "red_team.jsonl"), mode="critique")
    helpful = load_prompts(shipped_path("examples", "prompts", "helpful.jsonl"), mode="answer")
    mixed = [p for pair in zip(red, helpful) for p in pair]
    if len(mixed) < count:
        raise SystemExit(f"only {len(mixed)} shipped prompts; pass --prompts {len(mixed)} or fewer")
    return mixed[:count]


def run_stage(engine, items, folder: Path, args) -> tuple[float, bytes, dict]:
    constitution = load_constitution(example_constitution_path())
    started = time.perf_counter()
    with RunStore.open(folder, constitution.content_hash(), {"policy": engine.fingerprint}) as store:
        summary = run_sl(store, constitution, engine, items, rounds=1, max_tokens=args.max_tokens,
                         batch_size=args.batch_size)
        seconds = time.perf_counter() - started
        export_run(store, folder / "export", "jsonl", ["sl"])
    return seconds, (folder / "export" / "sft.jsonl").read_bytes(), summary


def workers_part(args, tmp: Path) -> list[str]:
    from charter.executor import ExecutorSettings, make_engine_for

    items, lines, exports = prompts(args.prompts), [], {}
    base = None
    for count in (1, 2):
        settings = ExecutorSettings(kind="ray", workers=count, cpus_per_worker=1)
        pool = make_engine_for("llamacpp:embedded", settings)
        try:
            seconds, exported, summary = run_stage(pool, items, tmp / f"workers-{count}", args)
        finally:
            pool.close()
        exports[count] = exported
        tokens = summary["completion_tokens"]
        base = base or seconds
        lines.append(f"ray, {count} worker(s) x 1 thread: {seconds:7.1f} s  {tokens / seconds:6.1f} tok/s  "
                     f"speed-up x{base / seconds:.2f}")
    lines.append(f"exports equal across worker counts: {exports[1] == exports[2]}")
    return lines


def endpoints_part(args, tmp: Path) -> list[str]:
    from charter.engines.registry import embedded_model_path, make_engine
    from tests.servers import llama_cpp_server

    items, lines = prompts(args.prompts), []
    with ExitStack() as stack:
        urls = [stack.enter_context(llama_cpp_server(embedded_model_path(), "smol", tmp / f"server{i}.log",
                                                     threads=1))[0] for i in range(3)]
        base = None
        for count in (1, 3):
            engine = make_engine(f"openai:{','.join(urls[:count])}#smol", concurrency=args.batch_size)
            seconds, _, summary = run_stage(engine, items, tmp / f"endpoints-{count}", args)
            base = base or seconds
            served = {u.rsplit(":", 1)[-1]: c["ok"] for u, c in engine.endpoint_counts().items()}
            lines.append(f"openai, {count} endpoint(s) x 1 thread: {seconds:7.1f} s  "
                         f"{summary['completion_tokens'] / seconds:6.1f} tok/s  speed-up x{base / seconds:.2f}  "
                         f"requests per endpoint {served}")
    return lines


def bookkeeping_part(args, tmp: Path) -> list[str]:
    from charter.engines.mock import MockEngine

    class Pooled(MockEngine):
        parallel_calls = 4

    items = [PromptItem(f"u{i}", f"Prompt number {i}: say something.", "bench", mode="answer")
             for i in range(args.units)]
    lines, base = [], None
    for label, engine in (("1 worker", MockEngine(name="mock:bench")), ("pool of 4", Pooled(name="mock:bench"))):
        started = time.perf_counter()
        constitution = load_constitution(example_constitution_path())
        with RunStore.open(tmp / f"book-{label}", constitution.content_hash(), {"policy": engine.fingerprint}) as store:
            summary = run_sl(store, constitution, engine, items, rounds=1, batch_size=args.batch_size)
            resumed_started = time.perf_counter()
            run_sl(store, constitution, engine, items, rounds=1, batch_size=args.batch_size)
            resumed = time.perf_counter() - resumed_started
        seconds = resumed_started - started
        units = summary["records"] - len(items)  # records written minus the SFT rows: one per unit
        base = base or units / seconds
        lines.append(f"bookkeeping, {label}: {args.units} prompts, {units} units in {seconds:6.1f} s = "
                     f"{units / seconds:8.0f} units/s (x{units / seconds / base:.2f}); a rerun that finds "
                     f"all {units} done: {units / resumed:8.0f} units/s")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="workers,endpoints,bookkeeping")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--units", type=int, default=100_000)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local instance on loopback only
    parts = {"workers": workers_part, "endpoints": endpoints_part, "bookkeeping": bookkeeping_part}
    print(json.dumps({"cpus": os.cpu_count(), **{k: v for k, v in vars(args).items()}}))
    with tempfile.TemporaryDirectory(prefix="charter-scale-") as tmp:
        for name in args.parts.split(","):
            for line in parts[name.strip()](args, Path(tmp)):
                print(line, flush=True)


if __name__ == "__main__":
    main()
