"""`report.html` for a `charter run`: what was run, training curves, before/after with intervals,
judge warnings at the top, and the same prompts answered before and after. Self-contained."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from charter.rows import write_text_atomic

HEADLINES = (  # (suite, metric, what it means): the figures a reader looks for first
    ("harmful", "refusal_rate[rules]", "harmful prompts refused (rule classifier; partial refusals not counted)"),
    ("overrefusal", "answer_rate[rules]", "safe-but-scary prompts answered without refusal (rule classifier)"),
)


def write_report(ctx) -> Path:
    from charter.evals.compare import compare_runs
    from charter.evals.report import page, render_comparison_fragment
    from charter.evals.result import load_eval
    from charter.recipes import why

    base = load_eval(ctx.layout.eval_dir("base"))
    trained = load_eval(ctx.layout.eval_dir("trained"))
    comparison = compare_runs(base, trained, seed=ctx.config.seed)
    manifest = json.loads(ctx.layout.manifest.read_text(encoding="utf-8"))
    parts = [
        _warnings(base, trained),
        _headline(base, trained),
        _what_was_run(ctx, manifest, why(ctx.summaries["recipe"]), {"base": base, "trained": trained}),
        _training_curves(ctx),
        "<h2>All eval metrics, before vs after</h2>" + render_comparison_fragment(comparison),
        _examples(base, trained),
    ]
    path = ctx.layout.report
    write_text_atomic(path, page(f"charter run: {ctx.constitution.name}", "".join(parts)))
    _update_model_card(ctx, base, trained)
    return path


def headline_figures(base, trained) -> list[tuple[str, str, float | None, float | None]]:
    """(suite, meaning, before, after) for each headline measure both evals have."""
    out = []
    for suite, metric, meaning in HEADLINES:
        b, a = _estimate(base, suite, metric), _estimate(trained, suite, metric)
        if b is not None and a is not None:
            out.append((suite, meaning, b.value, a.value))
    return out


def _update_model_card(ctx, base, trained) -> None:
    """The exported model's card, now with the before/after figures of this run's evals."""
    from charter.train.export import EXPORT_MARKER
    from charter.train.model_card import write_model_card

    marker = ctx.layout.model / EXPORT_MARKER
    if marker.is_file():
        write_model_card(ctx.layout.model, json.loads(marker.read_text(encoding="utf-8")),
                         headline_figures(base, trained))


def _warnings(base, trained) -> str:
    warnings = list(dict.fromkeys([*base.warnings, *trained.warnings,
                                   *(w for s in (*base.suites.values(), *trained.suites.values()) for w in s.warnings)]))
    if not warnings:
        return ""
    items = "".join(f"<li>{escape(w)}</li>" for w in warnings)
    return f"<div class='warn'><b>Read this first.</b><ul>{items}</ul></div>"


def _estimate(run, suite: str, metric: str):
    result = run.suites.get(suite)
    if result is None or metric not in result.metrics:
        return None
    return result.summary()[metric]


def _headline(base, trained) -> str:
    from charter.evals.report import fmt, plot_before_after

    rows, labels, before, after = [], [], [], []
    for suite, metric, meaning in HEADLINES:
        b, a = _estimate(base, suite, metric), _estimate(trained, suite, metric)
        if b is None or a is None:
            continue
        delta = (a.value or 0) - (b.value or 0)
        rows.append(f"<tr><td>{escape(meaning)}</td><td class='num'>{fmt(b)}</td><td class='num'>{fmt(a)}</td>"
                    f"<td class='num'>{delta:+.2f}</td><td class='num'>{a.n}</td></tr>")
        labels.append(suite)
        before.append(b)
        after.append(a)
    if not rows:
        return ""
    plot = plot_before_after(labels, before, after, "before (grey) vs after (blue), 95% intervals")
    return ("<h2>Before and after</h2><table><tr><th>measure</th><th>before</th><th>after</th><th>change</th>"
            f"<th>prompts</th></tr>{''.join(rows)}</table><img src='{plot}' alt='before/after'>")


def _what_was_run(ctx, manifest: dict, recipe_reason: str, runs: dict) -> str:
    cfg = ctx.config
    done = manifest.get("done", {})
    facts = [
        ("constitution", f"{ctx.constitution.name} v{ctx.constitution.version} (hash {ctx.constitution.content_hash()})"),
        ("trained model", f"{cfg.trained_base} ({_architecture(ctx)}); evaluated before as {cfg.base_eval_engine}, "
                          f"after as its export"),
        ("policy engine", cfg.policy), ("feedback engine", cfg.feedback or cfg.policy),
        ("eval judge", cfg.judge or "none: rule-based classifiers and the model's own Yes/No probabilities"),
        ("recipe", f"{ctx.summaries['recipe']}: {recipe_reason}"),
        ("prompts", _prompt_counts(done.get("pipeline:prompts"), cfg)),
        ("training", _training_settings(ctx)),
        ("data kept", json.dumps(done.get("pipeline:datasets", {}), ensure_ascii=False)),
        ("engine fingerprints", _engine_fingerprints(ctx, runs)),
        ("stage times (s)", ", ".join(f"{k.split(':', 1)[1]} {v.get('seconds', '?')}"
                                      for k, v in done.items() if k.startswith("pipeline:"))),
    ]
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in facts)
    return f"<h2>What was run</h2><table>{rows}</table>"


def _architecture(ctx) -> str:
    config = ctx.layout.exported_hf / "config.json"
    if not config.is_file():
        return "architecture unknown: not exported"
    return ", ".join(json.loads(config.read_text(encoding="utf-8")).get("architectures") or ["?"])


def _engine_fingerprints(ctx, runs: dict) -> str:
    """The engines that made the data and answered the evals, as the records name them."""
    import pyarrow.parquet as pq

    parts = []
    data = ctx.layout.sft_data(ctx.summaries["recipe"])
    if data.exists():
        engines = sorted(set(pq.read_table(data, columns=["engine"]).column("engine").to_pylist()) - {None})
        parts.append(f"data: {', '.join(engines)}")
    for label, run in runs.items():
        engines = sorted({suite.engine.get("fingerprint", "?") for suite in run.suites.values()})
        parts.append(f"eval {label}: {', '.join(engines)}")
    return "; ".join(parts)


def _prompt_counts(summary: dict | None, cfg) -> str:
    """What the prompts stage recorded (the run that made the data), not this invocation's options."""
    if not summary:
        return "prompts stage not run"
    return (f"{summary.get('harmful', '?')} harmful, {summary.get('safe', '?')} safe; {cfg.samples} sample(s) "
            f"each, seed {cfg.seed}")


