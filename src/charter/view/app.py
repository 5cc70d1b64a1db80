"""`charter view`: the pages, routed by path, and a threaded HTTP server on 127.0.0.1.

`ViewApp.handle(path, query)` returns (status, content type, body) and knows nothing of sockets,
so the static export (`--export-html`) and the server share every page.
"""

from __future__ import annotations

import json
import mimetypes
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from charter.view.pages import environment, loss_svg
from charter.view.runs import FILTER_FIELDS, PAGE_SIZE, RecordQuery, RunCatalog, RunFolder

CHAIN_FIELDS = ("raw", "text", "answer", "critique", "critiques", "revision", "revisions", "chosen", "rejected",
                "principle", "probabilities", "soft_label", "position_bias", "label_source", "labels", "scores")
DATASET_COLUMNS = ("prompt", "messages", "chosen", "rejected", "score_chosen", "score_rejected", "example_kind",
                   "label_source", "clause_ids")


@dataclass
class Page:
    status: int
    content_type: str
    body: bytes


class NotFound(Exception):
    pass


class ViewApp:
    def __init__(self, catalog: RunCatalog):
        self.catalog = catalog
        self.env = environment()

    # -- routing -----------------------------------------------------------------------------

    def handle(self, path: str, query: dict[str, list[str]]) -> Page:
        try:
            return self._route(unquote(path), {k: v[-1] for k, v in query.items()})
        except NotFound as missing:
            return self._html(404, "Not found", "message.html", detail=str(missing))
        except (ValueError, KeyError) as exc:
            return self._html(400, "Bad request", "message.html", detail=str(exc))

    def _route(self, path: str, args: dict[str, str]) -> Page:
        if path in ("/", ""):
            counts = {run.index: sum(n for _, _, n in self.catalog.stage_counts(run)) for run in self.catalog.runs}
            return self._html(200, "Runs", "index.html", runs=self.catalog.runs, counts=counts)
        if path == "/compare":
            return self._compare(self._run(args.get("a", "0")), self._run(args.get("b", "1")))
        match = re.fullmatch(r"/run/(\d+)(/.*)?", path)
        if not match:
            raise NotFound(path)
        run, rest = self._run(match.group(1)), match.group(2) or ""
        if rest in ("", "/"):
            return self._run_page(run)
        if rest == "/records":
            return self._records(run, args)
        if rest.startswith("/record/"):
            return self._record(run, rest[len("/record/"):])
        if rest == "/datasets":
            return self._datasets(run)
        if rest.startswith("/datasets/"):
            return self._dataset(run, rest[len("/datasets/"):], int(args.get("page", "1")))
        if rest == "/evals":
            return self._evals(run)
        if rest == "/training":
            return self._training(run)
        if rest.startswith("/file/"):
            return self._file(run, rest[len("/file/"):])
        raise NotFound(path)

    def _run(self, text: str) -> RunFolder:
        try:
            return self.catalog.run(int(text))
        except (ValueError, KeyError):
            raise NotFound(f"no run {text}") from None

    def _html(self, status: int, title: str, template: str, run: RunFolder | None = None, **values) -> Page:
        body = self.env.get_template(template).render(title=title, run=run, **values)
        return Page(status, "text/html; charset=utf-8", body.encode("utf-8"))

    # -- pages -------------------------------------------------------------------------------

    def _run_page(self, run: RunFolder) -> Page:
        manifest = run.manifest
        settings = manifest.get("stages", {}).get("pipeline", manifest.get("stages", {}))
        constitution_path = settings.get("constitution") if isinstance(settings, dict) else None
        clauses = _clauses(constitution_path, run.folder)
        done = manifest.get("done", {})
        created = manifest.get("created")
        return self._html(200, f"Run {run.name}", "run.html", run=run, stages=sorted(done.items()),
                          stage_counts=self.catalog.stage_counts(run), clause_counts=self.catalog.clause_counts(run),
                          clauses=clauses, constitution_path=constitution_path, query=RecordQuery(),
                          settings=json.dumps(manifest.get("stages", {}), indent=1, ensure_ascii=False),
                          created=_when(created))

    def _records(self, run: RunFolder, args: dict[str, str]) -> Page:
        fields = tuple((name, args[name]) for name in (*FILTER_FIELDS, "prompt_kind") if args.get(name))
        query = RecordQuery(stage=args.get("stage") or None, kind=args.get("kind") or None,
                            clause=args.get("clause") or None, search=args.get("q") or None, fields=fields,
                            page=max(int(args.get("page", "1")), 1))
        records, total = self.catalog.records(run, query)
        first = (query.page - 1) * PAGE_SIZE + 1
        stages = sorted({stage for stage, _, _ in self.catalog.stage_counts(run)})
        return self._html(200, f"Records of {run.name}", "records.html", run=run, records=records, total=total,
                          query=query, first=first, last=first + len(records) - 1, stages=stages,
                          clauses=sorted(self.catalog.clause_counts(run)), fields=dict(fields))

    def _record(self, run: RunFolder, key: str) -> Page:
        record = self.catalog.record(run, key)
        if record is None:
            raise NotFound(f"no record {key} in {run.name}")
        related = self.catalog.related(run, record)
        return self._html(200, f"Record {key[:12]}", "record.html", run=run, record=record, related=related,
                          chain=[f for f in CHAIN_FIELDS if f in record["data"]],
                          critique_chain=critique_chain(record, related),
                          judgments=[r for r in [record, *related] if r["kind"] == "judgment"])

    def _datasets(self, run: RunFolder) -> Page:
        import pyarrow.parquet as pq

        datasets = []
        for path in sorted((run.folder / "datasets").glob("*.parquet")):
            meta = pq.ParquetFile(path).metadata
            datasets.append({"name": path.stem, "rows": meta.num_rows,
                             "columns": pq.ParquetFile(path).schema_arrow.names})
        return self._html(200, f"Datasets of {run.name}", "datasets.html", run=run, datasets=datasets)

    def _dataset(self, run: RunFolder, name: str, page: int) -> Page:
        import pyarrow.parquet as pq

        path = run.file(f"datasets/{name}.parquet") if re.fullmatch(r"[\w.-]+", name) else None
        if path is None:
            raise NotFound(f"no dataset {name} in {run.name}")
        table = pq.read_table(path)  # exported datasets are training-sized; the page shows a slice
        page = max(page, 1)
        start = (page - 1) * PAGE_SIZE
        rows = table.slice(start, PAGE_SIZE).to_pylist()
        shown = [c for c in DATASET_COLUMNS if c in table.column_names]
        return self._html(200, f"Dataset {name} of {run.name}", "dataset.html", run=run, total=table.num_rows,
                          rows=list(enumerate(rows, start + 1)), shown=shown, page=page, first=start + 1,
                          last=start + len(rows))

    def _evals(self, run: RunFolder) -> Page:
        evals = _eval_runs(run)
        gate, labels = None, list(evals)
        if len(evals) >= 2:
            from charter.evals.compare import compare_runs

            before, after = ("base", "trained") if {"base", "trained"} <= set(evals) else labels[:2]
            gate, labels = compare_runs(evals[before], evals[after]), [before, after]
        suites = []
        stages = sorted({stage for stage, kind, _ in self.catalog.stage_counts(run) if kind == "eval_finding"})
        engines: list[str] = []
        for stage in stages:
            items: dict[str, dict] = {}
            for finding in self.catalog.findings(run, stage):
                data = finding["data"]
                model = _model_label(data, evals)
                if model not in engines:
                    engines.append(model)
                item = items.setdefault(data.get("item_id", finding["key"]), {
                    "id": data.get("item_id", ""), "prompt": data.get("prompt", ""),
                    "clauses": finding["clause_ids"], "by_model": {}})
                item["by_model"][model] = finding
            suites.append((stage.removeprefix("eval:"), list(items.values())))
        return self._html(200, f"Evals of {run.name}", "evals.html", run=run, gate=gate, suites=suites,
                          models=engines, before_label=labels[0] if labels else "",
                          after_label=labels[1] if len(labels) > 1 else "")

    def _training(self, run: RunFolder) -> Page:
        trainers = []
        for log in sorted((run.folder / "train").glob("*/log_history.json")):
            try:
                history = json.loads(log.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            points = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
            settings_file = log.parent / "charter_train.json"
            settings = {}
            if settings_file.is_file():
                try:
                    settings = json.loads(settings_file.read_text(encoding="utf-8")).get("settings", {})
                except (OSError, ValueError):
                    settings = {}
            trainers.append({"name": log.parent.name, "points": points, "svg": loss_svg(points),
                             "settings": settings})
        return self._html(200, f"Training of {run.name}", "training.html", run=run, trainers=trainers)

    def _compare(self, a: RunFolder, b: RunFolder) -> Page:
        from charter.evals.compare import compare_runs

        first, second = _eval_runs(a), _eval_runs(b)
        label_a = "trained" if "trained" in first else next(iter(first), None)
        label_b = "trained" if "trained" in second else next(iter(second), None)
        gate, missing = None, ""
        if label_a and label_b:
            gate = compare_runs(first[label_a], second[label_b])
        else:
            missing = "one of the runs has no eval results to compare"
        moved = []
        if label_a and label_b:
            records_a = self._findings_by_item(a, first[label_a])
            records_b = self._findings_by_item(b, second[label_b])
            for key, found in records_b.items():
                before = records_a.get(key)
                if before is None:
                    continue
                score_a, score_b = before["data"].get("scores"), found["data"].get("scores")
                if score_a != score_b:
                    moved.append({"suite": key[0], "item": key[1], "prompt": found["data"].get("prompt", ""),
                                  "a": before, "b": found, "a_score": _scores(score_a), "b_score": _scores(score_b)})
        return self._html(200, f"Compare {a.name} and {b.name}", "compare.html", a=a, b=b, gate=gate,
                          missing=missing, moved=moved, a_label=label_a, b_label=label_b)

    def _findings_by_item(self, run: RunFolder, result) -> dict:
        engine = result.meta.get("engine")
        found = {}
        for stage, kind, _ in self.catalog.stage_counts(run):
            if kind != "eval_finding":
                continue
            for finding in self.catalog.findings(run, stage):
                data = finding["data"]
                if engine is None or data.get("provenance", {}).get("engine_name") == engine:
                    found[(data.get("suite"), data.get("item_id"))] = finding
        return found

    def _file(self, run: RunFolder, relative: str) -> Page:
        target = run.file(relative)
        if target is None:
            raise NotFound(f"no file {relative} in {run.name}")
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return Page(200, kind, target.read_bytes())


def critique_chain(record: dict, related: list[dict]) -> list[dict]:
    """An SL-CAI chain in order: the answer, then each round's critique and revision with the
    principle used, for a record of the chain or the SFT row it produced; [] for anything else."""
    if not (record["kind"].startswith("sl_") or record["data"].get("example_kind", "").startswith("sl_")):
        return []
    steps = [r for r in [record, *related] if r["kind"].startswith("sl_") and r["stage"] == record["stage"]]
    rank = {"answer": 0, "critique": 1, "revision": 2}
    return sorted(steps, key=lambda r: (r["data"].get("round", 0), rank.get(r["data"].get("step"), 3)))


def _when(created) -> str:
    if isinstance(created, (int, float)):
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(created))
    return str(created or "?")


