"""The arena's result store: one SQLite database (WAL mode) per run directory, ``RUN_DIR/arena.sqlite``.

A row is one *finished* trial: its key (:func:`trial_key`, the SHA-256 of the canonical JSON of the
normalised configuration), the configuration, the result dict, when and where it finished. Partial
work is never written, so a killed run loses at most the trials that were running. Every write is
its own transaction and a key is written once (an "ok" or "diverged" row is never replaced; a
"failed" row, which holds an error instead of a result, is replaced when the trial is run again), so
two processes may write the same store at once (SQLite's locking; ``busy_timeout`` waits for the
other writer).

A file that is not an arena store (another program's database, a damaged file) or a store written by
a newer schema is refused with :class:`StoreError` and left untouched.

    >>> from actlab.arena.store import read_records
    >>> records = read_records("arena-runs/default")  # doctest: +SKIP
    >>> records[0]["config"]["activation"], records[0]["result"]["final_metric"]  # doctest: +SKIP
    ('relu', 0.975)
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import socket
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "STORE_FILENAME",
    "SCHEMA_VERSION",
    "StoreError",
    "ArenaStore",
    "canonical_json",
    "trial_key",
    "read_records",
    "store_path",
]

STORE_FILENAME = "arena.sqlite"
SCHEMA_VERSION = 1
# PRAGMA application_id marks the file as an actlab arena store: the bytes of "actA".
APPLICATION_ID = int.from_bytes(b"actA", "big")
_SQLITE_HEADER = b"SQLite format 3\x00"
_BUSY_TIMEOUT_MS = 60_000
FINISHED_STATUSES = ("ok", "diverged")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key         TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL,
    task        TEXT,
    activation  TEXT,
    seed        INTEGER,
    config      TEXT NOT NULL,
    result      TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    worker      TEXT NOT NULL
);
"""


class StoreError(RuntimeError):
    """The store cannot be used: a foreign or damaged file, a newer schema, a missing run."""


def canonical_json(config: Mapping[str, Any]) -> str:
    """``config`` as canonical JSON: sorted keys, no spaces, no NaN; the same config gives the same text."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def trial_key(config: Mapping[str, Any]) -> str:
    """The trial's identity: SHA-256 (hex) of the canonical JSON of its normalised configuration."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


