"""Audit log: one SQLite row (WAL) per request, refused or served.

It records who (operator id), under which effective constitution (content hash), what the guards
decided, how long each step took, and the outcome. It never records API keys or their hashes, and
it does not store message text: guard decisions carry clause ids and scores, which is what an
auditor needs to trace a refusal to the clause that caused it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id        TEXT NOT NULL,
    created           REAL NOT NULL,
    path              TEXT NOT NULL,
    operator_id       TEXT,
    status            INTEGER NOT NULL,
    outcome           TEXT NOT NULL,
    constitution_hash TEXT,
    blocked_by        TEXT,
    blocked_stage     TEXT,
    guards            TEXT NOT NULL,
    timing_ms         TEXT NOT NULL,
    stream            INTEGER NOT NULL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    error             TEXT
);
CREATE INDEX IF NOT EXISTS requests_operator ON requests(operator_id, created);
"""


@dataclass
class AuditEntry:
    """Filled in as a request goes through the server; written once at the end."""

    request_id: str
    path: str
    operator_id: str | None = None
    status: int = 200
    outcome: str = "served"  # served | blocked | refused (4xx) | error (5xx) | dropped (client left mid-stream)
    constitution_hash: str | None = None
    blocked_by: str | None = None
    blocked_stage: str | None = None
    guards: list[dict] = field(default_factory=list)
    timing_ms: dict[str, float] = field(default_factory=dict)
    stream: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None
    started: float = field(default_factory=time.perf_counter)

    def time(self, step: str, since: float) -> None:
        self.timing_ms[step] = round(self.timing_ms.get(step, 0.0) + (time.perf_counter() - since) * 1000, 2)


class AuditLog:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def write(self, entry: AuditEntry) -> None:
        entry.timing_ms["total"] = round((time.perf_counter() - entry.started) * 1000, 2)
        row = (entry.request_id, time.time(), entry.path, entry.operator_id, entry.status, entry.outcome,
               entry.constitution_hash, entry.blocked_by, entry.blocked_stage,
               json.dumps(entry.guards, sort_keys=True), json.dumps(entry.timing_ms, sort_keys=True),
               int(entry.stream), entry.prompt_tokens, entry.completion_tokens, entry.error)
        with self._lock:
            self._db.execute(
                "INSERT INTO requests (request_id, created, path, operator_id, status, outcome, "
                "constitution_hash, blocked_by, blocked_stage, guards, timing_ms, stream, prompt_tokens, "
                "completion_tokens, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)

    def rows(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            cursor = self._db.execute("SELECT * FROM requests ORDER BY id")
            names = [c[0] for c in cursor.description]
            fetched = cursor.fetchall()
        for values in fetched:
            row = dict(zip(names, values))
            row["guards"] = json.loads(row["guards"])
            row["timing_ms"] = json.loads(row["timing_ms"])
            yield row

    def close(self) -> None:
        with self._lock:
            self._db.close()
