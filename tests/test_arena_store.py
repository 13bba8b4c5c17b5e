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
    with ArenaStore(tmp_path) as store:
        assert store.put(_config(0), _result(metric=0.5))
        assert not store.put(_config(0), _result(metric=0.1))  # a finished trial stays as it was
        assert store.put(_config(1), {"status": "failed", "error": "RuntimeError: boom"})
        assert store.finished_keys() == {trial_key(_config(0))}
        assert not store.is_finished(trial_key(_config(1)))
        assert store.put(_config(1), _result(metric=0.7))  # the retry replaces the failure
        assert store.finished_keys() == {trial_key(_config(0)), trial_key(_config(1))}
        assert [r["result"]["final_metric"] for r in store.records()] == [0.5, 0.7]


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
