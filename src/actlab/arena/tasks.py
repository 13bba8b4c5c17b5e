"""Arena tasks: small, offline, seeded problems, loaders for data on disk, and user tasks.

Built-in tasks (``task_names()``), each generated or loaded without any download:

- ``spirals``: two interleaved spirals in 2-D (Lang & Witbrock 1988), binary classification.
- ``checkerboard``: points in a square labelled by a ``cells`` x ``cells`` checkerboard.
- ``sine``: 1-D regression, y = sin(pi * frequency * x) + noise, x in [-1, 1].
- ``digits``: scikit-learn's bundled 8x8 digits (1797 images, 10 classes) as 64-vectors.
- ``digits_image``: the same digits as (1, 8, 8) images (default model: ``cnn``).
- ``deep_mlp``: depth stress: the digits vectors with a plain 30-layer MLP (width 64, no
  normalisation). Depth and normalisation are model options: ``model_params={"depth": 50,
  "norm": "batch"}`` gives the normalised control arm.
- ``adding``: the adding problem (Hochreiter & Schmidhuber 1997): a sequence of (value, marker)
  pairs, predict the sum of the two marked values (MSE; predicting 1 scores 1/6).
- ``copy_memory``: copy ``copy_length`` symbols after ``delay`` blank steps (Arjovsky et al. 2016,
  arXiv:1511.06464); accuracy on the copied symbols (chance: 1 / n_symbols).
- ``mnist_idx``, ``cifar10``, ``arrays``: data already on disk, ``task_params={"path": ...}``;
  see :mod:`actlab.arena.loaders` for the file layouts.

A user task is ``"package.module:function"``: code the user chose. Importing it runs its module's
top-level code, so ``actlab arena`` imports only tasks named on its command line or trusted with
``--trust-code``; validation and ``--dry-run`` only locate it (:func:`locate_user_task`: path finders
and :mod:`ast`, no code runs). The working directory is importable, as with ``python -m``. The
function is called as ``function(**task_params)``, with ``seed=`` added when it accepts a
``seed`` argument (or ``**kwargs``), and returns a dict (or an object with these attributes):

- ``data`` (required): ``(x_train, y_train, x_val, y_val)`` or a dict with those keys; NumPy
  arrays or torch tensors. Integer ``y`` means class labels.
- ``model`` (optional): ``factory(activation_identifier) -> torch.nn.Module``; used when the
  trial's model is ``"task"`` (the default for user tasks). Without it, pick a built-in model.
- ``loss`` (optional): ``"cross_entropy"``, ``"mse"`` or ``callable(output, target) -> tensor``.
- ``metric`` (optional): ``"accuracy"``, ``"mse"`` or ``callable(output, target) -> float``; a
  callable needs ``metric_name`` and ``higher_is_better``.

Data depend on the trial's seed only (never on the activation), so seeds pair across activations.

    >>> from actlab.arena.tasks import build_task
    >>> data = build_task("spirals", {}, seed=0)
    >>> data.x_train.shape, data.x_val.shape, data.metric
    ((800, 2), (200, 2), 'accuracy')
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actlab.arena import loaders
from actlab.arena._train_params import Param, check_params, close_matches

__all__ = [
    "TaskSpec",
    "TaskData",
    "TaskFootprint",
    "task_names",
    "task_spec",
    "build_task",
    "is_user_task",
    "resolve_user_task",
    "locate_user_task",
    "split_user_task",
    "user_task_problem",
    "check_user_task",
    "UserTaskSource",
    "check_task_params",
    "USER_TASK_DEFAULTS",
]

# Independent random streams derived from the trial's seed (numpy SeedSequence entropy).
_DATA_STREAM = 0xDA7A
_SPLIT_STREAM = 0x5B17


@dataclass
class TaskData:
    """Arrays and what the trainer needs to know about them.

    ``input_kind``: "vector" (N, D), "image" (N, C, H, W) or "sequence" (N, T, D).
    ``output_shape``: the per-sample model output: (classes,) or (k,) for regression, or
    (steps, classes) when the last ``steps`` time steps are scored (copy memory).
    """

    x_train: Any
    y_train: Any
    x_val: Any
    y_val: Any
    input_kind: str
    output_shape: tuple[int, ...]
    loss: Any = "cross_entropy"  # "cross_entropy" | "mse" | callable(output, target)
    metric: str = "accuracy"
    metric_fn: Callable[..., float] | None = None  # user metrics; built-ins are computed by name
    higher_is_better: bool = True
    model_factory: Callable[[Any], Any] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


@dataclass(frozen=True)
class TaskSpec:
    """A built-in task: its parameters and the training defaults it was tuned with."""

    name: str
    summary: str
    build: Callable[[dict[str, Any], int], TaskData]
    params: tuple[Param, ...] = ()
    model: str = "mlp"
    model_params: Mapping[str, Any] = field(default_factory=dict)
    epochs: int = 20
    optimizer: str = "adam"
    lr: float = 1e-2
    batch_size: int = 64
    target: float | None = None
    clip_grad_norm: float | None = None  # recurrent tasks clip (the usual remedy for exploding gradients)
    metric: str = "accuracy"
    higher_is_better: bool = True
    input_kind: str | None = "vector"  # None: known only once the files are read
    # The data's shape from the parameters alone, so a plan's memory is estimated without building
    # it (actlab.arena.limits); None where only the files on disk tell.
    footprint: Callable[[Mapping[str, Any]], TaskFootprint] | None = None


@dataclass(frozen=True)
class TaskFootprint:
    """What a task's data will be, from its parameters: samples (train + validation), the shapes of
    one input and one model output, and the bytes held while it is generated (an upper estimate)."""

    n_samples: int
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    data_bytes: int


def _pool_footprint(input_shape: Callable[[Mapping[str, Any]], tuple[int, ...]], output_shape: Any, work: int = 0):
    """Generated tasks keep the pool and its train/validation copies: about twice the float32 inputs,
    plus ``work`` bytes per input element of float64 intermediates while generating."""

    def footprint(p: Mapping[str, Any]) -> TaskFootprint:
        shape = input_shape(p)
        out = output_shape(p) if callable(output_shape) else output_shape
        n = p.get("n_samples", 1797)
        elements = n * math.prod(shape)
        return TaskFootprint(n, shape, out, elements * (8 + work) + n * math.prod(out) * 16)

    return footprint


# Training defaults for a user task (its function is not called to normalise a config).
USER_TASK_DEFAULTS: dict[str, Any] = {
    "model": "task",
    "epochs": 10,
    "optimizer": "adam",
    "lr": 1e-3,
    "batch_size": 64,
    "target": None,
    "clip_grad_norm": None,
}


# ----------------------------------------------------------------------------- helpers
def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream])


def _split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, val) index arrays; at least one sample on each side."""
    perm = _rng(seed, _SPLIT_STREAM).permutation(n)
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _standardize(x_train: np.ndarray, x_val: np.ndarray, axis: Any) -> tuple[np.ndarray, np.ndarray]:
    """Zero mean, unit variance with the training split's statistics (constant features stay 0)."""
    mean = x_train.mean(axis=axis, keepdims=True)
    std = x_train.std(axis=axis, keepdims=True)
    std = np.where(std > 1e-8, std, 1.0)
    return ((x_train - mean) / std).astype(np.float32), ((x_val - mean) / std).astype(np.float32)


