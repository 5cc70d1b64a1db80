"""The stages of `charter run`, one small function each: (RunContext) -> summary dict."""

from __future__ import annotations

import json
from pathlib import Path

from charter.errors import CharterError


def _task_progress(ctx, description: str):
    """A data-stage progress callback (description, done, total) drawing one rich task."""
    if ctx.progress is None:
        return None
    task = ctx.progress.add_task(description, total=None)

    def update(text: str, done: int, total: int) -> None:
        ctx.progress.update(task, description=text, completed=done, total=total)
    return update


def _train_progress(ctx, description: str):
    if ctx.progress is None:
        return None
    task = ctx.progress.add_task(description, total=None)

    def update(step: int, total: int, logs: dict) -> None:
        loss = logs.get("loss")
        text = f"{description} loss {loss:.3f}" if isinstance(loss, (int, float)) else description
        ctx.progress.update(task, description=text, completed=step, total=total)
    return update


# -- prompts ----------------------------------------------------------------------------------

def stage_prompts(ctx) -> dict:
    """Harmful prompts (red-team set + hard-line examples) and safe ones: ordinary requests, safe
    prompts that only look dangerous ("how do I nuke my node_modules folder?") and the hard lines'
    look-alikes. Without the look-dangerous ones a small model learns "scary words -> refuse" and
    over-refuses (measured: 18/40 safe-but-scary eval prompts refused after SFT on refusals and
    ordinary answers only)."""
    from charter.data.prompts import PromptItem, example_prompts, interleave

    c, limit = ctx.constitution, ctx.config.limit
    hard = [PromptItem(f"hard_line/{h.id}/{i}", text, "hard_line", "hard_line", clause_id=h.id)
            for h in c.hard_lines for i, text in enumerate(h.examples)]
    look = [PromptItem(f"lookalike/{h.id}/{i}", text, "lookalike", "lookalike", clause_id=h.id, mode="answer")
            for h in c.hard_lines for i, text in enumerate(h.lookalikes)]
    harmful = interleave([example_prompts("red_team"), hard])[:limit]
    safe = interleave([example_prompts("borderline", mode="answer"), example_prompts("helpful", mode="answer"),
                       look])[:round(len(harmful) * ctx.config.safe_ratio)]
    rows = [{**_item_json(item), "harmful": True} for item in harmful]
    rows += [{**_item_json(item), "harmful": False} for item in safe]
    _write_jsonl(ctx.path("prompts.jsonl"), rows)
    return {"harmful": len(harmful), "safe": len(safe)}


def _item_json(item) -> dict:
    return {"uid": item.uid, "prompt": item.prompt, "source": item.source, "category": item.category,
            "clause_id": item.clause_id, "mode": item.mode}


def read_prompts(ctx) -> list[dict]:
    path = ctx.path("prompts.jsonl")
    if not path.exists():
        raise CharterError(f"{path} is missing; run the prompts stage first (charter run --stages prompts,...)")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# -- data ---------------------------------------------------------------------------------------

def stage_data(ctx) -> dict:
    from charter.engines.registry import make_engine

    engine = make_engine(ctx.config.policy)
    try:
        if ctx.summaries["recipe"] == "contrastive":
            return _contrastive_data(ctx, engine)
        return _critique_data(ctx, engine)
    finally:
        engine.close()


def _contrastive_data(ctx, engine) -> dict:
    """Sample the one side of each pair that the recipe cannot write itself.

    Safe prompt: the teacher's answer (the constitution as system prompt, greedy) is the chosen
    side; the rejected side is a needless refusal. Harmful prompt: the model's own answer, with no
    system prompt, is the rejected side (on-policy: exactly the behaviour the eval measures before
    training); the chosen side is a refusal written from the clause. Measured on the embedded
    model (bench/teacher_refusals.py): its teacher declined 1 of 64 red-team prompts, so sampling
    the other sides was 98% wasted generation. Greedy teacher answers, rather than samples at
    temperature 0.8, gave coherent answers to train on and cut safe-prompt refusals after training
    from 19/40 to 14/40 (docs/training.md, "The embedded recipe").
    """
    from charter.constitution import render_system_prompt
    from charter.data.contrastive import PairSpec, sample_pairs
    from charter.data.prompts import PromptItem
    from charter.data.runner import Stage

    cfg, c = ctx.config, ctx.constitution
    system = {"role": "system", "content": render_system_prompt(c, "compact")}
    # Several samples per prompt need sampling to differ; one sample is the greedy answer.
    temperature = 0.0 if cfg.samples == 1 else 0.7
    harmful_spec = PairSpec(None, (), "contrastive:own-answer", cfg.max_tokens, temperature)
    safe_spec = PairSpec((system,), None, "contrastive:teacher", cfg.max_tokens, temperature)
    prompts = read_prompts(ctx)
    harmful = {p["uid"] for p in prompts if p["harmful"]}
    # Several samples per prompt: each is its own unit of work (own key and seed) via the uid.
    items = [PromptItem(f"{p['uid']}#{s}", p["prompt"], p["source"], p["category"], p["clause_id"],
                        mode=p["mode"]) for s in range(cfg.samples) for p in prompts]
    stage = Stage("distill", ctx.store, c, engine, cfg.seed, _task_progress(ctx, "data: teacher and own answers"))
    ctx.store.begin_stage("distill", {"samples": cfg.samples, "max_tokens": cfg.max_tokens, "seed": cfg.seed,
                                      "teacher": "compact:one-sided:v3", "prompts": len(items)},
                          fixed=("max_tokens", "seed", "teacher"))

    def spec_of(item):
        return harmful_spec if item.uid.split("#")[0] in harmful else safe_spec

    def clause_ids_of(item):
        return (item.clause_id,) if item.clause_id else (("harmlessness",) if item.uid.split("#")[0] in harmful
                                                         else ("helpfulness", "needless_refusal"))
    sample_pairs(stage, items, 32, "data: teacher and own answers", spec_of, clause_ids_of)
    return stage.finish(prompts=len(items))


