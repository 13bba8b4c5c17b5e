"""The properties each spec declares are checked numerically, so the metadata cannot lie."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from actlab.registry import get_spec
from actlab.verify.limits import limit_at_infinity
from conftest import ELEMENTWISE, spec_id

specs = pytest.mark.parametrize("spec", ELEMENTWISE, ids=spec_id)
GRID = np.concatenate([np.linspace(-20, 20, 40001), np.geomspace(20, 1e4, 2000), -np.geomspace(20, 1e4, 2000)])

finite_inputs = arrays(
    np.float64,
    st.integers(1, 64),
    elements=st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False),
)


def _in_domain(spec, xs):
    lo, hi = spec.domain
    return xs[(xs >= lo) & (xs <= hi)]


def _values(spec, xs):
    return np.asarray(spec(xs), dtype=np.float64)


@specs
def test_declared_bounds_hold(spec):
    lo, hi = spec.bounds_for()

    @given(finite_inputs)
    def check(xs):
        ys = _values(spec, _in_domain(spec, xs))
        slack = 1e-12 * (1 + np.abs(ys))
        assert np.all(ys >= lo - slack) and np.all(ys <= hi + slack)

    check()


@specs
def test_declared_bounds_are_tight(spec):
    """A finite bound is approached on the grid or at ±inf: the range is not overstated."""
    lo, hi = spec.bounds_for()
    ys = _values(spec, _in_domain(spec, GRID))
    ends = [limit_at_infinity(spec, s) for s in (1, -1)]
    ends = [e for e in ends if not math.isnan(e)]
    reach_lo, reach_hi = min([ys.min(), *ends]), max([ys.max(), *ends])
    if math.isfinite(lo):
        assert reach_lo <= lo + 1e-6 * (1 + abs(lo)), f"lower bound {lo} never approached (min {reach_lo})"
    else:
        assert reach_lo == -math.inf or reach_lo < -1e3, f"declared unbounded below, min is {reach_lo}"
    if math.isfinite(hi):
        assert reach_hi >= hi - 1e-6 * (1 + abs(hi)), f"upper bound {hi} never approached (max {reach_hi})"
    else:
        assert reach_hi == math.inf or reach_hi > 1e3, f"declared unbounded above, max is {reach_hi}"


@specs
def test_declared_monotonicity(spec):
    xs = _in_domain(spec, GRID)
    xs = np.sort(xs)
    ys = _values(spec, xs)
    finite = np.isfinite(ys[1:]) & np.isfinite(ys[:-1])  # exp overflows on the grid
    steps = np.diff(ys)[finite]
    noise = 4 * np.spacing(np.abs(ys[1:][finite]))
    if spec.monotonic:
        assert np.all(steps >= -noise), f"decreases at x={xs[1:][finite][steps < -noise][:3]}"
    else:
        assert np.any(steps < -noise), "declared non-monotonic, but non-decreasing on the grid"


@specs
def test_declared_zero_centering(spec):
    ys = _values(spec, _in_domain(spec, GRID))
    at_zero = float(spec(np.array([0.0]))[0]) if spec.domain[0] <= 0 <= spec.domain[1] else math.nan
    is_centered = at_zero == 0 and ys.min() < 0 < ys.max()
    assert is_centered == spec.zero_centered, f"f(0)={at_zero}, range on grid [{ys.min()}, {ys.max()}]"


@specs
def test_declared_saturation(spec):
    """f' -> 0 exactly on the declared sides, per the oracle's limit of the derivative."""
    for side, sign in (("left", -1), ("right", 1)):
        lim = limit_at_infinity(spec, sign, order=1)
        if side in spec.saturates:
            assert lim == 0.0, f"declared saturating on the {side}, but f' -> {lim}"
        else:
            assert lim != 0.0, f"f' -> 0 on the {side}, but saturation not declared"


@specs
def test_declared_smoothness_and_kinks(spec):
    kinks = spec.kink_points()
    if spec.smoothness >= 1:
        assert not kinks, "declared differentiable but lists kinks"
        return
    assert kinks, "declared non-differentiable (C^0 or discontinuous) but lists no kink"
    jumps = []
    # a discontinuity may be small (xielu jumps by 8e-7 at 0): look closer for it
    step = 1e-9 if spec.smoothness == 0 else 1e-13
    for at, _ in kinks:
        h = step * max(1.0, abs(at))
        left, right = _values(spec, np.array([at - h, at + h]))
        jumps.append(abs(right - left))
    if spec.smoothness == 0:
        assert max(jumps) < 1e-6, f"declared continuous, jumps {jumps}"
    else:
        assert max(jumps) > 1e-8, f"declared discontinuous, but no jump at the kinks {kinks}"


@pytest.mark.parametrize("spec", [s for s in ELEMENTWISE if s.approximates], ids=spec_id)
def test_declared_approximation_error(spec):
    target = get_spec(spec.approximates)
    xs = _in_domain(spec, GRID)
    err = np.max(np.abs(_values(spec, xs) - _values(target, xs)))
    assert err <= spec.approximation_error, f"max |f - {target.name}| = {err:.3g}"
    assert err >= spec.approximation_error / 4, f"declared error {spec.approximation_error} overstates {err:.3g}"


@pytest.mark.parametrize("spec", [s for s in ELEMENTWISE if s.self_normalizing], ids=spec_id)
def test_self_normalizing_fixed_point(spec):
    """Under N(0, 1) input the output keeps mean 0 and variance 1 (Klambauer et al. 2017)."""
    from numpy.polynomial.hermite_e import hermegauss

    z, w = hermegauss(200)
    w = w / w.sum()
    ys = _values(spec, z)
    mean = float(np.sum(w * ys))
    var = float(np.sum(w * ys**2)) - mean**2
    assert abs(mean) < 1e-3 and abs(var - 1) < 1e-3
