"""No code from data (issue 14, item 1), bounded resources (item 2), user tasks as users run them (issue 15, item 6).

Every attack uses a module that touches a marker file when imported and another when its function
is called: a test asserts the markers are absent to prove that no user code ran.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from _arena_fakes import one_epoch_result
from actlab.cli import build_parser, main

TASK_MODULE = textwrap.dedent(
    """
    from pathlib import Path

    import numpy as np

    HERE = Path(__file__).parent
    (HERE / "IMPORTED").touch()


    def data_only(seed=0):
        (HERE / "CALLED").touch()
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((40, 3)).astype(np.float32)
        y = (x[:, 0] > 0).astype(np.int64)
        return {"data": (x[:30], y[:30], x[30:], y[30:])}


    def attack(command="", seed=0):
        (HERE / "CALLED").touch()
        return {"data": None}
    """
)


@pytest.fixture
def task_dir(tmp_path, monkeypatch):
    """A working directory holding a user task module (not on sys.path: the arena must find it there)."""
    name = "trust_user_tasks_mod"
    (tmp_path / f"{name}.py").write_text(TASK_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # whatever the arena appends is undone
    monkeypatch.delitem(sys.modules, name, raising=False)
    yield tmp_path, name
    sys.modules.pop(name, None)


def _ran(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name in ("IMPORTED", "CALLED"))


def _fake_trial(config, *, on_epoch=None, should_stop=None):
    return one_epoch_result(0.5 + config["seed"] / 100, 0.1)


LEAN = ["--activations", "relu", "--seeds", "1", "--workers", "1"]  # one trial, in this process


def _execute(argv: list[str], capsys, lean: bool = True) -> tuple[int, str, str]:
    from actlab.arena.cli import execute

    args = build_parser().parse_args(["arena", *(LEAN if lean else []), *argv])
    code = execute(args, trial_fn=_fake_trial)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ----------------------------------------------------------------------------- item 1: no code from data
def test_a_suite_file_naming_a_user_task_needs_trust_code(task_dir, capsys):
    folder, mod = task_dir
    (folder / "suite.toml").write_text(f'name = "s"\nactivations = ["relu"]\ntasks = ["{mod}:data_only"]\n')
    argv = ["--suite", "suite.toml", "--set", "model=mlp", "--budget", "1", "--out", "run", "--no-report"]
    code, _, err = _execute(argv, capsys)
    assert code == 2
    assert f"suite.toml names the user task '{mod}:data_only'" in err
    assert f"import module '{mod}'" in err and "call data_only(**task_params)" in err
    assert "add --trust-code" in err
    assert _ran(folder) == [] and not (folder / "run").exists()
    # --trust-code with --dry-run: allowed, and still nothing runs
    code, out, _ = _execute([*argv, "--trust-code", "--dry-run"], capsys)
    assert code == 0 and "not imported; nothing ran" in out and _ran(folder) == []
    # trusted, a real run imports and calls it
    code, _, _ = _execute([*argv, "--trust-code"], capsys)
    assert code == 0 and _ran(folder) == ["CALLED", "IMPORTED"]


def test_a_stored_plan_naming_a_user_task_needs_trust_code_on_resume(task_dir, capsys):
    """Someone else's run directory whose plan was edited to name code: --resume refuses it."""
    from actlab.arena.config import Suite
    from actlab.arena.store import ArenaStore

    folder, mod = task_dir
    suite = Suite(name="theirs", activations=("relu",), seeds=(0,), tasks=(f"{mod}:attack",))
    suite = Suite(**{**suite.__dict__, "params": {"task_params": {"command": "touch PWNED"}, "model": "mlp"}})
    with ArenaStore(folder / "theirs") as store:
        store.set_meta("plan", {"suite": suite.to_dict(), "keys": []})
    for extra in ([], ["--dry-run"]):
        code, _, err = _execute(["--resume", "--out", "theirs", *extra], capsys, lean=False)
        assert code == 2, err
        assert f"the run in theirs names the user task '{mod}:attack'" in err and "--trust-code" in err
    assert _ran(folder) == []


def test_the_issue_attacks_from_the_command_line_run_nothing(task_dir, capsys):
    folder, _ = task_dir
    marker = folder / "PWNED"
    for task in ("os:system", "subprocess:getoutput", "posix:system"):
        params = json.dumps({"command" if task != "subprocess:getoutput" else "cmd": f"touch {marker}"})
        code, _, err = _execute(["--tasks", task, "--set", f"task_params={params}", "--out", "r"], capsys)
        assert code == 2 and "part of Python's standard library, not a task module" in err
    # a suite file: refused twice over, even with --trust-code
    (folder / "evil.toml").write_text(
        'activations = ["relu"]\ntasks = ["subprocess:getoutput"]\n'
        f'[params]\ntask_params = {{ cmd = "touch {marker}" }}\n'
    )
    code, _, err = _execute(["--suite", "evil.toml", "--trust-code", "--out", "r"], capsys)
    assert code == 2 and "standard library" in err
    assert not marker.exists() and not (folder / "r").exists()


