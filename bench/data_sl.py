"""SL-CAI data generation: charter's batched stage next to a plain sequential loop, and its overheads.

    python bench/data_sl.py speed [--prompts 24] [--max-tokens 128] [--repeat 1]
    python bench/data_sl.py bookkeeping [--prompts 2178]
    python bench/data_sl.py memory [--small 218] [--factor 10] [--real]

speed        the same engine (llamacpp:embedded), prompts, principles, few-shot prefix and token limit
             (128 per call), one critique/revision round: a plain loop making answer, critique and
             revision three calls one after another per prompt, then charter's `run_sl` (batched
             across prompts, shared prefix, store writes). Prints prompts/min for both and the ratio,
             and charter's bookkeeping share (wall time outside engine calls). With --repeat 2 the
             order alternates, so drift in machine load hits both sides.
bookkeeping  `run_sl` with an instant engine: all time is charter's own (keys, prompts, store).
memory       peak Python heap (tracemalloc) of `run_sl` over N and factor x N prompts from
             ../shared/data/hh-rlhf-harmless-test (not shipped with charter) with an instant engine;
             --real: peak RSS of child processes on the embedded model (small, 8 tokens per call).

A benchmark, not a test: numbers depend on the machine and its load; compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HH = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "hh-rlhf-harmless-test"
    / "prompts.jsonl"
)


class InstantEngine:
    """Answers instantly with a fixed-size text: measures everything but the model."""

    name, fingerprint = "instant", "instant:v1"

    def generate(self, requests):
        from charter.engines.base import Completion

        return [
            [Completion("A short answer. " * 12, "stop", 50, 48, i) for i in range(r.n)]
            for r in requests
        ]

    def close(self):
        pass


def _setup():
    from charter.constitution import load_constitution
    from charter.data.prompts import example_prompts

    constitution = load_constitution(
        Path(__file__).resolve().parents[1] / "src/charter/examples/constitution.yaml"
    )
    return constitution, example_prompts("red_team")


def _store(folder: Path, constitution, engine):
    from charter.store import RunStore

    return RunStore.open(
        folder,
        constitution_hash=constitution.content_hash(),
        engines={"policy": engine.fingerprint},
    )


def plain_loop(
    engine, constitution, prompts, max_tokens: int, fewshot_count: int, seed: int = 0
) -> float:
    """One prompt at a time: answer, critique, revision as three engine calls. Returns seconds."""
    from charter.constitution.render import sample_principles
    from charter.data.fewshot import critique_request, load_fewshot, revision_request, sl_prefix
    from charter.engines.base import GenerationRequest

    prefix = sl_prefix(load_fewshot(), constitution, fewshot_count)

    def ask(messages, seed_):
        request = GenerationRequest(
            messages=tuple(messages), max_tokens=max_tokens, temperature=0.7, seed=seed_
        )
        return engine.generate([request])[0][0].text

    started = time.perf_counter()
    for n, item in enumerate(prompts):
        principle = sample_principles(constitution, 1, seed, key=f"{item.uid}:round1", use="sl")[0]
        user = {"role": "user", "content": item.prompt}
        answer = ask([user], n)
        talk = prefix + [
            user,
            {"role": "assistant", "content": answer},
            {"role": "user", "content": critique_request(principle.critique)},
        ]
        critique = ask(talk, n + 1)
        ask(
            talk
            + [
                {"role": "assistant", "content": critique},
                {"role": "user", "content": revision_request(principle.revision)},
            ],
            n + 2,
        )
    return time.perf_counter() - started


def charter_sl(engine, constitution, prompts, max_tokens: int, fewshot_count: int) -> dict:
    from charter.data.critique import run_sl

    with tempfile.TemporaryDirectory() as folder:
        store = _store(Path(folder) / "run", constitution, engine)
        summary = run_sl(
            store,
            constitution,
            engine,
            prompts,
            rounds=1,
            max_tokens=max_tokens,
            fewshot_count=fewshot_count,
        )
        store.close()
    return summary


def speed(args) -> None:
    from charter.engines.registry import make_engine

    constitution, red_team = _setup()
    prompts = red_team[: args.prompts]
    engine = make_engine("llamacpp:embedded")
    rates = {"plain loop": [], "charter sl": []}
    shares = []
    for repeat in range(args.repeat):
        order = ["plain loop", "charter sl"] if repeat % 2 == 0 else ["charter sl", "plain loop"]
        for side in order:
            if side == "plain loop":
                seconds = plain_loop(
                    engine, constitution, prompts, args.max_tokens, args.fewshot_count
                )
            else:
                summary = charter_sl(
                    engine, constitution, prompts, args.max_tokens, args.fewshot_count
                )
                seconds = summary["seconds"]
                shares.append((summary["seconds"] - summary["engine_seconds"], summary["seconds"]))
            rates[side].append(len(prompts) / seconds * 60)
            print(
                f"  {side:10s} run {repeat + 1}: {len(prompts)} prompts in {seconds:7.1f} s = "
                f"{rates[side][-1]:6.1f} prompts/min",
                flush=True,
            )
    engine.close()
    loop, ours = (sum(v) / len(v) for v in rates.values())
    print(
        f"\nplain loop  {loop:6.1f} prompts/min\ncharter sl  {ours:6.1f} prompts/min\n"
        f"ratio       {ours / loop:6.2f}x  (target >= 2x)\n"
        f"bookkeeping {max(100 * b / w for b, w in shares):.3f}% of charter's wall time "
        f"({max(b for b, _ in shares):.3f} s outside engine calls; target < 5%)"
    )


def bookkeeping(args) -> None:
    constitution, _ = _setup()
    prompts = _hh(args.prompts)
    summary = charter_sl(InstantEngine(), constitution, prompts, 128, 2)
    per = summary["seconds"] / len(prompts)
    print(
        f"{len(prompts)} prompts, {summary['records']} records: {summary['seconds']:.2f} s of charter's own work "
        f"= {1000 * per:.2f} ms per prompt (answer + critique + revision, keys, store writes)"
    )


def _hh(n: int):
    from charter.data.prompts import load_prompts

    if not HH.exists():
        sys.exit(f"{HH} not found: the larger runs use ../shared/data (not shipped with charter)")
    items = load_prompts(HH, name="hh")
    while len(items) < n:  # more than the file holds: repeat it with new ids
        items += [
            type(i)(f"{i.uid}#{len(items)}", i.prompt + f" ({len(items)})", i.source)
            for i in items[: n - len(items)]
        ]
    return items[:n]


def memory(args) -> None:
    sizes = (args.small, args.small * args.factor)
    if args.real:
        results = {
            n: json.loads(
                subprocess.run(
                    [sys.executable, __file__, "child", str(n)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.splitlines()[-1]
            )
            for n in sizes
        }
        for n, r in results.items():
            print(
                f"{n:6d} prompts on the embedded model: peak RSS {r['rss_mb']:.0f} MB, {r['seconds']:.0f} s"
            )
        a, b = (results[n]["rss_mb"] for n in sizes)
        print(f"RSS growth for {args.factor}x prompts: {b - a:+.0f} MB ({100 * (b - a) / a:+.1f}%)")
        return
    constitution, _ = _setup()
    peaks = {}
    for n in sizes:
        prompts = _hh(n)
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        charter_sl(InstantEngine(), constitution, prompts, 128, 2)
        peaks[n] = (tracemalloc.get_traced_memory()[1] - base) / 2**20
        tracemalloc.stop()
        print(
            f"{n:6d} prompts: peak Python heap during run_sl {peaks[n]:.1f} MB (prompts loaded before)"
        )
    print(f"growth for {args.factor}x prompts: {peaks[sizes[1]] - peaks[sizes[0]]:+.1f} MB")


def child(n: int) -> None:
    """One embedded-model run in its own process, for a clean peak RSS."""
    from charter.engines.registry import make_engine

    constitution, _ = _setup()
    engine = make_engine("llamacpp:embedded")
    started = time.perf_counter()
    charter_sl(engine, constitution, _hh(n), 8, 1)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rss_mb": rss, "seconds": time.perf_counter() - started}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", choices=("speed", "bookkeeping", "memory", "child"))
    parser.add_argument("n", nargs="?", type=int, default=0)
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--fewshot-count", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--small", type=int, default=218)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--real", action="store_true")
    args = parser.parse_args()
    if args.part == "bookkeeping" and args.prompts == 24:
        args.prompts = 2178
    {"speed": speed, "bookkeeping": bookkeeping, "memory": memory, "child": lambda a: child(a.n)}[
        args.part
    ](args)


if __name__ == "__main__":
    main()
