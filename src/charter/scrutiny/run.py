"""`charter scrutinize` as a library call: static checks, then probes when an engine is given;
every finding a record in the run store, and a report beside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from charter.data.runner import Progress, Stage
from charter.rows import write_text_atomic
from charter.scrutiny.coverage import exercised_by
from charter.scrutiny.findings import Finding, ordered
from charter.scrutiny.probes import STAGE, ProbeSettings, candidate_pairs, probe_pair
from charter.scrutiny.report import html_report, markdown_report
from charter.scrutiny.static import static_findings
from charter.store import Record


@dataclass
class ScrutinyResult:
    findings: list[Finding]
    report_md: Path | None
    report_html: Path | None


def scrutinize(session, *, prompts: list[str] = (), probe: ProbeSettings | None = None,
               embedder=None, progress: Progress | None = None) -> ScrutinyResult:
    """`session`: an open session (session.open_session) whose engines are "policy" (answers the
    probes; absent: static checks only) and "judge", "judge2", ... (judge the probes; the policy
    when none is given). Findings go to the session's store when it has one."""
    from charter.embeddings import Embedder

    constitution, store = session.constitution, session.store
    embedder = embedder or Embedder()
    found = static_findings(constitution, embedder, exercised=exercised_by(constitution, prompts))
    policy = session.engines.get("policy")
    if policy is not None and store is not None:
        settings = probe or ProbeSettings()
        judges = [e for role, e in session.engines.items() if role.startswith("judge")] or [policy]
        store.begin_stage(STAGE, {"max_pairs": settings.max_pairs, "scenarios": settings.scenarios,
                                  "samples": settings.samples, "max_tokens": settings.max_tokens,
                                  "temperature": settings.temperature, "seed": settings.seed,
                                  "judges": [j.name for j in judges]})
        stage = Stage(STAGE, store, constitution, policy, settings.seed, progress)
        flagged = {(f.check, *sorted(f.clauses)) for f in found}
        pairs = candidate_pairs(constitution, embedder, flagged, settings.max_pairs)
        for n, pair in enumerate(pairs):
            stage.report(f"scrutiny: probing {pair.a.id} / {pair.b.id}", n, len(pairs))
            found.append(probe_pair(stage, constitution, judges, pair, settings))
        stage.report("scrutiny: probes", len(pairs), len(pairs))
    findings = ordered(found)
    md = html = None
    if store is not None:
        # This run's findings replace the last run's (settings or --prompts may have changed them);
        # the answers and judgments behind probe findings stay, keyed by their inputs.
        store.replace_kind("finding", STAGE, [Record(f.key, "finding", STAGE, f"{STAGE}/finding/{n:05d}", f.clauses,
                                                     f.as_dict()) for n, f in enumerate(findings)])
        md, html = store.folder / "scrutiny.md", store.folder / "scrutiny.html"
        write_text_atomic(md, markdown_report(constitution, findings))
        write_text_atomic(html, html_report(constitution, findings))
        stage_summary = {"findings": len(findings), **{f"{s}s": sum(f.severity == s for f in findings)
                                                      for s in ("error", "warning", "info")}}
        store.set_stage_done(STAGE, stage_summary)
    return ScrutinyResult(findings, md, html)
