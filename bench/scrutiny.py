"""Recall and false findings of `charter scrutinize`'s static checks on constitutions with planted problems.

    python bench/scrutiny.py [FOLDER ...]

A folder holds constitutions and their answer key: either `key.yaml` (file name -> list of
{kind, clauses}) or one `NAME.key.yaml` beside each `NAME.yaml`. Defaults: tests/fixtures/scrutiny
(the development set, written beside the rules, so it flatters them) and
bench/data/scrutiny_heldout (written by someone who never saw the rules: for reporting only, never
tune on it). A planted problem is found when a finding of its check names the same clauses (a
contradiction and a missing priority are one problem under either name: two clauses that conflict
with nothing saying which wins); a warning or error that matches no planted problem is a false finding.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
KIND_TO_CHECK = {"default_contradicts_principle": "default_contradicts",
                 "hard_line_without_examples": "hard_line_examples"}


def keys(folder: Path) -> dict[Path, list[dict]]:
    shared = folder / "key.yaml"
    if shared.exists():
        data = yaml.safe_load(shared.read_text(encoding="utf-8")) or {}
        return {folder / name: list(problems or []) for name, problems in data.items()}
    return {path.with_name(path.name.removesuffix(".key.yaml") + ".yaml"):
            yaml.safe_load(path.read_text(encoding="utf-8")) or [] for path in sorted(folder.glob("*.key.yaml"))}


def matches(problem: dict, finding) -> bool:
    check = KIND_TO_CHECK.get(problem["kind"], problem["kind"])
    same = set(problem["clauses"]) <= set(finding.clauses) and bool(finding.clauses)
    if not same:
        return False
    if finding.check == check:
        return True
    # "These two conflict and nothing says which wins" is one problem under either name.
    unsettled = {"missing_priority", "contradiction"}
    return check in unsettled and finding.check in unsettled and finding.severity != "info"


def score(folder: Path, embedder) -> tuple[Counter, Counter, Counter, list[str]]:
    from charter.constitution import load_constitution
    from charter.scrutiny.coverage import exercised_by
    from charter.scrutiny.static import static_findings

    planted, found, false = Counter(), Counter(), Counter()
    notes = []
    exercised = exercised_by()
    for path, problems in sorted(keys(folder).items()):
        findings = [f for f in static_findings(load_constitution(path), embedder, exercised=exercised)
                    if f.severity in ("error", "warning")]
        used = set()
        for problem in problems:
            check = KIND_TO_CHECK.get(problem["kind"], problem["kind"])
            planted[check] += 1
            hit = next((n for n, f in enumerate(findings) if matches(problem, f)), None)
            if hit is None:
                notes.append(f"  missed  {path.name}: {check} {problem['clauses']}")
            else:
                found[check] += 1
                used.add(hit)
        for n, f in enumerate(findings):
            if n not in used and not any(matches(p, f) for p in problems):
                false[f.check] += 1
                kind = "clean" if not problems else "planted"
                notes.append(f"  false   {path.name} ({kind}): {f.check} {list(f.clauses)} {f.evidence}")
    return planted, found, false, notes


def main(folders: list[str]) -> None:
    from charter.embeddings import Embedder

    embedder = Embedder()
    folders = folders or [str(ROOT / "tests/fixtures/scrutiny"), str(ROOT / "bench/data/scrutiny_heldout")]
    for folder in map(Path, folders):
        if not folder.exists():
            print(f"{folder}: not found, skipped")
            continue
        planted, found, false, notes = score(folder, embedder)
        print(f"{folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder}:")
        print(f"  {'check':22} {'planted':>7} {'found':>6} {'recall':>7} {'false findings':>15}")
        for check in sorted(set(planted) | set(false)):
            recall = f"{found[check] / planted[check]:.2f}" if planted[check] else "-"
            print(f"  {check:22} {planted[check]:7d} {found[check]:6d} {recall:>7} {false[check]:15d}")
        total_p, total_f = sum(planted.values()), sum(found.values())
        print(f"  {'all':22} {total_p:7d} {total_f:6d} {total_f / max(1, total_p):7.2f} {sum(false.values()):15d}")
        print("\n".join(notes))


if __name__ == "__main__":
    main(sys.argv[1:])
