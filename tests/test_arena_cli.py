"""``actlab arena``: bad input reported at once, run directories, a real end-to-end run, Ctrl-C and resume."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import actlab
from _arena_fakes import one_epoch_result
from actlab.arena.store import read_records, store_path
from actlab.cli import main

SRC = str(Path(actlab.__file__).resolve().parents[1])


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}


def test_declaring_the_arguments_imports_no_torch():
    code = (
        "import argparse, sys; from actlab.arena import cli; parser = argparse.ArgumentParser(); "
        "cli.add_arguments(parser); parser.parse_args([]); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bad_input_is_reported_at_once_and_nothing_runs(tmp_path, capsys):
    suite = tmp_path / "suite.toml"
    suite.write_text('name = "x"\nactivations = ["relu", "gelu"]\ntasks = ["spirals"]\nbugdet = 3\n')
    out = tmp_path / "run"
    argv = ["arena", "--suite", str(suite), "--activations", "relu", "reluu", "--tasks", "spirals", "digitz"]
    argv += ["--budget", "3x", "--set", "lr=-1", "--set", "batch_size=0", "--address", "h:1", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("actlab arena: 7 problems, nothing was run:")
    for expected in (
        "unknown key 'bugdet'",
        "did you mean 'budget'",
        "--budget: budget must be a whole number of epochs",
        "--address names a Ray cluster",
        "unknown activation 'reluu'",
        "unknown task 'digitz'; did you mean 'digits'",
        "lr: -1",
        "batch_size",
    ):
        assert expected in err
    assert not out.exists()


@pytest.mark.parametrize("suite", ["missing.toml", "broken.toml", "."], ids=["missing", "not TOML", "directory"])
def test_unreadable_suite_file(tmp_path, capsys, suite):
    (tmp_path / "broken.toml").write_text("activations = [\n")
    assert main(["arena", "--suite", str(tmp_path / suite) + ("/" if suite == "." else ""), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"does not exist|is not valid TOML|is a directory", err)


def test_default_run_directories(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["arena", "--dry-run", "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["run_dir"] == os.path.join("arena-runs", "default") and plan["trials"] == 9 * 3 * len(plan["tasks"])
    names = []
    for _ in range(2):
        assert main(["arena", "--dry-run", "--format", "json", "--activations", "relu", "gelu"]) == 0
        names.append(json.loads(capsys.readouterr().out)["run_dir"])
    assert names[0] == names[1] and re.fullmatch(r"arena-runs[/\\]default-[0-9a-f]{8}", names[0])
    assert not (tmp_path / "arena-runs").exists()  # a dry run writes nothing


def test_a_foreign_store_is_refused(tmp_path, capsys):
    store_path(tmp_path).write_text("my notes\n")
    assert main(["arena", "--activations", "relu", "--tasks", "spirals", "--seeds", "1", "--out", str(tmp_path)]) == 2
    assert "not an SQLite database" in capsys.readouterr().err
    assert store_path(tmp_path).read_text() == "my notes\n"


def test_end_to_end_run_report_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["arena", "--activations", "relu", "tanh", "--tasks", "spirals", "--seeds", "2", "--budget", "2"]
    argv += ["--set", 'task_params={"n_samples": 200}', "--workers", "1", "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "4 trials planned, 0 already finished, 4 to run" in captured.err
    assert re.search(r"spirals +(│ +)?1 +(│ +)?(relu|tanh)", captured.out)  # the ranking (boxed or compact)
    report = out / "report" / "report.html"
    assert f"report: {report}" in captured.out and report.stat().st_size > 10_000
    assert len(read_records(out)) == 4

    assert main(argv) == 0  # the same command again reuses the finished trials (issue 14: was exit 2)
    again = capsys.readouterr()
    assert "4 trials planned, 4 already finished, 0 to run" in again.err and again.out == captured.out

    assert main([*argv, "--resume", "--format", "json", "--no-report"]) == 0
    captured = capsys.readouterr()
    assert "4 already finished, 0 to run" in captured.err
    rows = json.loads(captured.out)  # stdout holds only the ranking
    assert sorted(r["activation"] for r in rows) == ["relu", "tanh"]


_INTERRUPTED_RUN = textwrap.dedent(
    """
    import sys, time
    from actlab.cli import build_parser
    from actlab.arena.cli import execute

    def slow_trial(config, *, on_epoch=None, should_stop=None):
        for step in range(10):
            if should_stop():
                raise KeyboardInterrupt("stopped")
            time.sleep(0.05)
        score = 0.5 + config["seed"] / 100 + len(config["activation"]) / 1000
        curve = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0, "val_metric": score, "seconds": 0.5}]
        return {"status": "ok", "metric": "accuracy", "higher_is_better": True, "final_metric": score,
                "best_metric": score, "best_epoch": 1, "epochs_run": 1, "curve": curve, "seconds_per_epoch": 0.5}

    if __name__ == "__main__":
        args = build_parser().parse_args(sys.argv[1:])
        sys.exit(execute(args, trial_fn=slow_trial))
    """
)


def test_ctrl_c_saves_finished_trials_and_says_how_to_resume(tmp_path):
    """SIGINT to a real `actlab arena` driving 2 worker processes; then the printed resume command finishes it."""
    script = tmp_path / "interrupted_run.py"
    script.write_text(_INTERRUPTED_RUN)
    out = tmp_path / "run"
    argv = ["arena", "--activations", "relu", "tanh", "elu", "--tasks", "spirals", "--seeds", "4"]
    argv += ["--workers", "2", "--threads", "1", "--out", str(out), "--no-report"]
    proc = subprocess.Popen(
        [sys.executable, str(script), *argv], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        try:
            if len(read_records(out)) >= 2:
                break
        except Exception:  # no store yet
            pass
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "stopping: finished trials are saved" in stderr
    command = re.search(r"continue with: (.+)", stderr).group(1)
    assert command.startswith(f"actlab arena --resume --out {out}")
    saved = read_records(out)
    assert 2 <= len(saved) < 12
    finished_lines = re.findall(r"\] spirals \S+ seed \d+: ok", stderr)
    assert len(finished_lines) == len(saved)  # what was reported finished is exactly what was saved

    resumed = subprocess.run(
        [sys.executable, str(script), *shlex.split(command)[1:], "--no-report", "--format", "json"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(saved)} already finished, {12 - len(saved)} to run" in resumed.stderr
    assert len(read_records(out)) == 12 and read_records(out)[: len(saved)] == saved
    assert {row["activation"] for row in json.loads(resumed.stdout)} == {"relu", "tanh", "elu"}


# ----------------------------------------------------------------------------- progress and ETA
def test_the_first_eta_comes_from_measured_trial_times(monkeypatch):
    """40 trials of 5 s on 2 workers after 100 s of start-up (importing torch, building kernels): when the
    first trial ends, 95 s are left. Time since the start / trials done said 39 x 105 s (43x too long)."""
    import io
    from types import SimpleNamespace

    from actlab.arena import runner

    now = [0.0]
    monkeypatch.setattr(runner.time, "monotonic", lambda: now[0])
    stream = io.StringIO()
    progress = runner._Progress(40, stream)
    trials = [SimpleNamespace(key=f"k{i}", label=f"trial {i}", config={}) for i in range(40)]
    result = {"status": "ok", "metric": "accuracy", "final_metric": 0.9}
    # The schedule, simulated independently: worker w runs trials w, w+2, ... back to back from t = 100.
    events = []
    for i, trial in enumerate(trials):
        start = 100.0 + 5.0 * (i // 2)
        events += [(start, 1, trial), (start + 5.0, 0, trial)]
    end_of_run = max(t for t, _, _ in events)
    etas = []
    for t, is_start, trial in sorted(events, key=lambda e: (e[0], e[1])):
        now[0] = t
        if is_start:
            progress.started(trial, "w")
        else:
            progress.finished(trial, result)
            match = re.search(r"about (\d+):(\d\d) left", stream.getvalue().splitlines()[-1])
            etas.append((t, int(match.group(1)) * 60 + int(match.group(2)) if match else None))
    first_time, first_eta = etas[0]
    assert first_eta is not None and abs(first_eta - (end_of_run - first_time)) <= 0.1 * (end_of_run - first_time)
    for t, eta in etas[:-2]:  # every later estimate within 10 % (or 5 s) of the truth too
        assert eta is not None and abs(eta - (end_of_run - t)) <= max(5, 0.1 * (end_of_run - t)), (t, eta)


def test_no_eta_before_a_trial_has_been_measured(monkeypatch):
    import io
    from types import SimpleNamespace

    from actlab.arena import runner

    stream = io.StringIO()
    progress = runner._Progress(3, stream)
    progress.finished(SimpleNamespace(key="a", label="a", config={}), None, "finished meanwhile by another process")
    assert progress.seconds_left() is None and "left" not in stream.getvalue()


def _quick_trial(config, *, on_epoch=None, should_stop=None):
    return one_epoch_result(0.5 + config["seed"] / 100 + len(config["activation"]) / 1000, 0.01)


@pytest.mark.parametrize("fmt", ["md", "json", "table"])
def test_progress_goes_to_stderr_whatever_the_format(tmp_path, fmt):
    import io

    from actlab.arena.cli import execute
    from actlab.cli import build_parser

    argv = ["arena", "--activations", "relu", "tanh", "--tasks", "spirals", "--seeds", "2", "--workers", "1"]
    args = build_parser().parse_args([*argv, "--out", str(tmp_path / "run"), "--no-report", "--format", fmt])
    out, err = io.StringIO(), io.StringIO()
    assert execute(args, trial_fn=_quick_trial, stdout=out, stderr=err) == 0
    assert len(re.findall(r"^\[\d/4\] spirals \S+ seed \d: ok", err.getvalue(), re.M)) == 4, err.getvalue()
    assert "[1/4]" not in out.getvalue()
    if fmt == "json":
        json.loads(out.getvalue())


def test_the_terminal_bar_shows_the_measured_eta(monkeypatch):
    import io
    from types import SimpleNamespace

    from actlab.arena import runner

    now = [1000.0]
    monkeypatch.setattr(runner.time, "monotonic", lambda: now[0])
    progress = runner._RichProgress(5, io.StringIO())
    try:
        overall = next(t for t in progress.bars.tasks if t.id == progress.overall)
        eta = progress.bars.columns[-1]
        assert eta.render(overall).plain == ""  # nothing measured yet: no guess
        trials = [SimpleNamespace(key=k, label=k, config={}) for k in "ab"]
        for trial in trials:
            progress.started(trial, "w")
        now[0] += 60.0
        progress.finished(trials[0], {"status": "ok", "final_metric": 0.5})
        # 4 trials left at 60 s each, 2 at a time: 2 minutes
        assert eta.render(overall).plain == "ETA 2:00"
        now[0] += 30.0
        assert eta.render(overall).plain == "ETA 1:30"  # counts down between trials
    finally:
        progress.close()
