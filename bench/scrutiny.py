"""Recall and false findings of `charter scrutinize`'s static checks on constitutions with planted problems.

    python bench/scrutiny.py [FOLDER ...]
    python bench/scrutiny.py --probes llamacpp:embedded [--judge SPEC] [FOLDER ...]


A folder holds constitutions and their answer key: either `key.yaml` (file name -> list of
{kind, clauses}) or one `NAME.key.yaml` beside each `NAME.yaml`. Defaults: tests/fixtures/scrutiny
(the development set, written beside the rules, so it flatters them), tests/fixtures/scrutiny_dev2
(a second development set, written blind to the rules, then the rules were extended beside it: it
flatters them too), and bench/data/scrutiny_heldout (written by someone who never saw the rules: for
reporting only, never tune on it). A planted problem is found when a finding of its check names the same clauses (a
contradiction and a missing priority are one problem under either name: two clauses that conflict
with nothing saying which wins); a warning or error that matches no planted problem is a false finding.

With `--probes ENGINE`, every file is also probed (3 pairs, 1 scenario, 2 samples; runs kept under
/tmp/scrutiny-probes so a rerun resumes) and the probe verdicts are counted: a planted conflict
(contradiction, missing priority, default against a principle) is found by a probe when a probe
flags that pair (underspecified or lower priority followed); a probe flag anywhere else is a false
finding; pairs no judge could score are counted apart.
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
    for path, problems in sorted(keys(folder).items()):
        constitution = load_constitution(path)
        findings = [f for f in static_findings(constitution, embedder, exercised=exercised_by(constitution))
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


CONFLICTS = ("contradiction", "missing_priority", "default_contradicts")
PROBE_FLAGS = ("underspecified", "lower_priority_followed")


def probe_score(folder: Path, engine: str, judge: str | None, embedder) -> None:
    from charter.scrutiny.probes import ProbeSettings
    from charter.scrutiny.run import scrutinize
    from charter.session import open_session

    verdicts, planted, found, false = Counter(), 0, 0, 0
    for path, problems in sorted(keys(folder).items()):
        roles = {"policy": engine, "judge": judge}
        out = Path("/tmp/scrutiny-probes") / folder.name / path.stem
        with open_session(path, roles, out) as session:
            result = scrutinize(session, probe=ProbeSettings(max_pairs=3, scenarios=1, samples=2), embedder=embedder)
        probed = [f for f in result.findings if f.check.startswith("probe_") or f.check in PROBE_FLAGS]
        verdicts.update(f.check for f in probed)
        conflicts = [set(p["clauses"]) for p in problems if KIND_TO_CHECK.get(p["kind"], p["kind"]) in CONFLICTS]
        planted += len(conflicts)
        flagged = [set(f.clauses) for f in probed if f.check in PROBE_FLAGS]
        found += sum(any(c <= f for f in flagged) for c in conflicts)
        false += sum(not any(c <= f for c in conflicts) for f in flagged)
    print(f"  probes ({engine}, judge {judge or engine}): pairs {dict(verdicts)}; planted conflicts found "
          f"{found} / {planted}; probe flags on no planted conflict: {false}")


def main(args: list[str]) -> None:
    from charter.embeddings import Embedder

    engine = judge = None
    if "--probes" in args:
        at = args.index("--probes")
        engine, args = args[at + 1], args[:at] + args[at + 2:]
    if "--judge" in args:
        at = args.index("--judge")
        judge, args = args[at + 1], args[:at] + args[at + 2:]
    folders = args
    embedder = Embedder()
    folders = folders or [str(ROOT / "tests/fixtures/scrutiny"), str(ROOT / "tests/fixtures/scrutiny_dev2"),
                          str(ROOT / "bench/data/scrutiny_heldout")]
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
        if engine:
            probe_score(folder, engine, judge, embedder)


if __name__ == "__main__":
    main(sys.argv[1:])