def _clauses(constitution_path, folder: Path) -> list[dict]:
    """The constitution's clauses, when its file is still readable (the manifest names it)."""
    if not constitution_path:
        return []
    path = Path(constitution_path)
    if not path.is_absolute():
        path = (folder.parent.parent / path) if not path.exists() else path
    if not path.is_file():
        return []
    try:
        from charter.constitution import load_constitution

        constitution = load_constitution(path)
    except Exception:  # noqa: BLE001 - a changed or broken file: the page lists clause ids instead
        return []
    return [{"id": clause.id, "kind": kind, "text": clause.text}
            for kind, clauses in constitution.clauses_by_kind().items() for clause in clauses]


def _eval_runs(run: RunFolder) -> dict:
    from charter.errors import CharterError
    from charter.evals.result import load_eval

    results = {}
    for path in sorted((run.folder / "eval").glob("*/eval.json")):
        try:
            results[path.parent.name] = load_eval(path)
        except CharterError:
            continue
    return results


def _model_label(data: dict, evals: dict) -> str:
    engine = data.get("provenance", {}).get("engine_name", "?")
    for label, result in evals.items():
        if result.meta.get("engine") == engine:
            return label
    return engine


def _scores(scores) -> str:
    if not isinstance(scores, dict):
        return ""
    return ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in scores.items())


# -- the server ------------------------------------------------------------------------------

def make_server(app: ViewApp, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            parts = urlsplit(self.path)
            page = app.handle(parts.path, parse_qs(parts.query))
            self.send_response(page.status)
            self.send_header("Content-Type", page.content_type)
            self.send_header("Content-Length", str(len(page.body)))
            self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(page.body)

        def log_message(self, *args):  # quiet: the CLI prints the URL, not every request
            pass

    return ThreadingHTTPServer((host, port), Handler)


def serve_in_thread(app: ViewApp, host: str = "127.0.0.1", port: int = 0):
    """Start the server on a background thread; returns (server, base URL)."""
    server = make_server(app, host, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"
