"""Throughput of the inference engines on the same prompts, side by side, as ratios.

    python bench/engines.py                       # 64 prompts x 128 new tokens, embedded model
    python bench/engines.py --engines single,llamacpp --prompts 32 --threads 1
    python bench/engines.py --openai http://127.0.0.1:8000/v1#smol   # a server you started
    python bench/engines.py --engines single,llamacpp,openai          # starts llama_cpp.server
    python bench/engines.py --builds portable=DIR,native=DIR2         # llama.cpp builds compared

--builds compares llama-cpp-python builds (each installed with `pip install --no-deps --target DIR
WHEEL`): the script runs itself once per build with DIR first on PYTHONPATH, in the order given and
then reversed (so drift in the machine's load hits every build alike), and prints single-stream and
batched tokens/s per build with ratios to the first.

Engines: `single` is the baseline, llama-cpp-python's create_chat_completion one prompt at a time
(run on --single prompts, half before and half after the others, so load drift on a shared
machine hits both sides); `llamacpp` is the batched engine as configured by default (Q8_0 copy);
`llamacpp-native` the batched engine on the shipped Q4_1 weights; `hf` transformers batch 32;
`openai` a server you started (--openai) or llama-cpp-python's own server on the embedded model,
started here (its CPU time is counted too); `vllm` when vLLM is installed.

Besides wall-clock tokens/s it prints tokens per CPU-second of this process (all its threads),
which is what to compare when other work shares the machine, and a roofline: the fp32 matmul
rate numpy/torch reach here per CPU-second divided by 2 x parameters FLOPs per token.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from charter.engines.base import GenerationRequest
from charter.engines.common import idle_threads
from charter.engines.registry import embedded_model_path, make_engine

SUBJECTS = ["a lighthouse keeper", "a lost robot", "the first snow", "a city at night", "an old map",
            "a chess game", "a bee colony", "the moon landing"]
TASKS = ["Write a short story about {}.", "Describe {} in vivid detail.",
         "Explain to a child what is special about {}.", "Write a poem about {}.",
         "List five facts someone might not know about {}.", "Write a diary entry about {}.",
         "Give advice to someone fascinated by {}.", "Write a news report about {}."]


def prompts(count: int) -> list[str]:
    return [TASKS[i % len(TASKS)].format(SUBJECTS[(i // len(TASKS)) % len(SUBJECTS)])
            for i in range(count)]


SERVERS: list = []  # server processes whose CPU time counts as ours


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = usage.ru_utime + usage.ru_stime
    for process in SERVERS:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def start_server(threads: int) -> str:
    """llama-cpp-python's OpenAI server on the embedded model; returns URL#MODEL."""
    import socket
    import subprocess

    import httpx
    import psutil

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_model_path()),
         "--model_alias", "smol", "--host", "127.0.0.1", "--port", str(port),
         "--n_threads", str(threads), "--n_threads_batch", str(threads), "--verbose", "false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(360):
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.5)
    SERVERS.append(psutil.Process(process.pid))
    return f"{url}#smol"


def measure(run) -> tuple[int, float, float]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    tokens = run()
    return tokens, time.perf_counter() - wall, cpu_seconds() - cpu


def single_stream(texts: list[str], max_tokens: int, threads: int) -> int:
    from llama_cpp import Llama

    llm = Llama(model_path=str(embedded_model_path()), n_ctx=2048, n_threads=threads,
                n_threads_batch=threads, verbose=False)
    tokens = 0
    for i, text in enumerate(texts):
        out = llm.create_chat_completion([{"role": "user", "content": text}], max_tokens=max_tokens,
                                         temperature=0.7, top_p=0.95, seed=i)
        tokens += out["usage"]["completion_tokens"]
    llm.close()
    return tokens


