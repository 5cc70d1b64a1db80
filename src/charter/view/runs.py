"""Read-only access to run folders for `charter view`: records by SQL page, never a whole table.

Every run's `records.sqlite` is attached read-only (`immutable=1` once its writer has finished,
so SQLite creates no `-wal`/`-shm` file; `mode=ro` through the WAL files a run still writing has
made) to one in-memory SQLite database that also holds the full-text index (FTS5) of the records'
prompts and texts: the run folders are never written. Datasets, evals and training logs are read from the folder's files on demand.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from charter.errors import CharterError

PAGE_SIZE = 50
# What the records page filters on, when a run's records carry it: name -> JSON path in a record's data.
FILTER_PATHS = {
    "example_kind": "$.example_kind",  # canonical / edge / look-alike / cannot-apply / borderline / red-team
    "label_source": "$.label_source",  # judged, constructed, rule check, ...
    "side": "$.side",
    "suite": "$.suite",
    "refusal_class": "$.labels.rules",  # the rule classifier's verdict on an eval answer
    "abstained": "$.abstained",  # a judge that gave no verdict
    "finish_reason": "$.finish_reason",
    "group": "$.group",
}
FILTER_FIELDS = tuple(FILTER_PATHS)
RECORD_COLUMNS = "key, kind, stage, order_key, clause_ids, data"  # what _record() reads, in order
# Fields whose text the full-text search reads.
TEXT_FIELDS = ("prompt", "text", "answer", "raw", "critique", "revision", "chosen", "rejected")


@dataclass
class RunFolder:
    index: int
    folder: Path
    manifest: dict
    schema: str  # the attached database's name in the shared connection
    filter_values: dict[str, list[str]] = field(default_factory=dict)
    stages: list[tuple[str, str, int]] = field(default_factory=list)  # (stage, kind, records)
    clauses: dict[str, int] = field(default_factory=dict)  # clause id: records
    live: bool = False  # a run still being written: counts and search follow it (RunCatalog.refresh)
    seen: tuple = ()  # the -wal file's (size, mtime) when counted
    indexed: int = 0  # the highest rowid in the search index
    searchable: bool = False  # indexed for full-text search (on the first search, not at open)
    counted_at: float = 0.0  # time.monotonic() of the last count

    @property
    def name(self) -> str:
        return self.folder.name

    def file(self, relative: str) -> Path | None:
        """A file inside this run folder, or None: no `..`, no absolute path, no symlink out."""
        if not relative or relative.startswith(("/", "\\")) or "\x00" in relative:
            return None
        root = self.folder.resolve()
        target = (root / relative).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            return None
        return target


@dataclass(frozen=True)
class RecordQuery:
    stage: str | None = None
    kind: str | None = None
    clause: str | None = None
    search: str | None = None
    fields: tuple[tuple[str, str], ...] = ()  # (name, value): FILTER_PATHS names and "prompt_kind"
    page: int = 1

    def link(self, run: int, **changes) -> str:
        """This query's URL with `changes` (None removes a filter; any filter change goes to page 1)."""
        values = {"stage": self.stage, "kind": self.kind, "clause": self.clause, "q": self.search,
                  **dict(self.fields), "page": self.page if self.page > 1 else None}
        if any(name != "page" for name in changes):
            values["page"] = None
        values.update(changes)
        query = "&".join(f"{quote(k)}={quote(str(v))}" for k, v in values.items() if v not in (None, ""))
        return f"/run/{run}/records" + (f"?{query}" if query else "")


