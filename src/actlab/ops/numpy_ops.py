"""The ``ops`` namespace on NumPy (SciPy for erf/erfc, imported on first use)."""

from __future__ import annotations

from typing import Any

import numpy as np

from actlab.ops._lazy import require


def _special() -> Any:
    return require("scipy.special", "erf/erfc on NumPy")


class NumpyOps:
    name = "numpy"
    pi = np.pi

    exp = staticmethod(np.exp)
    expm1 = staticmethod(np.expm1)
    log = staticmethod(np.log)
    log1p = staticmethod(np.log1p)
    sqrt = staticmethod(np.sqrt)
    tanh = staticmethod(np.tanh)
    sinh = staticmethod(np.sinh)
    cosh = staticmethod(np.cosh)
    sin = staticmethod(np.sin)
    cos = staticmethod(np.cos)
    arctan = staticmethod(np.arctan)
    abs = staticmethod(np.abs)
    sign = staticmethod(np.sign)
    square = staticmethod(np.square)
    maximum = staticmethod(np.maximum)
    minimum = staticmethod(np.minimum)
    isnan = staticmethod(np.isnan)
    isinf = staticmethod(np.isinf)
    isfinite = staticmethod(np.isfinite)
    zeros_like = staticmethod(np.zeros_like)
    ones_like = staticmethod(np.ones_like)
    asinh = staticmethod(np.arcsinh)
    copysign = staticmethod(np.copysign)
    logaddexp = staticmethod(np.logaddexp)
    hypot = staticmethod(np.hypot)

    @staticmethod
    def erfcx(x: Any) -> Any:
        """e^(x^2) erfc(x), finite for large x."""
        return _special().erfcx(x).astype(x.dtype, copy=False)

    floor = staticmethod(np.floor)

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> Any:
        out = np.where(cond, a, b)
        # np.where promotes Python scalars against arrays the same way as arithmetic, but a
        # bare 0-d result would become a NumPy scalar; keep arrays arrays.
        return np.asarray(out)

    @staticmethod
    def full_like(x: Any, value: float) -> Any:
        return np.full_like(x, value)

    @staticmethod
    def clip(x: Any, lo: float | None, hi: float | None) -> Any:
        return np.clip(x, lo, hi)

    @staticmethod
    def erf(x: Any) -> Any:
        return _special().erf(x).astype(x.dtype, copy=False)

    @staticmethod
    def erfc(x: Any) -> Any:
        return _special().erfc(x).astype(x.dtype, copy=False)

    @staticmethod
    def sigmoid(x: Any) -> Any:
        return _special().expit(x).astype(x.dtype, copy=False)

    @staticmethod
    def softplus(x: Any) -> Any:
        """log(1 + e^x) without overflow: max(x, 0) + log1p(e^-|x|)."""
        return np.logaddexp(x, np.zeros_like(x))

    @staticmethod
    def log_sigmoid(x: Any) -> Any:
        return -np.logaddexp(-x, np.zeros_like(x))

    @staticmethod
    def finfo(x: Any) -> Any:
        return np.finfo(x.dtype)

    # --- along an axis (vector specs)
    @staticmethod
    def amax(x: Any, axis: int) -> Any:
        return np.max(x, axis=axis, keepdims=True)

    @staticmethod
    def sum(x: Any, axis: int) -> Any:
        return np.sum(x, axis=axis, keepdims=True)

    @staticmethod
    def cumsum(x: Any, axis: int) -> Any:
        return np.cumsum(x, axis=axis)

    @staticmethod
    def sort_descending(x: Any, axis: int) -> Any:
        return -np.sort(-x, axis=axis)

    @staticmethod
    def take_along(x: Any, index: Any, axis: int) -> Any:
        return np.take_along_axis(x, index, axis=axis)

    @staticmethod
    def count_along(x: Any, axis: int) -> Any:
        """1, 2, ..., n along ``axis`` shaped to broadcast against ``x``."""
        n = x.shape[axis]
        shape = [1] * x.ndim
        shape[axis] = n
        return np.arange(1, n + 1, dtype=x.dtype).reshape(shape)

    @staticmethod
    def split2(x: Any, axis: int) -> tuple[Any, Any]:
        a, b = np.split(x, 2, axis=axis)
        return a, b

    @staticmethod
    def concat(xs: Any, axis: int) -> Any:
        return np.concatenate(xs, axis=axis)

    @staticmethod
    def reshape(x: Any, shape: Any) -> Any:
        return np.reshape(x, shape)

    @staticmethod
    def permute(x: Any, order: Any) -> Any:
        return np.transpose(x, tuple(order))

    @staticmethod
    def numel(x: Any) -> int:
        return int(np.size(x))

    @staticmethod
    def as_mask(where: Any, like: Any) -> Any:
        """``where`` as a boolean array; anything but booleans is refused (no truthiness of numbers)."""
        mask = np.asarray(where)
        if mask.dtype != np.bool_:
            raise TypeError(f"where= must be a boolean mask, got dtype {mask.dtype}")
        return mask

    @staticmethod
    def amax_dim(x: Any, axis: int) -> Any:
        return np.max(x, axis=axis)


NUMPY = NumpyOps()

_HALF = (np.float16,)


def as_float_array(x: Any) -> np.ndarray:
    """Float array for a spec; integer and boolean arrays are refused (no silent casting)."""
    arr = np.asarray(x)
    if arr.dtype.kind in "biu":
        if isinstance(x, np.ndarray) or np.isscalar(x) and isinstance(x, np.generic):
            raise TypeError(f"activation needs a floating-point array, got dtype {arr.dtype}")
        arr = arr.astype(np.float64)  # plain Python numbers and lists
    if arr.dtype.kind != "f":
        raise TypeError(f"activation needs a floating-point array, got dtype {arr.dtype}")
    return arr


def apply(spec: Any, x: Any, params: dict[str, Any], *, where: Any = None) -> np.ndarray:
    """Evaluate ``spec`` on NumPy; float16 is computed in float32 and rounded once.

    Normalisers (``spec.masked``) take a tuple of axes, 0-d and empty inputs and a ``where`` mask
    (:func:`actlab.catalog.vector.over_axes`)."""
    if spec.kind == "vector" and spec.masked is not None:
        from actlab.catalog.vector import over_axes

        rest = {k: v for k, v in params.items() if k != "axis"}
        arr = as_float_array(x)

        def single(t: Any, axis: int) -> Any:
            return _evaluate(spec.forward, t, {**rest, "axis": axis})

        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            return np.asarray(over_axes(single, arr, NUMPY, params["axis"], where, spec.masked, spec.name))
    if where is not None:
        raise TypeError(f"{spec.name}: where= is accepted by the normalisers only (softmax family, sparsemax, entmax)")
    return _evaluate(spec.forward, x, params)


def apply_derivative(spec: Any, x: Any, params: dict[str, Any]) -> np.ndarray:
    return _evaluate(spec.derivative, x, params)


def _evaluate(fn: Any, x: Any, params: dict[str, Any]) -> np.ndarray:
    arr = as_float_array(x)
    work = arr.astype(np.float32) if arr.dtype in _HALF else arr
    # Overflow to inf is often the right answer (exponential(1e3)), and branches that where()
    # discards may overflow: neither is worth a warning.
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        out = np.asarray(fn(work, NUMPY, **params))
        return out.astype(arr.dtype, copy=False)
