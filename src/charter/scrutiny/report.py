"""Scrutiny's findings as Markdown (for a pull request) and as one self-contained HTML page."""

from __future__ import annotations

import html

from charter.constitution.model import Constitution
from charter.scrutiny.findings import Finding, counts

_CHECK_TITLES = {
    "contradiction": "Clauses that ask opposite things",
    "default_contradicts": "Defaults set against a principle",
    "missing_priority": "Tensions no tier settles",
    "duplicate": "Clauses that say the same thing",
    "underspecified": "Trade-offs the constitution does not settle (probes)",
    "lower_priority_followed": "The lower-ranked clause wins (probes)",
    "hard_line_examples": "Hard lines without examples or look-alikes",
    "untiered_principle": "Principles in no tier",
    "unexercised": "Clauses nothing exercises",
    "probe_unscored": "Pairs the judge could not score (probes)",
    "probe_consistent": "Pairs answered consistently (probes)",
}


def _title(check: str) -> str:
    return _CHECK_TITLES.get(check, check)


def markdown_report(constitution: Constitution, findings: list[Finding]) -> str:
    tally = counts(findings)
    lines = [f"# Scrutiny of {constitution.name} {constitution.version}", "",
             f"{tally['error']} errors, {tally['warning']} warnings, {tally['info']} notes "
             f"(constitution {constitution.content_hash()}).", ""]
    for n, f in enumerate(findings, 1):
        lines += [f"## {n}. [{f.severity}] {_title(f.check)}: {', '.join(f'`{c}`' for c in f.clauses)}", "",
                  f.message + ".", ""]
        for label, text in f.quotes.items():
            quoted = " ".join(str(text).split())
            lines.append(f"> **{label}**: {quoted[:600]}")
            lines.append(">")
        if f.quotes:
            lines.pop()
            lines.append("")
        if f.evidence:
            lines += [f"Evidence: `{f.evidence}`", ""]
        lines += [f"**Fix:** {f.fix}.", ""]
    if not findings:
        lines.append("No findings.")
    return "\n".join(lines).rstrip() + "\n"


def html_report(constitution: Constitution, findings: list[Finding]) -> str:
    e = html.escape
    tally = counts(findings)
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'\">",
             f"<title>Scrutiny: {e(constitution.name)}</title><style>"
             "body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
             ".error{border-left:6px solid #b00020}.warning{border-left:6px solid #c77700}"
             ".info{border-left:6px solid #888}section{padding:.2rem 1rem;margin:1rem 0;background:#fafafa}"
             "blockquote{margin:.3rem 0;padding:.2rem .8rem;background:#fff;border-left:3px solid #ddd}"
             "code{background:#eee;padding:0 .2rem}</style></head><body>",
             f"<h1>Scrutiny of {e(constitution.name)} {e(constitution.version)}</h1>",
             f"<p>{tally['error']} errors, {tally['warning']} warnings, {tally['info']} notes "
             f"(constitution <code>{e(constitution.content_hash())}</code>).</p>"]
    for n, f in enumerate(findings, 1):
        ids = ", ".join(f"<code>{e(c)}</code>" for c in f.clauses)
        parts.append(f"<section class='{e(f.severity)}' id='finding-{n}'><h2>{n}. [{e(f.severity)}] "
                     f"{e(_title(f.check))}: {ids}</h2><p>{e(f.message)}.</p>")
        for label, text in f.quotes.items():
            parts.append(f"<blockquote><b>{e(str(label))}</b>: {e(str(text)[:1200])}</blockquote>")
        if f.evidence:
            parts.append(f"<p>Evidence: <code>{e(str(f.evidence))}</code></p>")
        parts.append(f"<p><b>Fix:</b> {e(f.fix)}.</p></section>")
    if not findings:
        parts.append("<p>No findings.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