def _critique_data(ctx, engine) -> dict:
    from charter.data.critique import run_sl
    from charter.data.feedback import run_prefs
    from charter.data.prompts import PromptItem
    from charter.engines.registry import make_engine

    cfg, c = ctx.config, ctx.constitution
    prompts = read_prompts(ctx)
    items = [PromptItem(p["uid"], p["prompt"], p["source"], p["category"], p["clause_id"], mode=p["mode"])
             for p in prompts]
    sl = run_sl(ctx.store, c, engine, items, rounds=cfg.rounds, seed=cfg.seed, max_tokens=cfg.max_tokens,
                progress=_task_progress(ctx, "data: SL-CAI"))
    feedback = make_engine(cfg.feedback) if cfg.feedback and cfg.feedback != cfg.policy else engine
    try:
        prefs = run_prefs(ctx.store, c, engine, [i for i in items if i.mode != "answer"], feedback_engine=feedback,
                          mode="judge", seed=cfg.seed, progress=_task_progress(ctx, "data: RLAIF labels"))
    finally:
        if feedback is not engine:
            feedback.close()
    return {"sl": sl, "prefs": prefs}


# -- datasets -----------------------------------------------------------------------------------

def stage_datasets(ctx) -> dict:
    """Export the store's data; for judge-free data, complete and check each pair by the rules."""
    from charter.data.export import export_run
    from charter.recipes import FilterReport, constructed_refusal, judge_free_pair

    raw = export_run(ctx.store, ctx.path("datasets", "raw"), "parquet")
    if ctx.summaries["recipe"] != "contrastive":
        return {"sft": raw["sft"]["rows"], "prefs": raw["prefs"]["rows"], "paths": raw}
    prompts = {p["uid"]: p for p in read_prompts(ctx)}
    report, kept = FilterReport(), []
    for prompt_id, sides in _samples_by_prompt(ctx.store, "distill"):
        prompt = prompts[prompt_id.split("#")[0]]
        refusal = constructed_refusal(ctx.constitution, prompt["category"], prompt["clause_id"], prompt_id,
                                      ctx.config.seed)
        texts = {side: record.data["text"] for side, record in sides.items()}
        pair = judge_free_pair(prompt["harmful"], texts.get("chosen"), texts.get("rejected"), refusal)
        if isinstance(pair, str):
            report.drop(pair)
            continue
        chosen, rejected, source = pair
        report.keep(source)
        sample = next(iter(sides.values()))
        kept.append({
            "id": "+".join(sorted(r.key for r in sides.values())), "stage": sample.stage, "prompt_id": prompt_id,
            "example_kind": "contrastive", "clause_ids": list(sample.clause_ids),
            "constitution_hash": sample.data["constitution_hash"], "engine": sample.data["engine"],
            "sampling": sample.data["sampling"], "seed": sample.data["seed"],
            "label_source": f"{sample.data['label_source']}+rules:{source}",
            "prompt": [{"role": "user", "content": sample.data["prompt"]}],
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
            "score_chosen": 1.0, "score_rejected": 0.0,  # labelled by construction: p = 1
        })
    if not kept:
        raise CharterError("no preference pair survived the rule check; raise --limit or --samples, or use a "
                           "stronger --policy engine")
    sft = [{"messages": row["prompt"] + row["chosen"], **_provenance(row)} for row in kept]
    dpo = _balanced(kept, {uid for uid, p in prompts.items() if p["harmful"]}, ctx.config.dpo_safe_ratio)
    _write_parquet(ctx.path("datasets", "prefs.parquet"), kept)
    _write_parquet(ctx.path("datasets", "dpo.parquet"), dpo)
    _write_parquet(ctx.path("datasets", "sft.parquet"), sft)
    return {"sft": len(sft), "prefs": len(kept), "dpo": len(dpo), "filter": report.as_dict()}