def _from_pool(x: np.ndarray, y: np.ndarray, p: dict[str, Any], seed: int, **kw: Any) -> TaskData:
    tr, va = _split(len(x), p["val_fraction"], seed)
    return TaskData(x[tr], y[tr], x[va], y[va], **kw)


_VAL_FRACTION = Param(
    "val_fraction", 0.2, "float", "share of the samples held out for validation", 0, 1, open_low=True, open_high=True
)


def _n_samples(default: int) -> Param:
    return Param("n_samples", default, "int", "number of generated samples (train + validation)", 20, 1_000_000)


# ----------------------------------------------------------------------------- synthetic tasks
def _spirals(p: dict[str, Any], seed: int) -> TaskData:
    rng = _rng(seed, _DATA_STREAM)
    n = p["n_samples"]
    labels = np.arange(n) % 2
    # sqrt spreads the points evenly along the arm; the two arms differ by half a turn.
    theta = np.sqrt(rng.uniform(0.0, 1.0, n)) * p["turns"] * 2 * np.pi
    radius = theta / (p["turns"] * 2 * np.pi)
    angle = theta + np.pi * labels
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    x = 2.0 * (x + p["noise"] * rng.standard_normal(x.shape))
    return _from_pool(x.astype(np.float32), labels.astype(np.int64), p, seed, input_kind="vector", output_shape=(2,))


