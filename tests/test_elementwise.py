"""Numerical tests generated for every elementwise spec in the registry (DESIGN.md §7)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from actlab.torch.functional import apply
from actlab.verify.accuracy import FORWARD_LIMIT, measure, ulp_errors
from actlab.verify.limits import limit_at_infinity
from actlab.verify.oracle import oracle
from conftest import ELEMENTWISE, away_from_kinks, spec_id

# CI samples the oracle grid; `actlab accuracy` runs the full 20,000-point grid.
GRID_SIZE = 3000

specs = pytest.mark.parametrize("spec", ELEMENTWISE, ids=spec_id)
dtypes = pytest.mark.parametrize("dtype", ["float32", "float64"])


def _torch(spec, x: torch.Tensor, params=None) -> torch.Tensor:
    return apply(spec, x, spec.resolve_params(**(params or {})))


def _grad(spec, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(_torch(spec, x).sum(), x)
    return g


@specs
@dtypes
def test_accuracy_against_oracle(spec, dtype):
    row = measure(spec, dtype, size=GRID_SIZE, with_torch=False)
    assert row.nonfinite == 0, f"non-finite results where the true value is finite: {row}"
    assert row.forward_ulps <= row.forward_limit, f"forward {row.forward_ulps} ulp at x={row.worst_forward_x}"
    assert row.derivative_ulps <= row.derivative_limit, (
        f"derivative {row.derivative_ulps} at x={row.worst_derivative_x}"
    )


@specs
@dtypes
def test_numpy_matches_oracle(spec, dtype):
    row = measure(spec, dtype, size=GRID_SIZE // 3, with_torch=False, backend="numpy")
    assert row.passed, row


@specs
def test_gradcheck_and_gradgradcheck(spec, rng):
    xs = away_from_kinks(spec, rng.uniform(-4, 4, size=40))[:12]
    x = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    fn = lambda t: _torch(spec, t)
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@specs
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_dtype_shape_and_layout(spec, dtype):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=g).to(dtype)
    out = _torch(spec, base)
    assert out.dtype == dtype and out.shape == base.shape
    # 0-d, empty and non-contiguous inputs
    assert _torch(spec, base[0, 0]).shape == ()
    assert _torch(spec, base[:0]).shape == (0, 5)
    strided = base.t()
    assert not strided.is_contiguous()
    torch.testing.assert_close(_torch(spec, strided), out.t(), rtol=0, atol=0)


@specs
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_torch_numpy_parity(spec, dtype, rng):
    """The same rounded input gives the same result on both backends (within the accuracy budget)."""
    xs = np.concatenate([rng.normal(0, 3, 200), rng.normal(0, 300, 50)]).astype(dtype)
    xs = away_from_kinks(spec, xs.astype(np.float64), gap=1e-2).astype(dtype)
    ours = _torch(spec, torch.from_numpy(xs)).numpy().astype(np.float64)
    theirs = spec(xs).astype(np.float64)
    budget = 1.0 if dtype == "float16" else 2 * FORWARD_LIMIT[dtype]
    err, _ = ulp_errors(ours, theirs, dtype)
    if spec.tolerance.condition_allowance:  # near a root both backends are off by its condition number
        with np.errstate(divide="ignore", invalid="ignore"):
            d = spec.derivative(xs.astype(np.float64), _numpy_ops(), **spec.defaults)
            cond = np.abs(xs * d / theirs)
        err = err / np.where(np.isfinite(cond), np.maximum(cond, 1.0), 1.0)
    assert np.nanmax(err) <= budget
    assert np.array_equal(np.isnan(ours), np.isnan(theirs))


@specs
@dtypes
def test_infinities_give_the_limit(spec, dtype):
    tdtype = getattr(torch, dtype)
    x = torch.tensor([math.inf, -math.inf], dtype=tdtype)
    got = _torch(spec, x).double().tolist()
    grads = _grad(spec, x).double().tolist()
    for i, sign in enumerate((1, -1)):
        lo, hi = spec.domain
        if (sign > 0 and hi < math.inf) or (sign < 0 and lo > -math.inf):
            continue
        for value, order in ((got[i], 0), (grads[i], 1)):
            want = limit_at_infinity(spec, sign, order)
            what = f"f{chr(39) * order}({'+' if sign > 0 else '-'}inf)"
            if math.isnan(want):
                assert math.isnan(value), f"{what}: no limit exists, expected nan, got {value}"
            elif math.isinf(want):
                assert value == want, f"{what}: expected {want}, got {value}"
            else:
                err, _ = ulp_errors(np.array([value]), np.array([want]), dtype)
                assert err[0] <= 2 * FORWARD_LIMIT[dtype], f"{what}: expected {want}, got {value}"


@specs
@dtypes
def test_nan_propagates_and_small_inputs(spec, dtype):
    tdtype = getattr(torch, dtype)
    assert torch.isnan(_torch(spec, torch.tensor([math.nan], dtype=tdtype))).all()
    tiny = float(np.finfo(dtype).tiny)
    xs = np.array([0.0, -0.0, tiny, -tiny, tiny / 8, -tiny / 8, tiny * 1e3, -tiny * 1e3])
    xs = xs[(xs >= spec.domain[0]) & (xs <= spec.domain[1])]
    got = _torch(spec, torch.tensor(xs, dtype=tdtype)).double().numpy()
    want = oracle(spec, xs.astype(dtype).astype(np.float64))
    err, bad = ulp_errors(got, want, dtype)
    assert not bad.any() and err.max() <= FORWARD_LIMIT[dtype], list(zip(xs, got, want))
    grads = _grad(spec, torch.tensor(xs, dtype=tdtype)).double().numpy()
    assert np.isfinite(grads).all(), list(zip(xs, grads))


@pytest.mark.parametrize("spec", [s for s in ELEMENTWISE if s.kinks], ids=spec_id)
def test_kink_gradient_convention(spec):
    """At each kink actlab returns the declared gradient, which is PyTorch's where PyTorch has it."""
    for at, declared in spec.kink_points():
        x = torch.tensor([at], dtype=torch.float64)
        ours = _grad(spec, x).item()
        assert ours == pytest.approx(declared, abs=1e-12), f"f'({at}) = {ours}, declared {declared}"
        if spec.torch_native is not None:
            xt = x.clone().requires_grad_(True)
            try:
                (theirs,) = torch.autograd.grad(spec.torch_native(xt, torch, **spec.defaults).sum(), xt)
            except RuntimeError:
                continue  # PyTorch's function has no derivative (torch.heaviside)
            assert ours == pytest.approx(theirs.item(), abs=1e-12), f"PyTorch's f'({at}) = {theirs.item()}"


