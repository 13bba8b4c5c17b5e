"""Error-free transformations (Dekker 1971, Knuth TAOCP vol. 2): a sum or product of two floats
as an unevaluated sum ``hi + lo`` that is exact. Written against plain arithmetic, so they work
on NumPy arrays, torch tensors and Python floats alike. They assume every operation is rounded
on its own (no fused multiply-add contraction) and no overflow.
"""

from __future__ import annotations

from typing import Any


def veltkamp_constant(x: Any, ops: Any) -> float:
    """2^ceil(p/2) + 1 for the precision p of ``x``'s dtype: 4097 (float32), 134217729 (float64)."""
    return 134217729.0 if float(ops.finfo(x).eps) < 1e-10 else 4097.0


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