def store_path(run_dir: str | os.PathLike) -> Path:
    """``RUN_DIR/arena.sqlite``."""
    return Path(run_dir) / STORE_FILENAME


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _check_header(path: Path) -> None:
    """Refuse, before SQLite touches it, a non-empty file that is not an SQLite database."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_SQLITE_HEADER))
    except OSError as err:
        raise StoreError(f"cannot read the arena store {path}: {err.strerror or err}") from err
    if head and head != _SQLITE_HEADER:
        raise StoreError(
            f"{path} is not an SQLite database (a foreign or damaged file); it was left untouched. "
            "Move it away or choose another run directory (--out)."
        )


class ArenaStore:
    """An open arena store. Use as a context manager; ``create=False`` refuses a missing store.

    >>> with ArenaStore("runs/demo") as store:  # doctest: +SKIP
    ...     store.put(config, result)
    ...     store.finished_keys()
    """

    def __init__(self, run_dir: str | os.PathLike, *, create: bool = True, readonly: bool = False):
        self.run_dir = Path(run_dir)
        self.path = store_path(run_dir)
        exists = self.path.exists()
        if not exists and (readonly or not create):
            raise StoreError(f"no arena store at {self.path} (nothing was run there yet)")
        if exists:
            if self.path.is_dir():
                raise StoreError(f"{self.path} is a directory, not an arena store; it was left untouched")
            _check_header(self.path)
        elif create:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        if readonly:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        else:
            self._conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            self._check_or_create(readonly=readonly)
        except sqlite3.DatabaseError as err:
            self._conn.close()
            raise StoreError(
                f"{self.path} is damaged or not an arena store ({err}); it was left untouched. "
                "Move it away or choose another run directory (--out)."
            ) from err
        except BaseException:
            self._conn.close()
            raise

    # ------------------------------------------------------------------ opening
    def _identity(self) -> tuple[int, int, int]:
        # One read transaction: read one by one, a store that another process creates at this moment
        # could show its tables but not yet its application id, and look like another program's file.
        own = not self._conn.in_transaction
        if own:
            self._conn.execute("BEGIN")
        try:
            app = self._conn.execute("PRAGMA application_id").fetchone()[0]
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            n_objects = self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        finally:
            if own:
                self._conn.execute("COMMIT")
        return app, version, n_objects

    def _refuse_unless_ours(self, app: int, version: int, n_objects: int) -> bool:
        """True when the file is an arena store this version reads; False when it is empty (new)."""
        if app == 0 and version == 0 and n_objects == 0:
            return False
        if app != APPLICATION_ID:
            raise StoreError(
                f"{self.path} is an SQLite database of another program, not an arena store; it was left "
                "untouched. Move it away or choose another run directory (--out)."
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer actlab (store schema {version}; this actlab reads schema "
                f"{SCHEMA_VERSION} and older). Upgrade actlab (pip install -U actlab) to read or continue this run."
            )
        if version < 1:
            raise StoreError(f"{self.path} has an unknown store schema {version}; it was left untouched")
        return True

    def _check_or_create(self, *, readonly: bool) -> None:
        if self._refuse_unless_ours(*self._identity()):
            if not readonly:
                problem = self._conn.execute("PRAGMA quick_check").fetchone()[0]
                if problem != "ok":
                    raise sqlite3.DatabaseError(f"quick_check: {problem}")
                self._conn.execute("PRAGMA synchronous = FULL")
            return
        if readonly:
            raise StoreError(f"{self.path} is empty: no arena store there")
        # A new store. Another process may be creating it at this moment: take the write lock, look again.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            if not self._refuse_unless_ours(*self._identity()):
                for statement in _SCHEMA.split(";"):  # not executescript: it would COMMIT the lock away
                    if statement.strip():
                        self._conn.execute(statement)
                self._conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self._conn.execute(
                    "INSERT OR IGNORE INTO meta(name, value) VALUES ('schema_version', ?), ('created_at', ?)",
                    (str(SCHEMA_VERSION), _now()),
                )
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        # WAL: readers (a report) never block the writer; survives SIGKILL of any process.
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")

    # ------------------------------------------------------------------ context manager
    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> ArenaStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ meta
    def get_meta(self, name: str, default: Any = None) -> Any:
        """A JSON value stored under ``name`` (the run's plan, its settings)."""
        row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_meta(self, name: str, value: Any) -> None:
        with self._conn:
            self._conn.execute(
                "INSERT INTO meta(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                (name, json.dumps(value, sort_keys=True)),
            )

    # ------------------------------------------------------------------ trials
    def put(
        self,
        config: Mapping[str, Any],
        result: Mapping[str, Any],
        *,
        worker: str | None = None,
        key: str | None = None,
    ) -> bool:
        """Record one finished trial; False when the key is already recorded as finished (nothing changes)."""
        key = key or trial_key(config)
        status = str(result.get("status", "ok"))
        seed = config.get("seed")
        row = (
            key,
            status,
            _text_or_none(config.get("task")),
            _text_or_none(config.get("activation")),
            seed if isinstance(seed, int) else None,
            canonical_json(config),
            json.dumps(result, sort_keys=True, default=_json_fallback),
            _now(),
            worker or default_worker_name(),
        )
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = self._conn.execute(
                "INSERT INTO trials(key, status, task, activation, seed, config, result, finished_at, worker) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET status = excluded.status, result = excluded.result, "
                "finished_at = excluded.finished_at, worker = excluded.worker WHERE trials.status = 'failed'",
                row,
            )
            written = cursor.rowcount > 0
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        return written

    def finished_keys(self) -> set[str]:
        """Keys of trials that need not run again (status ok or diverged; failed ones are retried)."""
        marks = ",".join("?" * len(FINISHED_STATUSES))
        rows = self._conn.execute(f"SELECT key FROM trials WHERE status IN ({marks})", FINISHED_STATUSES)
        return {r[0] for r in rows}

    def is_finished(self, key: str) -> bool:
        marks = ",".join("?" * len(FINISHED_STATUSES))
        row = self._conn.execute(
            f"SELECT 1 FROM trials WHERE key = ? AND status IN ({marks})", (key, *FINISHED_STATUSES)
        ).fetchone()
        return row is not None

    def count(self) -> int:
        return self._conn.execute("SELECT count(*) FROM trials").fetchone()[0]

    def records(self) -> list[dict[str, Any]]:
        """Every recorded trial in the order it finished: dicts with key, config, result, finished_at, worker."""
        rows = self._conn.execute("SELECT key, config, result, finished_at, worker FROM trials ORDER BY id")
        return [
            {"key": k, "config": json.loads(c), "result": json.loads(r), "finished_at": f, "worker": w}
            for k, c, r, f, w in rows
        ]


def read_records(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every finished trial of ``RUN_DIR/arena.sqlite`` (read only; safe while a run is writing).

    Each record: ``{"key", "config", "result", "finished_at", "worker"}``. Raises :class:`StoreError` for
    a missing, foreign, damaged or newer-schema store.

        >>> [r["config"]["activation"] for r in read_records("arena-runs/default")][:2]  # doctest: +SKIP
        ['relu', 'leaky_relu']
    """
    with ArenaStore(run_dir, readonly=True) as store:
        return store.records()


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _json_fallback(value: Any) -> Any:
    """Results are JSON; tolerate NumPy/torch scalars and paths from user tasks."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)
