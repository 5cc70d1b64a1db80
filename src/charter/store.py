"""The run folder: `manifest.json` plus `records.sqlite`, the source of truth for a run.

Every unit of work has a key (a hash of stage, input record ids, clause id, engine fingerprint,
sampling parameters, seed and sample index). A record and its key are written in one
transaction, so a process killed at any point leaves either the whole record or none of it,
and a rerun skips the keys it has. Exports sort by each record's `order_key`, which stages
derive from their inputs, never from completion order: a resumed run exports byte-identical data.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charter import __version__
from charter.errors import StoreError
from charter.rows import write_json_atomic

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    key        TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    stage      TEXT NOT NULL,
    order_key  TEXT NOT NULL,
    clause_ids TEXT NOT NULL,
    data       TEXT NOT NULL,
    created    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS records_kind_order ON records(kind, order_key);
CREATE INDEX IF NOT EXISTS records_stage ON records(stage);
CREATE TABLE IF NOT EXISTS failures (
    stage      TEXT NOT NULL,
    unit       TEXT NOT NULL,
    keys       TEXT NOT NULL,
    error      TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    created    REAL NOT NULL,
    PRIMARY KEY (stage, unit)
);
"""


def unit_key(stage: str, inputs: list[str] | tuple[str, ...], clause_id: str | None, engine: str | None,
             sampling: dict | None, seed: int | None, index: int = 0, extra: Any = None) -> str:
    """The identity of one unit of work; equal keys mean the work need not be done again."""
    payload = json.dumps(
        {"stage": stage, "inputs": list(inputs), "clause": clause_id, "engine": engine,
         "sampling": sampling or {}, "seed": seed, "index": index, "extra": extra},
        sort_keys=True, ensure_ascii=False, default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Record:
    key: str
    kind: str
    stage: str
    order_key: str
    clause_ids: tuple[str, ...]
    data: dict

    def as_row(self) -> dict:
        return {"id": self.key, "kind": self.kind, "stage": self.stage, "clause_ids": list(self.clause_ids),
                **self.data}


class RunStore:
    """A run folder. Open it with the run's identity; a different constitution or engine is refused.

    One store may be used from several threads (a stage's work batches run side by side when its
    engine is a pool of workers): one connection, every statement under one lock."""

    def __init__(self, folder: Path, db: sqlite3.Connection, manifest: dict):
        self.folder = folder
        self._db = db
        self.manifest = manifest
        self._lock = threading.RLock()

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, folder: str | Path, constitution_hash: str | None = None,
             engines: dict[str, str] | None = None, stage: str | None = None,
             params: dict | None = None, fixed: tuple[str, ...] = ()) -> RunStore:
        """Open or create a run folder, checking that this stage belongs to the same run.

        `engines` maps a role ("policy", "feedback", "judge") to an engine fingerprint. `fixed`
        names the `params` (e.g. "seed") that must equal those of an earlier run of this stage in
        the folder: records made with another seed would otherwise mix into one dataset.
        """
        folder = Path(folder)
        _make_folder(folder)
        manifest_path = folder / "manifest.json"
        with manifest_lock(folder):
            manifest = _read_json(manifest_path) if manifest_path.exists() else {
                "charter_version": __version__, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "constitution_hash": None, "engines": {}, "stages": {},
            }
            for section in ("engines", "stages"):  # a hand-edited or foreign manifest
                if not isinstance(manifest.setdefault(section, {}), dict):
                    raise StoreError(f"{manifest_path} has a `{section}` that is not a mapping; restore the file "
                                     f"or start a new run folder")
            _check_identity(folder, manifest, constitution_hash, engines or {})
            if stage:
                _check_stage_params(folder, manifest, stage, params or {}, fixed)
            if constitution_hash:
                manifest["constitution_hash"] = constitution_hash
            manifest["engines"].update(engines or {})
            if stage:
                manifest["stages"][stage] = params or {}
            write_json_atomic(manifest_path, manifest)
        db = sqlite3.connect(folder / "records.sqlite", timeout=30, isolation_level=None,
                             check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL+NORMAL: a killed process never loses a commit
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            db.close()
            raise _not_a_store(folder, exc) from None
        return cls(folder, db, manifest)

    @classmethod
    def read(cls, folder: str | Path) -> RunStore:
        """Open an existing run folder for reading (stats, export, viewer)."""
        folder = Path(folder)
        if not (folder / "records.sqlite").exists():
            raise StoreError(f"{folder} is not a charter run folder (no records.sqlite); check the path")
        manifest = _read_json(folder / "manifest.json") if (folder / "manifest.json").exists() else {}
        path = (folder / "records.sqlite").resolve()
        if os.access(folder, os.W_OK):
            db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        else:  # a read-only folder (an archive, a mounted share): WAL cannot make its -shm file there
            db = sqlite3.connect(f"{path.as_uri()}?immutable=1", uri=True, isolation_level=None)
        try:
            db.execute("SELECT count(*) FROM records").fetchone()
        except sqlite3.DatabaseError as exc:
            db.close()
            raise _not_a_store(folder, exc) from None
        return cls(folder, db, manifest)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------

    def put(self, key: str, kind: str, stage: str, data: dict, clause_ids: tuple[str, ...] | list[str] = (),
            order_key: str = "") -> None:
        self.put_many([Record(key, kind, stage, order_key, tuple(clause_ids), data)])

    def put_many(self, records: list[Record]) -> None:
        """Write records in one transaction: all of them or none. Keys already present are kept as they are."""
        if not records:
            return
        rows = _rows(records)
        with self._transaction():
            self._db.executemany("INSERT OR IGNORE INTO records VALUES (?,?,?,?,?,?,?)", rows)

    def replace_kind(self, kind: str, stage: str, records: list[Record]) -> None:
        """Drop a stage's records of one kind and write `records` instead, in one transaction (a
        report-like kind that each run recomputes whole, such as scrutiny's findings)."""
        rows = _rows(records)
        with self._transaction():
            self._db.execute("DELETE FROM records WHERE kind=? AND stage=?", (kind, stage))
            self._db.executemany("INSERT OR REPLACE INTO records VALUES (?,?,?,?,?,?,?)", rows)

    @contextmanager
    def _transaction(self):
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- failed units --------------------------------------------------------------------------

    def record_failure(self, stage: str, unit: str, keys: list[str], error: str, attempts: int) -> None:
        """Note a unit of work that failed past its retries (its records are absent, so the next
        run of the stage does it again); `charter data stats` counts these."""
        row = (stage, unit, json.dumps(list(keys)), error[:2000], int(attempts), time.time())
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO failures VALUES (?,?,?,?,?,?)", row)

    def clear_failures(self, stage: str) -> None:
        """Forget a stage's failed units: a new run of the stage is retrying them."""
        with self._transaction():
            self._db.execute("DELETE FROM failures WHERE stage=?", (stage,))

    def failures(self, stage: str | None = None) -> list[dict]:
        """Failed units of each stage's last run (all stages when `stage` is None)."""
        sql, args = "SELECT stage, unit, keys, error, attempts FROM failures", []
        if stage is not None:
            sql, args = sql + " WHERE stage=?", [stage]
        with self._lock:
            try:
                rows = self._db.execute(sql + " ORDER BY stage, unit", args).fetchall()
            except sqlite3.OperationalError:  # a store read-only from before the table existed
                return []
        return [{"stage": s, "unit": u, "keys": json.loads(k), "error": e, "attempts": a}
                for s, u, k, e, a in rows]

    # -- reading -------------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM records WHERE key=?", (key,)).fetchone() is not None

    def existing(self, keys: list[str]) -> set[str]:
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                found.update(k for (k,) in self._db.execute(f"SELECT key FROM records WHERE key IN ({marks})",
                                                             chunk))
        return found

    def get_many(self, keys: list[str]) -> dict[str, Record]:
        """The records of those keys that exist, by key."""
        found: dict[str, Record] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for row in self._db.execute(
                        f"SELECT key, kind, stage, order_key, clause_ids, data FROM records WHERE key IN ({marks})",
                        chunk):
                    found[row[0]] = _record(row)
        return found

    def get(self, key: str) -> Record | None:
        with self._lock:
            row = self._db.execute(
                "SELECT key, kind, stage, order_key, clause_ids, data FROM records WHERE key=?", (key,)).fetchone()
        return _record(row) if row else None

    def iter(self, kind: str, stage: str | None = None) -> Iterator[Record]:
        """Records of a kind in export order, streamed (the cursor is consumed lazily)."""
        sql = "SELECT key, kind, stage, order_key, clause_ids, data FROM records WHERE kind=?"
        args: list[Any] = [kind]
        if stage is not None:
            sql += " AND stage=?"
            args.append(stage)
        for row in self._db.execute(sql + " ORDER BY order_key, key", args):
            yield _record(row)

    def count(self, kind: str | None = None, stage: str | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM records WHERE 1=1", []
        if kind is not None:
            sql, args = sql + " AND kind=?", args + [kind]
        if stage is not None:
            sql, args = sql + " AND stage=?", args + [stage]
        with self._lock:
            return self._db.execute(sql, args).fetchone()[0]

    def kinds(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT kind, COUNT(*) FROM records GROUP BY kind ORDER BY kind"))

    def begin_stage(self, stage: str, params: dict, fixed: tuple[str, ...] = ()) -> None:
        """Record a stage's parameters in the manifest; refuse if a `fixed` one differs from an
        earlier run of the stage here (same check as `open(stage=, params=, fixed=)`)."""
        with manifest_lock(self.folder):
            manifest = _read_json(self.folder / "manifest.json")
            _check_stage_params(self.folder, manifest, stage, params, fixed)
            manifest.setdefault("stages", {})[stage] = params
            write_json_atomic(self.folder / "manifest.json", manifest)
        self.manifest = manifest

    def set_stage_done(self, stage: str, summary: dict) -> None:
        """Mark a stage finished in the manifest (the pipeline skips finished stages)."""
        with manifest_lock(self.folder):
            manifest = _read_json(self.folder / "manifest.json")
            manifest.setdefault("done", {})[stage] = summary
            write_json_atomic(self.folder / "manifest.json", manifest)
        self.manifest = manifest

    def stage_done(self, stage: str) -> bool:
        return stage in _read_json(self.folder / "manifest.json").get("done", {})


def _record(row: tuple) -> Record:
    key, kind, stage, order_key, clause_ids, data = row
    return Record(key, kind, stage, order_key, tuple(json.loads(clause_ids)), json.loads(data))


def _check_identity(folder: Path, manifest: dict, constitution_hash: str | None, engines: dict[str, str]) -> None:
    old_hash = manifest.get("constitution_hash")
    if constitution_hash and old_hash and old_hash != constitution_hash:
        raise StoreError(
            f"{folder} holds a run of a different constitution (hash {old_hash}, this one is {constitution_hash}); "
            "use another --out folder, or pass --new-run to start a fresh run folder beside it"
        )
    for role, fingerprint in engines.items():
        old = manifest.get("engines", {}).get(role)
        if old and old != fingerprint:
            raise StoreError(
                f"{folder} was made with a different {role} engine ({old}, now {fingerprint}); "
                "use another --out folder, or pass --new-run to start a fresh run folder beside it"
            )


def _check_stage_params(folder: Path, manifest: dict, stage: str, params: dict, fixed: tuple[str, ...]) -> None:
    earlier = manifest.get("stages", {}).get(stage)
    if not earlier:
        return
    for name in fixed:
        if name in earlier and name in params and earlier[name] != params[name]:
            raise StoreError(
                f"{folder} already holds a '{stage}' run with {name}={earlier[name]!r} (now {params[name]!r}); "
                "use the same value to resume, another --out folder, or --new-run for a fresh run folder beside it"
            )


def _rows(records: list[Record]) -> list[tuple]:
    return [(r.key, r.kind, r.stage, r.order_key, json.dumps(list(r.clause_ids), ensure_ascii=False),
             json.dumps(r.data, ensure_ascii=False, sort_keys=True), time.time()) for r in records]


def open_run(folder: str | Path, *, new_run: bool = False, **identity: Any) -> RunStore:
    """Open `folder` for a run; with `new_run`, a folder that refuses this run's identity is left
    alone and the first of `folder-2`, `folder-3`, ... that accepts it (or does not exist) is used,
    so rerunning the same `--new-run` command resumes the folder it started."""
    folder = Path(folder)
    candidate, index = folder, 1
    while True:
        try:
            return RunStore.open(candidate, **identity)
        except StoreError:
            if not new_run:
                raise
        index += 1
        candidate = folder.with_name(f"{folder.name}-{index}")


def next_free_run_folder(folder: str | Path) -> Path:
    """`run` -> `run-2`, `run-3`, ...: the --new-run flag's way to never mix two runs."""
    folder = Path(folder)
    if not folder.exists():
        return folder
    index = 2
    while (candidate := folder.with_name(f"{folder.name}-{index}")).exists():
        index += 1
    return candidate


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StoreError(f"--out {folder} is a file, not a folder; pass a folder path") from None
    except NotADirectoryError:
        raise StoreError(f"--out {folder} is below a file ({_first_file(folder)}); pass a folder path") from None
    except PermissionError:
        raise StoreError(f"--out {folder} cannot be created here (permission denied); pass a writable path") from None


def _first_file(folder: Path) -> Path:
    for parent in reversed(folder.parents):
        if parent.is_file():
            return parent
    return folder


def _not_a_store(folder: Path, exc: Exception) -> StoreError:
    return StoreError(f"{folder / 'records.sqlite'} is not a charter run store ({exc}); it may be damaged or "
                      f"another file: move it away, or use another --out")


@contextmanager
def manifest_lock(folder: Path):
    """Hold the run folder's manifest lock: its updates are read-modify-write, and two processes
    writing at once (two stages, two `charter generate` runs) would otherwise lose one's entries.
    An advisory lock on a separate file (`.manifest.lock`), so the atomic rename of the manifest
    itself is untouched; where the OS has no flock, updates go unlocked as before."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    with open(Path(folder) / ".manifest.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path} is unreadable ({exc}); restore it or start a new run folder") from None
