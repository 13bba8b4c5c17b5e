"""The arena's Ray backend on a local Ray instance that the test starts (ray.init(num_cpus=2))."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ray = pytest.importorskip(
    "ray", reason="ray is not installed, so the arena's Ray backend is not tested (pip install 'actlab[distributed]')"
)

import actlab  # noqa: E402
from actlab.arena.config import Budget, Suite  # noqa: E402
from actlab.arena.runner import plan_trials, run_arena  # noqa: E402
from actlab.arena.store import read_records  # noqa: E402

SRC = str(Path(actlab.__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def local_ray():
    if ray.is_initialized():
        pytest.skip("a Ray instance is already running in this process")
    with pytest.MonkeyPatch.context() as mp:
        # Ray's workers inherit the driver's environment: make actlab importable there when it is not installed.
        mp.setenv("PYTHONPATH", os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_trials_run_as_ray_tasks_and_the_driver_stores_them(local_ray, tmp_path):
    from actlab.arena.trial import without_measurements

    suite = Suite(
        name="ray",
        activations=("relu", "tanh"),
        seeds=(0, 1),
        tasks=("spirals",),
        budget=Budget(epochs=2),
        params={"task_params": {"n_samples": 200}},
    )
    plan = plan_trials(suite)
    outcome = run_arena(plan, tmp_path / "ray", backend="ray", threads=1, progress="none")
    assert (outcome.ran, outcome.ok, outcome.remaining) == (4, 4, 0)
    records = read_records(tmp_path / "ray")
    pids = {int(r["worker"].rsplit(":", 1)[1]) for r in records}
    assert os.getpid() not in pids  # trained in Ray workers, written here

    run_arena(plan, tmp_path / "local", threads=1, progress="none")  # the same trials in this process
    local = {r["key"]: without_measurements(r["result"]) for r in read_records(tmp_path / "local")}
    assert {r["key"]: without_measurements(r["result"]) for r in records} == local