def test_dry_run_finds_a_named_task_without_importing_it(task_dir, capsys):
    folder, mod = task_dir
    code, out, _ = _execute(["--tasks", f"{mod}:data_only", "--set", "model=mlp", "--dry-run"], capsys)
    assert code == 0, out
    assert f"user task {mod}:data_only: 'data_only' is defined in {folder / mod}.py (not imported; nothing ran)" in out
    assert "a dry run calls no task function" in out
    code, _, err = _execute(["--tasks", f"{mod}:missing", "--dry-run"], capsys)
    assert code == 2 and f"module '{mod}' has no attribute 'missing'" in err
    assert _ran(folder) == [] and mod not in sys.modules


def test_dry_run_does_not_run_a_parent_package(tmp_path, monkeypatch, capsys):
    """pkg.sub:f is found below pkg without importing pkg (whose __init__ would run)."""
    pkg = tmp_path / "trust_pkg_q"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(f"open({str(tmp_path / 'IMPORTED')!r}, 'w').close()\n")
    (pkg / "sub.py").write_text("def make(seed=0):\n    return {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    code, out, _ = _execute(["--tasks", "trust_pkg_q.sub:make", "--set", "model=mlp", "--dry-run"], capsys)
    assert code == 0 and "'make' is defined in" in out
    assert _ran(tmp_path) == [] and "trust_pkg_q" not in sys.modules


def test_report_never_imports_user_code(task_dir, capsys):
    folder, mod = task_dir
    argv = ["--tasks", f"{mod}:data_only", "--set", "model=mlp", "--out", "run", "--no-report", "--quiet"]
    code, _, _ = _execute(argv, capsys)
    assert code == 0
    for name in ("IMPORTED", "CALLED"):
        (folder / name).unlink()
    sys.modules.pop(mod, None)
    assert main(["report", "run", "--format", "all"]) == 0
    assert _ran(folder) == [] and mod not in sys.modules


# ----------------------------------------------------------------------------- issue 15 item 6
def test_the_working_directory_is_importable(task_dir):
    from actlab.arena.tasks import build_task

    folder, mod = task_dir
    assert str(folder) not in sys.path  # as for the `actlab` console script
    data = build_task(f"{mod}:data_only", {}, seed=1)
    assert data.x_train.shape == (30, 3) and data.model_factory is None


def test_a_data_only_task_without_a_model_is_refused_before_training(task_dir, capsys):
    folder, mod = task_dir
    trained = []

    def counting_trial(config, **kwargs):
        trained.append(config)
        return _fake_trial(config, **kwargs)

    from actlab.arena.cli import execute

    args = build_parser().parse_args(["arena", *LEAN, "--tasks", f"{mod}:data_only", "--out", "run", "--quiet"])
    assert execute(args, trial_fn=counting_trial) == 2
    err = capsys.readouterr().err
    assert err.startswith("actlab arena: 1 problem, nothing was trained:")
    assert f"user task '{mod}:data_only' returns data but no 'model' factory" in err
    assert "--set model=mlp" in err
    assert trained == [] and not (folder / "run").exists()
    args = build_parser().parse_args(
        ["arena", *LEAN, "--tasks", f"{mod}:data_only", "--set", "model=mlp", "--out", "run"]
    )
    assert execute(args, trial_fn=counting_trial) == 0 and len(trained) == 1


# ----------------------------------------------------------------------------- item 2: bounded resources
def _dry(argv: list[str], capsys) -> tuple[int, str]:
    code = main(["arena", "--dry-run", "--out", "unused", *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_seeds_are_bounded_before_they_are_made(tmp_path, capsys):
    from actlab.arena.config import parse_seeds

    with pytest.raises(ValueError, match="at most 1,000"):
        parse_seeds(1_000_000)
    with pytest.raises(ValueError, match="at most 1,000"):
        parse_seeds(list(range(1001)))
    with pytest.raises(ValueError, match="from 0 to 2"):
        parse_seeds([0, 2**64])  # torch.manual_seed takes 64 bits: refused here, not in every trial
    for seeds in ("10000000000", "1000000", "1e10"):
        code, text = _dry(["--seeds", seeds, "--activations", "relu", "--tasks", "spirals"], capsys)
        assert code == 2 and "--seeds: " in text and "Traceback" not in text
    suite = tmp_path / "many.toml"
    suite.write_text('activations = ["relu"]\ntasks = ["spirals"]\nseeds = 1000000\n')
    code, text = _dry(["--suite", str(suite)], capsys)
    assert code == 2 and "too many seeds (1,000,000); the arena runs at most 1,000 (give a smaller count)" in text


def test_trials_are_bounded(capsys):
    lrs = [str(0.001 * (i + 1)) for i in range(13)]
    argv = ["--activations", "relu", "gelu", "--tasks", "spirals", "--seeds", "500", "--lr", *lrs]
    code, text = _dry(argv, capsys)
    assert code == 2 and "the plan has 13,000 trials (more than 10,000" in text and "--force" in text
    # past the hard limit --force does not help: the plan's own list would not fit
    acts = [f"leaky_relu(negative_slope={0.01 * (i + 1):g})" for i in range(40)]
    lrs = [str(0.001 * (i + 1)) for i in range(30)]
    argv = ["--activations", *acts, "--tasks", "spirals", "--seeds", "1000", "--lr", *lrs, "--force"]
    code, text = _dry(argv, capsys)
    assert code == 2 and "1,200,000 trials, more than the arena can hold (1,000,000)" in text


def test_workers_are_capped_at_the_cores(monkeypatch, tmp_path, capsys):
    from actlab.arena import limits

    monkeypatch.setattr(limits, "_cpus", lambda: 2)
    base = ["--activations", "relu", "--tasks", "spirals"]
    code, text = _dry([*base, "--workers", "100000"], capsys)
    assert code == 0
    assert "note: --workers asks for 100,000 workers; this machine has 2 CPU cores, so 2 run at once" in text
    assert "add --force" in text
    code, text = _dry([*base, "--workers", "2"], capsys)
    assert code == 0 and "note:" not in text
    code, text = _dry([*base, "--workers", "3", "--force"], capsys)
    assert code == 0 and "note:" not in text
    suite = tmp_path / "busy.toml"
    suite.write_text('activations = ["relu"]\ntasks = ["spirals"]\nworkers = 64\n')
    code, text = _dry(["--suite", str(suite), "--format", "json"], capsys)
    assert code == 0 and json.loads(text)["notes"] == [
        f"workers = 64 in {suite} asks for 64 workers; this machine has 2 CPU cores, so 2 run at once "
        "(add --force to start more)"
    ]
    # a real run starts that many worker processes (here: one core, two trials)
    monkeypatch.setattr(limits, "_cpus", lambda: 1)
    monkeypatch.chdir(tmp_path)
    from actlab.arena.cli import execute

    args = build_parser().parse_args(["arena", *base, "--seeds", "2", "--workers", "8", "--out", "run", "--no-report"])
    assert execute(args, trial_fn=_fake_trial) == 0
    err = capsys.readouterr().err
    assert "note: --workers asks for 8 workers" in err and "(local, in this process" in err


def test_memory_is_estimated_before_anything_trains(monkeypatch, capsys):
    from actlab.arena import limits

    monkeypatch.setattr(limits, "machine_memory", lambda: 10**9)  # a 1 GB machine
    base = ["--activations", "relu", "--tasks", "spirals", "--workers", "1"]
    code, text = _dry([*base, "--set", 'model_params={"width": 2048, "depth": 20}'], capsys)
    # 2 -> 2048, 19 x (2048 -> 2048), 2048 -> 2: counted by hand, 4 bytes x 4 copies each
    n = (2 * 2048 + 2048) + 19 * (2048 * 2048 + 2048) + (2048 * 2 + 2)
    assert code == 2 and f"{n:,} parameters with gradients and Adam state" in text
    assert "more than this machine's 1 GB available" in text and "--force" in text
    assert _dry([*base, "--set", 'model_params={"width": 2048, "depth": 20}', "--force"], capsys)[0] == 0
    assert _dry(base, capsys)[0] == 0  # the task's own small model fits
    # the data counts too: copy memory with a long delay is terabytes of one-hot inputs
    params = 'task_params={"n_samples": 1000000, "delay": 10000}'
    code, text = _dry(["--activations", "relu", "--tasks", "copy_memory", "--set", params], capsys)
    assert code == 2 and "data 1.6 TB" in text
    # two workers hold two trials at once
    monkeypatch.setattr(limits, "_cpus", lambda: 2)
    wide = ["--set", 'model_params={"width": 1024, "depth": 30}']  # ~32M parameters, ~0.5 GB each
    assert _dry([*base, *wide], capsys)[0] == 0
    code, text = _dry([*base[:-2], "--workers", "2", "--seeds", "2", *wide], capsys)
    assert code == 2 and "x 2 workers at once" in text


def test_huge_activation_weights_are_refused_before_validation_builds_them(monkeypatch, capsys):
    from actlab.arena import limits, trial

    built = []
    real = trial._canonical_activation
    monkeypatch.setattr(trial, "_canonical_activation", lambda name: built.append(name) or real(name))
    monkeypatch.setattr(limits, "machine_memory", lambda: 5 * 10**8)
    act = "prelu(num_parameters=50000000)"  # 50M slopes: 800 MB with gradients and Adam state
    code, text = _dry(["--activations", act, "--tasks", "spirals", "--workers", "1"], capsys)
    assert code == 2 and f"activation {act!r} holds 50,000,000 weights per layer (800 MB" in text
    assert built == []


def test_task_footprints_match_the_data_they_build():
    """The memory estimate's data shapes, against the data actually built (small parameters)."""
    from actlab.arena.tasks import build_task, check_task_params, task_names, task_spec

    checked = 0
    for name in task_names():
        spec = task_spec(name)
        if spec.footprint is None:
            assert any(p.name == "path" for p in spec.params), name  # only data on disk is unknown
            continue
        given = {"n_samples": 60} if any(p.name == "n_samples" for p in spec.params) else {}
        params, problems = check_task_params(name, given)
        assert not problems
        footprint, data = spec.footprint(params), build_task(name, params, seed=0)
        assert footprint.n_samples == len(data.x_train) + len(data.x_val), name
        assert footprint.input_shape == data.input_shape and footprint.output_shape == data.output_shape, name
        held = sum(a.nbytes for a in (data.x_train, data.y_train, data.x_val, data.y_val))
        assert held <= footprint.data_bytes <= 20 * held, name
        checked += 1
    assert checked >= 8


def test_the_estimate_counts_each_layer_and_each_activation_weight():
    from actlab.arena.limits import estimate_trial_memory
    from actlab.arena.trial import normalize_trial

    cfg = normalize_trial({"task": "spirals", "activation": "prelu(num_parameters=64)", "batch_size": 10})
    estimate = estimate_trial_memory(cfg)
    # spirals' mlp: 2 -> 64 -> 64 -> 2 with biases, and a PReLU of 64 slopes after each hidden layer
    n = (2 * 64 + 64) + (64 * 64 + 64) + (64 * 2 + 2) + 2 * 64
    assert estimate.parameters == n and estimate.parameter_bytes == 16 * n
    # floats per sample: each leaf module's output: flatten 2, (linear 64, prelu 64) twice, head 2, reshape 2;
    # kept for a batch of 10 and its gradients, and for an evaluation chunk (all 1000 samples)
    assert estimate.activation_bytes == 4 * (2 + 64 * 4 + 2 + 2) * (2 * 10 + 1000)
    assert estimate_trial_memory({**cfg, "task": "arrays"}) is None  # data on disk: unknown until read


def test_auto_init_gain_is_bounded_for_every_accepted_parameter():
    """The arena's default `auto` init computes a gain for any accepted activation value: each ends,
    raises a ValueError (then the arena uses gain 1 and says so) and never grows (the issue saw 24 GB
    for elu(alpha=1e308), refused now by the catalog; the largest accepted values are sampled here)."""
    import tracemalloc

    import actlab
    from actlab.analysis import gain
    from actlab.registry import all_specs
    from actlab.verify.samples import parameter_samples

    worst_memory, count = 0, 0
    for spec in all_specs():
        if spec.kind != "elementwise":
            continue
        for params in parameter_samples(spec, "ci"):
            act = actlab.get({"name": spec.name, "config": params})
            tracemalloc.start()
            try:
                gain(act)
            except ValueError:
                pass
            finally:
                worst_memory = max(worst_memory, tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()
            count += 1
    assert count > 200
    assert worst_memory < 64 * 2**20, f"{worst_memory / 2**20:.0f} MB"


def test_a_built_in_model_on_user_data_is_estimated_once_the_data_is_built(task_dir, monkeypatch, capsys):
    from actlab.arena import limits

    folder, mod = task_dir
    monkeypatch.setattr(limits, "machine_memory", lambda: 10**9)
    wide = ["--set", "model=mlp", "--set", 'model_params={"width": 2048, "depth": 20}']
    code, _, err = _execute(["--tasks", f"{mod}:data_only", *wide, "--out", "run"], capsys)
    # the task's 3 inputs and 2 classes, counted by hand
    n = (3 * 2048 + 2048) + 19 * (2048 * 2048 + 2048) + (2048 * 2 + 2)
    assert code == 2 and f"{n:,} parameters with gradients and Adam state" in err and "--force" in err
    assert not (folder / "run").exists()
    code, _, _ = _execute(["--tasks", f"{mod}:data_only", *wide, "--out", "run", "--force"], capsys)
    assert code == 0
