"""Self-contained HTML reports: inline CSS, plots as base64 PNG (matplotlib, Agg backend).

Reusable pieces for the pipeline's report:

    render_suite_html(result)            one suite: warnings, rates, per-clause plots, findings
    render_checks_html(checks)           the judge checks, failed ones first, in words
    render_comparison_fragment(cmp)      deltas with intervals, improved / unchanged / regressed
    render_comparison_html(a, b)         the same as a page, from a Comparison or two EvalRuns
    plot_rates_with_ci(labels, ests)     horizontal bars with 95% intervals -> data: URI
    plot_before_after(labels, a, b)      paired bars with intervals -> data: URI
    page(title, body)                    wrap fragments into one HTML document
"""

from __future__ import annotations

import base64
import io
from html import escape

from charter.evals.compare import OVERALL, Comparison, compare_runs
from charter.evals.result import EvalRun, SuiteResult
from charter.evals.stats import Estimate

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1,h2,h3{line-height:1.2} table{border-collapse:collapse;margin:.5em 0 1.2em}
td,th{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4} .num{text-align:right;font-variant-numeric:tabular-nums}
.warn{background:#fde8e8;border:2px solid #c0392b;padding:.8em 1em;margin:1em 0;border-radius:6px}
.ok{background:#e8f6ec;border:1px solid #2e8b57;padding:.6em 1em;margin:1em 0;border-radius:6px}
.untrusted{color:#999} .regressed{color:#c0392b;font-weight:600}
.improved{color:#2e7d32;font-weight:600}
details{margin:.2em 0}
pre{white-space:pre-wrap;background:#f7f7f7;padding:.5em;margin:.3em 0;font-size:12px}
img{max-width:100%}
"""


def page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{CSS}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def figure_png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def _errors(estimates: list[Estimate]) -> tuple[list[float], list[list[float]]]:
    values = [e.value or 0.0 for e in estimates]
    low = [max(0.0, (e.value or 0) - e.low) if e.low is not None else 0.0 for e in estimates]
    high = [max(0.0, e.high - (e.value or 0)) if e.high is not None else 0.0 for e in estimates]
    return values, [low, high]


def plot_rates_with_ci(
    labels: list[str],
    estimates: list[Estimate],
    title: str,
    xlabel: str = "rate",
    colour: str = "#5b8def",
) -> str:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 0.35 * len(labels) + 1.2))
    values, errors = _errors(estimates)
    axes.barh(range(len(labels)), values, xerr=errors, color=colour, capsize=3)
    for row, (value, e) in enumerate(zip(values, estimates)):  # a zero rate is a visible label
        shown = "n/a" if e.value is None else f"{value:.2f}"
        axes.text((e.high or value) + 0.01, row, f"{shown} (n={e.n})", va="center", fontsize=8)
    axes.set_yticks(range(len(labels)), labels)
    axes.invert_yaxis()
    axes.set_xlim(0, max(1.15, max((e.high or 0) for e in estimates) + 0.15 if estimates else 1.15))
    axes.set_xlabel(f"{xlabel} (bars: 95% bootstrap interval)")
    axes.set_title(title)
    return figure_png(figure)


def plot_before_after(
    labels: list[str], before: list[Estimate], after: list[Estimate], title: str
) -> str:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 0.5 * len(labels) + 1.2))
    positions = range(len(labels))
    for offset, estimates, colour, name in (
        (-0.2, before, "#bbbbbb", "before"),
        (0.2, after, "#5b8def", "after"),
    ):
        values, errors = _errors(estimates)
        axes.barh(
            [p + offset for p in positions],
            values,
            height=0.4,
            xerr=errors,
            color=colour,
            capsize=3,
            label=name,
        )
    axes.set_yticks(list(positions), labels)
    axes.invert_yaxis()
    axes.legend(loc="lower right")
    axes.set_title(title)
    return figure_png(figure)


def fmt(e: Estimate | dict | None, digits: int = 2) -> str:
    """`0.83 [0.50, 1.00]`: a value with its 95% interval, or n/a."""
    if isinstance(e, dict):
        e = Estimate(**e)
    if e is None or e.value is None:
        return "n/a"
    interval = f" [{e.low:.{digits}f}, {e.high:.{digits}f}]" if e.low is not None else ""
    return f"{e.value:.{digits}f}{interval}"


def fmt_plain(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _table(headers: list[str], rows: list[tuple[list[str], str]]) -> str:
    """An HTML table; each row is (cells as HTML, css class). Numbers get the `num` class."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        f"<tr class='{css}'>" + "".join(_cell(c) for c in cells) + "</tr>" for cells, css in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(html: str) -> str:
    numeric = html[:1].isdigit() or html[:1] in "+-" or html == "n/a"
    return f"<td class='num'>{html}</td>" if numeric else f"<td>{html}</td>"


def _box(css: str, html: str) -> str:
    return f"<div class='{css}'>{html}</div>"


def render_checks_html(checks: dict | None) -> str:
    """The judge checks, failed ones first, each in words; a red box when any failed."""
    if not checks:
        return ""
    lead = escape(checks["headline"]) if not checks["passed"] else "The judge passed its checks."
    marks = {True: "pass", False: "<b>FAIL</b>", None: "n/a"}
    ordered = sorted(checks["checks"], key=lambda c: c["passed"] is not False)
    rows = [
        (
            [
                escape(c["name"]),
                fmt_plain(c["value"]),
                f"{c['threshold']:.2f}",
                marks[c["passed"]],
                escape(c["message"]),
            ],
            "",
        )
        for c in ordered
    ]
    judge = checks.get("judge", {})
    rules = checks.get("rules_vs_gold_refusal") or {}
    return (
        _box("warn" if not checks["passed"] else "ok", f"<b>{lead}</b>")
        + f"<h3>Judge checks ({escape(str(judge.get('engine')))}, mode "
        + f"{escape(str(judge.get('mode')))})</h3>"
        + _table(["check", "value", "pass mark", "", "in words"], rows)
        + "<p>Rule-based classifier on the same gold items: agreement "
        + f"{fmt_plain(rules.get('agreement'))}, kappa {fmt_plain(rules.get('kappa'))}.</p>"
    )


def render_suite_html(result: SuiteResult) -> str:
    """One suite: its warnings, rates with intervals, per-clause plots, extras, every finding."""
    judge = f", judge <code>{escape(result.judge['engine'])}</code>" if result.judge else ""
    engine = f"<code>{escape(result.engine['name'])}</code>"
    engine += f" ({escape(result.engine['fingerprint'])})"
    parts = [f"<h2>Suite: {escape(result.suite)}</h2>", f"<p>Engine {engine}{judge}</p>"]
    parts += [_box("warn", escape(w)) for w in result.warnings]
    summary = result.summary()
    untrusted = " <b>(judge failed its checks: not evidence)</b>"
    rows = [
        (
            [
                escape(n),
                fmt(summary[n]),
                str(summary[n].n),
                str(summary[n].unscored),
                escape(m.description) + ("" if result.trusted(n) else untrusted),
            ],
            "" if result.trusted(n) else "untrusted",
        )
        for n, m in result.metrics.items()
    ]
    parts.append(_table(["metric", "value [95% CI]", "n", "unscored", ""], rows))
    for name, table in result.by_group().items():
        if len(table) > 1:
            title = f"{name} per clause" + ("" if result.trusted(name) else " (untrusted judge)")
            colour = "#5b8def" if result.trusted(name) else "#bbbbbb"
            image = plot_rates_with_ci(list(table), list(table.values()), title, colour=colour)
            parts.append(f"<img alt='{escape(title)}' src='{image}'>")
    parts.append(_extras_html(result))
    parts.append(_findings_html(result))
    return "\n".join(parts)


def _extras_html(result: SuiteResult) -> str:
    parts = []
    if "ratings" in result.extra:
        ranked = sorted(result.extra["ratings"].items(), key=lambda kv: -kv[1]["value"])
        rows = [([escape(m), fmt(e, 0)], "") for m, e in ranked]
        parts.append(
            "<h3>Bradley-Terry ratings (Elo scale)</h3>" + _table(["model", "rating"], rows)
        )
    if "by_kind" in result.extra:
        rows = [([escape(k), fmt(e)], "") for k, e in result.extra["by_kind"].items()]
        parts.append("<h3>Adherence by prompt kind</h3>" + _table(["kind", "adherence"], rows))
    if "rules_labels" in result.extra:
        counts = ", ".join(f"{k} {v}" for k, v in result.extra["rules_labels"].items())
        parts.append(f"<p>Rule-based labels: {escape(counts)}</p>")
    if "validity" in result.extra:
        rows = [([escape(k), fmt(e)], "") for k, e in result.extra["validity"].items()]
        parts.append(f"<h3>Validity (simulated user: {escape(str(result.extra.get('user')))})</h3>"
                     + _table(["dimension", "share"], rows))
    if "gold_checks" in result.extra:
        gold = result.extra["gold_checks"]
        parts.append(f"<p>End-state judge on {gold['gold']} gold conversations: agreement "
                     f"{fmt_plain(gold['agreement'])} ({gold['scored']} scored), position consistency "
                     f"{fmt_plain(gold['position_consistency'])}; {'passed' if gold['passed'] else 'FAILED'}.</p>")
    for name, agreement in result.agreement.items():
        parts.append(
            f"<p>Agreement {escape(name)}: {fmt_plain(agreement.get('agreement'))}, "
            f"Cohen's kappa {fmt_plain(agreement.get('kappa'))} (n={agreement.get('n')}).</p>"
        )
    return "".join(parts)


def _findings_html(result: SuiteResult) -> str:
    """Every finding next to its answer, with each judge exchange (prompt and reply) folded."""
    items = []
    for f in result.findings:
        exchanges = "".join(
            f"<details><summary>judge: {escape(str(j.get('question')))} -> "
            f"{escape(str(j.get('verdict')))}</summary><pre>{escape(j.get('prompt') or '')}</pre>"
            f"<pre>{escape(j.get('reply') or '')}</pre></details>"
            for j in f.judge
        )
        scores = ", ".join(
            f"{k}={'unscored' if v is None else f'{v:.2f}'}" for k, v in f.scores.items()
        )
        transcript = transcript_html(f.extra.get("transcript"), f.extra.get("checks"))
        items.append(
            f"<details><summary><code>{escape(f.item_id)}</code> [{escape(f.group)}] "
            f"{escape(scores)}</summary><p><b>Prompt</b></p><pre>{escape(f.prompt)}</pre><p><b>Answer</b></p>"
            f"<pre>{escape(f.answer or '')}</pre><p>labels: {escape(str(f.labels))}</p>{transcript}{exchanges}"
            "</details>"
        )
    return f"<h3>Findings ({len(items)})</h3>" + "".join(items)


def transcript_html(transcript: list[dict] | None, checks: list[dict] | None = None) -> str:
    """A conversation turn by turn, each assistant reply followed by the rule checks on it."""
    if not transcript:
        return ""
    by_reply: dict[int, list[dict]] = {}
    for check in checks or []:
        by_reply.setdefault(check["reply"], []).append(check)
    rows, reply = [], 0
    for message in transcript:
        rows.append(f"<p><b>{escape(message['role'])}</b></p><pre>{escape(message['content'])}</pre>")
        if message["role"] == "assistant":
            reply += 1
            marks = "; ".join(f"{'passed' if c['passed'] else 'FAILED'}: {c['what'] or c['rule']}"
                              for c in by_reply.get(reply, []))
            if marks:
                rows.append(f"<p><small>{escape(marks)}</small></p>")
    return "<h4>Transcript</h4>" + "".join(rows)


def render_eval_html(run: EvalRun) -> str:
    """A whole `charter eval` report: warnings first, then judge checks, then each suite."""
    top = "".join(_box("warn", f"<b>{escape(w)}</b>") for w in run.warnings)
    body = top + render_checks_html(run.judge_checks)
    body += "".join(render_suite_html(s) for s in run.suites.values())
    return page("charter eval report", body)


def render_comparison_fragment(comparison: Comparison) -> str:
    """Gate verdict, warnings, a before/after plot per suite metric, and the table of deltas."""
    if comparison.failed:
        failed = "; ".join(
            f"{r.suite}/{r.metric}/{r.group} {r.delta.value:+.2f}" for r in comparison.regressions()
        )
        verdict = _box("warn", f"<b>GATE FAILED:</b> {escape(failed)}")
    else:
        verdict = _box(
            "ok",
            f"Gate passed: nothing regressed by more than {comparison.threshold:.2f} "
            "with an interval excluding zero.",
        )
    top = "".join(_box("warn", escape(w)) for w in comparison.warnings) + verdict
    rows = [
        (
            [
                escape(r.suite),
                escape(r.metric),
                escape(r.group),
                fmt(r.before),
                fmt(r.after),
                fmt(r.delta),
                r.status + (" (too few items)" if r.too_few else "" if r.gated else " (not gated)"),
            ],
            r.status if r.gated else "untrusted",
        )
        for r in comparison.rows
    ]
    table = _table(
        ["suite", "metric", "clause", "before", "after", "delta [95% CI]", "status"], rows
    )
    overall = [r for r in comparison.rows if r.group == OVERALL]
    plot = ""
    if overall:
        image = plot_before_after(
            [f"{r.suite}/{r.metric}" for r in overall],
            [r.before for r in overall],
            [r.after for r in overall],
            "before / after (95% intervals)",
        )
        plot = f"<img alt='before and after' src='{image}'>"
    return top + plot + table


def render_comparison_html(
    before: Comparison | EvalRun,
    after: EvalRun | None = None,
    title: str = "charter compare",
    threshold: float = 0.05,
) -> str:
    """A whole page, from a Comparison or from two eval runs (compared here)."""
    comparison = (
        before if isinstance(before, Comparison) else compare_runs(before, after, threshold)
    )
    return page(title, render_comparison_fragment(comparison))
