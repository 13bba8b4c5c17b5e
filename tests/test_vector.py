"""Tests generated for every vector spec (softmax family, sparsemax, entmax, GLU variants, maxout)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import actlab.nn
from actlab.torch import functional as F
from actlab.torch.functional import apply
from conftest import VECTOR, spec_id

specs = pytest.mark.parametrize("spec", VECTOR, ids=spec_id)


def _run(spec, x, where=None, **params):
    return apply(spec, x, spec.resolve_params(**params), where=where)


def _input(shape, dtype=torch.float64, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


@specs
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_accuracy_against_row_oracle(spec, dtype):
    from actlab.verify.vector import measure_vector

    row = measure_vector(spec, dtype)
    assert row.nonfinite == 0, row
    assert row.forward_ulps <= row.forward_limit, row
    assert row.derivative_ulps <= row.derivative_limit, row
    assert row.tangent_ulps <= row.derivative_limit, row  # the jvp (forward mode), same rule


@specs
def test_gradcheck_and_gradgradcheck(spec):
    x = _input((3, 8)).requires_grad_(True)
    fn = lambda t: _run(spec, t)
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


@specs
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_axis_matches_transposed_input(spec, axis):
    x = _input((4, 6))
    got = _run(spec, x, axis=axis)
    moved = _run(spec, x.movedim(axis, -1), axis=-1).movedim(-1, axis)
    torch.testing.assert_close(got, moved, rtol=0, atol=0)


@specs
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_dtypes_empty_and_non_contiguous(spec, dtype):
    x = _input((6, 4), dtype)
    y = _run(spec, x)
    assert y.dtype == dtype
    strided = _input((4, 6), dtype).t()
    assert not strided.is_contiguous()
    torch.testing.assert_close(_run(spec, strided), _run(spec, strided.contiguous()), rtol=0, atol=0)
    assert _run(spec, x[:0]).shape[0] == 0


@specs
def test_numpy_parity(spec):
    x = _input((5, 8))
    ours = _run(spec, x).numpy()
    np.testing.assert_allclose(spec(x.numpy()), ours, rtol=1e-13, atol=1e-15)


@specs
def test_axis_that_does_not_divide(spec):
    """Size 7 along the axis: a function that splits the axis refuses it, naming the shape."""
    x = _input((2, 7))
    try:
        y = _run(spec, x)
    except ValueError as err:
        assert "(2, 7)" in str(err)
    else:
        assert torch.isfinite(y).all()
        with pytest.raises(ValueError, match="out of range"):
            _run(spec, x, axis=2)


@pytest.mark.parametrize("spec", [s for s in VECTOR if not s.native], ids=spec_id)
def test_backward_saves_one_tensor(spec):
    x = _input((3, 8)).requires_grad_(True)
    y = _run(spec, x)
    saved = y.grad_fn.saved_tensors
    want = y if spec.saves == "output" else x
    assert len(saved) == 1 and saved[0].data_ptr() == want.data_ptr()


# ----------------------------------------------------------------------------- empty, 0-d, tuple axes, where
# (issue #10, item 6) Each behaviour against PyTorch's own function or an independent formula.
NORMALISERS = [s for s in VECTOR if s.masked is not None]
normalisers = pytest.mark.parametrize("spec", NORMALISERS, ids=spec_id)
TORCH_FUNCTION = {
    "softmax": lambda x, dim: torch.softmax(x, dim),
    "log_softmax": lambda x, dim: torch.log_softmax(x, dim),
    "softmin": lambda x, dim: torch.nn.functional.softmin(x, dim),
}


@normalisers
@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 3), (5, 0, 0)])
def test_empty_inputs_along_every_axis(spec, shape):
    for axis in range(-len(shape), len(shape)):
        x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
        y = _run(spec, x, axis=axis)
        if spec.name in TORCH_FUNCTION:
            want = TORCH_FUNCTION[spec.name](x, axis)
            assert y.shape == want.shape and y.dtype == want.dtype
        assert y.shape == shape
        (g,) = torch.autograd.grad(y.sum(), x)
        assert g.shape == shape
        assert np.asarray(spec(np.zeros(shape), axis=axis)).shape == shape


@normalisers
@pytest.mark.parametrize("value", [2.5, -1e4, 0.0])
def test_zero_dimensional_inputs(spec, value):
    """A 0-d input is a one-element row: softmax/softmin/sparsemax/entmax 1, log_softmax 0, as
    torch.softmax(tensor(v)) = 1 and torch.log_softmax = 0; the gradient is 0."""
    x = torch.tensor(value, dtype=torch.float64, requires_grad=True)
    want = 0.0 if spec.name == "log_softmax" else 1.0
    if spec.name in TORCH_FUNCTION:
        assert TORCH_FUNCTION[spec.name](x, 0).item() == want  # what PyTorch does
    for axis in (0, -1):
        y = _run(spec, x, axis=axis)
        assert y.shape == () and y.item() == want
        (g,) = torch.autograd.grad(y, x)
        assert g.item() == 0.0
        assert np.asarray(spec(np.float64(value), axis=axis)).item() == want
    with pytest.raises(ValueError, match=r"axis 1 is out of range for an input of shape \(\)"):
        _run(spec, x, axis=1)


def _reference_over_axes(spec, x, axes):
    """Independent formula: move the axes to the end with torch.movedim, flatten them, apply the
    single-axis function (PyTorch's own where it has one), and undo."""
    axes = [a % x.dim() for a in axes]
    rest = [d for d in range(x.dim()) if d not in axes]
    moved = x.movedim(axes, list(range(len(rest), x.dim())))
    flat = moved.reshape(*moved.shape[: len(rest)], -1)
    fn = TORCH_FUNCTION.get(spec.name, lambda t, dim: _run(spec, t, axis=dim))
    return fn(flat, -1).reshape(moved.shape).movedim(list(range(len(rest), x.dim())), axes)


@normalisers
@pytest.mark.parametrize(
    "shape, axes",
    [((2, 3, 4), a) for a in [(1, 2), (2, 1), (-1, -2), (0, 2), (0, 1, 2), (1,)]]
    # 4-d: the axes' permutation is not its own inverse (undoing it must use the inverse)
    + [((2, 3, 4, 5), (0, 2)), ((2, 3, 4, 5), (3, 1)), ((2, 3, 4, 5), (0, 1, 3))],
)
def test_tuple_of_axes_normalises_their_union(spec, shape, axes):
    x = _input(shape, seed=3)
    want = _reference_over_axes(spec, x, axes)
    got = _run(spec, x, axis=axes)
    torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-15)
    if spec.name != "log_softmax":
        total = got.sum(dim=tuple(a % len(shape) for a in axes))
        torch.testing.assert_close(total, torch.ones_like(total))
    np.testing.assert_allclose(spec(x.numpy(), axis=axes), want.numpy(), rtol=1e-13, atol=1e-15)
    assert torch.autograd.gradcheck(lambda t: _run(spec, t, axis=axes), (x.clone().requires_grad_(True),))


