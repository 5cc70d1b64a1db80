"""The stages of `charter run`, one small function each: (RunContext) -> summary dict."""

from __future__ import annotations

from charter.errors import CharterError
from charter.rows import read_rows, write_rows


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
    """The judge-free recipe's harmful and safe prompts (data/distill.py, `default_prompts`),
    written to prompts.jsonl: the data stage and the report read them there."""
    from charter.data.distill import default_prompts

    prompts = default_prompts(ctx.constitution, ctx.config.limit, ctx.config.safe_ratio,
                              pairs=ctx.config.minimal_pairs)
    write_rows(ctx.layout.prompts, [{**_item_json(p.item), "harmful": p.harmful} for p in prompts], sort_keys=True)
    return {"harmful": sum(p.harmful for p in prompts), "safe": sum(not p.harmful for p in prompts)}


def _item_json(item) -> dict:
    return {"uid": item.uid, "prompt": item.prompt, "source": item.source, "category": item.category,
            "clause_id": item.clause_id, "mode": item.mode}


def read_prompts(ctx) -> list[dict]:
    path = ctx.layout.prompts
    if not path.exists():
        raise CharterError(f"{path} is missing; run the prompts stage first (charter run --stages prompts,...)")
    return read_rows(path)


# -- data ---------------------------------------------------------------------------------------

def stage_data(ctx) -> dict:
    from charter.executor import make_engine_for

    engine = make_engine_for(ctx.config.policy, ctx.config.executor)
    try:
        if ctx.summaries["recipe"] == "contrastive":
            return _contrastive_data(ctx, engine)
        return _critique_data(ctx, engine)
    finally:
        engine.close()


def _contrastive_data(ctx, engine) -> dict:
    """The judge-free recipe (data/distill.py) on the prompts stage's harmful and safe prompts."""
    from charter.data.distill import DistillPrompt, run_distill

    cfg = ctx.config
    prompts = [DistillPrompt(_prompt_item(p), p["harmful"]) for p in read_prompts(ctx)]
    return run_distill(ctx.store, ctx.constitution, engine, prompts, seed=cfg.seed, samples=cfg.samples,
                       max_tokens=cfg.max_tokens, progress=_task_progress(ctx, "data: teacher and own answers"),
                       needless_refusals=cfg.needless_refusals)


def _prompt_item(row: dict):
    from charter.data.prompts import PromptItem

    return PromptItem(row["uid"], row["prompt"], row["source"], row["category"], row["clause_id"], mode=row["mode"])


def _critique_data(ctx, engine) -> dict:
    from charter.data.critique import run_sl
    from charter.data.feedback import run_prefs
    from charter.executor import make_engine_for

    cfg, c = ctx.config, ctx.constitution
    prompts = read_prompts(ctx)
    items = [_prompt_item(p) for p in prompts]
    sl = run_sl(ctx.store, c, engine, items, rounds=cfg.rounds, seed=cfg.seed, max_tokens=cfg.max_tokens,
                progress=_task_progress(ctx, "data: SL-CAI"))
    from charter.data.feedback import JudgeConfig

    feedback = make_engine_for(cfg.feedback, cfg.executor) if cfg.feedback and cfg.feedback != cfg.policy \
        else engine
    try:
        prefs = run_prefs(ctx.store, c, engine, [i for i in items if i.mode != "answer"], feedback_engine=feedback,
                          mode="judge", seed=cfg.seed, progress=_task_progress(ctx, "data: RLAIF labels"),
                          config=JudgeConfig(mode=cfg.judge_mode))
    finally:
        if feedback is not engine:
            feedback.close()
    return {"sl": sl, "prefs": prefs}


# -- datasets -----------------------------------------------------------------------------------

def stage_datasets(ctx) -> dict:
    """The store's records as TRL datasets (one exporter, one schema). The judge-free recipe's
    pairs also get `dpo.parquet`: every harmful-prompt pair and `--dpo-safe-ratio` times as many
    safe-prompt ones."""
    from charter.data.distill import STAGE, balanced
    from charter.data.export import export_run, pref_rows, write_dataset

    if ctx.summaries["recipe"] != "contrastive":
        raw = export_run(ctx.store, ctx.layout.raw_datasets, "parquet")
        return {"sft": raw["sft"]["rows"], "prefs": raw["prefs"]["rows"], "paths": raw}
    if not ctx.store.count("pref", STAGE):
        raise CharterError(f"{ctx.store.folder} has no judge-free pairs in its store (a run folder from an older "
                           f"charter keeps them outside it); run again with another --out folder")
    made = export_run(ctx.store, ctx.layout.datasets, "parquet", stages=[STAGE])
    harmful = {p["uid"] for p in read_prompts(ctx) if p["harmful"]}
    dpo = balanced(list(pref_rows(ctx.store, [STAGE])), harmful, ctx.config.dpo_safe_ratio)
    write_dataset(ctx.layout.dpo_pairs, dpo, "prefs")
    kept = ctx.store.manifest.get("done", {}).get(STAGE, {}).get("filter")
    return {"sft": made["sft"]["rows"], "prefs": made["prefs"]["rows"], "dpo": len(dpo), "filter": kept}


# -- training and export --------------------------------------------------------------------------

def stage_sft(ctx) -> dict:
    from charter.train.config import SftSettings
    from charter.train.sft import train_sft

    cfg = ctx.config
    settings = SftSettings(base=cfg.trained_base, max_steps=cfg.max_steps, learning_rate=cfg.sft_learning_rate,
                           seed=cfg.seed)
    result = train_sft(settings, [ctx.layout.sft_data(ctx.summaries["recipe"])], ctx.layout.adapter("sft"),
                       progress=_train_progress(ctx, "sft"))
    return {"metrics": result.metrics, "steps": len([h for h in result.log_history if "loss" in h])}


