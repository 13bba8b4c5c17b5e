"""The arena runner: suites, planning, running through backends, resume, divergence, determinism, kills."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import actlab
from _arena_fakes import ok_result
from actlab.arena.config import (
    Budget,
    Suite,
    SuiteError,
    expand_trials,
    load_suite,
    parse_budget,
    parse_seeds,
    split_list,
    suite_from_mapping,
    suite_names,
    with_overrides,
)
from actlab.arena.runner import PlanMismatch, RunExistsError, plan_trials, run_arena
from actlab.arena.store import ArenaStore, read_records, store_path

SRC = str(Path(actlab.__file__).resolve().parents[1])


# ----------------------------------------------------------------------------- fakes (importable by pool workers)
def fake_trial(config, *, on_epoch=None, should_stop=None):
    """A stand-in for run_trial: a result computed from the config, an epoch record per epoch."""
    score = (len(config["activation"]) * 7 + config["seed"] * 3) % 10 / 10
    curve = []
    for epoch in range(1, config.get("epochs", 3) + 1):
        if should_stop is not None and should_stop():
            raise KeyboardInterrupt("stopped")
        record = {"epoch": epoch, "train_loss": 1 / epoch, "val_loss": 1 / epoch, "val_metric": score, "seconds": 0.0}
        curve.append(record)
        if on_epoch is not None:
            on_epoch(record)
    return ok_result(score, curve, pid=os.getpid())


def failing_trial(config, *, on_epoch=None, should_stop=None):
    if config["activation"] == "tanh":
        raise RuntimeError("boom in a user task")
    return fake_trial(config, on_epoch=on_epoch, should_stop=should_stop)


def aborting_trial(config, *, on_epoch=None, should_stop=None):
    if config["activation"] == "tanh" and config["seed"] == 1:
        os.abort()  # SIGABRT, as a crash in native code would
    return fake_trial(config, on_epoch=on_epoch, should_stop=should_stop)


def _fake_plan(activations=("relu", "tanh"), seeds=2, tasks=("spirals",)):
    suite = Suite(name="t", activations=tuple(activations), seeds=tuple(range(seeds)), tasks=tuple(tasks))
    return plan_trials(suite, validate=lambda c: [], normalize=lambda c: {"epochs": 3, **c})


# ----------------------------------------------------------------------------- suites
def test_budget_and_seed_parsing():
    assert parse_budget(20) == parse_budget("20") == Budget(epochs=20)
    assert parse_budget("30s") == Budget(seconds=30.0)
    assert parse_budget("1.5min") == Budget(seconds=90.0)
    assert parse_budget("2h").seconds == 7200
    assert Budget(seconds=30).settings()["time_budget_s"] == 30
    for bad in (0, "0", "3x", "-5s", True, 2.5, "s"):
        with pytest.raises(ValueError, match="budget"):
            parse_budget(bad)
    assert parse_seeds(3) == parse_seeds("3") == (0, 1, 2)
    assert parse_seeds("0,7,42") == parse_seeds([0, 7, 42]) == (0, 7, 42)
    assert parse_seeds("7,") == (7,)
    for bad in (0, -1, "a", [], [1, 1], [-1], "1.5"):
        with pytest.raises(ValueError, match="seeds"):
            parse_seeds(bad)


def test_split_list_respects_brackets_and_quotes():
    assert split_list("relu,elu(alpha=0.5), f(a=1, b=2)") == ["relu", "elu(alpha=0.5)", "f(a=1, b=2)"]
    assert split_list(["relu", "gelu,silu", "g(s='a,b')"]) == ["relu", "gelu", "silu", "g(s='a,b')"]


def test_embedded_default_suite():
    assert "default" in suite_names()
    suite = load_suite("default")
    assert suite.activations == ("relu", "leaky_relu", "elu", "selu", "gelu", "silu", "mish", "tanh", "sigmoid")
    assert len(suite.seeds) == 3 and 2 <= len(suite.tasks) <= 3
    assert suite.baseline == "relu"
    assert suite.n_trials == len(expand_trials(suite)) == 9 * 3 * len(suite.tasks)


def test_a_suite_survives_its_dict_form():
    suite = with_overrides(load_suite("default"), budget="45s", settings={"lr": [0.1, 0.01]}, workers=3)
    assert suite_from_mapping(suite.to_dict(), source=suite.source) == suite


def test_suite_problems_are_reported_all_at_once():
    with pytest.raises(SuiteError) as info:
        suite_from_mapping(
            {
                "activation": ["relu"],
                "tasks": [],
                "seeds": 0,
                "budget": "3 parsecs",
                "workers": 0,
                "grid": {"lr": 0.1, "seed": [1, 2]},
                "task": {"spiral": {"epochs": 2}},
            },
            source="s.toml",
        )
    text = "\n".join(info.value.problems)
    for expected in (
        "unknown key 'activation' in s.toml; did you mean 'activations'?",
        "no 'activations' list",
        "tasks must be a non-empty list",
        "seeds must be a count",
        "budget must be",
        "workers must be a whole number >= 1",
        "[grid] lr must be a non-empty list",
        "[grid] sets 'seed': use the suite's 'seeds' list",
    ):
        assert expected in text
    assert len(info.value.problems) >= 8


def test_unreadable_suite_files(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('activations = ["relu"\n')
    with pytest.raises(SuiteError, match="is not valid TOML"):
        load_suite(bad)
    with pytest.raises(SuiteError, match="does not exist"):
        load_suite(tmp_path / "missing.toml")
    with pytest.raises(SuiteError, match="is a directory"):
        load_suite(str(tmp_path) + "/")
    with pytest.raises(SuiteError, match="did you mean 'default'"):
        load_suite("defualt")


def test_expansion_order_and_precedence():
    suite = suite_from_mapping(
        {
            "activations": ["relu", "gelu"],
            "seeds": [5, 6],
            "tasks": ["spirals", "digits"],
            "budget": 7,
            "params": {"optimizer": "sgd", "epochs": 99, "model_params": {"width": 16, "depth": 2}},
            "grid": {"lr": [0.1, 0.01]},
            "task": {"digits": {"epochs": 3, "model_params": {"width": 32}}},
        }
    )
    configs = expand_trials(suite)
    assert len(configs) == 2 * 2 * 2 * 2
    # seed-major: the first half is a complete comparison for seed 5
    assert [c["seed"] for c in configs] == [5] * 8 + [6] * 8
    assert [(c["task"], c["lr"], c["activation"]) for c in configs[:4]] == [
        ("spirals", 0.1, "relu"),
        ("spirals", 0.1, "gelu"),
        ("spirals", 0.01, "relu"),
        ("spirals", 0.01, "gelu"),
    ]
    spirals, digits = configs[0], configs[4]
    assert spirals["epochs"] == 7 and digits["epochs"] == 3  # budget over [params]; the task table over both
    assert spirals["model_params"] == {"width": 16, "depth": 2}
    assert digits["model_params"] == {"width": 32, "depth": 2}  # dicts merge key by key
    assert spirals["optimizer"] == "sgd"


def test_overrides_replace_what_they_name():
    suite = suite_from_mapping(
        {"activations": ["relu"], "tasks": ["spirals", "digits"], "task": {"digits": {"epochs": 3, "lr": 0.5}}}
    )
    out = with_overrides(suite, budget="30s", settings={"lr": [0.1, 0.01], "init": ["he"]}, tasks=["digits"])
    assert out.budget == Budget(seconds=30.0)
    assert out.task_settings == {"digits": {}}  # the flags replaced the task table's epochs and lr
    assert out.grid == {"lr": (0.1, 0.01)} and out.params == {"init": "he"}
    config = expand_trials(out)[0]
    assert config["time_budget_s"] == 30.0 and config["epochs"] >= 10**6
    with pytest.raises(SuiteError) as info:
        with_overrides(suite, seeds="x", budget="1 fortnight", settings={"activation": ["relu"]})
    assert len(info.value.problems) == 3


# ----------------------------------------------------------------------------- planning (real validation)
def test_plan_reports_every_problem_before_training():
    suite = Suite(
        name="t",
        activations=("relu", "reluu", "gelu"),
        seeds=(0, 1),
        tasks=("spirals", "digitz"),
        params={"lr": -1.0},
    )
    with pytest.raises(SuiteError) as info:
        plan_trials(suite)
    text = "\n".join(info.value.problems)
    assert "unknown activation 'reluu'" in text and "'relu'" in text
    assert "unknown task 'digitz'" in text and "did you mean 'digits'" in text
    assert "lr" in text
    assert len(info.value.problems) == len(set(info.value.problems))  # each problem once, not once per trial


def test_plan_normalises_keys_and_drops_duplicates():
    suite = Suite(
        name="t", activations=("leaky_relu", "leaky_relu(negative_slope=0.01)", "gelu"), seeds=(0,), tasks=("spirals",)
    )
    plan = plan_trials(suite)
    assert [t.config["activation"] for t in plan.trials] == ["leaky_relu", "gelu"]
    assert plan.duplicates == 1 and any("same configuration" in n for n in plan.notes)
    assert plan.baseline == "leaky_relu" and any("baseline 'relu'" in n for n in plan.notes)
    assert all(t.config["epochs"] >= 1 and t.config["init"] == "auto" for t in plan.trials)


# ----------------------------------------------------------------------------- running (fake trials)
def test_run_stores_every_trial_and_resume_repeats_none(tmp_path):
    plan = _fake_plan()
    out = io.StringIO()
    outcome = run_arena(plan, tmp_path, trial_fn=fake_trial, progress="plain", stream=out)
    assert (outcome.ran, outcome.ok, outcome.remaining, outcome.interrupted) == (4, 4, 0, False)
    lines = out.getvalue().splitlines()
    assert any(line.startswith("[1/4] spirals relu seed 0: ok accuracy") for line in lines)
    assert "about 0:00 left" in lines[-1]
    records = read_records(tmp_path)
    assert [(r["config"]["activation"], r["config"]["seed"]) for r in records] == [
        ("relu", 0),
        ("tanh", 0),
        ("relu", 1),
        ("tanh", 1),
    ]
    # the same plan again (a rerun of the same command), with or without resume: reused, nothing trains
    for resume in (False, True):
        again = run_arena(plan, tmp_path, trial_fn=fake_trial, progress="none", resume=resume)
        assert (again.ran, again.already_finished, again.remaining) == (0, 4, 0)
        assert sorted(again.keys) == sorted(t.key for t in plan.trials)
    assert read_records(tmp_path) == records  # nothing rewritten
    bigger = _fake_plan(activations=("relu", "tanh", "gelu"))
    with pytest.raises(PlanMismatch, match="activations: stored relu, tanh; asked relu, tanh, gelu"):
        run_arena(bigger, tmp_path, trial_fn=fake_trial, progress="none", resume=True)
    more = run_arena(bigger, tmp_path, trial_fn=fake_trial, progress="none", extend=True)
    assert (more.ran, more.already_finished) == (2, 4)


def test_failed_trials_are_recorded_and_retried_on_resume(tmp_path):
    """Failed trials are final results: recorded with their error, not run again by a rerun or a resume
    (the same ranking every time); ``retry_failed`` runs them again and the retry replaces the failure."""
    plan = _fake_plan()
    outcome = run_arena(plan, tmp_path, trial_fn=failing_trial, progress="none")
    assert (outcome.ok, outcome.failed, outcome.remaining) == (2, 2, 0)
    failed = [r for r in read_records(tmp_path) if r["result"]["status"] == "failed"]
    assert len(failed) == 2 and "RuntimeError: boom in a user task" in failed[0]["result"]["error"]
    assert "Traceback" in failed[0]["result"]["traceback"]
    for resume in (False, True):
        again = run_arena(plan, tmp_path, trial_fn=fake_trial, progress="none", resume=resume)
        assert (again.ran, again.already_finished, again.remaining) == (0, 4, 0)
    retried = run_arena(plan, tmp_path, trial_fn=fake_trial, progress="none", retry_failed=True)
    assert (retried.ran, retried.remaining) == (2, 0)
    assert {r["result"]["status"] for r in read_records(tmp_path)} == {"ok"}


def test_a_store_with_trials_but_no_plan_needs_resume(tmp_path):
    plan = _fake_plan(seeds=1)
    with ArenaStore(tmp_path) as store:  # written through the API, not by run_arena: no plan stored
        store.put(plan.trials[0].config, {"status": "ok", "final_metric": 0.5}, key=plan.trials[0].key)
    with pytest.raises(RunExistsError, match="holds 1 recorded trial.*no plan.*--resume"):
        run_arena(plan, tmp_path, trial_fn=fake_trial, progress="none")
    outcome = run_arena(plan, tmp_path, trial_fn=fake_trial, progress="none", resume=True)
    assert (outcome.ran, outcome.already_finished) == (1, 1)


def diverging_trial(config, *, on_epoch=None, should_stop=None):
    if config["activation"] == "tanh":
        return {"status": "diverged", "metric": "accuracy", "final_metric": None, "diverged_at_epoch": 1, "curve": []}
    return fake_trial(config, on_epoch=on_epoch, should_stop=should_stop)


def test_diverged_and_failed_trials_are_final_results(tmp_path):
    """A rerun runs neither a diverged nor a failed trial again: both are results, not unfinished work."""
    plan = _fake_plan(activations=("relu", "tanh", "gelu"))

    def mixed(config, *, on_epoch=None, should_stop=None):
        if config["activation"] == "gelu":
            raise ValueError("a failed trial")
        return diverging_trial(config, on_epoch=on_epoch, should_stop=should_stop)

    first = run_arena(plan, tmp_path, trial_fn=mixed, progress="none")
    assert (first.ok, first.diverged, first.failed, first.remaining) == (2, 2, 2, 0)
    ran = []

    def counting(config, *, on_epoch=None, should_stop=None):
        ran.append(config["activation"])
        return fake_trial(config, on_epoch=on_epoch, should_stop=should_stop)

    for resume in (False, True):
        again = run_arena(plan, tmp_path, trial_fn=counting, progress="none", resume=resume)
        assert (again.ran, again.already_finished, again.remaining) == (0, 6, 0)
    assert ran == []
    statuses = sorted((r["config"]["activation"], r["result"]["status"]) for r in read_records(tmp_path))
    assert statuses == [("gelu", "failed")] * 2 + [("relu", "ok")] * 2 + [("tanh", "diverged")] * 2


def test_rich_progress_runs_without_a_terminal(tmp_path):
    out = io.StringIO()
    run_arena(_fake_plan(seeds=1), tmp_path, trial_fn=fake_trial, progress="rich", stream=out)
    assert "spirals tanh seed 0: ok" in out.getvalue()


def _interrupting_trial(config, *, on_epoch=None, should_stop=None):
    """The third trial presses Ctrl-C, then trains until told to stop."""
    if config["activation"] == "tanh" and config["seed"] == 1:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            if should_stop():
                raise KeyboardInterrupt("stopped")
            time.sleep(0.01)
    return fake_trial(config, on_epoch=on_epoch, should_stop=should_stop)


def test_ctrl_c_keeps_finished_trials_and_drops_the_running_one(tmp_path):
    plan = _fake_plan(seeds=3)  # order: relu 0, tanh 0, relu 1, tanh 1 (interrupts), ...
    out = io.StringIO()
    handler = signal.getsignal(signal.SIGINT)
    outcome = run_arena(plan, tmp_path, trial_fn=_interrupting_trial, progress="plain", stream=out)
    assert outcome.interrupted and (outcome.ran, outcome.discarded, outcome.remaining) == (3, 1, 3)
    assert "stopping: finished trials are saved" in out.getvalue()
    assert len(read_records(tmp_path)) == 3
    assert signal.getsignal(signal.SIGINT) is handler  # restored
    rest = run_arena(plan, tmp_path, trial_fn=fake_trial, progress="none", resume=True)
    assert (rest.ran, rest.remaining) == (3, 0)


def test_a_dead_worker_process_loses_only_its_trials(tmp_path):
    """A worker process that dies (here at tanh seed 1) fails only its own trial: the arena goes on with a
    fresh pool, the trial running beside it runs again, every other trial is saved. (Before: WorkerLost
    ended the whole arena.)"""
    plan = _fake_plan(seeds=3)
    outcome = run_arena(plan, tmp_path, workers=2, trial_fn=aborting_trial, progress="none")
    stored = [
        (r["config"]["activation"], r["config"]["seed"], r["result"].get("error")) for r in read_records(tmp_path)
    ]
    assert (outcome.ok, outcome.failed, outcome.remaining, outcome.error) == (5, 1, 0, None), stored
    saved = {(r["config"]["activation"], r["config"]["seed"]): r["result"] for r in read_records(tmp_path)}
    assert len(saved) == 6
    dead = saved.pop(("tanh", 1))
    assert dead["status"] == "failed" and "worker process died" in dead["error"]
    assert "killed by signal SIGABRT" in dead["error"]
    assert {r["status"] for r in saved.values()} == {"ok"}
    again = run_arena(plan, tmp_path, trial_fn=fake_trial, progress="none")  # a final result: not run again
    assert (again.ran, again.remaining) == (0, 0)


def exiting_trial(config, *, on_epoch=None, should_stop=None):
    if config["activation"] == "tanh":
        sys.exit(3)  # a user task that ends "the program"
    return fake_trial(config, on_epoch=on_epoch, should_stop=should_stop)


def test_a_trial_that_calls_sys_exit_is_a_failed_trial(tmp_path):
    plan = _fake_plan()
    outcome = run_arena(plan, tmp_path, trial_fn=exiting_trial, progress="none")
    assert (outcome.ok, outcome.failed, outcome.remaining) == (2, 2, 0)
    failed = [r["result"] for r in read_records(tmp_path) if r["result"]["status"] == "failed"]
    assert len(failed) == 2 and all("the trial called sys.exit(3)" in r["error"] for r in failed)


def test_two_runners_on_one_store_share_the_trials(tmp_path):
    """Two runners started together on one store (as two `actlab arena` commands would be): each trial is
    trained once in all, and both end with every trial finished. (Before: both trained every trial.)"""
    plan = _fake_plan(activations=("relu", "tanh", "gelu", "silu"), seeds=3)
    trained: list[tuple[str, int]] = []
    lock = threading.Lock()

    def slow_trial(config, *, on_epoch=None, should_stop=None):
        with lock:
            trained.append((config["activation"], config["seed"]))
        time.sleep(0.05)
        return fake_trial(config, on_epoch=on_epoch, should_stop=should_stop)

    outcomes = []
    start = threading.Barrier(2)

    def runner() -> None:
        start.wait()
        outcomes.append(run_arena(plan, tmp_path, trial_fn=slow_trial, progress="none"))

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(outcomes) == 2
    assert sorted(trained) == sorted((t.config["activation"], t.config["seed"]) for t in plan.trials)
    assert sum(o.ran for o in outcomes) == 12 and all(o.remaining == 0 for o in outcomes)
    assert all(o.ran + o.by_others == 12 for o in outcomes)  # each saw the other's trials finish
    with ArenaStore(tmp_path, create=False) as store:
        assert store.claims() == {} and store.count() == 12


def test_a_claim_of_a_dead_runner_is_taken_over(tmp_path):
    """A claim whose runner is gone (its process exited; or it expired) does not block the trial."""
    plan = _fake_plan(seeds=1)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    with ArenaStore(tmp_path) as store:
        store.setdefault_meta("plan", {"suite": plan.suite.to_dict(), "keys": [t.key for t in plan.trials]})
        dead = ArenaStore(tmp_path, owner=f"{socket.gethostname()}:{dead_pid}:dead")
        assert dead.claim(plan.trials[0].key) is None
        far = ArenaStore(tmp_path, owner="another-host:1:x")
        assert far.claim(plan.trials[1].key, ttl=-1) is None  # expired at once
        live = ArenaStore(tmp_path, owner="another-host:2:y")
        assert live.claim(plan.trials[1].key) is None  # an expired claim is free: taken
        assert store.claim(plan.trials[1].key) == "another-host:2:y"  # a live one is not
        live.release()
        for s in (dead, far, live):
            s.close()
    outcome = run_arena(plan, tmp_path, trial_fn=fake_trial, progress="none")
    assert (outcome.ran, outcome.remaining) == (2, 0)


# ----------------------------------------------------------------------------- real trials
def test_divergence_is_a_result_and_pool_runs_match_in_process_runs(tmp_path):
    """Real trials, in this process and in a pool of 2: the same results (determinism), and a diverged
    trial is a stored result; the pool's results came from other processes."""
    from actlab.arena.trial import without_measurements

    suite = Suite(
        name="t",
        activations=("relu", "tanh"),
        seeds=(0,),
        tasks=("spirals",),
        budget=Budget(epochs=2),
        params={"task_params": {"n_samples": 200}, "optimizer": "sgd"},
        grid={"lr": (0.01, 1e9)},  # SGD at lr 1e9 sends relu's loss to inf in the first steps
    )
    plan = plan_trials(suite)
    inline = run_arena(plan, tmp_path / "inline", threads=1, workers=1, progress="none")
    pooled = run_arena(plan, tmp_path / "pool", threads=1, workers=2, progress="none")
    assert (inline.ok, inline.diverged) == (pooled.ok, pooled.diverged)
    assert inline.ok + inline.diverged == 4 and inline.failed == 0
    a = {r["key"]: without_measurements(r["result"]) for r in read_records(tmp_path / "inline")}
    b = {r["key"]: without_measurements(r["result"]) for r in read_records(tmp_path / "pool")}
    assert a == b
    by_arm = {(r["config"]["activation"], r["config"]["lr"]): r["result"] for r in read_records(tmp_path / "pool")}
    relu = by_arm[("relu", 1e9)]
    assert relu["status"] == "diverged" and relu["diverged_at_epoch"] == 1 and relu["final_metric"] is None
    assert by_arm[("relu", 0.01)]["status"] == "ok"
    pids = {int(r["worker"].rsplit(":", 1)[1]) for r in read_records(tmp_path / "pool")}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