def _checkerboard(p: dict[str, Any], seed: int) -> TaskData:
    rng = _rng(seed, _DATA_STREAM)
    u = rng.uniform(0.0, 1.0, (p["n_samples"], 2))
    cells = np.floor(u * p["cells"]).astype(np.int64)
    labels = (cells[:, 0] + cells[:, 1]) % 2
    x = (u * 2 - 1) * math.sqrt(3.0)  # unit variance
    return _from_pool(x.astype(np.float32), labels, p, seed, input_kind="vector", output_shape=(2,))


def _sine(p: dict[str, Any], seed: int) -> TaskData:
    rng = _rng(seed, _DATA_STREAM)
    u = rng.uniform(-1.0, 1.0, (p["n_samples"], 1))
    y = np.sin(np.pi * p["frequency"] * u) + p["noise"] * rng.standard_normal(u.shape)
    return _from_pool(
        (u * math.sqrt(3.0)).astype(np.float32),
        y.astype(np.float32),
        p,
        seed,
        input_kind="vector",
        output_shape=(1,),
        loss="mse",
        metric="mse",
        higher_is_better=False,
    )


def _adding(p: dict[str, Any], seed: int) -> TaskData:
    rng = _rng(seed, _DATA_STREAM)
    n, steps = p["n_samples"], p["seq_len"]
    values = rng.uniform(0.0, 1.0, (n, steps))
    half = steps // 2
    first = rng.integers(0, half, n)
    second = rng.integers(half, steps, n)
    markers = np.zeros((n, steps))
    markers[np.arange(n), first] = 1.0
    markers[np.arange(n), second] = 1.0
    x = np.stack([values, markers], axis=2).astype(np.float32)
    y = (values[np.arange(n), first] + values[np.arange(n), second])[:, None].astype(np.float32)
    return _from_pool(
        x, y, p, seed, input_kind="sequence", output_shape=(1,), loss="mse", metric="mse", higher_is_better=False
    )


def _copy_memory(p: dict[str, Any], seed: int) -> TaskData:
    rng = _rng(seed, _DATA_STREAM)
    n, k, delay, symbols = p["n_samples"], p["copy_length"], p["delay"], p["n_symbols"]
    blank, marker = symbols, symbols + 1
    to_copy = rng.integers(0, symbols, (n, k))
    tokens = np.full((n, k + delay + k), blank)
    tokens[:, :k] = to_copy
    tokens[:, k + delay - 1] = marker  # "now repeat": the last step of the delay
    x = np.eye(symbols + 2, dtype=np.float32)[tokens]
    return _from_pool(x, to_copy.astype(np.int64), p, seed, input_kind="sequence", output_shape=(k, symbols))


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from actlab.ops._lazy import require

    datasets = require("sklearn.datasets", "the digits tasks")
    bunch = datasets.load_digits()  # bundled with scikit-learn: no download
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)


def _digits(p: dict[str, Any], seed: int) -> TaskData:
    images, labels = _digits_arrays()
    tr, va = _split(len(images), p["val_fraction"], seed)
    x_train, x_val = _standardize(images[tr].reshape(len(tr), -1), images[va].reshape(len(va), -1), axis=0)
    return TaskData(x_train, labels[tr], x_val, labels[va], input_kind="vector", output_shape=(10,))


def _digits_image(p: dict[str, Any], seed: int) -> TaskData:
    images, labels = _digits_arrays()
    tr, va = _split(len(images), p["val_fraction"], seed)
    x_train, x_val = _standardize(images[tr][:, None], images[va][:, None], axis=None)
    return TaskData(x_train, labels[tr], x_val, labels[va], input_kind="image", output_shape=(10,))


# ----------------------------------------------------------------------------- data on disk
_PATH = Param("path", None, "str", "the folder holding the files", required=True)
_LIMIT = Param(
    "limit", None, "int", "use at most this many training (and validation) samples, chosen by seed", 2, nullable=True
)


