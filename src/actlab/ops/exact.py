"""Error-free transformations (Dekker 1971, Knuth TAOCP vol. 2): a sum or product of two floats
as an unevaluated sum ``hi + lo`` that is exact. Written against plain arithmetic, so they work
on NumPy arrays, torch tensors and Python floats alike. They assume every operation is rounded
on its own (no fused multiply-add contraction) and no overflow.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])


def veltkamp_constant(x: Any, ops: Any) -> float:
    """2^ceil(p/2) + 1 for the precision p of ``x``'s dtype: 4097 (float32), 134217729 (float64)."""
    return 4097.0 if is_single(x, ops) else 134217729.0


def split(a: Any, c: float) -> tuple[Any, Any]:
    """Veltkamp's split: a = hi + lo exactly, each with at most half the significand bits."""
    t = a * c
    hi = t - (t - a)
    return hi, a - hi


def two_sum(a: Any, b: Any) -> tuple[Any, Any]:
    """Knuth's TwoSum: a + b = s + e exactly."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def two_prod(a: Any, b: Any, c: float) -> tuple[Any, Any]:
    """Dekker's product: a * b = p + e exactly (``c`` from :func:`veltkamp_constant`)."""
    p = a * b
    ah, al = split(a, c)
    bh, bl = split(b, c)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def square(a: Any, c: float) -> tuple[Any, Any]:
    """a * a = p + e exactly."""
    p = a * a
    ah, al = split(a, c)
    return p, ((ah * ah - p) + 2.0 * ah * al) + al * al


# ----------------------------------------------------------------------------- the numerics layer
# What the catalog's eager forms share: which precision a computation runs in, products by
# constants as double-word sums, and the scaffold that keeps +-inf out of the arithmetic.


def is_single(x: Any, ops: Any) -> bool:
    """True when ``x`` is computed in single precision (float16/bfloat16 run in float32)."""
    return float(ops.finfo(x).eps) > 1e-10


def is_power_of_two(c: float) -> bool:
    """A positive finite power of two: multiplying by it is exact (barring overflow/underflow)."""
    return c > 0 and math.isfinite(c) and math.frexp(c)[0] == 0.5


class Precision:
    """Per-dtype constants for double-word arithmetic (float32 also serves float16/bfloat16,
    which actlab computes in float32)."""

    def __init__(self, dtype: Any, split: float, big: float, trig_dw: float) -> None:
        self.dtype = np.dtype(dtype)
        self.split = split  # Veltkamp: 2^ceil(p/2) + 1
        self.big = big  # |x| above which products are not split (no overflow in x * split)
        self.trig_dw = trig_dw  # |y| below which sin(y + lo) is corrected to second order in lo
        self._cache: dict[tuple[float, float], tuple[float, float, float, float]] = {}

    def const(self, hi: float, lo: float = 0.0) -> tuple[float, float, float, float]:
        """(c, c_hi, c_lo, c_tail): c = hi + lo rounded to this dtype, c = c_hi + c_lo exactly
        (each half has at most half the mantissa), c_tail = (hi + lo) - c rounded."""
        key = (hi, lo)
        hit = self._cache.get(key)
        if hit is None:
            t = self.dtype.type
            c = t(hi)
            tail = t((hi - float(c)) + lo)
            big = c * t(self.split)
            c_hi = big - (big - c)
            c_lo = c - c_hi
            hit = (float(c), float(c_hi), float(c_lo), float(tail))
            self._cache[key] = hit
        return hit


F32 = Precision(np.float32, 4097.0, 2.0**100, 2.0**16)
F64 = Precision(np.float64, 134217729.0, 2.0**900, 2.0**40)


def precision(x: Any, ops: Any) -> Precision:
    """:data:`F32` or :data:`F64`, by :func:`is_single`."""
    return F32 if is_single(x, ops) else F64


def mul_const(x: Any, ops: Any, hi: float, lo: float = 0.0, P: Precision | None = None) -> tuple[Any, Any]:
    """x * (hi + lo) as an unevaluated sum (zh, zl), zh = x * c with c = hi + lo rounded to the
    working dtype (as the backend rounds a Python float); zl carries the product's rounding error
    (Dekker) and c's tail. zl = 0 where |x| > P.big (no overflow in the split; zl is negligible)."""
    P = precision(x, ops) if P is None else P
    c, ch, cl, ct = P.const(hi, lo)
    zh = x * c
    xs = ops.clip(x, -P.big, P.big)
    ps = xs * c
    xh, xl = split(xs, P.split)
    e = ((xh * ch - ps) + xh * cl + xl * ch) + xl * cl
    zl = e + xs * ct
    return zh, ops.where(ops.abs(x) <= P.big, zl, 0.0)


def scale(x: Any, ops: Any, c: float) -> tuple[Any, Any | None]:
    """``c * x`` as ``hi + lo`` to about twice the working precision (``lo`` None when exact: ``c``
    a power of two)."""
    if is_power_of_two(c):
        return x * c, None
    return mul_const(x, ops, c)


def finite(x: Any, ops: Any) -> Any:
    """x with +-inf replaced by 0, so that no inf * 0 is evaluated (the limits are set by :func:`limits`)."""
    return ops.where(ops.isinf(x), 0.0, x)


def limits(x: Any, ops: Any, y: Any, at_neg_inf: float, at_pos_inf: float) -> Any:
    """y with the function's limits at x = -inf and x = +inf."""
    return ops.where(x == -math.inf, at_neg_inf, ops.where(x == math.inf, at_pos_inf, y))


def at_infinity(at_neg_inf: float, at_pos_inf: float, *, ops_first: bool = False) -> Callable[[F], F]:
    """Decorator for ``f(x, ops, ...)`` (``f(ops, x, ...)`` with ``ops_first``) written for finite x:
    it runs on :func:`finite` x and its result gets the limits at +-inf (:func:`limits`)."""

    def wrap(fn: F) -> F:
        if ops_first:

            def wrapped(ops: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
                return limits(x, ops, fn(ops, finite(x, ops), *args, **kwargs), at_neg_inf, at_pos_inf)
        else:

            def wrapped(x: Any, ops: Any, *args: Any, **kwargs: Any) -> Any:
                return limits(x, ops, fn(finite(x, ops), ops, *args, **kwargs), at_neg_inf, at_pos_inf)

        return functools.wraps(fn)(wrapped)  # type: ignore[return-value]

    return wrap