@pytest.mark.parametrize("spec", [s for s in ELEMENTWISE if s.derivative_from_output], ids=spec_id)
def test_derivative_from_output_agrees(spec, rng):
    xs = away_from_kinks(spec, rng.uniform(-6, 6, 500))
    ys = spec.forward(xs, _numpy_ops(), **spec.defaults)
    from_output = spec.derivative_from_output(ys, _numpy_ops(), **spec.defaults)
    from_input = spec.derivative(xs, _numpy_ops(), **spec.defaults)
    np.testing.assert_allclose(from_output, from_input, rtol=1e-9, atol=1e-12)


def _numpy_ops():
    from actlab.ops.numpy_ops import NUMPY

    return NUMPY


def test_integer_and_bool_tensors_are_refused():
    spec = ELEMENTWISE[0]
    for bad in (torch.arange(3), torch.tensor([True, False])):
        with pytest.raises(TypeError, match="floating-point"):
            _torch(spec, bad)
    with pytest.raises(TypeError, match="floating-point"):
        spec(np.arange(3))


DEEP_POINTS = [
    -1e3,
    -300.0,
    -100.0,
    -40.0,
    -20.0,
    -10.0,
    -5.0,
    -1.0,
    -1e-3,
    -1e-8,
    1e-8,
    1e-3,
    1.0,
    5.0,
    10.0,
    20.0,
    40.0,
    100.0,
    300.0,
    1e3,
]


@specs
@pytest.mark.parametrize("order", [0, 1])
def test_oracle_survives_complete_cancellation(spec, order):
    """The oracle against the same definition at 1000 digits, at points where a definition may
    cancel completely (1 - tanh(x)^2 at -300; erfc(-z) rewritten by SymPy as 2 - erfc(z))."""
    import mpmath

    from actlab.verify.oracle import _compiled, oracle_mp

    fn = _compiled(spec, tuple(sorted(spec.defaults.items())), order)
    kinks = {at for at, _ in spec.kink_points()}
    lo, hi = spec.domain
    for point in DEEP_POINTS:
        if point in kinks or not lo <= point <= hi:
            continue
        with mpmath.workdps(1000):
            want = float(fn(mpmath.mpf(point)))
        got = float(oracle_mp(spec, point, order=order))
        assert got == pytest.approx(want, rel=1e-14, abs=0), f"order {order} at x={point}"