def engine_run(spec: str, texts: list[str], max_tokens: int, **options) -> int:
    engine = make_engine(spec, **options)
    engine.generate([GenerationRequest(({"role": "user", "content": "Hi"},), max_tokens=2)])  # warm-up
    requests = [GenerationRequest(({"role": "user", "content": t},), max_tokens=max_tokens,
                                  temperature=0.7, seed=i) for i, t in enumerate(texts)]
    tokens = sum(c.completion_tokens for r in engine.generate(requests) for c in r)
    stats = getattr(getattr(engine, "_decoder", None), "stats", None)
    if stats:
        print(f"    {spec}: {stats}", flush=True)
    engine.close()
    return tokens


def roofline(threads: int) -> tuple[float, float, int]:
    """(numpy, torch) fp32 matmul GFLOP per CPU-second for a 64-row batch, and the parameters.

    Per CPU-second, like the engines' tok/CPU-s column, so other work on the machine does not
    lower the roof; both BLAS libraries are held to `threads` (an oversubscribed BLAS thread pool
    collapses just like llama.cpp's)."""
    import llama_cpp
    import numpy as np
    import torch
    from llama_cpp import Llama
    from threadpoolctl import threadpool_limits

    llm = Llama(model_path=str(embedded_model_path()), n_ctx=64, verbose=False)
    params = int(llama_cpp.llama_model_n_params(llm.model))
    llm.close()
    a = np.random.rand(64, 576).astype(np.float32)
    b = np.random.rand(576, 1536).astype(np.float32)
    rates = []
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        for matmul, x, y in ((np.matmul, a, b), (torch.matmul, torch.from_numpy(a), torch.from_numpy(b))):
            matmul(x, y)
            reps, started = 0, cpu_seconds()
            while cpu_seconds() - started < 1.0:
                matmul(x, y)
                reps += 1
            rates.append(2 * 64 * 576 * 1536 * reps / (cpu_seconds() - started) / 1e9)
    return rates[0], rates[1], params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--single", type=int, default=16, help="prompts for the one-at-a-time baseline")
    parser.add_argument("--engines", default="single,llamacpp,llamacpp-native,hf")
    parser.add_argument("--threads", type=int, default=0, help="default: idle CPUs now")
    parser.add_argument("--openai", default="", help="URL#MODEL of a running server to include")
    parser.add_argument("--builds", default="", help="NAME=DIR,...: compare llama-cpp-python builds")
    parser.add_argument("--json", action="store_true", help="also print the rates as one JSON line")
    args = parser.parse_args()
    if args.builds:
        compare_builds(args)
        return
    threads = args.threads or idle_threads()
    texts = prompts(args.prompts)
    chosen = args.engines.split(",") + (["openai"] if args.openai else [])
    if "openai" in chosen and not args.openai:
        args.openai = start_server(threads)
    print(f"{args.prompts} prompts x {args.max_tokens} new tokens, {threads} thread(s), "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    runs: dict[str, list[tuple[int, float, float]]] = {}
    half = max(1, args.single // 2)
    plan = []
    if "single" in chosen:
        plan.append(("single", lambda: single_stream(texts[:half], args.max_tokens, threads)))
    if "llamacpp" in chosen:
        plan.append(("llamacpp", lambda: engine_run("llamacpp:embedded", texts, args.max_tokens,
                                                    n_threads=threads)))
    if "llamacpp-native" in chosen:
        plan.append(("llamacpp-native", lambda: engine_run("llamacpp:embedded", texts, args.max_tokens,
                                                           n_threads=threads, compute_type="native")))
    if "hf" in chosen:
        plan.append(("hf", lambda: engine_run("hf:embedded", texts, args.max_tokens, batch_size=32,
                                              n_threads=threads)))
    if "openai" in chosen:
        plan.append(("openai", lambda: engine_run(f"openai:{args.openai}", texts, args.max_tokens,
                                                  concurrency=8)))
    if "vllm" in chosen:
        plan.append(("vllm", lambda: engine_run("vllm:HuggingFaceTB/SmolLM2-135M-Instruct", texts,
                                                args.max_tokens)))
    if "single" in chosen:
        plan.append(("single", lambda: single_stream(texts[half:2 * half], args.max_tokens, threads)))
    for name, run in plan:
        print(f"  running {name} ...", flush=True)
        runs.setdefault(name, []).append(measure(run))

    def rate(name):
        tokens = sum(r[0] for r in runs[name])
        return tokens, tokens / sum(r[1] for r in runs[name]), tokens / max(1e-9, sum(r[2] for r in runs[name]))

    np_rate, torch_rate, params = roofline(threads)
    roof = max(np_rate, torch_rate) * 1e9 / (2 * params)  # tokens per CPU-second
    print(f"\nroofline: fp32 matmul numpy {np_rate:.0f} / torch {torch_rate:.0f} GFLOP per CPU-s, "
          f"{params / 1e6:.1f}M params x 2 FLOPs -> {roof:.0f} tok/CPU-s "
          f"(x{threads} thread(s) = {roof * threads:.0f} tok/s on an idle machine)")
    base = rate("single") if "single" in runs else None
    print(f"{'engine':16s} {'tokens':>7s} {'tok/s':>8s} {'tok/CPU-s':>10s} {'x single':>9s} "
          f"{'x single (CPU)':>15s} {'of roof (CPU)':>14s}")
    for name in runs:
        tokens, wall, cpu = rate(name)
        vs = f"{wall / base[1]:9.2f} {cpu / base[2]:15.2f}" if base else f"{'-':>9s} {'-':>15s}"
        print(f"{name:16s} {tokens:7d} {wall:8.1f} {cpu:10.1f} {vs} {cpu / roof:14.2f}")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        print("RATES " + json.dumps({name: dict(zip(("tokens", "tok_s", "tok_cpu_s"), rate(name)))
                                     for name in runs}))
    for process in SERVERS:
        process.terminate()


def compare_builds(args) -> None:
    builds = dict(item.split("=", 1) for item in args.builds.split(","))
    order = list(builds) + list(reversed(builds))
    results: dict[str, list[dict]] = {}
    for name in order:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([builds[name], str(Path(__file__).resolve().parents[1] / "src")])}
        command = [sys.executable, __file__, "--engines", "single,llamacpp", "--json",
                   "--prompts", str(args.prompts), "--max-tokens", str(args.max_tokens),
                   "--single", str(max(2, args.single // 2)), "--threads", str(args.threads or idle_threads())]
        print(f"== build {name} ({builds[name]})", flush=True)
        out = subprocess.run(command, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"   failed (exit {out.returncode}): {out.stderr.strip().splitlines()[-1:]}", flush=True)
            results.setdefault(name, [])
            continue
        info = subprocess.run([sys.executable, "-c", "import llama_cpp; print(llama_cpp.llama_print_system_info().decode())"],
                              env=env, capture_output=True, text=True).stdout.strip()
        line = next(l for l in out.stdout.splitlines() if l.startswith("RATES "))
        results.setdefault(name, []).append(json.loads(line[6:]))
        print(f"   {info}", flush=True)

    def total(name, engine):
        runs = [r[engine] for r in results[name] if engine in r]
        if not runs:
            return float("nan"), float("nan")
        tokens = sum(r["tokens"] for r in runs)
        return (tokens / sum(r["tokens"] / r["tok_s"] for r in runs),
                tokens / sum(r["tokens"] / r["tok_cpu_s"] for r in runs))

    first = next(iter(builds))
    print(f"\n{'build':14s} {'single tok/s':>13s} {'batched tok/s':>14s} {'single x':>9s} {'batched x':>10s}"
          f" {'batched tok/CPU-s':>18s}   (x: ratio to {first}, same run)")
    for name in builds:
        single, batched = total(name, "single"), total(name, "llamacpp")
        print(f"{name:14s} {single[0]:13.1f} {batched[0]:14.1f} {single[0] / total(first, 'single')[0]:9.2f} "
              f"{batched[0] / total(first, 'llamacpp')[0]:10.2f} {batched[1]:18.1f}")


if __name__ == "__main__":
    main()
