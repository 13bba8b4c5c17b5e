"""The arena's result store: one SQLite database (WAL mode) per run directory, ``RUN_DIR/arena.sqlite``.

A row is one *finished* trial: its key (:func:`trial_key`, the SHA-256 of the canonical JSON of the
normalised configuration), the configuration, the result dict, when and where it finished. Partial
work is never written, so a killed run loses at most the trials that were running. Every write is
its own transaction and a key is written once (an "ok", "diverged" or "failed" row is a final
result; only an explicit retry replaces a "failed" row), so two processes may write the same store
at once (SQLite's locking; ``busy_timeout`` waits for the other writer).

A new store is built complete in a temporary file beside it and then linked to its name in one step
(``os.link`` fails when the name exists), so a process that starts at the same moment sees either
no store or a whole one, never a half-made file. A runner *claims* a trial before running it (a row
with its owner and an expiry that it renews while the trial runs), so runners sharing a store split
the work; a claim whose owner died (same machine: its pid is gone; elsewhere: it expired) is free.

A file that is not an arena store (another program's database, a damaged or empty file) or a store
written by a newer schema is refused with :class:`StoreError` and left untouched; a read-only store
and a full disk get their own messages.

    >>> from actlab.arena.store import read_records
    >>> records = read_records("arena-runs/default")  # doctest: +SKIP
    >>> records[0]["config"]["activation"], records[0]["result"]["final_metric"]  # doctest: +SKIP
    ('relu', 0.975)
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "STORE_FILENAME",
    "SCHEMA_VERSION",
    "StoreError",
    "StoreWriteError",
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
# Final results: a resume or a rerun never runs them again (a failed trial is retried only when asked).
FINISHED_STATUSES = ("ok", "diverged", "failed")
CLAIM_TTL_S = 60.0

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
CREATE TABLE IF NOT EXISTS claims (
    key     TEXT PRIMARY KEY,
    owner   TEXT NOT NULL,
    expires REAL NOT NULL
);
"""


class StoreError(RuntimeError):
    """The store cannot be used: a foreign, damaged or empty file, a newer schema, a missing run."""


