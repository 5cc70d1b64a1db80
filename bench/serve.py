"""Throughput and the latency the hard-line guards add, measured side by side on loopback.

    python bench/serve.py [--engine llamacpp:embedded] [--clients 4] [--requests 16] [--max-tokens 16]
                          [--rounds 2] [--prompts mixed] [--time-limit 600]
    python bench/serve.py --ttft [--requests 8] [--max-tokens 64]

--ttft: time to the first streamed token, served from one engine with the engine's own token
stream and with it hidden (the answer generated whole, then replayed in pieces: how `charter
serve` streamed before engines could), each with and without guards (the output guard releases
text a window at a time, so with guards the first chunk waits for the first screened window).
One client, requests alternating between the four servers.

Serves the example constitution twice from one engine, with guards and without (a Python-API-only
switch), and drives each with concurrent `openai` clients sending the same prompts with the same
seeds. Rounds alternate the two servers so machine load drifts affect both alike. Prints
requests/s and client latency p50/p95 per mode, their ratios (guards / no guards), and the guard
time per request from the audit log. Bounded in requests and time; a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from charter.rows import read_rows
from charter.shipped import shipped_path


def prompts(n: int, kind: str) -> list[str]:
    """`helpful` prompts rarely reach the judge; `lookalike` ones (benign, near a hard line) often do."""
    def read(*parts: str, field: str) -> list[str]:
        return [row[field] for row in read_rows(shipped_path(*parts))]

    helpful = read("examples", "prompts", "helpful.jsonl", field="prompt")
    lookalike = [m[-1]["content"] for m in read("serve", "data", "benign.jsonl", field="messages")]
    pool = {"helpful": helpful, "lookalike": lookalike,
            "mixed": [p for pair in zip(helpful, lookalike) for p in pair]}[kind]
    return [pool[i % len(pool)] for i in range(n)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def drive(url: str, key: str, asks: list[str], clients: int, max_tokens: int, deadline: float) -> dict:
    import openai

    client = openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=600)

    def one(index_prompt):
        index, prompt = index_prompt
        if time.monotonic() > deadline:
            return None
        started = time.perf_counter()
        client.chat.completions.create(model="charter", messages=[{"role": "user", "content": prompt}],
                                       max_tokens=max_tokens, seed=index, temperature=0.0)
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [s for s in pool.map(one, enumerate(asks)) if s is not None]
    return {"latencies": latencies, "wall": time.perf_counter() - started}


class Replayed:
    """The engine without its stream(): the server generates the whole answer, then replays it."""

    def __init__(self, inner):
        self.inner, self.name = inner, inner.name

    @property
    def fingerprint(self) -> str:
        return self.inner.fingerprint

    def generate(self, requests):
        return self.inner.generate(requests)

    def choose(self, request):
        return self.inner.choose(request)

    def close(self) -> None:
        pass


def first_token(url: str, key: str, prompt: str, max_tokens: int, seed: int) -> tuple[float, float, int]:
    """(seconds to the first content chunk, seconds to the end, content chunks) for one stream."""
    import openai

    client = openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=600)
    started, first, chunks = time.perf_counter(), None, 0
    for chunk in client.chat.completions.create(model="charter", messages=[{"role": "user", "content": prompt}],
                                                max_tokens=max_tokens, seed=seed, temperature=0.0, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            chunks += 1
            first = first if first is not None else time.perf_counter() - started
    return (first if first is not None else float("nan")), time.perf_counter() - started, chunks


def ttft(args, console, base, engine, operators, key, embedder, folder) -> None:
    from charter.serve import ServeSettings, create_app
    from charter.serve.local import serve_in_thread

    servers = {}
    for guards in (True, False):
        for stream, served in (("replayed", Replayed(engine)), ("streamed", engine)):
            mode = f"{stream}, {'guards' if guards else 'no guards'}"
            settings = ServeSettings(audit_path=folder / f"ttft-{stream}-{guards}.sqlite", guards=guards)
            servers[mode] = serve_in_thread(create_app(base, served, operators, settings, embedder=embedder))
    asks = prompts(args.requests, "helpful")
    first_token(servers["streamed, guards"][0], key, asks[0], 8, 0)  # warm up
    measured = {mode: [] for mode in servers}
    for index, prompt in enumerate(asks):
        for mode, (url, _) in servers.items():
            measured[mode].append(first_token(url, key, prompt, args.max_tokens, index))
    for _, stop in servers.values():
        stop()
    table = Table(title=f"time to first token, charter serve, max_tokens {args.max_tokens}, {args.engine}")
    for column in ("mode", "streams", "first token p50 (s)", "whole answer p50 (s)", "chunks p50"):
        table.add_column(column, justify="right")
    p50 = {}
    for mode, rows in measured.items():
        p50[mode] = [statistics.median(r[i] for r in rows) for i in range(3)]
        table.add_row(mode, str(len(rows)), f"{p50[mode][0]:.2f}", f"{p50[mode][1]:.2f}", f"{p50[mode][2]:.0f}")
    console.print(table)
    for guards in ("guards", "no guards"):
        real, old = p50[f"streamed, {guards}"], p50[f"replayed, {guards}"]
        console.print(f"{guards}: first token streamed / replayed x{real[0] / old[0]:.2f}; "
                      f"whole answer x{real[1] / old[1]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", default="llamacpp:embedded")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=16, help="Per mode, split over the rounds")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--prompts", choices=("helpful", "lookalike", "mixed"), default="mixed")
    parser.add_argument("--time-limit", type=float, default=600, help="Seconds for the whole run")
    parser.add_argument("--ttft", action="store_true", help="Time to first token: real stream vs replayed")
    args = parser.parse_args()

    from charter.commands.constitution import example_path
    from charter.constitution import load_constitution
    from charter.engines.registry import make_engine
    from charter.serve import ServeSettings, add_operator, create_app, load_operators
    from charter.serve.audit import AuditLog
    from charter.serve.local import serve_in_thread
    from charter.serve.similarity import Embedder

    console = Console(width=140)
    folder = Path(tempfile.mkdtemp(prefix="charter-bench-serve-"))
    key = add_operator(folder / "operators.yaml", "bench", limits={"requests_per_minute": 1e6, "burst": 10_000})
    base, operators = load_constitution(example_path("constitution.yaml")), load_operators(folder / "operators.yaml")
    engine, embedder = make_engine(args.engine), Embedder()
    if args.ttft:
        ttft(args, console, base, engine, operators, key, embedder, folder)
        engine.close()
        return
    servers = {}
    for mode in ("no guards", "guards"):
        settings = ServeSettings(audit_path=folder / f"{mode.replace(' ', '-')}.sqlite", guards=mode == "guards")
        servers[mode] = serve_in_thread(create_app(base, engine, operators, settings, embedder=embedder))
    asks = prompts(args.requests, args.prompts)
    per_round = max(1, len(asks) // args.rounds)
    results = {mode: {"latencies": [], "wall": 0.0} for mode in servers}
    deadline = time.monotonic() + args.time_limit
    drive(servers["guards"][0], key, asks[:1], 1, args.max_tokens, deadline)  # warm the engine and embedder
    with console.status("driving ...") as status:
        for round_index in range(args.rounds):
            chunk = asks[round_index * per_round:(round_index + 1) * per_round]
            for mode, (url, _) in servers.items():
                status.update(f"round {round_index + 1}/{args.rounds}: {mode}")
                measured = drive(url, key, chunk, args.clients, args.max_tokens, deadline)
                results[mode]["latencies"] += measured["latencies"]
                results[mode]["wall"] += measured["wall"]
    for _, stop in servers.values():
        stop()
    guard_ms = [row["timing_ms"].get("guard_input", 0) + row["timing_ms"].get("guard_output", 0)
                for row in AuditLog(folder / "guards.sqlite").rows() if row["status"] == 200][1:]  # skip warm-up
    report(console, results, guard_ms, args)
    engine.close()


def report(console: Console, results: dict, guard_ms: list[float], args) -> None:
    table = Table(title=f"charter serve on loopback: {args.clients} clients, max_tokens {args.max_tokens}, "
                        f"{args.prompts} prompts, {args.engine}")
    for column in ("mode", "requests", "requests/s", "latency p50 (s)", "latency p95 (s)"):
        table.add_column(column, justify="right")
    summary = {}
    for mode, measured in results.items():
        latencies = measured["latencies"]
        rate = len(latencies) / measured["wall"] if measured["wall"] else float("nan")
        summary[mode] = (rate, percentile(latencies, 0.5), percentile(latencies, 0.95))
        table.add_row(mode, str(len(latencies)), f"{rate:.2f}", f"{summary[mode][1]:.2f}", f"{summary[mode][2]:.2f}")
    console.print(table)
    (r0, p50_0, p95_0), (r1, p50_1, p95_1) = summary["no guards"], summary["guards"]
    console.print(f"guards / no guards: requests/s x{r1 / r0:.2f}, latency p50 x{p50_1 / p50_0:.2f}, "
                  f"p95 x{p95_1 / p95_0:.2f}")
    if guard_ms:
        console.print(f"guard time per request (audit log, input + output guard): p50 "
                      f"{statistics.median(guard_ms):.0f} ms, p95 {percentile(guard_ms, 0.95):.0f} ms = "
                      f"{statistics.median(guard_ms) / 1000 / p50_0:.2f} / {percentile(guard_ms, 0.95) / 1000 / p95_0:.2f}"
                      f" of the no-guard latency p50 / p95")


if __name__ == "__main__":
    main()
