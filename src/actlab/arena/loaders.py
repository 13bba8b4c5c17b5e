"""Readers for data sets a user already has on disk (NumPy only, no downloads).

- :func:`load_mnist_idx`: MNIST-style IDX files (``train-images-idx3-ubyte`` and
  ``train-labels-idx1-ubyte``, optionally ``t10k-*``), gzip-compressed (``.gz``) or not.
  Fashion-MNIST and KMNIST use the same format and names.
- :func:`load_cifar10`: the "CIFAR-10 python version" batches (``data_batch_1`` ... ``data_batch_5``,
  ``test_batch``; pickled dicts with ``b"data"`` uint8 (N, 3072) and ``b"labels"``), the folder
  ``cifar-10-batches-py`` as extracted from the official archive.
- :func:`load_arrays`: a folder of arrays, one file per array, each ``NAME.npy`` or ``NAME.csv``:
  ``x_train`` and ``y_train`` (required), ``x_val`` and ``y_val`` (optional, both or neither).
  Rows are samples; ``.csv`` files are comma-separated numbers, one optional header line.
  ``x`` may have any shape (N, ...); ``y`` is (N,) integer class labels or (N,) / (N, k) floats.

Each returns a :class:`Arrays` with ``x_val``/``y_val`` None when the files hold no
validation/test split (the arena then splits the training arrays by seed).

    >>> from actlab.arena.loaders import load_arrays
    >>> data = load_arrays("my_data/")  # doctest: +SKIP
    >>> data.x_train.shape  # doctest: +SKIP
    (800, 20)
"""

from __future__ import annotations

import gzip
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Arrays", "read_idx", "load_mnist_idx", "load_cifar10", "load_arrays"]


@dataclass
class Arrays:
    """Training arrays and, when the files provide one, a validation (test) split."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None


# IDX type codes (LeCun's MNIST page): the third byte of the magic number.
_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """One IDX file (gzip or plain) as an array of its declared shape and type."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: IDX header declares shape {shape} ({expected} bytes), file has {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(folder: Path, stem: str) -> Path | None:
    """``stem`` in ``folder``, plain or ``.gz``; also the common ``stem.idx`` spellings (dots or dashes)."""
    for name in (stem, stem.replace("-idx", ".idx")):
        for suffix in ("", ".gz"):
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def load_mnist_idx(path: str | os.PathLike) -> Arrays:
    """MNIST-format IDX files in ``path``; images become float32 (N, 1, H, W) in [0, 1], labels int64."""
    folder = _existing_dir(path)
    parts = {}
    for split, prefix in (("train", "train"), ("val", "t10k")):
        images = _find(folder, f"{prefix}-images-idx3-ubyte")
        labels = _find(folder, f"{prefix}-labels-idx1-ubyte")
        if split == "train" and (images is None or labels is None):
            raise FileNotFoundError(
                f"{folder}: needs train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz] "
                f"(found: {', '.join(sorted(p.name for p in folder.iterdir())) or 'nothing'})"
            )
        if images is None or labels is None:
            parts[split] = (None, None)
            continue
        x, y = read_idx(images), read_idx(labels)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{folder}: {images.name} {x.shape} and {labels.name} {y.shape} do not match")
        parts[split] = ((x.astype(np.float32) / 255.0)[:, None], y.astype(np.int64))
    return Arrays(*parts["train"], *parts["val"])


def load_cifar10(path: str | os.PathLike) -> Arrays:
    """CIFAR-10 python batches in ``path``; images float32 (N, 3, 32, 32) in [0, 1], labels int64."""
    folder = _existing_dir(path)
    train = sorted(folder.glob("data_batch_*"), key=lambda p: p.name)
    if not train:
        raise FileNotFoundError(f"{folder}: no data_batch_* files (the CIFAR-10 python version)")

    def read(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for f in files:
            with open(f, "rb") as fh:
                # The official format is a pickle; only load files you trust (as with torchvision).
                batch = pickle.load(fh, encoding="bytes")
            data = batch.get(b"data", batch.get("data"))
            labels = batch.get(b"labels", batch.get("labels"))
            if data is None or labels is None:
                raise ValueError(f"{f}: not a CIFAR-10 batch (needs 'data' and 'labels')")
            data = np.asarray(data, dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
                raise ValueError(f"{f}: data has shape {data.shape}, expected (N, 3072) with N labels")
            xs.append(data.reshape(-1, 3, 32, 32))
            ys.append(np.asarray(labels, dtype=np.int64))
        return np.concatenate(xs).astype(np.float32) / 255.0, np.concatenate(ys)

    x_train, y_train = read(train)
    test = folder / "test_batch"
    x_val, y_val = read([test]) if test.is_file() else (None, None)
    return Arrays(x_train, y_train, x_val, y_val)


def _read_array(folder: Path, name: str) -> np.ndarray | None:
    npy, csv = folder / f"{name}.npy", folder / f"{name}.csv"
    if npy.is_file() and csv.is_file():
        raise ValueError(f"{folder}: both {name}.npy and {name}.csv exist; keep one")
    if npy.is_file():
        return np.load(npy, allow_pickle=False)
    if csv.is_file():
        with open(csv, encoding="utf-8") as fh:
            first = fh.readline()
        try:
            [float(v) for v in first.strip().split(",") if v.strip()]
            skip = 0
        except ValueError:
            skip = 1  # a header line
        arr = np.loadtxt(csv, delimiter=",", skiprows=skip, ndmin=2)
        if arr.shape[1] == 1:
            arr = arr[:, 0]
        if np.all(arr == np.round(arr)) and name.startswith("y") and arr.ndim == 1:
            arr = arr.astype(np.int64)  # integer labels written as text
        return arr
    return None


def load_arrays(path: str | os.PathLike) -> Arrays:
    """``x_train``/``y_train`` (+ optional ``x_val``/``y_val``) ``.npy`` or ``.csv`` files in ``path``."""
    folder = _existing_dir(path)
    arrays = {name: _read_array(folder, name) for name in ("x_train", "y_train", "x_val", "y_val")}
    missing = [n for n in ("x_train", "y_train") if arrays[n] is None]
    if missing:
        raise FileNotFoundError(f"{folder}: missing {' and '.join(m + '.npy (or .csv)' for m in missing)}")
    if (arrays["x_val"] is None) != (arrays["y_val"] is None):
        raise FileNotFoundError(f"{folder}: x_val and y_val must both exist or both be absent")
    for split in ("train", "val"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x is not None and len(x) != len(y):
            raise ValueError(f"{folder}: x_{split} has {len(x)} rows, y_{split} has {len(y)}")
    return Arrays(**arrays)


def _existing_dir(path: str | os.PathLike) -> Path:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"task_params.path: {str(path)!r} is not a directory")
    return folder
