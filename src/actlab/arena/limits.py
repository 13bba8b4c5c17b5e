"""Bounds checked before anything trains: seeds and trials, workers against cores, memory against the machine.

``actlab arena`` refuses a plan that would exhaust the machine, with a sentence saying what to reduce,
and caps local workers at the CPU cores (with a note). ``--force`` overrides the checks that depend
on the machine (cores, memory, a very large plan), never the hard limits (a plan whose list of
trials alone would not fit).

The memory estimate of a trial (:func:`estimate_trial_memory`) is built without allocating the
model: it is built on PyTorch's ``meta`` device (shapes only) and, when small, once for real to run
one sample through it, counting the activations a training step keeps; the data size comes from
the task's parameters (:attr:`~actlab.arena.tasks.TaskSpec.footprint`, or a user task's data once
built). It counts the parameters four times (weights, gradients, Adam's two moments), the
activations of one training batch twice (kept for the backward pass, and their gradients) plus one
evaluation chunk, and the data. It is an estimate of the largest terms, not a measurement: its
purpose is to refuse settings off by orders of magnitude
(``width=8192, depth=200`` needs ~200 GB) before a worker is killed by the kernel.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_SEEDS",
    "MAX_TRIALS",
    "HARD_MAX_TRIALS",
    "MemoryEstimate",
    "machine_memory",
    "estimate_trial_memory",
    "trial_count_problems",
    "worker_cap",
    "activation_problems",
    "memory_problems",
]

# More seeds than this adds nothing an arena can show (the interval width shrinks as 1/sqrt(n)) and
# a range of them is materialised; a list of a billion seeds is a MemoryError, not an experiment.
MAX_SEEDS = 1000
MAX_TRIALS = 10_000  # above it: --force (a plan this size takes days on one machine)
HARD_MAX_TRIALS = 1_000_000  # above it the plan's own bookkeeping runs into gigabytes

_FLOAT = 4  # float32 training
_PARAM_COPIES = 4  # weights, gradients, Adam's first and second moments
_EVAL_CHUNK = 2048  # actlab.arena.trial evaluates in chunks of this many samples
_FORCE = "or add --force to run anyway"


def _fmt_bytes(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"


def machine_memory() -> int | None:
    """Bytes of memory available to new processes now (Linux' MemAvailable), else the physical total."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _cpus() -> int:
    from actlab.arena.backends import available_cpus

    return available_cpus()


# ----------------------------------------------------------------------------- counts
def trial_count_problems(n_trials: int, n_seeds: int, *, force: bool) -> list[str]:
    """Seeds and trials within bounds, checked from the suite's list lengths before expanding them."""
    problems = []
    if n_seeds > MAX_SEEDS:
        problems.append(f"too many seeds ({n_seeds:,}); the arena runs at most {MAX_SEEDS:,} (give a smaller count)")
    elif n_trials > HARD_MAX_TRIALS:
        problems.append(
            f"the plan has {n_trials:,} trials, more than the arena can hold ({HARD_MAX_TRIALS:,}); "
            "use fewer activations, seeds, tasks or grid values"
        )
    elif n_trials > MAX_TRIALS and not force:
        problems.append(
            f"the plan has {n_trials:,} trials (more than {MAX_TRIALS:,}, days of training on one machine); "
            f"use fewer activations, seeds, tasks or grid values, {_FORCE}"
        )
    return problems


def worker_cap(workers: int | None, *, force: bool) -> int | None:
    """This machine's core count when ``workers`` exceeds it (and not ``force``), else None: local
    workers beyond the cores only slow every trial down, and each holds a model and its data."""
    cores = _cpus()
    return cores if workers is not None and workers > cores and not force else None


# ----------------------------------------------------------------------------- memory
@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a trial needs at its peak, by part (see the module docstring for what is counted)."""

    parameters: int  # how many
    parameter_bytes: int
    activation_bytes: int
    data_bytes: int
    batch_size: int

    @property
    def total(self) -> int:
        return self.parameter_bytes + self.activation_bytes + self.data_bytes

    def describe(self) -> str:
        return (
            f"about {_fmt_bytes(self.total)}: {self.parameters:,} parameters with gradients and Adam state "
            f"{_fmt_bytes(self.parameter_bytes)}, activations of a batch of {self.batch_size} "
            f"{_fmt_bytes(self.activation_bytes)}, data {_fmt_bytes(self.data_bytes)}"
        )


def _activation_floats(model: Any, example: Any) -> int:
    """Per-sample floats a forward pass produces (the outputs of every leaf module)."""
    import torch

    total = 0

    def count(_module: Any, _inputs: Any, output: Any) -> None:
        nonlocal total
        outputs = output if isinstance(output, (tuple, list)) else (output,)
        total += sum(o.numel() for o in outputs if isinstance(o, torch.Tensor))

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        model(example)
    finally:
        for handle in handles:
            handle.remove()
    return total // example.shape[0]


_RECURRENT = ("lstm", "gru")  # their cells loop inside one module: a meta forward would loop every step


# A model this small is built for real to count its activations (a forward of one sample, a few MB
# at most); a larger one runs on the meta device, whose first matmul costs ~2 s of torch imports.
_REAL_FORWARD_PARAMETERS = 2_000_000


@functools.lru_cache(maxsize=256)
def _structure(model_name: str, params_json: str, input_shape: tuple, output_shape: tuple) -> tuple[int, int, int]:
    """(parameters, per-sample activation floats, activation sites) of a built-in model with ReLU in
    every activation site (counted on the meta device; a small model runs one real sample)."""
    import torch

    from actlab.arena.models import build_model, make_activation

    params = json.loads(params_json)
    with torch.device("meta"):
        model = build_model(model_name, "relu", input_shape, output_shape, params)
        kind = type(make_activation("relu"))
    n_params = sum(p.numel() for p in model.parameters())
    sites = sum(type(m) is kind for m in model.modules())
    if model_name in _RECURRENT:
        return n_params, input_shape[0] * params.get("layers", 1) * params.get("hidden", 64) * 12, sites  # gates
    device = "cpu" if n_params <= _REAL_FORWARD_PARAMETERS else "meta"
    try:
        with torch.device(device), torch.no_grad():
            if device == "cpu":
                model = build_model(model_name, "relu", input_shape, output_shape, params)
            per_sample = _activation_floats(model.eval(), torch.zeros((1, *input_shape)))
    except Exception:  # noqa: BLE001 - a layer the meta device cannot run: parameters only
        per_sample = 0
    return n_params, per_sample, sites


@functools.lru_cache(maxsize=256)
def _activation_weights(identifier: str) -> int:
    """How many weights one layer of this activation holds (PReLU's slopes, a rational's coefficients)."""
    import torch

    from actlab.arena.models import make_activation

    try:
        with torch.device("meta"):
            return sum(p.numel() for p in make_activation(identifier).parameters())
    except Exception:  # noqa: BLE001 - an invalid activation: validation reports it
        return 0


def estimate_trial_memory(config: Mapping[str, Any], footprint: Any = None) -> MemoryEstimate | None:
    """The memory a normalised trial needs (:class:`MemoryEstimate`), None where it cannot be known
    without running user code or reading files (a user task's own model, data on disk).

    ``footprint`` (a :class:`~actlab.arena.tasks.TaskFootprint`) replaces the task's own: a user
    task's data, measured once it was built.
    """
    from actlab.arena.models import TASK_MODEL
    from actlab.arena.tasks import is_user_task, task_spec

    task, model_name = config.get("task"), config.get("model")
    if not isinstance(task, str) or model_name == TASK_MODEL:
        return None
    if footprint is None:
        spec = None if is_user_task(task) else task_spec(task)
        if spec is None or spec.footprint is None:
            return None
        footprint = spec.footprint(config.get("task_params") or {})
    shape = footprint
    batch = int(config.get("batch_size") or 1)
    params_json = json.dumps(dict(config.get("model_params") or {}), sort_keys=True)
    n_params, per_sample, sites = _structure(model_name, params_json, shape.input_shape, shape.output_shape)
    n_params += sites * _activation_weights(str(config.get("activation")))
    eval_rows = min(_EVAL_CHUNK, shape.n_samples)
    return MemoryEstimate(
        parameters=n_params,
        parameter_bytes=n_params * _FLOAT * _PARAM_COPIES,
        activation_bytes=per_sample * _FLOAT * (2 * min(batch, shape.n_samples) + eval_rows),
        data_bytes=shape.data_bytes,
        batch_size=batch,
    )


def activation_problems(
    activations: Iterable[str], *, workers: int = 1, force: bool, memory: int | None = None
) -> list[str]:
    """Activations whose own weights alone exceed the memory (``prelu(num_parameters=1000000000)``),
    counted on the meta device before validation builds them for real."""
    memory = machine_memory() if memory is None else memory
    if force or memory is None:
        return []
    problems = []
    for name in activations:
        need = _activation_weights(name) * _FLOAT * _PARAM_COPIES
        if need * max(1, workers) > memory:
            many = f" for each of {workers} workers" if workers > 1 else ""
            problems.append(
                f"activation {name!r} holds {need // (_FLOAT * _PARAM_COPIES):,} weights per layer "
                f"({_fmt_bytes(need)} with gradients and Adam state{many}), more than this machine's "
                f"{_fmt_bytes(memory)} available; use a smaller value, {_FORCE}"
            )
    return problems


def memory_problems(
    trials: Iterable[tuple[str, Mapping[str, Any]]],
    *,
    workers: int,
    force: bool,
    memory: int | None = None,
    footprints: Mapping[str, Any] | None = None,
) -> list[str]:
    """Trials (label, normalised config) whose estimate, times the workers running at once, exceeds
    the machine's available memory. Each distinct configuration (seeds aside) is estimated once.
    ``footprints`` maps a user task's name to its measured data (see :func:`estimate_trial_memory`)."""
    memory = machine_memory() if memory is None else memory
    if force or memory is None:
        return []
    seen: dict[str, MemoryEstimate | None] = {}
    worst: tuple[int, str, MemoryEstimate] | None = None
    for label, config in trials:
        probe = json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, default=str)
        if probe not in seen:
            seen[probe] = estimate_trial_memory(config, (footprints or {}).get(config.get("task")))
            estimate = seen[probe]
            if estimate is not None and (worst is None or estimate.total > worst[0]):
                worst = (estimate.total, label, estimate)
    if worst is None:
        return []
    total, label, estimate = worst
    at_once = max(1, workers)
    if total * at_once <= memory:
        return []
    many = f" x {at_once} workers at once = {_fmt_bytes(total * at_once)}" if at_once > 1 else ""
    return [
        f"trial {label} needs {estimate.describe()}{many}, more than this machine's {_fmt_bytes(memory)} "
        f"available; reduce width, depth, batch_size or n_samples, use fewer --workers, {_FORCE}"
    ]
