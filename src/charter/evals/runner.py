"""Run one suite over an engine: pick items, skip what the store already has, grade, summarise.

`run_suite` is the Python API the pipeline calls; `charter eval` is a thin wrapper over it.
Each item is one unit of work whose key covers the item, the engines (and judge settings), the
sampling parameters and the seed, so a killed eval resumes where it stopped and a rerun with the
same settings costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import threading

from charter.data.runner import side_by_side
from charter.engines.base import Engine
from charter.errors import CharterError, StageIncomplete, UnitsFailed
from charter.evals import load
from charter.evals.grading import Judge
from charter.evals.judges import check_judge
from charter.evals.result import EvalRun, Finding, SuiteResult
from charter.evals.suite import Context, EvalConfig
from charter.evals.suites import SUITES
from charter.shipped import example_constitution_path
from charter.store import Record, RunStore, unit_key

KIND = "eval_finding"
SUITE_VERSION = 1  # bump when a suite's prompts or grading change, so old findings are not reused


def run_suite(
    name: str,
    engine: Engine,
    judge: Judge | Engine | None = None,
    prompts: list[dict] | None = None,
    seed: int = 0,
    limit: int | None = None,
    store: RunStore | None = None,
    progress=None,
    config: EvalConfig | None = None,
    constitution=None,
    against: list[Engine] | None = None,
    checks: dict | None = None,
    user_engine: Engine | None = None,
) -> SuiteResult:
    """Run suite `name` and return its result (rates with CIs, findings, per-clause tables).

    `prompts` are items as loaded by `charter.evals.load.load_items` (the built-in set if None).
    `checks` is a judge-check report (`charter.evals.judges.check_judge`); when a judge is given and
    no report is, the checks are run here, because judged numbers are only shown beside them.
    """

    if judge is not None and not isinstance(judge, Judge):
        judge = Judge(judge, seed=seed)  # a bare engine: judge with the defaults
    if name not in SUITES:
        raise CharterError(f"unknown suite '{name}'; choose one of {', '.join(SUITES)} or 'all'")
    suite = SUITES[name]
    if constitution is None:
        constitution = example_constitution()
    ctx = Context(
        engine,
        judge if suite.uses_judge else None,
        config or EvalConfig(),
        seed,
        constitution,
        list(against or []),
        user_engine,
    )
    suite.check(ctx)
    items, skipped = load.load_items(name) if prompts is None else (prompts, 0)
    items = load.spread(items, limit, suite.spread_by or suite.group_field, suite.keep_together)
    findings = _run_items(name, suite, ctx, items, store, progress)
    result = SuiteResult(
        name,
        {"name": engine.name, "fingerprint": engine.fingerprint},
        ctx.judge.describe() if ctx.judge else None,
        dict(suite.metrics(ctx)),
        findings,
        seed=seed,
    )
    note_skipped(result, skipped)
    suite.finish(ctx, result)
    tiers = result.by_tier(constitution)
    if tiers:
        result.extra["by_tier"] = tiers
    if ctx.judge is not None:
        if checks is None:

            checks = check_judge(
                ctx.judge, constitution=constitution, progress=progress, store=store
            )
        result.judge_trusted = bool(checks["passed"])
        result.extra["judge_checks"] = checks
        if not checks["passed"]:
            result.warnings.insert(0, checks["headline"])
    return result


def evaluate(
    names: list[str],
    engine: Engine,
    judge: Judge | None = None,
    items: dict[str, list[dict] | None] | None = None,
    check_limit: int = 8,
    **options,
) -> EvalRun:
    """Run several suites with one set of judge checks and collect them as an `EvalRun`.

    `options` are passed to `run_suite` (seed, limit, store, progress, config, constitution,
    against, user_engine). A judge that fails its checks puts its headline into the run's warnings.
    """

    checks = None
    if judge is not None and any(n in SUITES and SUITES[n].uses_judge for n in names):
        constitution = options.setdefault("constitution", example_constitution())
        checks = check_judge(
            judge,
            constitution=constitution,
            limit=check_limit,
            progress=options.get("progress"),
            store=options.get("store"),
        )
    results = {
        n: run_suite(n, engine, judge=judge, prompts=(items or {}).get(n), checks=checks, **options)
        for n in names
    }
    warnings = [checks["headline"]] if checks and not checks["passed"] else []
    return EvalRun(results, checks, warnings)


def note_skipped(result: SuiteResult, skipped: int) -> None:
    if skipped:
        result.warnings.append(
            f"{skipped} item(s) skipped: their label says they do not belong in '{result.suite}'"
        )


def _run_items(
    name: str, suite, ctx: Context, items: list[dict], store: RunStore | None, progress
) -> list[Finding]:
    keys = [_item_key(name, ctx, item) for item in items]
    done: dict[str, Finding] = {}
    if store is not None:
        for key in store.existing(keys):
            data = dict(store.get(key).data)
            done[key] = Finding(**data)
    task = (
        progress.add_task(f"eval {name}", total=len(items), completed=len(done))
        if progress
        else None
    )
    # Batches are fixed by item position (never by what is left after a crash), so a resumed
    # eval asks the engine what an uninterrupted one asked; with a pool engine (--executor ray)
    # several batches run side by side, each whole on one worker.
    size = max(1, ctx.config.batch_size)
    positioned = list(enumerate(zip(keys, items)))
    batches = [[(n, k, i) for n, (k, i) in positioned[start:start + size] if k not in done]
               for start in range(0, len(positioned), size)]
    batches = [b for b in batches if b]
    lock = threading.Lock()
    failed: list[str] = []

    def run_batch(chunk) -> None:
        try:
            found = suite.run(ctx, [item for _, _, item in chunk])
        except UnitsFailed as exc:
            with lock:
                failed.append(f"{len(chunk)} item(s): {exc}")
            return
        for (_, key, _), finding in zip(chunk, found):
            finding.provenance = ctx.provenance()
        if store is not None:
            store.put_many(
                [
                    Record(
                        key,
                        KIND,
                        f"eval:{name}",
                        f"{name}:{n:06d}:{item['id']}",
                        tuple(f.clause_ids),
                        f.as_dict(),
                    )
                    for (n, key, item), f in zip(chunk, found)
                ]
            )
        with lock:
            for (_, key, _), finding in zip(chunk, found):
                done[key] = finding
            if progress:
                progress.advance(task, len(chunk))

    side_by_side(ctx.engine, run_batch, batches, f"charter-eval-{name}")
    if failed:
        raise StageIncomplete(f"eval {name}: engine calls failed past their retries ({failed[-1]}); the "
                              f"other items are stored: rerun the same command to retry these")
    return [done[k] for k in keys]


def _item_key(name: str, ctx: Context, item: dict) -> str:
    text = item.get("prompt") or item.get("statement") or json.dumps(item, sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(str(text).encode("utf-8")).hexdigest()[:16]
    extra = {
        "version": SUITE_VERSION,
        "judge": ctx.judge.describe() if ctx.judge else None,
        "against": [e.fingerprint for e in ctx.against],
        **({"user_engine": ctx.user_engine.fingerprint} if ctx.user_engine is not None else {}),
    }
    return unit_key(
        f"eval:{name}",
        [str(item["id"]), digest],
        item.get("clause_id") or item.get("trait_id"),
        ctx.engine.fingerprint,
        ctx.config.sampling(),
        ctx.seed,
        extra=extra,
    )


def example_constitution():

    from charter.constitution import load_constitution

    return load_constitution(example_constitution_path())
