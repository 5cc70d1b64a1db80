"""Run one suite over an engine: pick items, skip what the store already has, grade, summarise.

`run_suite` is the Python API the pipeline calls; `charter eval` is a thin wrapper over it.
Each item is one unit of work whose key covers the item, the engines (and judge settings), the
sampling parameters and the seed, so a killed eval resumes where it stopped and a rerun with the
same settings costs nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from charter.engines.base import Engine, GenerationRequest
from charter.errors import CharterError
from charter.evals import load
from charter.evals.grading import Judge, Verdict
from charter.evals.result import EvalRun, Finding, Metric, SuiteResult
from charter.store import Record, RunStore, unit_key

KIND = "eval_finding"
SUITE_VERSION = 1  # bump when a suite's prompts or grading change, so old findings are not reused


@dataclass
class EvalConfig:
    """How the evaluated model answers. Defaults are greedy, so a rerun reproduces an answer."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    system_prompt: str | None = None  # e.g. the constitution's; None tests the model as it is
    batch_size: int = 8  # items per store transaction and per progress step

    def sampling(self) -> dict:
        system = (
            hashlib.sha256(self.system_prompt.encode()).hexdigest()[:12]
            if self.system_prompt
            else None
        )
        return {
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "system_prompt": system,
        }


@dataclass
class Context:
    """Everything a suite function may use."""

    engine: Engine
    judge: Judge | None = None
    config: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    constitution: Any = None  # charter.constitution.Constitution, for clause texts
    against: list[Engine] = field(default_factory=list)

    def messages(self, prompt: str) -> tuple[dict, ...]:
        system = (
            ({"role": "system", "content": self.config.system_prompt},)
            if self.config.system_prompt
            else ()
        )
        return (*system, {"role": "user", "content": prompt})

    def answer(self, prompts: list[str], engine: Engine | None = None) -> list[str]:
        """One answer per prompt (greedy by default) from `engine`, the evaluated one by default."""
        config = self.config
        requests = [
            GenerationRequest(
                messages=self.messages(p),
                max_tokens=config.max_tokens,
                temperature=config.temperature,
                top_p=config.top_p,
                seed=self.seed,
            )
            for p in prompts
        ]
        return [
            completions[0].text.strip()
            for completions in (engine or self.engine).generate(requests)
        ]

    def provenance(self) -> dict:
        hashed = self.constitution.content_hash() if self.constitution is not None else None
        return {
            "constitution_hash": hashed,
            "engine": self.engine.fingerprint,
            "engine_name": self.engine.name,
            "judge": self.judge.describe() if self.judge else None,
            "against": [e.fingerprint for e in self.against],
            "sampling": self.config.sampling(),
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Suite:
    """A suite as registered: how it turns items into findings, and what it measures."""

    run: Callable[[Context, list[dict]], list[Finding]]
    metrics: Callable[[Context], list[tuple[str, Metric]]]
    group_field: str  # the item field that names a finding's row in the per-clause table
    uses_judge: bool
    spread_by: tuple[str, ...] = ()  # fields a --limit sample balances (default: group_field)
    check: Callable[[Context], None] = lambda ctx: None
    finish: Callable[[Context, SuiteResult], None] = lambda ctx, result: None


def metric(name: str, description: str, higher_is_better: bool = True, judged: bool = False):
    return name, Metric(name, description, higher_is_better, judged)


def exchange(question: str, verdict: Verdict) -> dict:
    """One judge exchange as a finding keeps it: the question asked, prompt, reply, verdict."""
    return {"question": question, **verdict.as_dict()}


def needs_judge(suite: str) -> Callable[[Context], None]:
    def check(ctx: Context) -> None:
        if ctx.judge is None:
            raise CharterError(
                f"suite '{suite}' needs a judge; pass --judge-engine (e.g. llamacpp:embedded)"
            )

    return check


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
) -> SuiteResult:
    """Run suite `name` and return its result (rates with CIs, findings, per-clause tables).

    `prompts` are items as loaded by `charter.evals.load.load_items` (the built-in set if None).
    `checks` is a judge-check report (`charter.evals.judges.check_judge`); when a judge is given and
    no report is, the checks are run here, because judged numbers are only shown beside them.
    """
    from charter.evals.suites import SUITES

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
    )
    suite.check(ctx)
    items, skipped = load.load_items(name) if prompts is None else (prompts, 0)
    items = load.spread(items, limit, suite.spread_by or suite.group_field)
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
    if ctx.judge is not None:
        if checks is None:
            from charter.evals.judges import check_judge

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
    against). A judge that fails its checks puts its headline into the run's warnings.
    """
    from charter.evals.judges import check_judge
    from charter.evals.suites import SUITES

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
    todo = [(n, k, i) for n, (k, i) in enumerate(zip(keys, items)) if k not in done]
    size = max(1, ctx.config.batch_size)
    for start in range(0, len(todo), size):
        chunk = todo[start : start + size]
        found = suite.run(ctx, [item for _, _, item in chunk])
        for (_, key, _), finding in zip(chunk, found):
            finding.provenance = ctx.provenance()
            done[key] = finding
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
        if progress:
            progress.advance(task, len(chunk))
    return [done[k] for k in keys]


def _item_key(name: str, ctx: Context, item: dict) -> str:
    text = item.get("prompt") or item.get("statement") or ""
    digest = hashlib.sha256(str(text).encode("utf-8")).hexdigest()[:16]
    extra = {
        "version": SUITE_VERSION,
        "judge": ctx.judge.describe() if ctx.judge else None,
        "against": [e.fingerprint for e in ctx.against],
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
    from importlib import resources

    from charter.constitution import load_constitution

    return load_constitution(str(resources.files("charter") / "examples" / "constitution.yaml"))