class RunCatalog:
    """The run folders given to `charter view`, opened read-only, with one shared connection."""

    def __init__(self, folders: list[Path]):
        if not folders:
            raise CharterError("give at least one run folder")
        # Autocommit: an open transaction (begun by the search index's INSERTs) would pin every read
        # of a live run to the snapshot it began with.
        self.db = sqlite3.connect(":memory:", check_same_thread=False, uri=True, isolation_level=None)
        self.lock = threading.Lock()  # one connection, many request threads
        self.runs: list[RunFolder] = []
        for index, folder in enumerate(folders):
            self.runs.append(self._attach(index, Path(folder)))
        self._build_search()

    def _attach(self, index: int, folder: Path) -> RunFolder:
        store = folder / "records.sqlite"
        if not folder.is_dir():
            raise CharterError(f"{folder}: not a folder; give a run folder (the --out of charter run)")
        if not store.is_file():
            raise CharterError(f"{folder}: no records.sqlite here; is this a charter run folder?")
        manifest_path = folder / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
        except (OSError, ValueError) as exc:
            raise CharterError(f"{manifest_path}: unreadable manifest ({exc})") from None
        # A store whose writer has finished has no -wal file: it is opened immutable, so SQLite
        # creates no -wal/-shm beside it. While a run is still writing (its -wal exists), read-only
        # through the WAL protocol, which reads consistently and uses the files already there.
        live = (folder / "records.sqlite-wal").exists() and os.access(folder, os.W_OK)
        mode = "ro" if live else "ro&immutable=1"
        uri = f"file:{quote(str(store.resolve()))}?mode={mode}"
        schema = f"run{index}"
        try:
            self.db.execute("ATTACH DATABASE ? AS " + schema, (uri,))
            self.db.execute(f"SELECT count(*) FROM {schema}.records").fetchone()
        except sqlite3.DatabaseError as exc:
            raise CharterError(f"{store}: not a readable run store ({exc})") from None
        run = RunFolder(index, folder, manifest, schema, live=live)
        self._count(run)
        for name, path in FILTER_PATHS.items():
            values = self.db.execute(
                f"SELECT DISTINCT CAST(json_extract(data, '{path}') AS TEXT) AS v FROM {schema}.records "
                f"WHERE v IS NOT NULL ORDER BY v LIMIT 200").fetchall()
            if values:
                run.filter_values[name] = [str(v) for (v,) in values]
        self._load_prompt_kinds(run)
        return run

    def _count(self, run: RunFolder) -> None:
        # A whole-table pass each: done at open, and again only when a live run's WAL has grown.
        run.seen, run.counted_at = self._wal_state(run), time.monotonic()
        run.stages = self.db.execute(f"SELECT stage, kind, count(*) FROM {run.schema}.records "
                                     f"GROUP BY stage, kind ORDER BY stage, kind").fetchall()
        run.clauses = dict(self.db.execute(f"SELECT j.value, count(*) FROM {run.schema}.records, "
                                           f"json_each(records.clause_ids) AS j GROUP BY j.value").fetchall())

    @staticmethod
    def _wal_state(run: RunFolder) -> tuple:
        try:
            stat = (run.folder / "records.sqlite-wal").stat()
        except FileNotFoundError:
            return ()
        return stat.st_size, stat.st_mtime_ns

    REFRESH_SECONDS = 2.0  # a busy run's WAL changes on every page view: recount at most this often

    def refresh(self, run: RunFolder) -> None:
        """For a run still being written: recount and index the records written since (cheap when
        nothing changed: one stat of the -wal file)."""
        if not run.live or self._wal_state(run) == run.seen:
            return
        if time.monotonic() - run.counted_at < self.REFRESH_SECONDS:
            return
        with self.lock:
            self._count(run)
            if run.searchable:
                self._index(run)

    def _load_prompt_kinds(self, run: RunFolder) -> None:
        """The kind of each prompt (its `kind`, else its `source`: red_team, hard_line, ...) from the
        run's prompts.jsonl, so records filter by the kind of prompt they answer."""
        self.db.execute("CREATE TABLE IF NOT EXISTS prompt_kinds (run INTEGER, uid TEXT, kind TEXT)")
        path = run.folder / "prompts.jsonl"
        if not path.is_file():
            return
        rows = []
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                try:
                    prompt = json.loads(line)
                except ValueError:
                    continue
                kind = prompt.get("kind") or prompt.get("source")
                if isinstance(prompt, dict) and prompt.get("uid") and kind:
                    rows.append((run.index, str(prompt["uid"]), str(kind)))
        self.db.executemany("INSERT INTO prompt_kinds VALUES (?, ?, ?)", rows)
        kinds = sorted({kind for _, _, kind in rows})
        if kinds:
            run.filter_values["prompt_kind"] = kinds

    def _build_search(self) -> None:
        """One in-memory FTS5 table over every run's record texts, filled for a run on its first
        search: indexing 100k records takes seconds, which opening and paging need not wait for."""
        self.db.execute("CREATE VIRTUAL TABLE search USING fts5(run UNINDEXED, key UNINDEXED, body)")

    def _searchable(self, run: RunFolder) -> None:
        with self.lock:
            if not run.searchable:
                self._index(run)
                run.searchable = True

    def _index(self, run: RunFolder) -> None:
        texts = " || ' ' || ".join(f"coalesce(json_extract(data, '$.{f}'), '')" for f in TEXT_FIELDS)
        top = self.db.execute(f"SELECT coalesce(max(rowid), 0) FROM {run.schema}.records").fetchone()[0]
        self.db.execute(f"INSERT INTO search(run, key, body) SELECT ?, key, {texts} FROM {run.schema}.records "
                        f"WHERE rowid > ? AND rowid <= ?", (run.index, run.indexed, top))
        run.indexed = top

    def run(self, index: int) -> RunFolder:
        if not 0 <= index < len(self.runs):
            raise KeyError(index)
        return self.runs[index]

    # -- records ---------------------------------------------------------------------------

    def stage_counts(self, run: RunFolder) -> list[tuple[str, str, int]]:
        """(stage, kind, records), as of now for a live run."""
        self.refresh(run)
        return run.stages

    def clause_counts(self, run: RunFolder) -> dict[str, int]:
        self.refresh(run)
        return run.clauses

    def records(self, run: RunFolder, query: RecordQuery) -> tuple[list[dict], int]:
        """One page of records (newest work last, in the order they were written) and the total."""
        if query.search:
            self._searchable(run)
            self.refresh(run)  # records written since the viewer opened are searchable too
        where, args = self._where(run, query)
        offset = (max(query.page, 1) - 1) * PAGE_SIZE
        with self.lock:
            total = self.db.execute(f"SELECT count(*) FROM {run.schema}.records {where}", args).fetchone()[0]
            rows = self.db.execute(
                f"SELECT {RECORD_COLUMNS} FROM {run.schema}.records {where} "
                f"ORDER BY rowid LIMIT ? OFFSET ?", (*args, PAGE_SIZE, offset)).fetchall()
        return [_record(row) for row in rows], total

    def _where(self, run: RunFolder, query: RecordQuery) -> tuple[str, list]:
        clauses, args = [], []
        if query.stage:
            clauses.append("stage = ?")
            args.append(query.stage)
        if query.kind:
            clauses.append("kind = ?")
            args.append(query.kind)
        if query.clause:
            clauses.append("EXISTS (SELECT 1 FROM json_each(records.clause_ids) WHERE value = ?)")
            args.append(query.clause)
        for name, value in query.fields:
            if name == "prompt_kind":
                # prompt_id is the prompt's uid, '#' and the sample number
                clauses.append("substr(json_extract(data, '$.prompt_id'), 1, "
                               "instr(json_extract(data, '$.prompt_id') || '#', '#') - 1) "
                               "IN (SELECT uid FROM prompt_kinds WHERE run = ? AND kind = ?)")
                args += [run.index, value]
            elif name in FILTER_PATHS:
                clauses.append(f"CAST(json_extract(data, '{FILTER_PATHS[name]}') AS TEXT) = ?")
                args.append(value)
        if query.search:
            clauses.append("key IN (SELECT key FROM search WHERE run = ? AND search MATCH ?)")
            args += [run.index, _fts_phrase(query.search)]
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", args

    def record(self, run: RunFolder, key: str) -> dict | None:
        with self.lock:
            row = self.db.execute(f"SELECT {RECORD_COLUMNS} FROM {run.schema}.records "
                                  f"WHERE key = ?", (key,)).fetchone()
        return _record(row) if row else None

    def related(self, run: RunFolder, record: dict) -> list[dict]:
        """Records of the same prompt (the other side of a pair, the other model's finding on the
        same eval item, each round of a critique chain), in written order."""
        data = record["data"]
        with self.lock:
            if data.get("prompt_id"):
                rows = self.db.execute(
                    f"SELECT {RECORD_COLUMNS} FROM {run.schema}.records "
                    f"WHERE json_extract(data, '$.prompt_id') = ? AND key != ? ORDER BY rowid LIMIT 50",
                    (data["prompt_id"], record["key"])).fetchall()
            elif data.get("item_id"):
                rows = self.db.execute(
                    f"SELECT {RECORD_COLUMNS} FROM {run.schema}.records "
                    f"WHERE stage = ? AND json_extract(data, '$.item_id') = ? AND key != ? ORDER BY rowid LIMIT 50",
                    (record["stage"], data["item_id"], record["key"])).fetchall()
            else:
                rows = []
        return [_record(row) for row in rows]

    def findings(self, run: RunFolder, stage: str) -> list[dict]:
        with self.lock:
            rows = self.db.execute(f"SELECT {RECORD_COLUMNS} FROM {run.schema}.records "
                                   f"WHERE stage = ? AND kind = 'eval_finding' ORDER BY order_key, rowid",
                                   (stage,)).fetchall()
        return [_record(row) for row in rows]

    def close(self) -> None:
        self.db.close()


def _record(row) -> dict:
    key, kind, stage, order_key, clause_ids, data = row
    return {"key": key, "kind": kind, "stage": stage, "order_key": order_key,
            "clause_ids": json.loads(clause_ids), "data": json.loads(data)}


def _fts_phrase(text: str) -> str:
    """The search box's words as FTS5 phrases (each quoted: no FTS syntax reaches MATCH)."""
    words = [w.replace('"', '""') for w in text.split() if w]
    return " ".join(f'"{w}"' for w in words) or '""'
