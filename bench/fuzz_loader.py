"""Fuzz the constitution loader: mutated copies of the example constitution, each loaded in this
process; counts located errors (file, line, field), clean loads, and anything else (tracebacks).

    python bench/fuzz_loader.py [--cases 2000] [--seed 0]

Mutations: delete, duplicate or swap lines; random bytes; explicit YAML tags; aliases and alias
bombs; lone surrogates; look-alike ids; deep nesting; tabs; huge scalars. Prints the counts and the
first few unexpected exceptions. A tool for finding crashes, not a test (tests/constitution has the
property-based tests CI runs).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from charter.constitution import load_constitution  # noqa: E402
from charter.errors import ConstitutionError  # noqa: E402
from charter.shipped import example_constitution_path  # noqa: E402

SNIPPETS = ["!!int x", "!!float abc", "!!bool maybe", "!!timestamp nope", "&a [1, 2]", "*a", "*missing",
            '"\\ud800"', "{", "[", "]", "- - -", ": :", "\t", "~", "null", ".inf", "1.10", "'", '"',
            "id: No_Weapons", "id: nо_weapons", "x" * 5000, "[" * 400 + "]" * 400, "<<: *a", "? key"]


def mutate(lines: list[str], rng: random.Random) -> str:
    lines = list(lines)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(7)
        at = rng.randrange(len(lines)) if lines else 0
        if kind == 0 and lines:
            del lines[at]
        elif kind == 1 and lines:
            lines.insert(at, lines[rng.randrange(len(lines))])
        elif kind == 2 and len(lines) > 1:
            other = rng.randrange(len(lines))
            lines[at], lines[other] = lines[other], lines[at]
        elif kind == 3 and lines:
            line = lines[at]
            cut = rng.randrange(len(line) + 1)
            lines[at] = line[:cut] + rng.choice(SNIPPETS) + line[cut:]
        elif kind == 4 and lines:
            lines[at] = lines[at].split(":")[0] + ": " + rng.choice(SNIPPETS)
        elif kind == 5:
            lines.insert(at, "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randint(1, 20))))
        else:
            levels = rng.randint(3, 9)
            bomb = ['b0: &b0 ["x"]'] + [f"b{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 9)}]" for i in range(1, levels)]
            lines[at:at] = bomb
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    lines = example_constitution_path().read_text(encoding="utf-8").splitlines()
    counts = {"loaded": 0, "located error": 0, "unlocated error": 0, "traceback": 0}
    slowest, crashes = 0.0, []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        for case in range(args.cases):
            path.write_text(mutate(lines, rng), encoding="utf-8", errors="surrogatepass")
            started = time.perf_counter()
            try:
                load_constitution(path)
                counts["loaded"] += 1
            except ConstitutionError as exc:
                counts["located error" if all(p.line >= 1 for p in exc.problems) else "unlocated error"] += 1
            except Exception:  # noqa: BLE001 - what this tool looks for
                counts["traceback"] += 1
                if len(crashes) < 5:
                    crashes.append((case, traceback.format_exc(limit=3)))
            slowest = max(slowest, time.perf_counter() - started)
    print(f"{args.cases} cases (seed {args.seed}): " + ", ".join(f"{k} {v}" for k, v in counts.items())
          + f"; slowest load {slowest:.2f} s")
    for case, text in crashes:
        print(f"--- case {case}\n{text}")


if __name__ == "__main__":
    main()
