"""Tests generated for every vector spec (softmax family, sparsemax, entmax, GLU variants, maxout)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actlab.torch.functional import apply
from conftest import VECTOR, spec_id

specs = pytest.mark.parametrize("spec", VECTOR, ids=spec_id)


def _run(spec, x, **params):
    return apply(spec, x, spec.resolve_params(**params))


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