def _training_settings(ctx) -> str:
    """Each trainer's settings as its adapter recorded them (charter_train.json)."""
    parts = []
    for name in ("sft", "dpo"):
        record = ctx.layout.adapter(name) / "charter_train.json"
        if record.exists():
            settings = json.loads(record.read_text(encoding="utf-8")).get("settings", {})
            lora = settings.get("lora", {})
            parts.append(f"{name}: {settings.get('max_steps')} steps x {settings.get('batch_size')}, "
                         f"lr {settings.get('learning_rate')}, LoRA r={lora.get('r')}")
    return "; ".join(parts) or "no trainer run"


def _training_curves(ctx) -> str:
    from charter.evals.report import figure_png, pyplot

    curves = {}
    for name in ("sft", "dpo"):
        log = ctx.layout.adapter(name) / "log_history.json"
        if log.exists():
            history = json.loads(log.read_text(encoding="utf-8"))
            curves[name] = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    if not curves:
        return ""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3))
    axes = axes if len(curves) > 1 else [axes]
    for ax, (name, points) in zip(axes, curves.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], marker=".")
        ax.set_title(f"{name} training loss")
        ax.set_xlabel("step")
    return f"<h2>Training curves</h2><img src='{figure_png(figure)}' alt='training loss'>"


def _examples(base, trained, per_suite: int = 6) -> str:
    out = ["<h2>The same prompts, before and after</h2>"]
    for suite in ("harmful", "overrefusal"):
        if suite not in base.suites or suite not in trained.suites:
            continue
        after = {f.item_id: f for f in trained.suites[suite].findings}
        rows = []
        for finding in base.suites[suite].findings[:per_suite]:
            other = after.get(finding.item_id)
            if other is None:
                continue
            rows.append(f"<tr><td>{escape(finding.prompt)}</td>{_answer(finding)}{_answer(other)}</tr>")
        out.append(f"<h3>{escape(suite)}</h3><table><tr><th>prompt</th><th>before</th><th>after</th></tr>"
                   f"{''.join(rows)}</table>")
    out.append(_conversations(base, trained))
    return "".join(out)


def _conversations(base, trained) -> str:
    """One conversation of each kind, before and after, turn by turn with its rule checks."""
    from charter.evals.report import transcript_html

    if "conversations" not in base.suites or "conversations" not in trained.suites:
        return ""
    after = {f.item_id: f for f in trained.suites["conversations"].findings}
    shown, rows = set(), []
    for finding in base.suites["conversations"].findings:
        other = after.get(finding.item_id)
        if other is None or finding.group in shown:
            continue
        shown.add(finding.group)
        rows.append(f"<tr><td><b>{escape(finding.group)}</b><br><code>{escape(finding.item_id)}</code></td>"
                    f"<td>{transcript_html(finding.extra.get('transcript'), finding.extra.get('checks'))}</td>"
                    f"<td>{transcript_html(other.extra.get('transcript'), other.extra.get('checks'))}</td></tr>")
    return ("<h3>conversations: one of each kind</h3><table><tr><th>kind</th><th>before</th><th>after</th></tr>"
            f"{''.join(rows)}</table>")


def _answer(finding) -> str:
    label = finding.labels.get("rules") or finding.labels.get("rule") or ""
    label = label.get("label", "") if isinstance(label, dict) else label
    return f"<td><pre>{escape(finding.answer or '')}</pre><small>{escape(str(label))}</small></td>"