def _validation_param(default: str = "test") -> Param:
    return Param(
        "validation",
        default,
        "str",
        "'test': the files' test split when present, else a seeded split; 'split': always split the training files",
        choices=("test", "split"),
    )


def _input_kind(x: np.ndarray) -> str:
    return {2: "vector", 3: "sequence", 4: "image"}.get(x.ndim, "vector")


def _from_arrays(data: loaders.Arrays, p: dict[str, Any], seed: int, kind: str = "auto") -> TaskData:
    x, y = np.asarray(data.x_train), np.asarray(data.y_train)
    if x.ndim == 1:
        x = x[:, None]
    if p.get("validation", "test") == "test" and data.x_val is not None:
        x_val, y_val = np.asarray(data.x_val), np.asarray(data.y_val)
        if x_val.ndim == 1:
            x_val = x_val[:, None]
        tr, va = np.arange(len(x)), np.arange(len(x_val))
    else:
        tr, va = _split(len(x), p["val_fraction"], seed)
        x_val, y_val = x, y
    if p.get("limit") is not None:
        rng = _rng(seed, _SPLIT_STREAM + 1)
        tr = np.sort(rng.permutation(tr)[: p["limit"]])
        va = np.sort(rng.permutation(va)[: p["limit"]])
    x_train, y_train, x_val, y_val = x[tr], y[tr], x_val[va], y_val[va]
    if x_train.shape[1:] != x_val.shape[1:]:
        raise ValueError(f"training inputs have shape {x_train.shape[1:]}, validation inputs {x_val.shape[1:]}")
    classification = kind == "classification" or (kind == "auto" and np.issubdtype(y_train.dtype, np.integer))
    common = {"input_kind": _input_kind(x_train)}
    if classification:
        if y_train.ndim != 1:
            raise ValueError(f"class labels must be a 1-D integer array, got shape {y_train.shape}")
        y_train, y_val = y_train.astype(np.int64), y_val.astype(np.int64)
        if min(y_train.min(), y_val.min()) < 0:
            raise ValueError("class labels must be >= 0")
        classes = int(max(y_train.max(), y_val.max())) + 1
        return TaskData(
            x_train.astype(np.float32), y_train, x_val.astype(np.float32), y_val, output_shape=(classes,), **common
        )
    y_train, y_val = y_train.astype(np.float32), y_val.astype(np.float32)
    if y_train.ndim == 1:
        y_train, y_val = y_train[:, None], y_val[:, None]
    return TaskData(
        x_train.astype(np.float32),
        y_train,
        x_val.astype(np.float32),
        y_val,
        output_shape=tuple(y_train.shape[1:]),
        loss="mse",
        metric="mse",
        higher_is_better=False,
        **common,
    )


def _mnist_idx(p: dict[str, Any], seed: int) -> TaskData:
    return _from_arrays(loaders.load_mnist_idx(p["path"]), p, seed, "classification")


def _cifar10(p: dict[str, Any], seed: int) -> TaskData:
    return _from_arrays(loaders.load_cifar10(p["path"]), p, seed, "classification")


def _arrays(p: dict[str, Any], seed: int) -> TaskData:
    return _from_arrays(loaders.load_arrays(p["path"]), p, seed, p["kind"])