def _balanced(pairs: list[dict], harmful: set[str], safe_ratio: float) -> list[dict]:
    """Every harmful-prompt pair and, in prompt order, `safe_ratio` times as many safe-prompt pairs:
    what DPO trains on. The ratio moves the trained model along the trade-off between refusing
    harmful prompts and answering safe ones.

    SFT sees every safe answer (they anchor the model's answering). Measured on the embedded model
    after SFT (17/40 harmful prompts refused, 5/40 safe ones): DPO on all pairs (2 safe per
    harmful) gave 14/40 and 1/40, on 1.5 safe per harmful (the default) 16/40 and 1/40, on 1 per 1
    22/40 and 4/40 (docs/training.md, "The embedded recipe").
    """
    unsafe = [p for p in pairs if p["prompt_id"].split("#")[0] in harmful]
    safe = [p for p in pairs if p["prompt_id"].split("#")[0] not in harmful]
    return unsafe + safe[:round(len(unsafe) * safe_ratio)] if unsafe else safe


def _samples_by_prompt(store, stage: str):
    """(prompt id, {side: sample record}) in the order the samples were made."""
    grouped: dict[str, dict] = {}
    for record in store.iter("pair_sample", stage):
        grouped.setdefault(record.data["prompt_id"], {})[record.data["side"]] = record
    return grouped.items()


def _provenance(row: dict) -> dict:
    skip = {"prompt", "chosen", "rejected", "score_chosen", "score_rejected"}
    return {k: v for k, v in row.items() if k not in skip}


# -- training and export --------------------------------------------------------------------------

def stage_sft(ctx) -> dict:
    from charter.train.config import SftSettings
    from charter.train.sft import train_sft

    cfg = ctx.config
    data = ctx.path("datasets", "sft.parquet")
    if not data.exists():
        data = ctx.path("datasets", "raw", "sft.parquet")
    result = train_sft(SftSettings(max_steps=cfg.max_steps, learning_rate=cfg.sft_learning_rate, seed=cfg.seed), [data], ctx.path("train", "sft"),
                       progress=_train_progress(ctx, "sft"))
    return {"metrics": result.metrics, "steps": len([h for h in result.log_history if "loss" in h])}


def stage_dpo(ctx) -> dict:
    from charter.train.config import DpoSettings
    from charter.train.dpo import train_dpo

    cfg = ctx.config
    data = ctx.path("datasets", "dpo.parquet")  # the contrastive recipe's balanced pairs
    if not data.exists():
        data = ctx.path("datasets", "raw", "prefs.parquet")
    sft = ctx.path("train", "sft")
    result = train_dpo(DpoSettings(max_steps=cfg.max_steps, learning_rate=cfg.dpo_learning_rate, seed=cfg.seed), [data], ctx.path("train", "dpo"),
                       sft_adapter=sft if sft.exists() else None, progress=_train_progress(ctx, "dpo"))
    return {"metrics": result.metrics, "steps": len([h for h in result.log_history if "loss" in h])}


def trained_adapter(ctx) -> Path:
    for name in ("dpo", "sft"):
        if ctx.path("train", name, "charter_train.json").exists():
            return ctx.path("train", name)
    raise CharterError(f"no trained adapter in {ctx.path('train')}; run the sft or dpo stage first")


def stage_export(ctx) -> dict:
    from charter.train.export import export

    result = export(None, [trained_adapter(ctx)], ctx.path("model"), gguf=True)
    return {"hf": str(result.hf_dir), "gguf": str(result.gguf_path)}


# -- evals and report ---------------------------------------------------------------------------------

def trained_engine_spec(ctx) -> str:
    ggufs = sorted(ctx.path("model").glob("*.gguf"))
    if not ggufs:
        raise CharterError(f"no exported GGUF in {ctx.path('model')}; run the export stage first")
    return f"llamacpp:{ggufs[0]}"


def stage_eval(ctx) -> dict:
    from charter.engines.registry import make_engine
    from charter.evals.grading import Judge
    from charter.evals.runner import EvalConfig, evaluate

    cfg = ctx.config
    judge_engine = make_engine(cfg.judge) if cfg.judge else None
    summary = {}
    try:
        for label, spec in (("base", cfg.policy), ("trained", trained_engine_spec(ctx))):
            engine = make_engine(spec)
            try:
                run = evaluate(list(cfg.suites), engine, Judge(judge_engine, seed=cfg.seed) if judge_engine else None,
                               seed=cfg.seed, limit=cfg.eval_limit, store=ctx.store, progress=ctx.progress,
                               constitution=ctx.constitution, config=EvalConfig(max_tokens=cfg.eval_max_tokens))
            finally:
                engine.close()
            run.meta.update({"model": label, "engine": spec})
            run.save(ctx.path("eval", label))
            summary[label] = {name: {m: e.as_dict() for m, e in s.summary().items()} for name, s in run.suites.items()}
    finally:
        if judge_engine is not None:
            judge_engine.close()
    return summary


def stage_report(ctx) -> dict:
    from charter.pipeline_report import write_report

    path = write_report(ctx)
    return {"report": str(path)}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)


def _write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    tmp.replace(path)


STAGE_FUNCTIONS = {
    "prompts": stage_prompts, "data": stage_data, "datasets": stage_datasets, "sft": stage_sft,
    "dpo": stage_dpo, "export": stage_export, "eval": stage_eval, "report": stage_report,
}
