"""The trained guard's report: `report.md` and `report.html` (with the ROC curve as inline SVG)."""

from __future__ import annotations

import html
from pathlib import Path

from charter.rows import write_text_atomic


def _pct(r: dict | None) -> str:
    if not r or r.get("rate") is None:
        return "-"
    return f"{r['rate']:.1%} [{r['low']:.1%}, {r['high']:.1%}] (n={r['n']}, {r['sources']} sources)"


def _cv(metrics: dict) -> str:
    parts = []
    for stage in ("input", "output"):
        for kind, r in metrics[f"{stage}_choice"]["cross_validation"].items():
            parts.append(f"{stage} {kind} blocks {r['attacks_blocked']:.0%} at {r['benign_blocked']:.0%} benign, "
                         f"AUC {r['auc']:.3f}")
    return f" (5-fold cross-validation over train+val sources: {'; '.join(parts)})" if parts else ""


def _rows(title: str, table: dict[str, dict]) -> list[str]:
    lines = [f"| {title} | rate [95% interval] |", "|---|---|"]
    lines += [f"| {name} | {_pct(r)} |" for name, r in table.items()]
    return lines


def markdown(classifier, metrics: dict) -> str:
    test = metrics["input_test"]
    out = [f"# Guard {classifier.version}", "",
           (f"Hard lines: {', '.join(classifier.lines)}. Data {metrics['data_hash']}; embedder "
           f"{classifier.meta.get('embedder')}; heads: input {metrics['input_choice']['head']}, output "
           f"{metrics['output_choice']['head']}{_cv(metrics)}. Thresholds chosen on the validation split for at most "
           f"{classifier.meta.get('max_false_block'):.0%} benign blocked."), "",
           "## Test split (sources and frame templates never trained on or used for thresholds)", "",
           f"- attacks blocked: {_pct(test['attacks_blocked'])}",
           f"- benign blocked: {_pct(test['benign_blocked'])}",
           f"- ROC AUC (most suspicious line's margin): {test['auc']:.3f}" if test["auc"] is not None else "- ROC AUC: -",
           "", *_rows("attack transformation", test["attacks_by_family"]), "",
           *_rows("hard line", test["attacks_by_line"]), "",
           *_rows("benign kind", test["benign_by_kind"]), "",
           *_rows("benign transformation", test["benign_by_family"]), ""]
    stream = metrics.get("stream_test")
    if stream:
        out += ["## Streaming output guard (test split answers)", "",
                *_rows("hard-line answers stopped within N tokens", stream["hard_line_answers_stopped_within"]),
                "", f"- other answers stopped in their first 64 tokens: {_pct(stream['other_answers_stopped'])}", ""]
    shipped = metrics.get("shipped")
    if shipped:
        out += ["## serve's shipped attack and benign sets (never used for any choice)", "",
                f"- attacks blocked: {_pct(shipped['attacks_blocked'])}",
                f"- benign blocked: {_pct(shipped['benign_blocked'])}", "",
                *_rows("attack technique", shipped["attacks_by_technique"]), ""]
    out += ["## Data", "", "| pool | positive | negative | sources |", "|---|---|---|---|"]
    out += [f"| {name} | {c['positive']} | {c['negative']} | {c['sources']} |" for name, c in metrics["counts"].items()]
    return "\n".join(out) + "\n"


def roc_svg(points: list[tuple[float, float]], size: int = 240) -> str:
    if not points:
        return ""
    path = " ".join(f"{'M' if i == 0 else 'L'}{20 + x * size:.1f},{20 + (1 - y) * size:.1f}"
                    for i, (x, y) in enumerate(points))
    edge = 20 + size
    return (f'<svg id="roc" width="{edge + 20}" height="{edge + 30}" xmlns="http://www.w3.org/2000/svg">'
            f'<rect x="20" y="20" width="{size}" height="{size}" fill="none" stroke="#999"/>'
            f'<line x1="20" y1="{edge}" x2="{edge}" y2="20" stroke="#ccc" stroke-dasharray="4"/>'
            f'<path d="{path}" fill="none" stroke="#c33" stroke-width="2"/>'
            f'<text x="20" y="{edge + 20}" font-size="11">false-block rate (benign) &#8594;</text>'
            f'<text x="24" y="14" font-size="11">attack block rate &#8593;</text></svg>')


def write_reports(folder: Path, classifier, metrics: dict) -> None:
    text = markdown(classifier, metrics)
    write_text_atomic(folder / "report.md", text)
    body = "\n".join(f"<p>{html.escape(line)}</p>" if line and not line.startswith("|") else
                     f"<pre>{html.escape(line)}</pre>" for line in text.splitlines())
    page = (f"<!doctype html><meta charset=utf-8><title>guard {html.escape(classifier.version)}</title>"
            f"<body style='font-family:sans-serif;max-width:60em'>{roc_svg(metrics['input_test']['roc'])}"
            f"{body}</body>")
    write_text_atomic(folder / "report.html", page)
