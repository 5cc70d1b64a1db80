"""`charter eval` as a library call: open the session, run the suites, describe the run.

The command parses options and prints; this module decides which suites "all" means, which engines
play which role (the evaluated model, its judge, `--against` opponents), what identity the run
folder gets, and how a new eval.json keeps the suites an earlier eval of the same engine wrote.
"""

from __future__ import annotations

import time
from pathlib import Path

from charter.errors import CharterError
from charter.evals.result import EvalRun, load_eval

SUITE_CHOICES = ("harmful", "overrefusal", "adherence", "character", "helpfulness", "conversations", "pairs",
                 "pairs_dev", "all")
DEFAULT_SUITES = ("harmful", "overrefusal", "adherence", "character")


def suite_names(suite: str, against: list[str], prompts: str | None) -> list[str]:
    """The suites one `--suite` value runs ("all": every suite, helpfulness only with --against)."""
    if suite not in SUITE_CHOICES:
        raise CharterError(f"unknown suite '{suite}'; choose one of {', '.join(SUITE_CHOICES)}")
    if suite != "all":
        return [suite]
    if prompts:
        raise CharterError("--prompts needs one --suite (each suite reads different fields); e.g. --suite harmful")
    return [*DEFAULT_SUITES, *(["helpfulness"] if against else [])]


def evaluate_engines(names: list[str], items: dict, specs: dict, settings: dict, out: Path,
                     constitution: Path | None, new_run: bool = False, progress=None,
                     executor=None) -> tuple[EvalRun, Path]:
    """Run `names` on the engine `specs["engine"]`; return the run and the folder it was stored in.

    specs: engine, judge (None: the evaluated engine judges itself; "none": rules only),
    judge_mode, against, user_engine (conversations' simulated user; None: scripted). settings: limit, seed, max_tokens, system_prompt ("none", "compact",
    "full"), check_limit."""
    from charter.constitution import render_system_prompt
    from charter.evals.grading import Judge
    from charter.evals.runner import evaluate
    from charter.evals.suite import EvalConfig
    from charter.session import open_session

    judge_spec = None if (specs["judge"] or "").lower() == "none" else specs["judge"] or specs["engine"]
    roles = {"evaluated": specs["engine"], "judge": judge_spec, "user": specs.get("user_engine")}
    with open_session(constitution, roles, out, new_run=new_run, stage="eval",
                      params={"suites": names, **specs, **settings},
                      extra_engines=specs["against"], executor=executor) as session:
        style = settings["system_prompt"]
        system = None if style == "none" else render_system_prompt(session.constitution, style)
        judge = Judge(session.engines["judge"], mode=specs["judge_mode"], seed=settings["seed"]) \
            if "judge" in session.engines else None
        run = evaluate(names, session.engines["evaluated"], judge, items, check_limit=settings["check_limit"],
                       seed=settings["seed"], limit=settings["limit"], store=session.store, progress=progress,
                       config=EvalConfig(max_tokens=settings["max_tokens"], system_prompt=system),
                       constitution=session.constitution, against=session.extra,
                       user_engine=session.engines.get("user"))
        session.store.set_stage_done("eval", {"suites": names, "findings": session.store.count("eval_finding")})
        folder = session.folder
    run.meta = {**specs, **settings, "judge": judge.describe() if judge else None,
                "constitution_hash": session.constitution.content_hash(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    return run, folder


def keep_other_suites(run: EvalRun, out: Path) -> EvalRun:
    """eval.json describes the whole run folder: suites run there before (same engine) stay."""
    if not (out / "eval.json").is_file():
        return run
    earlier = load_eval(out)
    if earlier.meta.get("engine") != run.meta.get("engine"):
        return run
    kept = {n: s for n, s in earlier.suites.items() if n not in run.suites}
    run.suites = {**kept, **run.suites}
    run.warnings += [w for w in earlier.warnings if kept and w not in run.warnings]
    run.judge_checks = run.judge_checks or earlier.judge_checks
    return run