# ----------------------------------------------------------------------------- the table
_TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        TaskSpec(
            "spirals",
            "two interleaved spirals, 2-D binary classification",
            _spirals,
            (
                _n_samples(1000),
                Param("noise", 0.04, "float", "Gaussian noise std (the spiral's radius is 1)", 0, 1),
                Param("turns", 1.75, "float", "turns of each arm", 0.25, 5),
                _VAL_FRACTION,
            ),
            model_params={"width": 64, "depth": 2},
            epochs=30,
            lr=1e-2,
            batch_size=64,
            target=0.95,
            footprint=_pool_footprint(lambda p: (2,), (2,), work=24),
        ),
        TaskSpec(
            "checkerboard",
            "a cells x cells checkerboard in 2-D, binary classification",
            _checkerboard,
            (_n_samples(2000), Param("cells", 4, "int", "cells per side", 2, 32), _VAL_FRACTION),
            model_params={"width": 64, "depth": 2},
            epochs=30,
            lr=1e-2,
            batch_size=100,
            target=0.9,
            footprint=_pool_footprint(lambda p: (2,), (2,), work=24),
        ),
        TaskSpec(
            "sine",
            "1-D regression y = sin(pi * frequency * x) + noise",
            _sine,
            (
                _n_samples(1000),
                Param("frequency", 2.0, "float", "periods on [-1, 1]", 0.1, 50),
                Param("noise", 0.05, "float", "label noise std", 0, 10),
                _VAL_FRACTION,
            ),
            model_params={"width": 64, "depth": 3},
            epochs=40,
            lr=1e-2,
            batch_size=50,
            target=0.01,
            metric="mse",
            higher_is_better=False,
            footprint=_pool_footprint(lambda p: (1,), (1,), work=24),
        ),
        TaskSpec(
            "digits",
            "scikit-learn's bundled 8x8 digits as 64-vectors, 10 classes",
            _digits,
            (_VAL_FRACTION,),
            model_params={"width": 64, "depth": 2},
            epochs=15,
            lr=1e-2,
            batch_size=128,
            target=0.95,
            footprint=_pool_footprint(lambda p: (64,), (10,), work=16),
        ),
        TaskSpec(
            "digits_image",
            "scikit-learn's bundled digits as 1x8x8 images, 10 classes",
            _digits_image,
            (_VAL_FRACTION,),
            model="cnn",
            input_kind="image",
            epochs=10,
            lr=1e-2,
            batch_size=64,
            target=0.95,
            footprint=_pool_footprint(lambda p: (1, 8, 8), (10,), work=16),
        ),
        TaskSpec(
            "deep_mlp",
            "depth stress: digits vectors through a plain 30-layer MLP (set model_params depth / norm)",
            _digits,
            (_VAL_FRACTION,),
            model_params={"width": 64, "depth": 30, "norm": "none"},
            epochs=10,
            lr=1e-3,
            batch_size=64,
            target=0.9,
            footprint=_pool_footprint(lambda p: (64,), (10,), work=16),
        ),
        TaskSpec(
            "adding",
            "the adding problem: sum of the two marked values in a sequence (regression)",
            _adding,
            (
                _n_samples(2000),
                Param("seq_len", 30, "int", "sequence length", 4, 10_000),
                _VAL_FRACTION,
            ),
            model="lstm",
            input_kind="sequence",
            clip_grad_norm=1.0,
            epochs=10,
            lr=1e-2,
            batch_size=50,
            target=0.01,
            metric="mse",
            higher_is_better=False,
            footprint=_pool_footprint(lambda p: (p["seq_len"], 2), (1,), work=16),
        ),
        TaskSpec(
            "copy_memory",
            "copy memory: repeat copy_length symbols after delay blank steps",
            _copy_memory,
            (
                _n_samples(2000),
                Param("copy_length", 5, "int", "symbols to remember", 1, 100),
                Param("delay", 10, "int", "blank steps between the symbols and the recall marker", 1, 10_000),
                Param("n_symbols", 8, "int", "alphabet size", 2, 100),
                _VAL_FRACTION,
            ),
            model="lstm",
            input_kind="sequence",
            clip_grad_norm=1.0,
            epochs=10,
            lr=1e-2,
            batch_size=50,
            target=0.9,
            footprint=_pool_footprint(
                lambda p: (2 * p["copy_length"] + p["delay"], p["n_symbols"] + 2),
                lambda p: (p["copy_length"], p["n_symbols"]),
                work=8,
            ),
        ),
        TaskSpec(
            "mnist_idx",
            "MNIST-format IDX files on disk (train-*/t10k-*, optionally .gz)",
            _mnist_idx,
            (_PATH, _validation_param(), _VAL_FRACTION, _LIMIT),
            input_kind="image",
            model_params={"width": 128, "depth": 2},
            epochs=5,
            lr=1e-3,
            batch_size=128,
            target=0.97,
        ),
        TaskSpec(
            "cifar10",
            "CIFAR-10 python batches on disk (data_batch_*, test_batch)",
            _cifar10,
            (_PATH, _validation_param(), _VAL_FRACTION, _LIMIT),
            model="cnn",
            input_kind="image",
            model_params={"width": 32, "depth": 3},
            epochs=10,
            lr=1e-3,
            batch_size=128,
        ),
        TaskSpec(
            "arrays",
            "a folder of x_train/y_train[/x_val/y_val] .npy or .csv arrays",
            _arrays,
            (
                _PATH,
                Param(
                    "kind",
                    "auto",
                    "str",
                    "auto: integer y means classification",
                    choices=("auto", "classification", "regression"),
                ),
                _validation_param(),
                _VAL_FRACTION,
                _LIMIT,
            ),
            epochs=20,
            lr=1e-3,
            input_kind=None,
        ),
    )
}