@normalisers
def test_tuple_axis_validation_names_the_shape(spec):
    x = _input((2, 3, 4))
    with pytest.raises(ValueError, match=r"axis \(1, -2\) names the same axis twice .*\(2, 3, 4\)"):
        _run(spec, x, axis=(1, -2))
    with pytest.raises(ValueError, match=r"axis \(1, 3\) is out of range for an input of shape \(2, 3, 4\)"):
        _run(spec, x, axis=(1, 3))
    for bad in [(1, 1), (), (1, 2.5), "1"]:
        with pytest.raises(ValueError, match="axis"):
            spec.resolve_params(axis=bad)
    assert spec.resolve_params(axis=[1, 2])["axis"] == (1, 2)


def _jax_masked(spec, x, mask):
    """jax.nn's where= semantics, written out with PyTorch's functions: masked entries are left out
    of the row (-inf logits), masked outputs are 0 (log_softmax: -inf), a row with nothing
    unmasked is 0 (-inf) everywhere. sparsemax/entmax15: the function of the unmasked entries alone."""
    fill_out = -math.inf if spec.name == "log_softmax" else 0.0
    out = torch.full_like(x, fill_out)
    for i in range(x.shape[0]):
        kept = mask[i]
        if not kept.any():
            continue
        row = x[i][kept]
        if spec.name in TORCH_FUNCTION:
            out[i][kept] = TORCH_FUNCTION[spec.name](row, -1)
        else:
            out[i][kept] = _run(spec, row)
    return out


def _mask(shape, seed=0, keep=0.6):
    m = torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < keep
    m[1] = False  # a fully masked row
    m[2] = True  # an unmasked one
    m[3] = False
    m[3, 5] = True  # a single unmasked entry
    return m


@normalisers
def test_where_mask_follows_jax_semantics(spec):
    x = _input((6, 8), seed=4)
    x[0, 0] = math.nan  # junk under the mask must not matter
    mask = _mask(x.shape)
    mask[0, 0] = False
    got = _run(spec, x, where=mask)
    torch.testing.assert_close(got, _jax_masked(spec, x, mask), rtol=1e-13, atol=1e-15)
    fill = -math.inf if spec.name == "log_softmax" else 0.0
    assert (got[~mask] == fill).all() and not got.isnan().any()
    np.testing.assert_allclose(spec(x.numpy(), where=mask.numpy()), got.numpy(), rtol=1e-13, atol=1e-15)
    module = actlab.nn.Activation(spec.name)
    torch.testing.assert_close(module(x, where=mask), got, rtol=0, atol=0)
    torch.testing.assert_close(getattr(F, spec.name)(x, where=mask), got, rtol=0, atol=0)
    bound = actlab.get(spec.name)  # a bound activation dispatches on the input's type
    torch.testing.assert_close(bound(x, where=mask), got, rtol=0, atol=0)
    np.testing.assert_array_equal(bound(x.numpy(), where=mask.numpy()), spec(x.numpy(), where=mask.numpy()))