class StoreWriteError(StoreError):
    """A write failed while a run was going (full disk, the store became read-only): resume later."""


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
    """Refuse, before SQLite touches it, a file that is empty or is not an SQLite database."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_SQLITE_HEADER))
    except OSError as err:
        raise StoreError(f"cannot read the arena store {path}: {err.strerror or err}") from err
    if not head:
        # actlab never leaves an empty file there (a new store appears complete), so this is a truncated
        # or half-copied store: starting over in it would silently lose the run it was.
        raise StoreError(
            f"{path} is empty (0 bytes): it holds no trials and no plan, so there is nothing to continue; it was "
            "left untouched. Delete it to start a new run in that directory, or choose another one (--out)."
        )
    if head != _SQLITE_HEADER:
        raise StoreError(
            f"{path} is not an SQLite database (a foreign or damaged file); it was left untouched. "
            "Move it away or choose another run directory (--out)."
        )


def _write_problem(err: BaseException, path: Path) -> str | None:
    """A sentence for the SQLite errors that are not damage: a read-only store, a full disk."""
    text = str(err).lower()
    if "readonly" in text or "read-only" in text or "read only" in text:
        return (
            f"{path} is read-only for this process (no write permission on the file or on its directory "
            f"{path.parent}); it was left untouched. Give write permission, or copy the run directory somewhere "
            f"writable to continue it there; `actlab report {path.parent}` reads it as it is."
        )
    if "disk is full" in text or "disk full" in text or "no space" in text:
        return (
            f"the disk holding {path} is full (SQLite: {err}). Every finished trial is saved; free some space, "
            "then continue the run with --resume."
        )
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    try:  # a killed process that its parent has not reaped yet is a zombie: dead for our purpose
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def _claim_stale(owner: str, expires: float, now: float) -> bool:
    """A claim is free when it expired, or when its owner ran on this machine and its process is gone."""
    if expires < now:
        return True
    host, _, rest = owner.rpartition(":")  # owner = host:pid:token
    host, _, pid = host.rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid))


class ArenaStore:
    """An open arena store. Use as a context manager; ``create=False`` refuses a missing store.

    >>> with ArenaStore("runs/demo") as store:  # doctest: +SKIP
    ...     store.put(config, result)
    ...     store.finished_keys()
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        *,
        create: bool = True,
        readonly: bool = False,
        owner: str | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.path = store_path(run_dir)
        # who holds this store's claims: host:pid:token (two runners in one process are two owners)
        self.owner = owner or f"{default_worker_name()}:{uuid.uuid4().hex[:8]}"
        exists = self.path.exists()
        if not exists and (readonly or not create):
            raise StoreError(f"no arena store at {self.path} (nothing was run there yet)")
        in_place = False
        if exists:
            if self.path.is_dir():
                raise StoreError(f"{self.path} is a directory, not an arena store; it was left untouched")
            _check_header(self.path)
            if not readonly and not (os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)):
                raise StoreError(_write_problem(OSError("read-only"), self.path))  # WAL writes beside the file too
        else:
            in_place = not self._create_complete()
        try:
            if readonly:
                uri = f"{self.path.resolve().as_uri()}?mode=ro"
            else:
                uri = f"{self.path.resolve().as_uri()}?mode={'rwc' if in_place else 'rw'}"
            self._conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as err:
            raise StoreError(
                _write_problem(err, self.path) or f"cannot open the arena store {self.path}: {err}"
            ) from err
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            self._check_or_create(readonly=readonly)
        except sqlite3.DatabaseError as err:
            self._conn.close()
            problem = _write_problem(err, self.path)
            if problem:
                raise StoreError(problem) from err
            raise StoreError(
                f"{self.path} is damaged or not an arena store ({err}); it was left untouched. "
                "Move it away or choose another run directory (--out)."
            ) from err
        except BaseException:
            self._conn.close()
            raise

    # ------------------------------------------------------------------ opening
    def _create_complete(self) -> bool:
        """Build a new store in a temporary file and link it to its name; False: create it in place instead.

        Whoever links first wins; the others find a complete store and use it (``os.link`` never replaces).
        """
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(
                f"cannot create the run directory {self.run_dir}: {err.strerror or err}. Choose another (--out)."
            ) from err
        tmp = self.run_dir / f".{STORE_FILENAME}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                # WAL: readers (a report) never block the writer; survives SIGKILL of any process.
                conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(_SCHEMA)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute(
                    "INSERT INTO meta(name, value) VALUES ('schema_version', ?), ('created_at', ?)",
                    (str(SCHEMA_VERSION), _now()),
                )
            finally:
                conn.close()  # the last connection folds the WAL back into the file
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass  # another process made it a moment ago: use that one
            except OSError:
                return False  # no hard links on this file system
            return True
        except (sqlite3.Error, OSError) as err:
            seen = err if os.access(self.run_dir, os.W_OK) else OSError("read-only")
            problem = _write_problem(seen, self.path)
            reason = getattr(err, "strerror", None) or err
            raise StoreError(problem or f"cannot create the arena store {self.path}: {reason}") from err
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                try:
                    os.unlink(f"{tmp}{suffix}")
                except OSError:
                    pass

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
                claims = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'claims'"
                if self._conn.execute(claims).fetchone() is None:  # a store from before claims existed
                    self._conn.execute(_SCHEMA.split(";")[2])
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
        try:
            with self._conn:
                self._conn.execute(
                    "INSERT INTO meta(name, value) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                    (name, json.dumps(value, sort_keys=True)),
                )
        except sqlite3.Error as err:
            self._raise_write_problem(err)
            raise

    def setdefault_meta(self, name: str, value: Any) -> Any:
        """Store ``value`` under ``name`` unless a value is there; return the stored one (one transaction,
        so of two runners starting at once exactly one plan is stored)."""
        with self._immediate():
            self._conn.execute(
                "INSERT OR IGNORE INTO meta(name, value) VALUES (?, ?)", (name, json.dumps(value, sort_keys=True))
            )
            row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return json.loads(row[0])

    @contextlib.contextmanager
    def _immediate(self) -> Iterator[None]:
        """One write transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``); on any error it is rolled back and
        raised as the store's write problem (read-only, disk full) where it is one."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                if self._conn.in_transaction:
                    self._conn.execute("COMMIT")
        except BaseException as err:
            self._rollback()
            self._raise_write_problem(err)
            raise

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
            self._conn.execute("DELETE FROM claims WHERE key = ?", (key,))  # done: nobody needs to wait for it
            self._conn.execute("COMMIT")
        except BaseException as err:
            self._rollback()
            self._raise_write_problem(err)
            raise
        return written

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    def _raise_write_problem(self, err: BaseException) -> None:
        if isinstance(err, sqlite3.Error):
            problem = _write_problem(err, self.path)
            if problem:
                raise StoreWriteError(problem) from err

    # ------------------------------------------------------------------ claims (runners sharing a store)
    def claim(self, key: str, *, final: tuple[str, ...] = FINISHED_STATUSES, ttl: float = CLAIM_TTL_S) -> str | None:
        """Claim trial ``key`` for this store's owner, in one transaction.

        Returns None when the claim is ours (run the trial), ``"finished"`` when the store holds a result
        with a status in ``final``, or the owner of another live claim (another runner is running it).
        """
        now = time.time()
        with self._immediate():
            row = self._conn.execute("SELECT status FROM trials WHERE key = ?", (key,)).fetchone()
            if row is not None and row[0] in final:
                return "finished"
            held = self._conn.execute("SELECT owner, expires FROM claims WHERE key = ?", (key,)).fetchone()
            if held is not None and held[0] != self.owner and not _claim_stale(held[0], held[1], now):
                return held[0]
            self._conn.execute(
                "INSERT INTO claims(key, owner, expires) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET owner = excluded.owner, expires = excluded.expires",
                (key, self.owner, now + ttl),
            )
            return None

    def renew_claims(self, *, ttl: float = CLAIM_TTL_S) -> None:
        """Push back the expiry of every claim this owner holds (the runner is alive)."""
        with self._conn:
            self._conn.execute("UPDATE claims SET expires = ? WHERE owner = ?", (time.time() + ttl, self.owner))

    def release(self, key: str | None = None) -> None:
        """Give up this owner's claim on ``key`` (None: all of them)."""
        try:
            if key is None:
                self._conn.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))
            else:
                self._conn.execute("DELETE FROM claims WHERE owner = ? AND key = ?", (self.owner, key))
        except sqlite3.Error:
            pass  # a claim left behind expires, or is freed when its owner's process is gone

    def claims(self) -> dict[str, str]:
        """key -> owner of every claim held now (expired or not)."""
        return dict(self._conn.execute("SELECT key, owner FROM claims"))

    def finished_keys(self, final: tuple[str, ...] = FINISHED_STATUSES) -> set[str]:
        """Keys of trials that need not run again: a final result (ok, diverged or failed) is stored.

        ``final=("ok", "diverged")`` leaves the failed ones out (to run them again on request).
        """
        marks = ",".join("?" * len(final))
        rows = self._conn.execute(f"SELECT key FROM trials WHERE status IN ({marks})", tuple(final))
        return {r[0] for r in rows}

    def is_finished(self, key: str, final: tuple[str, ...] = FINISHED_STATUSES) -> bool:
        marks = ",".join("?" * len(final))
        row = self._conn.execute(
            f"SELECT 1 FROM trials WHERE key = ? AND status IN ({marks})", (key, *final)
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
