"""How well the hard-line guards hold: attacks blocked, benign look-alikes wrongly blocked.

    python bench/guard_rates.py [--engine llamacpp:embedded] [--constitution PATH] [--limit N]

Runs `serve/data/attacks.jsonl` (requests that cross a hard line, by technique) and `benign.jsonl`
(near a hard line but fine) through the input guard with the judge on --engine, and prints the
share blocked per set, per technique and per deciding stage. From the same runs it also prints
what two other band policies would give: fast pass only (uncertain -> allow) and fail closed
(uncertain -> block). Measured figures, not a pass/fail test; note the guard's thresholds were
chosen with these sets in view, so they are optimistic for other constitutions.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter, defaultdict

from rich.console import Console
from rich.table import Table

from charter.rows import read_rows
from charter.shipped import shipped_path


def load(name: str) -> list[dict]:
    return read_rows(shipped_path("serve", "data", name))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", default="llamacpp:embedded", help="Judge engine ('none': fast pass only)")
    parser.add_argument("--constitution", default=None, help="Default: the example constitution")
    parser.add_argument("--limit", type=int, default=None, help="At most N items per set")
    args = parser.parse_args()

    from charter.commands.constitution import example_path
    from charter.constitution import load_constitution
    from charter.engines.registry import make_engine
    from charter.serve.guard import Guard
    from charter.serve.similarity import Embedder
    from charter.serve.slots import EngineSlot

    console = Console(width=140)
    constitution = load_constitution(args.constitution or example_path("constitution.yaml"))
    engine = None if args.engine == "none" else make_engine(args.engine)
    guard = Guard(constitution, Embedder(), EngineSlot(engine) if engine else None)
    sets = {"attacks": load("attacks.jsonl")[: args.limit], "benign": load("benign.jsonl")[: args.limit]}
    results: dict[str, list[tuple[dict, object]]] = defaultdict(list)
    started = time.perf_counter()
    with console.status("guarding ...") as status:
        for name, items in sets.items():
            for index, item in enumerate(items):
                status.update(f"{name} {index + 1}/{len(items)}")
                results[name].append((item, guard.check_input(item["messages"])))
    elapsed = time.perf_counter() - started
    print_rates(console, results)
    print_techniques(console, results["attacks"])
    print_judge(console, results)
    verdicts = [v for pairs in results.values() for _, v in pairs]
    judged = sum(len(v.judge) for v in verdicts)
    console.print(f"{len(verdicts)} requests in {elapsed:.1f} s ({1000 * elapsed / len(verdicts):.0f} ms each); "
                  f"{judged} judge calls on {args.engine}; embedder all-MiniLM-L6-v2")
    if engine is not None:
        engine.close()


def print_rates(console: Console, results: dict) -> None:
    table = Table(title="hard-line guard on the input (share of requests blocked)")
    for column in ("set", "n", "blocked (fast + judge)", "by fast pass", "by judge", "uncertain band",
                   "fast only", "fail closed"):
        table.add_column(column, justify="right")
    for name, pairs in results.items():
        n = len(pairs)
        by = Counter(v.by for _, v in pairs if v.blocked)
        band = sum(1 for _, v in pairs if v.uncertain and not (v.blocked and v.by == "fast"))
        fast = by["fast"]
        closed = sum(1 for _, v in pairs if v.blocked or v.uncertain)
        cells = [share(k, n) for k in (sum(by.values()), fast, by["judge"], band, fast, closed)]
        table.add_row(name, str(n), *cells)
    console.print(table)
    wrong = [(item["id"], v.clause_id, v.by) for item, v in results["benign"] if v.blocked]
    console.print(f"benign wrongly blocked: {wrong or 'none'}")


def share(k: int, n: int) -> str:
    return f"{k / n:.0%} ({k})"


def print_judge(console: Console, results: dict) -> None:
    """How well the judge separates attacks from benign requests in the band (AUC 0.5 = chance)."""
    scores = {name: [max(p for p in v.judge.values() if p is not None) for _, v in pairs
                     if any(p is not None for p in v.judge.values())] for name, pairs in results.items()}
    attacks, benign = scores["attacks"], scores["benign"]
    if not attacks or not benign:
        return
    auc = sum((a > b) + 0.5 * (a == b) for a in attacks for b in benign) / (len(attacks) * len(benign))
    console.print(f"judge P(Yes) in the band: attacks mean {sum(attacks) / len(attacks):.2f} (n={len(attacks)}), "
                  f"benign mean {sum(benign) / len(benign):.2f} (n={len(benign)}); AUC {auc:.2f}")


def print_techniques(console: Console, pairs: list) -> None:
    table = Table(title="attacks blocked by technique")
    for column in ("technique", "n", "blocked", "right clause"):
        table.add_column(column, justify="right")
    groups = defaultdict(list)
    for item, verdict in pairs:
        groups[item["technique"]].append((item, verdict))
    for technique, group in sorted(groups.items()):
        blocked = sum(v.blocked for _, v in group)
        right = sum(v.blocked and v.clause_id == item["hard_line_id"] for item, v in group)
        table.add_row(technique, str(len(group)), f"{blocked / len(group):.0%}", f"{right / len(group):.0%}")
    console.print(table)


if __name__ == "__main__":
    main()