@normalisers
def test_where_mask_gradients(spec):
    x = _input((6, 8), seed=5).requires_grad_(True)
    mask = _mask(x.shape, seed=1)
    g = _input((6, 8), seed=6)
    y = _run(spec, x, where=mask)
    (gx,) = torch.autograd.grad(y, x, g.masked_fill(~mask, 0.0) if spec.name == "log_softmax" else g)
    assert torch.isfinite(gx).all() and (gx[~mask] == 0).all()
    # unmasked entries: the gradient of the function of the unmasked entries alone
    for i in range(x.shape[0]):
        kept = mask[i]
        if kept.any():
            row = x[i][kept].detach().requires_grad_(True)
            fn = TORCH_FUNCTION.get(spec.name, lambda t, dim: _run(spec, t, axis=dim))
            (want,) = torch.autograd.grad(fn(row, -1), row, g[i][kept])
            torch.testing.assert_close(gx[i][kept], want, rtol=1e-12, atol=1e-15)
    kept_only = lambda t: _run(spec, t, where=mask)[mask]  # noqa: E731 - log_softmax's fill is -inf
    assert torch.autograd.gradcheck(kept_only, (x.detach().clone().requires_grad_(True),))
    assert torch.autograd.gradgradcheck(kept_only, (x.detach().clone().requires_grad_(True),))


@normalisers
def test_where_mask_broadcasts_and_is_validated(spec):
    x = _input((3, 2, 8), seed=7)
    row_mask = torch.arange(8) % 3 != 0  # broadcast over the leading axes
    want = _run(spec, x, where=row_mask.expand(3, 2, 8).clone())
    torch.testing.assert_close(_run(spec, x, where=row_mask), want, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"where= mask of shape \(4, 8\) does not broadcast to the input's shape"):
        _run(spec, x, where=torch.ones(4, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(3, 2, 8\)"):
        _run(spec, x[0, 0], where=torch.ones(3, 2, 8, dtype=torch.bool))
    with pytest.raises(TypeError, match="boolean"):
        _run(spec, x, where=torch.ones(3, 2, 8))
    with pytest.raises(TypeError, match="boolean"):
        spec(x.numpy(), where=np.ones((3, 2, 8)))
    # a tuple of axes with a mask: the union of the axes is one row
    m3 = torch.rand(3, 2, 8, generator=torch.Generator().manual_seed(8)) < 0.5
    got = _run(spec, x, axis=(1, 2), where=m3)
    flat = _jax_masked(spec, x.reshape(3, 16), m3.reshape(3, 16))
    torch.testing.assert_close(got, flat.reshape(3, 2, 8), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("spec", [s for s in VECTOR if s.masked is None], ids=spec_id)
def test_where_is_refused_by_the_other_vector_functions(spec):
    x = _input((2, 8))
    with pytest.raises(TypeError, match="where= is accepted by the normalisers only"):
        _run(spec, x, where=torch.ones(2, 8, dtype=torch.bool))
    with pytest.raises(TypeError, match="where= is accepted by the normalisers only"):
        spec(x.numpy(), where=np.ones((2, 8), bool))
    with pytest.raises(ValueError, match="axis"):
        spec.resolve_params(axis=(0, 1))


@normalisers
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_masked_tuple_axes_against_row_oracle(spec, dtype):
    from actlab.verify.vector import measure_masked

    row = measure_masked(spec, dtype)
    assert row.mask_errors == 0, row
    assert row.nonfinite == 0, row
    assert row.forward_ulps <= row.forward_limit, row
    assert row.derivative_ulps <= row.derivative_limit, row
    assert row.tangent_ulps <= row.derivative_limit, row


@normalisers
def test_compiled_module_with_tuple_axes_and_where(spec):
    torch._dynamo.reset()
    act = actlab.nn.Activation(spec.name, axis=(1, 2))
    x = _input((2, 3, 4), dtype=torch.float32, seed=9).requires_grad_(True)
    mask = torch.rand(2, 3, 4, generator=torch.Generator().manual_seed(10)) < 0.7
    compiled = torch.compile(lambda t: act(t, where=mask), backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), act(x, where=mask), rtol=0, atol=0)


@specs
def test_functional_checks_of_the_cli_pass(spec):
    """``python -m actlab.verify.vector NAME`` reports these; each must hold for every vector spec."""
    from actlab.verify.vector import functional_checks

    failed = [(check, detail[:200]) for check, ok, detail in functional_checks(spec) if not ok]
    assert not failed, failed
