"""The shared numerics layer (actlab.ops.exact, issue #11 item 7), against exact rational arithmetic."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from actlab.ops.exact import (
    F32,
    F64,
    at_infinity,
    is_power_of_two,
    is_single,
    mul_const,
    precision,
    scale,
)
from actlab.ops.numpy_ops import NUMPY
from actlab.ops.torch_ops import TORCH

# 1.702 as hi + lo (quick_gelu's constant), 1/sqrt(2) as hi + lo, and plain doubles
CONSTANTS = [
    (1.702, float(Fraction(851, 500) - Fraction(1.702))),
    (0.7071067811865476, -4.833646656726457e-17),
    (0.1, 0.0),
    (-3.3, 0.0),
]


def _inputs(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    x = rng.standard_normal(400) * 10.0 ** rng.uniform(-3, 6, 400)
    return x.astype(dtype)


def _as(ops, x: np.ndarray):
    return torch.from_numpy(x.copy()) if ops is TORCH else x


def _values(a) -> list[float]:
    return [float(v) for v in (a.numpy() if isinstance(a, torch.Tensor) else np.asarray(a)).ravel()]


@pytest.mark.parametrize("ops", [NUMPY, TORCH], ids=lambda o: o.name)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(("hi", "lo"), CONSTANTS)
def test_mul_const_carries_the_product_to_double_precision(ops, dtype, hi, lo):
    """zh + zl is x * (hi + lo) to about twice the working precision (a plain product: one rounding)."""
    x = _inputs(dtype)
    zh, zl = mul_const(_as(ops, x), ops, hi, lo)
    eps = float(np.finfo(dtype).eps)
    exact_c = Fraction(hi) + Fraction(lo)
    for xv, h, low in zip(x.tolist(), _values(zh), _values(zl)):
        exact = Fraction(xv) * exact_c
        err = abs(Fraction(h) + Fraction(low) - exact)
        assert err <= abs(exact) * Fraction(eps) ** 2 * 4, (xv, h, low)
        assert h == float(np.array(xv, dtype) * np.array(hi + lo, dtype))  # zh: the backend's own product


def test_mul_const_drops_the_tail_beyond_big_and_scale_is_exact_for_powers_of_two():
    x = np.array([F32.big * 2, -F32.big * 4, 3.0], dtype=np.float32)
    _, zl = mul_const(x, NUMPY, 0.1)
    assert zl[0] == 0.0 and zl[1] == 0.0 and zl[2] != 0.0
    hi, lo = scale(x, NUMPY, 0.25)
    assert lo is None and np.array_equal(hi, x * np.float32(0.25))
    assert is_power_of_two(0.25) and is_power_of_two(2.0**-1074) and is_power_of_two(1.0)
    for c in (0.3, 3.0, 0.0, -2.0, math.inf, math.nan):
        assert not is_power_of_two(c), c


def test_precision_by_dtype():
    for dtype, single in [(torch.float16, True), (torch.bfloat16, True), (torch.float32, True), (torch.float64, False)]:
        t = torch.zeros(2, dtype=dtype)
        assert is_single(t, TORCH) is single
        assert precision(t, TORCH) is (F32 if single else F64)
    assert precision(np.zeros(2, np.float32), NUMPY) is F32 and precision(np.zeros(2), NUMPY) is F64
    c, c_hi, c_lo, tail = F32.const(0.1)
    assert c == float(np.float32(0.1)) and c_hi + c_lo == c and tail == float(np.float32(0.1 - c))
    assert (math.frexp(c_hi)[0] * 2**12).is_integer()  # at most half float32's 24 bits


@pytest.mark.parametrize("ops", [NUMPY, TORCH], ids=lambda o: o.name)
def test_at_infinity_runs_on_finite_inputs_and_sets_the_limits(ops):
    seen = []

    @at_infinity(-1.0, 7.0)
    def f(x, ops, k):
        seen.append(x)
        return x * k

    @at_infinity(2.0, 3.0, ops_first=True)
    def g(ops, x):
        return x + 1.0

    x = _as(ops, np.array([-math.inf, -2.0, 0.0, 5.0, math.inf, math.nan]))
    assert _values(f(x, ops, 2.0))[:5] == [-1.0, -4.0, 0.0, 10.0, 7.0] and math.isnan(_values(f(x, ops, k=2.0))[5])
    assert _values(seen[0])[:5] == [0.0, -2.0, 0.0, 5.0, 0.0]  # no inf reaches the body
    assert _values(g(ops, x))[:5] == [2.0, -1.0, 1.0, 6.0, 3.0]
    assert f.__name__ == "f" and f.__module__ == __name__  # the spec's function keeps its identity