def stage_dpo(ctx) -> dict:
    from charter.train.artifacts import is_complete
    from charter.train.config import DpoSettings
    from charter.train.dpo import train_dpo

    cfg = ctx.config
    _require_pairs(ctx)
    settings = DpoSettings(base=cfg.trained_base, max_steps=cfg.max_steps, learning_rate=cfg.dpo_learning_rate,
                           min_margin=cfg.dpo_min_margin, sft_weight=cfg.dpo_sft_weight, seed=cfg.seed)
    sft = ctx.layout.adapter("sft")  # DPO continues from SFT's adapter when that stage ran
    result = train_dpo(settings, [ctx.layout.dpo_data(ctx.summaries["recipe"])], ctx.layout.adapter("dpo"),
                       sft_adapter=sft if is_complete(sft) else None, progress=_train_progress(ctx, "dpo"))
    return {"metrics": result.metrics, "steps": len([h for h in result.log_history if "loss" in h])}


def _require_pairs(ctx) -> None:
    """DPO without pairs is a clear error naming why the data stage made none, not a missing file."""
    if ctx.summaries["recipe"] == "contrastive" or ctx.layout.dpo_data("critique").exists():
        return
    prefs = ctx.store.manifest.get("done", {}).get("prefs", {})
    why = ("identical_or_empty", "judgment_abstentions", "ties", "unjudged")
    reasons = {k: v for k, v in prefs.items() if k in why}
    raise CharterError(f"the data stage made no preference pairs for DPO ({prefs.get('prompts', 0)} prompts; "
                       f"{', '.join(f'{k} {v}' for k, v in reasons.items()) or 'no reason recorded'}); see "
                       f"the judgments in {ctx.store.folder}, use more prompts (--limit), or leave DPO out "
                       f"(--stages prompts,data,datasets,sft,export,eval,report)")


def stage_export(ctx) -> dict:
    """HF folder always; a GGUF where the architecture converts (else the trained eval runs the HF
    folder through transformers, and the reason is in the summary and the report)."""
    from charter.train.export import export

    result = export(ctx.config.trained_base, [ctx.layout.trained_adapter()], ctx.layout.model, gguf=True,
                    gguf_optional=True)
    skipped = result.record.get("gguf_skipped")
    if skipped:
        ctx.say(f"[yellow]export: no GGUF ({skipped}); the trained model is evaluated from its HF folder[/]")
    return {"hf": str(result.hf_dir), "gguf": str(result.gguf_path) if result.gguf_path else None,
            "gguf_skipped": skipped}


# -- evals and report ---------------------------------------------------------------------------------

def trained_engine_spec(ctx) -> str:
    """The exported GGUF on llama.cpp, or the HF folder on transformers when there is no GGUF."""
    gguf = ctx.layout.exported_gguf()
    if gguf is not None:
        return f"llamacpp:{gguf}"
    hf_dir = ctx.layout.exported_hf
    if not (hf_dir / "config.json").is_file():
        raise CharterError(f"no exported model in {ctx.layout.model}; run the export stage first")
    return f"hf:{hf_dir}"


def stage_eval(ctx) -> dict:
    from charter.evals.grading import Judge
    from charter.evals.runner import EvalConfig, evaluate
    from charter.executor import make_engine_for

    cfg = ctx.config
    judge_engine = make_engine_for(cfg.judge, cfg.executor) if cfg.judge else None
    # The eval judge reads option probabilities unless verdicts must be written (no logprobs).
    judge_mode = "generate" if cfg.judge_mode == "generate" else "choose"
    summary = {}
    items = _eval_items(cfg)
    try:
        for label, spec in (("base", cfg.base_eval_engine), ("trained", trained_engine_spec(ctx))):
            engine = make_engine_for(spec, cfg.executor)
            judge = Judge(judge_engine, mode=judge_mode, seed=cfg.seed) if judge_engine else None
            try:
                run = evaluate(list(cfg.suites), engine, judge, items,
                               seed=cfg.seed, limit=cfg.eval_limit, store=ctx.store, progress=ctx.progress,
                               constitution=ctx.constitution, config=EvalConfig(max_tokens=cfg.eval_max_tokens))
            finally:
                engine.close()
            run.meta.update({"model": label, "engine": spec, "trained_base": cfg.trained_base})
            run.save(ctx.layout.eval_dir(label))
            summary[label] = {name: {m: e.as_dict() for m, e in s.summary().items()} for name, s in run.suites.items()}
    finally:
        if judge_engine is not None:
            judge_engine.close()
    return summary


def _eval_items(cfg) -> dict:
    """The conversations suite runs a few scenarios of each kind by default (`conversation_limit`)."""
    if "conversations" not in cfg.suites or cfg.conversation_limit is None:
        return {}
    from charter.evals.load import load_items, spread

    return {"conversations": spread(load_items("conversations")[0], cfg.conversation_limit, "kind")}


def stage_report(ctx) -> dict:
    from charter.pipeline_report import write_report

    path = write_report(ctx)
    return {"report": str(path)}


STAGE_FUNCTIONS = {
    "prompts": stage_prompts, "data": stage_data, "datasets": stage_datasets, "sft": stage_sft,
    "dpo": stage_dpo, "export": stage_export, "eval": stage_eval, "report": stage_report,
}