def task_names() -> list[str]:
    """The built-in task names (user tasks are ``"package.module:function"`` strings)."""
    return list(_TASKS)


def is_user_task(name: Any) -> bool:
    return isinstance(name, str) and ":" in name


def task_spec(name: str) -> TaskSpec:
    """The :class:`TaskSpec` of a built-in task; unknown names suggest close ones."""
    if name not in _TASKS:
        close = close_matches(name, _TASKS)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(
            f"unknown task {name!r}{hint} (built-in: {', '.join(_TASKS)}; or a user task 'package.module:function')"
        )
    return _TASKS[name]


def split_user_task(entry: str) -> tuple[str, str]:
    """``"package.module:function"`` -> ("package.module", "function"); ValueError for anything else."""
    module_name, _, attr = entry.partition(":")
    if not module_name or not attr or not all(part.isidentifier() for part in module_name.split(".") + attr.split(".")):
        raise ValueError(f"user task {entry!r} must look like 'package.module:function'")
    top = module_name.split(".")[0]
    # A task module is the user's own code; the standard library holds no task factories, and
    # naming one (os:system, subprocess:getoutput) would call it with task_params as arguments.
    if top in _STDLIB or top in sys.builtin_module_names:
        raise ValueError(
            f"user task {entry!r}: {top!r} is part of Python's standard library, not a task module; "
            "name a function of your own that returns the task's data"
        )
    return module_name, attr


_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ())) | {"__main__", "builtins"}


def _with_working_directory() -> None:
    """Make the working directory importable, as ``python -m`` does (``actlab`` started as a console
    script has its own folder on sys.path instead). Appended, not prepended: a file in the working
    directory never shadows an installed module of the same name."""
    cwd = os.getcwd()
    entries = {os.path.abspath(p or os.curdir) for p in sys.path if isinstance(p, str)}
    if cwd not in entries:
        sys.path.append(cwd)
        importlib.invalidate_caches()


@dataclass(frozen=True)
class UserTaskSource:
    """Where a user task's code is, found without running any of it (:func:`locate_user_task`)."""

    entry: str
    module: str
    function: str
    origin: str | None  # the module's file, None for a namespace package
    defined: bool | None  # a top-level name in the source; None: only an import can tell

    def describe(self) -> str:
        where = self.origin or "a namespace package"
        if self.defined:
            return f"{self.entry}: {self.function!r} is defined in {where} (not imported; nothing ran)"
        return (
            f"{self.entry}: module {self.module!r} found at {where} (not imported; nothing ran); "
            f"whether it provides {self.function!r} is checked only when the run starts"
        )


def _top_level_names(tree: ast.Module) -> tuple[set[str], bool]:
    """Names bound at a module's top level, and whether some binding cannot be seen statically
    (``from x import *``, a module ``__getattr__``, ``globals()`` tricks)."""
    names: set[str] = set()
    opaque = False
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    opaque = True
                else:
                    names.add(alias.asname or alias.name.split(".")[0])
        else:  # if/try/with/for blocks may bind names too: look inside without judging
            inner = ast.Module(body=[n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt)], type_ignores=[])
            more, hidden = _top_level_names(inner)
            names |= more
            opaque = opaque or hidden
    if "__getattr__" in names:
        opaque = True
    return names, opaque


