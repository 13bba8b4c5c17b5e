"""The arena store: keys, round trips, refusing foreign/damaged/newer files untouched, two writers at once."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import actlab
from actlab.arena.store import (
    SCHEMA_VERSION,
    ArenaStore,
    StoreError,
    StoreWriteError,
    canonical_json,
    read_records,
    store_path,
    trial_key,
)

SRC = str(Path(actlab.__file__).resolve().parents[1])


def _config(i: int = 0, **extra: object) -> dict:
    return {"task": "spirals", "activation": "relu", "seed": i, "lr": 0.01, "model_params": {"width": 8}, **extra}


def _result(status: str = "ok", metric: float = 0.9) -> dict:
    return {"status": status, "metric": "accuracy", "final_metric": metric, "curve": [{"epoch": 1, "val_loss": 0.5}]}


def test_key_is_sha256_of_canonical_json_and_ignores_key_order():
    a = {"seed": 1, "task": "spirals", "model_params": {"width": 8, "depth": 2}}
    b = {"model_params": {"depth": 2, "width": 8}, "task": "spirals", "seed": 1}
    assert canonical_json(a) == canonical_json(b) == '{"model_params":{"depth":2,"width":8},"seed":1,"task":"spirals"}'
    assert trial_key(a) == trial_key(b) == hashlib.sha256(canonical_json(a).encode()).hexdigest()
    assert trial_key(a) != trial_key({**a, "seed": 2})
    with pytest.raises(ValueError):
        canonical_json({"lr": float("nan")})  # a NaN has no canonical text


def test_round_trip_in_wal_mode(tmp_path):
    with ArenaStore(tmp_path / "run") as store:
        assert store.put(_config(0), _result(metric=0.5), worker="w1")
        assert store.put(_config(1), _result("diverged", None), worker="w2")
        assert store.count() == 2
    records = read_records(tmp_path / "run")
    assert [r["config"]["seed"] for r in records] == [0, 1]
    assert records[0] == {
        "key": trial_key(_config(0)),
        "config": json.loads(canonical_json(_config(0))),
        "result": _result(metric=0.5),
        "finished_at": records[0]["finished_at"],
        "worker": "w1",
    }
    assert records[0]["finished_at"].endswith("+00:00")
    with sqlite3.connect(store_path(tmp_path / "run")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_finished_trials_are_never_replaced_but_failed_ones_are(tmp_path):
    """Failed and diverged trials are final results; only an explicit retry (final=ok, diverged) reruns a
    failure, and its result replaces the failure."""
    retry = ("ok", "diverged")
    with ArenaStore(tmp_path) as store:
        assert store.put(_config(0), _result(metric=0.5))
        assert not store.put(_config(0), _result(metric=0.1))  # a finished trial stays as it was
        assert store.put(_config(1), {"status": "failed", "error": "RuntimeError: boom"})
        assert store.put(_config(2), _result("diverged", None))
        keys = [trial_key(_config(i)) for i in range(3)]
        assert store.finished_keys() == set(keys)  # a rerun runs none of them again
        assert all(store.is_finished(k) for k in keys)
        assert store.finished_keys(retry) == {keys[0], keys[2]}
        assert not store.is_finished(keys[1], retry)
        assert store.claim(keys[1]) == "finished" and store.claim(keys[2]) == "finished"
        assert store.claim(keys[1], final=retry) is None  # asked to retry the failure: it may run
        assert store.put(_config(1), _result(metric=0.7))  # the retry replaces the failure
        assert store.finished_keys(retry) == set(keys)
        assert [r["result"]["final_metric"] for r in store.records()] == [0.5, 0.7, None]
        assert store.claims() == {}  # the finished retry gave its claim back


def test_meta_round_trip(tmp_path):
    with ArenaStore(tmp_path) as store:
        assert store.get_meta("plan") is None
        store.set_meta("plan", {"keys": ["a", "b"]})
        store.set_meta("plan", {"keys": ["c"]})
    with ArenaStore(tmp_path, create=False) as store:
        assert store.get_meta("plan") == {"keys": ["c"]}


def _unchanged(path: Path):
    before = path.read_bytes()
    return lambda: path.read_bytes() == before


@pytest.mark.parametrize(
    "content",
    [b"hello, this is a text file\n", b"SQLite format 3\x00" + b"\x13" * 4000],
    ids=["text file", "damaged database"],
)
def test_foreign_or_damaged_file_is_refused_and_left_untouched(tmp_path, content):
    path = store_path(tmp_path)
    path.write_bytes(content)
    same = _unchanged(path)
    with pytest.raises(StoreError, match="left untouched"):
        ArenaStore(tmp_path)
    with pytest.raises(StoreError):
        read_records(tmp_path)
    assert same()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["arena.sqlite"]


def test_another_programs_database_is_refused(tmp_path):
    path = store_path(tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (name TEXT)")
        conn.execute("INSERT INTO customers VALUES ('ada')")
    conn.close()
    same = _unchanged(path)
    with pytest.raises(StoreError, match="another program"):
        ArenaStore(tmp_path)
    assert same()


def test_a_newer_schema_is_refused_with_a_message(tmp_path):
    with ArenaStore(tmp_path) as store:
        store.put(_config(0), _result())
    conn = sqlite3.connect(store_path(tmp_path))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    same = _unchanged(store_path(tmp_path))
    with pytest.raises(StoreError, match=rf"newer actlab \(store schema {SCHEMA_VERSION + 1}"):
        ArenaStore(tmp_path)
    with pytest.raises(StoreError, match="newer actlab"):
        read_records(tmp_path)
    assert same()


def test_missing_store_is_reported_not_created(tmp_path):
    with pytest.raises(StoreError, match="no arena store"):
        read_records(tmp_path / "nothing")
    with pytest.raises(StoreError, match="no arena store"):
        ArenaStore(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing").exists()


_WRITER = textwrap.dedent(
    """
    import sys, time
    from actlab.arena.store import ArenaStore
    run_dir, first, last, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    while not __import__("os").path.exists(go):  # both start writing at the same moment
        time.sleep(0.005)
    with ArenaStore(run_dir) as store:
        for i in range(first, last):
            config = {"task": "spirals", "activation": "relu", "seed": i}
            store.put(config, {"status": "ok", "final_metric": i / 100, "writer": first, "curve": [0.0] * 200})
    """
)


def test_two_processes_writing_the_same_store(tmp_path):
    """Two real processes create and fill one store at once (overlapping keys): nothing lost or doubled."""
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    run_dir = tmp_path / "run"
    procs = [
        subprocess.Popen([sys.executable, str(script), str(run_dir), str(a), str(b), str(go)], env=env)
        for a, b in ((0, 120), (60, 180))
    ]
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    records = read_records(run_dir)
    seeds = sorted(r["config"]["seed"] for r in records)
    assert seeds == list(range(180))
    for r in records:  # each overlapping key was written once, by whichever writer came first
        assert r["key"] == trial_key(r["config"])
        assert r["result"]["final_metric"] == r["config"]["seed"] / 100
    with sqlite3.connect(store_path(run_dir)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_store_appears_complete_or_not_at_all(tmp_path, monkeypatch):
    """Whoever opens the store while another process creates it finds no store or a whole one, never a
    half-made file (the race behind "an SQLite database of another program" at two simultaneous starts)."""
    run = tmp_path / "run"
    real = sqlite3.connect
    seen: list[str] = []
    inside = False

    def connect_and_look(*args, **kwargs):
        nonlocal inside
        conn = real(*args, **kwargs)
        if not inside and store_path(run).exists():  # at this moment, a second process opens the store
            inside = True
            try:
                read_records(run)
                seen.append("complete")
            except StoreError as err:
                seen.append(str(err))
            finally:
                inside = False
        return conn

    monkeypatch.setattr(sqlite3, "connect", connect_and_look)
    with ArenaStore(run) as store:
        store.put(_config(0), _result())
    assert seen and set(seen) == {"complete"}, seen
    assert sorted(p.name for p in run.iterdir()) == ["arena.sqlite"]  # no temporary file left behind


def test_an_empty_store_file_is_refused_not_started_over(tmp_path):
    path = store_path(tmp_path)
    path.touch()
    for opening in (
        lambda: ArenaStore(tmp_path),
        lambda: ArenaStore(tmp_path, create=False),
        lambda: read_records(tmp_path),
    ):
        with pytest.raises(StoreError, match=r"is empty \(0 bytes\).*nothing to continue.*Delete it"):
            opening()
    assert path.stat().st_size == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["arena.sqlite"]


class _Connection:
    """A real SQLite connection whose writes fail as SQLite fails them (to simulate a full disk)."""

    def __init__(self, conn: sqlite3.Connection, fail_on: str, message: str):
        self._conn, self._fail_on, self._message = conn, fail_on, message

    def execute(self, sql: str, *args: object):
        if sql.lstrip().upper().startswith(self._fail_on):
            raise sqlite3.OperationalError(self._message)
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self._conn, name)

    def __enter__(self):
        return self._conn.__enter__()

    def __exit__(self, *exc: object):
        return self._conn.__exit__(*exc)


def test_a_full_disk_is_named_with_the_resume_hint(tmp_path, monkeypatch):
    with ArenaStore(tmp_path) as store:
        store.put(_config(0), _result())
    real = sqlite3.connect
    monkeypatch.setattr(
        sqlite3, "connect", lambda *a, **k: _Connection(real(*a, **k), "INSERT INTO TRIALS", "database or disk is full")
    )
    with ArenaStore(tmp_path) as store:
        with pytest.raises(StoreWriteError, match=r"disk holding .*arena.sqlite is full.*free some space.*--resume"):
            store.put(_config(1), _result())
    monkeypatch.undo()
    assert [r["config"]["seed"] for r in read_records(tmp_path)] == [0]


def test_a_read_only_store_is_called_read_only_not_damaged(tmp_path, monkeypatch):
    with ArenaStore(tmp_path) as store:
        store.put(_config(0), _result())
    real = sqlite3.connect

    def read_only(database, *args, **kwargs):  # what SQLite does with a file it may not write
        if str(database).startswith("file:"):
            database = str(database).split("?")[0] + "?mode=ro"
        else:
            database, kwargs["uri"] = Path(database).resolve().as_uri() + "?mode=ro", True
        return real(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", read_only)
    same = _unchanged(store_path(tmp_path))
    with pytest.raises(StoreError) as info:
        with ArenaStore(tmp_path) as store:
            store.set_meta("plan", {"keys": []})
            store.put(_config(1), _result())
    text = str(info.value)
    assert "is read-only for this process" in text and "write permission" in text
    assert "damaged" not in text and "move it away" not in text.lower()
    assert same()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes read-only files anyway")
def test_a_read_only_run_directory_is_called_read_only(tmp_path):
    with ArenaStore(tmp_path / "run") as store:
        store.put(_config(0), _result())
    os.chmod(store_path(tmp_path / "run"), 0o444)
    os.chmod(tmp_path / "run", 0o555)
    try:
        with pytest.raises(StoreError, match="is read-only for this process"):
            with ArenaStore(tmp_path / "run") as store:
                store.put(_config(1), _result())
        assert len(read_records(tmp_path / "run")) == 1
    finally:
        os.chmod(tmp_path / "run", 0o755)


def test_a_store_from_before_claims_gets_the_claims_table(tmp_path):
    with ArenaStore(tmp_path) as store:
        store.put(_config(0), _result())
    with sqlite3.connect(store_path(tmp_path)) as conn:
        conn.execute("DROP TABLE claims")
    conn.close()
    with ArenaStore(tmp_path) as store:
        assert store.claim(trial_key(_config(1))) is None
        assert store.claims() == {trial_key(_config(1)): store.owner}
    assert len(read_records(tmp_path)) == 1