_KILLED_RUN = textwrap.dedent(
    """
    import sys, time
    from actlab.arena.config import Suite
    from actlab.arena.runner import plan_trials, run_arena

    def slow_trial(config, *, on_epoch=None, should_stop=None):
        time.sleep(0.4)
        return {"status": "ok", "metric": "accuracy", "final_metric": config["seed"] / 10, "curve": []}

    if __name__ == "__main__":
        suite = Suite(name="k", activations=("relu", "tanh"), seeds=tuple(range(6)), tasks=("spirals",))
        plan = plan_trials(suite, validate=lambda c: [], normalize=dict)
        run_arena(plan, sys.argv[1], trial_fn=slow_trial, progress="plain")
    """
)


_ORPHAN_RUN = textwrap.dedent(
    """
    import os, sys, time
    from actlab.arena.config import Suite
    from actlab.arena.runner import plan_trials, run_arena

    def slow_trial(config, *, on_epoch=None, should_stop=None):
        open(os.path.join(os.environ["PIDS_DIR"], str(os.getpid())), "w").close()
        time.sleep(120)
        return {"status": "ok", "final_metric": 0.5, "curve": []}

    if __name__ == "__main__":
        suite = Suite(name="o", activations=("relu", "tanh"), seeds=(0, 1), tasks=("spirals",))
        plan = plan_trials(suite, validate=lambda c: [], normalize=dict)
        run_arena(plan, sys.argv[1], workers=2, trial_fn=slow_trial, progress="none")
    """
)


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_bytes()
            except OSError:
                continue
            if int(stat.rpartition(b")")[2].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()[0] != b"Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_arena(tmp_path):
    """kill -9 of the arena leaves no orphan: its worker processes (and the resource tracker) end within
    seconds. (Before: they stayed alive, 366 MB each.)"""
    script = tmp_path / "orphans.py"
    script.write_text(_ORPHAN_RUN)
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    env = {
        **os.environ,
        "PIDS_DIR": str(pids_dir),
        "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "run")], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(list(pids_dir.iterdir())) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        workers = {int(p.name) for p in pids_dir.iterdir()}
        assert len(workers) == 2 and all(_alive(p) for p in workers)
        children = _children(proc.pid)
        assert workers <= children
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in children if _alive(p)]
    for pid in left:  # do not leave them behind for the next test either
        os.kill(pid, signal.SIGKILL)
    assert not left, f"orphans after kill -9 of the arena: {left}"


def test_sigkill_mid_trial_loses_only_that_trial(tmp_path):
    script = tmp_path / "killed_run.py"
    script.write_text(_KILLED_RUN)
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, str(script), str(run_dir)], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    saved = 0
    while saved < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if store_path(run_dir).exists():
            try:
                saved = len(read_records(run_dir))
            except Exception:  # the store is being created
                saved = 0
    time.sleep(0.2)  # now inside the next trial
    proc.kill()
    proc.wait()
    before = read_records(run_dir)
    assert 3 <= len(before) < 12
    with sqlite3.connect(store_path(run_dir)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    suite = Suite(name="k", activations=("relu", "tanh"), seeds=tuple(range(6)), tasks=("spirals",))
    plan = plan_trials(suite, validate=lambda c: [], normalize=dict)
    ran = []

    def counting_trial(config, *, on_epoch=None, should_stop=None):
        ran.append((config["activation"], config["seed"]))
        return {"status": "ok", "metric": "accuracy", "final_metric": config["seed"] / 10, "curve": []}

    outcome = run_arena(plan, run_dir, trial_fn=counting_trial, progress="none", resume=True)
    after = read_records(run_dir)
    assert outcome.remaining == 0 and len(after) == 12
    assert len(ran) == 12 - len(before)  # no finished trial ran again
    assert {(r["config"]["activation"], r["config"]["seed"]) for r in before}.isdisjoint(ran)
    assert after[: len(before)] == before  # and none was lost or rewritten
    with ArenaStore(run_dir, create=False) as store:
        assert len(store.get_meta("plan")["keys"]) == 12


# ----------------------------------------------------------------------------- peak memory per trial
def _big_trial(config, *, on_epoch=None, should_stop=None):
    block = bytearray(b"\x01") * (256 * 2**20)  # 256 MiB, every page written: resident
    del block
    return {"status": "ok", "final_metric": 0.5, "curve": []}


def _small_trial(config, *, on_epoch=None, should_stop=None):
    return {"status": "ok", "final_metric": 0.5, "curve": []}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the per-trial reset is Linux's /proc/self/clear_refs")
def test_peak_memory_is_the_trials_own_not_the_workers_lifetime_high_water_mark():
    from actlab.arena.backends import execute_trial

    big, _ = execute_trial({}, _big_trial)
    small, _ = execute_trial({}, _small_trial)  # the same process right after: its lifetime mark is the big one
    assert big["peak_memory_bytes"] - small["peak_memory_bytes"] > 200 * 2**20
    assert small["peak_memory_scope"] == big["peak_memory_scope"]
    assert small["peak_memory_scope"].startswith("peak resident memory (RSS) of the process during this trial")


# ----------------------------------------------------------------------------- the command line: reruns, plans
def _arena(argv, trial_fn=fake_trial):
    from actlab.arena.cli import execute
    from actlab.cli import build_parser

    out, err = io.StringIO(), io.StringIO()
    status = execute(build_parser().parse_args(["arena", *argv]), trial_fn=trial_fn, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_the_readme_command_run_twice_reuses_the_trials_and_prints_the_same_ranking(tmp_path, monkeypatch):
    """`actlab arena`, then `actlab arena` again: exit 0 both times, nothing trains the second time, the
    same ranking. (Before: exit 2, "already holds 81 recorded trials".)"""
    monkeypatch.chdir(tmp_path)
    ran = []

    def counting(config, *, on_epoch=None, should_stop=None):
        ran.append(config["activation"])
        return fake_trial(config, on_epoch=on_epoch, should_stop=should_stop)

    # in this process, to count; no report files, to be quick (neither changes the plan)
    first = _arena(["--workers", "1", "--no-report"], counting)
    assert first[0] == 0, first[2]
    n = len(ran)
    assert n == 81
    second = _arena(["--workers", "1", "--no-report"], counting)
    assert second[0] == 0, second[2]
    assert len(ran) == n  # nothing trained again
    assert "81 trials planned, 81 already finished, 0 to run" in second[2]
    assert second[1] == first[1]  # the same ranking (and the same report path)


def test_a_different_plan_on_a_stored_run_is_refused_with_its_differences(tmp_path):
    """`--resume` with other flags (here a 2-epoch budget and tanh alone on a 3-epoch relu/tanh run) names the
    differences, trains nothing and keeps the stored plan. (Before: ranked 2-epoch trials beside 3-epoch
    ones, made tanh the baseline and replaced the stored plan.)"""
    base = ["--activations", "relu", "tanh", "--tasks", "spirals", "--seeds", "2", "--budget", "3"]
    base += ["--out", str(tmp_path), "--no-report", "--format", "json", "--workers", "1"]
    assert _arena(base)[0] == 0
    with ArenaStore(tmp_path, create=False) as store:
        plan_before = store.get_meta("plan")
    status, out, err = _arena(["--resume", "--out", str(tmp_path), "--activations", "tanh", "--budget", "2"])
    assert status == 2 and out == ""
    assert "holds another plan" in err and "activations: stored relu, tanh; asked tanh" in err
    assert "budget: stored 3; asked 2" in err and "--extend" in err
    assert "Traceback" not in err
    with ArenaStore(tmp_path, create=False) as store:
        assert store.get_meta("plan") == plan_before and store.count() == 4
    # --extend: more arms under the same budget are added and ranked with the stored ones ...
    extend = ["--extend", "--out", str(tmp_path), "--no-report", "--workers", "1"]
    status, out, err = _arena([*extend, "--activations", "gelu", "--format", "json"])
    assert status == 0, err
    assert sorted(row["activation"] for row in json.loads(out)) == ["gelu", "relu", "tanh"]
    # ... but never another budget
    status, out, err = _arena([*extend, "--activations", "silu", "--budget", "2"])
    assert status == 2 and "budget: stored 3; asked 2" in err and "never ranked together" in err
    # the original command again: its own trials, the same ranking as the first time
    status, out, err = _arena(base)
    assert status == 0 and sorted(row["activation"] for row in json.loads(out)) == ["relu", "tanh"]


def test_a_full_disk_mid_run_is_a_sentence_with_the_resume_command(tmp_path, monkeypatch):
    from actlab.arena import store as store_module

    real_put = store_module.ArenaStore.put
    calls = []

    def put_then_full(self, config, result, **kwargs):
        calls.append(1)
        if len(calls) > 2:  # what SQLite raises when the disk fills up (through the store's own handling)
            try:
                raise sqlite3.OperationalError("database or disk is full")
            except sqlite3.OperationalError as err:
                self._raise_write_problem(err)
        return real_put(self, config, result, **kwargs)

    monkeypatch.setattr(store_module.ArenaStore, "put", put_then_full)
    argv = ["--activations", "relu", "tanh", "--tasks", "spirals", "--seeds", "2", "--out", str(tmp_path)]
    status, out, err = _arena([*argv, "--no-report", "--workers", "1"])
    assert status == 1 and "Traceback" not in err
    assert "is full" in err and "free some space" in err
    assert f"continue with: actlab arena --resume --out {tmp_path}" in err
    assert len(read_records(tmp_path)) == 2


def test_resume_on_an_empty_store_file_says_it_is_empty(tmp_path):
    store_path(tmp_path).touch()
    status, out, err = _arena(["--resume", "--out", str(tmp_path), "--workers", "1"])
    assert status == 2 and "is empty (0 bytes)" in err and "Traceback" not in err
    assert store_path(tmp_path).stat().st_size == 0  # not started over in it


_ABORTING_TASK = textwrap.dedent(
    """
    import os
    import numpy as np

    def blobs(seed):
        if seed == 1:
            os.abort()  # a crash in native code, as far as the arena can tell
        rng = np.random.default_rng(seed)
        y = (np.arange(40) % 2).astype(np.int64)
        x = (rng.standard_normal((40, 3)) + 2.0 * y[:, None]).astype(np.float32)
        return {"data": (x[:30], y[:30], x[30:], y[30:])}
    """
)


def test_a_user_task_that_aborts_fails_its_trial_even_with_one_worker(tmp_path, monkeypatch):
    """With --workers 1 trials run in the arena's own process, but a user task's trials run in a worker
    process: its os.abort() fails that trial, the arena goes on and stores the others."""
    pytest.importorskip("torch")
    (tmp_path / "arena_aborting_task.py").write_text(_ABORTING_TASK)
    monkeypatch.syspath_prepend(str(tmp_path))
    suite = Suite(
        name="u",
        activations=("relu",),
        seeds=(0, 1, 2),
        tasks=("arena_aborting_task:blobs",),
        budget=Budget(epochs=1),
        params={"model": "mlp", "model_params": {"width": 8, "depth": 1}},
    )
    outcome = run_arena(plan_trials(suite), tmp_path / "run", workers=1, threads=1, progress="none")
    assert (outcome.ok, outcome.failed, outcome.remaining) == (2, 1, 0)
    by_seed = {r["config"]["seed"]: r["result"] for r in read_records(tmp_path / "run")}
    assert by_seed[1]["status"] == "failed" and "killed by signal SIGABRT" in by_seed[1]["error"]
    assert by_seed[0]["status"] == by_seed[2]["status"] == "ok"