def locate_user_task(entry: str) -> UserTaskSource:
    """Find a user task's module and check that it defines the function, without running its code.

    The module is found with the import system's path finders one package level at a time (never
    importing a parent package, whose ``__init__`` would run), and its source is parsed with
    :mod:`ast`. ValueError says what is missing. ``defined`` is None where only an import could tell
    (a compiled module, ``from x import *``); then the function is checked when the run starts.
    """
    from importlib.machinery import PathFinder

    module_name, attr = split_user_task(entry)
    _with_working_directory()
    parts = module_name.split(".")
    path: list[str] | None = None
    spec = None
    for depth in range(len(parts)):
        name = ".".join(parts[: depth + 1])
        loaded = sys.modules.get(name)
        spec = getattr(loaded, "__spec__", None) if loaded is not None else None
        if spec is None:
            try:  # a top-level find_spec imports nothing; below it, search the parent's folders
                spec = importlib.util.find_spec(name) if depth == 0 else PathFinder.find_spec(name, path)
            except (ImportError, ValueError):
                spec = None
        if spec is None:
            where = "the working directory or sys.path" if depth == 0 else f"package {'.'.join(parts[:depth])!r}"
            raise ValueError(
                f"user task {entry!r}: cannot import module {module_name!r} (no {name!r} in {where}; "
                f"working directory: {os.getcwd()})"
            )
        path = list(spec.submodule_search_locations or []) or None
        if depth < len(parts) - 1 and path is None:
            raise ValueError(f"user task {entry!r}: cannot import module {module_name!r} ({name!r} is not a package)")
    assert spec is not None
    origin = spec.origin if spec.has_location else None
    defined: bool | None = None
    if origin and origin.endswith(".py"):
        try:
            tree = ast.parse(Path(origin).read_bytes(), filename=origin)
        except (OSError, SyntaxError, ValueError) as err:
            raise ValueError(f"user task {entry!r}: cannot read {origin} ({err})") from None
        names, opaque = _top_level_names(tree)
        head = attr.split(".")[0]
        if head in names:
            defined = True
        elif not opaque:
            raise ValueError(f"user task {entry!r}: module {module_name!r} has no attribute {attr!r}")
    return UserTaskSource(entry, module_name, attr, origin, defined)


def resolve_user_task(entry: str) -> Callable[..., Any]:
    """Import the function named by ``"package.module:function"`` (importlib, never eval).

    This runs the module's code: callers import only tasks the user named or trusted
    (``actlab arena --tasks`` or ``--trust-code``; see :mod:`actlab.arena.cli`).
    """
    module_name, attr = split_user_task(entry)
    _with_working_directory()
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"user task {entry!r}: cannot import module {module_name!r} ({err})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"user task {entry!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"user task {entry!r}: {attr!r} is not callable")
    return obj


def user_task_problem(entry: str) -> str | None:
    """What is wrong with a user task entry as far as can be told without running its code."""
    try:
        locate_user_task(entry)
    except ValueError as err:
        return str(err)
    return None


def check_user_task(
    entry: str, params: Mapping[str, Any] | None, seed: int, model: Any
) -> tuple[list[str], TaskFootprint | None]:
    """Call the task once and check what it returns, before any trial trains (runs the user's code).

    ``model`` is the trial's model: ``"task"`` needs the task to return a model factory. Returns the
    problems and, when there are none, the data's :class:`TaskFootprint` (for the memory estimate).
    """
    try:
        data = _build_user_task(entry, dict(params or {}), seed)
    except (Exception, SystemExit) as err:  # the user's code: any failure is a problem of the task
        return [
            f"task: {err}"
            if isinstance(err, ValueError) and str(err).startswith("user task")
            else f"task: user task {entry!r} raised {type(err).__name__}: {err}"
        ], None
    from actlab.arena.models import TASK_MODEL, model_names

    if model == TASK_MODEL and data.model_factory is None:
        return [
            f"model: user task {entry!r} returns data but no 'model' factory; add \"model\": "
            f"factory(activation) -> nn.Module to what it returns, or choose a built-in model with "
            f"--set model=mlp (one of {', '.join(model_names())})"
        ], None
    arrays = (data.x_train, data.y_train, data.x_val, data.y_val)
    held = sum(int(getattr(a, "nbytes", 0)) for a in arrays)
    n = len(data.x_train) + len(data.x_val)
    return [], TaskFootprint(n, tuple(data.input_shape), tuple(data.output_shape), held)


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _as_numpy(a: Any) -> Any:
    """NumPy view of a tensor (kept as tensor when the user's own loss may need torch dtypes)."""
    if isinstance(a, np.ndarray):
        return a
    if hasattr(a, "detach") and hasattr(a, "numpy"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _build_user_task(entry: str, params: dict[str, Any], seed: int) -> TaskData:
    fn = resolve_user_task(entry)
    kwargs = dict(params)
    try:
        sig = inspect.signature(fn)
        takes_seed = "seed" in sig.parameters or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()
        )
    except (TypeError, ValueError):
        takes_seed = False
    if takes_seed:
        kwargs["seed"] = seed
    out = fn(**kwargs)
    data = _get(out, "data")
    if data is None:
        raise ValueError(f"user task {entry!r} returned no 'data' (x_train, y_train, x_val, y_val)")
    if isinstance(data, Mapping):
        missing = [k for k in ("x_train", "y_train", "x_val", "y_val") if k not in data]
        if missing:
            raise ValueError(f"user task {entry!r}: data lacks {missing}")
        data = (data["x_train"], data["y_train"], data["x_val"], data["y_val"])
    if len(data) != 4:
        raise ValueError(f"user task {entry!r}: data must be (x_train, y_train, x_val, y_val), got {len(data)} items")
    arrays = [_as_numpy(a) for a in data]
    loss = _get(out, "loss")
    metric = _get(out, "metric")
    classification = np.issubdtype(arrays[1].dtype, np.integer)
    if loss is None:
        loss = "cross_entropy" if classification else "mse"
    if isinstance(loss, str) and loss not in ("cross_entropy", "mse"):
        raise ValueError(f"user task {entry!r}: loss {loss!r} must be 'cross_entropy', 'mse' or a callable")
    if metric is None:
        metric = "accuracy" if loss == "cross_entropy" or (callable(loss) and classification) else "mse"
    if isinstance(metric, str):
        if metric not in ("accuracy", "mse"):
            raise ValueError(f"user task {entry!r}: metric {metric!r} must be 'accuracy', 'mse' or a callable")
        metric_name, metric_fn, higher = metric, None, metric == "accuracy"
    elif callable(metric):
        metric_name = _get(out, "metric_name") or getattr(metric, "__name__", "metric")
        higher = _get(out, "higher_is_better")
        if not isinstance(higher, bool):
            raise ValueError(f"user task {entry!r}: a callable metric needs higher_is_better (True or False)")
        metric_fn = metric
    else:
        raise ValueError(f"user task {entry!r}: metric must be 'accuracy', 'mse' or a callable, got {metric!r}")
    factory = _get(out, "model")
    if factory is not None and not callable(factory):
        raise ValueError(f"user task {entry!r}: model must be a callable factory(activation) -> nn.Module")
    x_train, y_train, x_val, y_val = arrays
    if classification and loss == "cross_entropy":
        classes = int(max(y_train.max(), y_val.max())) + 1
        output_shape: tuple[int, ...] = (classes,)
    else:
        if y_train.ndim == 1 and loss == "mse":
            y_train, y_val = y_train[:, None], y_val[:, None]
        output_shape = tuple(y_train.shape[1:]) or (1,)
    return TaskData(
        x_train,
        y_train,
        x_val,
        y_val,
        input_kind=_input_kind(x_train),
        output_shape=output_shape,
        loss=loss,
        metric=metric_name,
        metric_fn=metric_fn,
        higher_is_better=higher,
        model_factory=factory,
    )


def check_task_params(task: str, params: Any) -> tuple[dict[str, Any], list[str]]:
    """Canonical ``task_params`` (defaults filled) and the problems with them."""
    if is_user_task(task):
        if params is None:
            return {}, []
        if not isinstance(params, Mapping):
            return {}, [f"task_params: expected a mapping, got {type(params).__name__}"]
        try:  # they are part of the trial's identity (its canonical JSON)
            json.dumps(dict(params), allow_nan=False)
        except (TypeError, ValueError) as err:
            return {}, [f"task_params: must be JSON values (numbers, strings, lists, dicts): {err}"]
        return dict(params), []
    return check_params(params, task_spec(task).params, "task_params")


def build_task(task: str, params: Mapping[str, Any] | None, seed: int) -> TaskData:
    """Generate or load ``task``'s data for ``seed`` (the split depends on the seed only)."""
    if is_user_task(task):
        return _build_user_task(task, dict(params or {}), seed)
    filled, problems = check_task_params(task, params)
    if problems:
        raise ValueError("; ".join(problems))
    return task_spec(task).build(filled, seed)
