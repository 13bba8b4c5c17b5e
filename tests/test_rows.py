"""The row kernels (actlab.torch.rows, csrc/rows.cpp, csrc/rows_gated.h): the softmax family, then
sparsemax/entmax15 and the gated units (glu family). The softmax family: taken where it should be, as
accurate as the catalog requires (mpmath row oracle; closed-form mpmath truth for long rows), and
equal across layouts, dtypes, torch.compile, double backward and forward-mode AD. The generated
tests (test_vector, test_low_precision, test_forward_ad) also run through it, via ``apply``."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
mpmath = pytest.importorskip("mpmath")

from actlab.registry import get_spec  # noqa: E402
from actlab.torch import functional as F  # noqa: E402
from actlab.torch import kernels, rows  # noqa: E402
from actlab.torch.functional import apply  # noqa: E402
from actlab.verify.accuracy import DERIVATIVE_LIMIT, FORWARD_LIMIT, ulp, ulp_errors  # noqa: E402
from actlab.verify.vector import _TINY, _truth  # noqa: E402
from conftest import HAS_COMPILER, dispatched_ops  # noqa: E402

# Where a C++ compiler exists the kernels must build and load: a failed build fails these tests
# (test_the_kernels_build_and_load) instead of skipping them.
pytestmark = pytest.mark.skipif(
    not kernels.enabled() or not HAS_COMPILER, reason="fused kernels off, or no C++ compiler"
)

NAMES = sorted(rows.ROW_KERNELS)
names = pytest.mark.parametrize("name", NAMES)
FORWARD_OP = "actlab_kernels::softmax_forward"
BACKWARD_OP = "actlab_kernels::softmax_backward"
# eagerly every row kernel is one operator whose backward is a C++ autograd node (csrc/rows.cpp)
ROW_OP = "actlab_kernels::row_apply"
NODE = "ActlabRowBackward"


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _run(name: str, x: torch.Tensor, axis: int = -1) -> torch.Tensor:
    spec = get_spec(name)
    return apply(spec, x, spec.resolve_params(axis=axis))  # (maxout: its default pieces)


def _fwd_bwd(name: str, x: torch.Tensor, g: torch.Tensor, axis: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    xr = x.detach().clone().requires_grad_()
    y = _run(name, xr, axis)
    (gx,) = torch.autograd.grad(y, xr, g)
    return y.detach(), gx


def test_every_row_kernel_is_a_registered_normaliser():
    for name in NAMES:
        spec = get_spec(name)
        assert spec.kind == "vector" and spec.masked is not None and spec.saves == "output", name


@names
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_the_fused_path_is_taken_forward_and_backward(name, dtype):
    x = torch.randn(4, 33, generator=_gen(1)).to(dtype).requires_grad_()

    def step():
        _run(name, x).backward(torch.ones(4, 33, dtype=dtype))

    ops = dispatched_ops(step)
    assert ROW_OP in ops and NODE in ops, ops
    assert "aten::amax" not in ops  # none of the eager chain
    with kernels.use(False):
        ops = dispatched_ops(step)
    assert ROW_OP not in ops and NODE not in ops
    # float64, a where= mask and a tuple of axes stay on the eager path
    for call in (
        lambda: _run(name, x.detach().double()),
        lambda: apply(get_spec(name), x.detach().float(), {"axis": -1}, where=torch.ones(4, 33, dtype=torch.bool)),
        lambda: apply(get_spec(name), x.detach().float().reshape(4, 3, 11), {"axis": (1, 2)}),
    ):
        ops = dispatched_ops(call)
        assert ROW_OP not in ops and FORWARD_OP not in ops


def _packed(fn, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """fn(x) and the tensors its graph saved, as saved_tensors_hooks see them."""
    packed: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        packed.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn(x)
    return y, packed


@names
def test_backward_saves_only_the_output(name):
    """float32 keeps the output; half precision the input (its rounded output lost the vjp's digits)."""
    x = torch.randn(3, 20, generator=_gen(2)).requires_grad_()
    y, saved = _packed(lambda t: _run(name, t), x)
    assert len(saved) == 1 and saved[0].data_ptr() == y.data_ptr()
    xb = x.detach().bfloat16().requires_grad_()
    yb, saved = _packed(lambda t: _run(name, t), xb)
    assert len(saved) == 1 and saved[0].data_ptr() == xb.data_ptr()


# ----------------------------------------------------------------------------- accuracy
def _oracle_rows(width: int) -> np.ndarray:
    """A few hard rows: a dominant entry (softmax's vjp cancels there; log_softmax's maximum is
    tiny), very negative log_softmax outputs, mixed magnitudes, a large offset, ties; ``width`` not
    a multiple of the vector width, so the row tails are exercised."""
    r = np.random.default_rng(5)
    out = [
        np.r_[r.normal(0, 1, width - 1), 25.0],
        np.r_[r.normal(0, 1, width - 1), -25.0],  # softmin's dominant entry
        r.normal(0, 30, width),
        np.where(r.random(width) < 0.5, r.normal(0, 1e-3, width), 40 + r.normal(0, 10, width)),
        1e4 + r.normal(0, 2, width),
        r.choice([-1.0, 0.0, 0.5, 2.0], width),
    ]
    return np.stack(out).astype(np.float32).astype(np.float64)


@names
def test_accuracy_against_the_row_oracle(name):
    """Forward within 4 ulp, vjp within 8 ulp (or 4 ulp of sum |g J|) of the mpmath row oracle."""
    spec = get_spec(name)
    xs = _oracle_rows(21)
    gs = np.random.default_rng(6).normal(0, 1, xs.shape).astype(np.float32).astype(np.float64)
    truth = _truth(spec, spec.resolve_params(), xs, gs, _TINY["float32"])
    y, gx = _fwd_bwd(name, torch.tensor(xs, dtype=torch.float32), torch.tensor(gs, dtype=torch.float32))
    f_err, f_bad = ulp_errors(y.double().numpy(), truth["forward"], "float32")
    v_err, v_bad = ulp_errors(gx.double().numpy(), truth["vjp"], "float32", floor=ulp(truth["absg"], "float32") / 2)
    v_err = np.where(truth["kink"], 0.0, v_err)
    assert not f_bad.any() and not v_bad.any()
    assert f_err.max() <= FORWARD_LIMIT["float32"], f_err.max()
    assert v_err.max() <= DERIVATIVE_LIMIT, v_err.max()


def _closed_form(name: str, row: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(forward, vjp, sum_i |g_i J_ij|) of one long row from the textbook formulas in mpmath at 60
    digits (the Jacobian oracle of actlab.verify.vector is quadratic in the width)."""
    mp = mpmath.mp
    with mp.workdps(60):
        xs = [mp.mpf(float(v)) * (-1 if name == "softmin" else 1) for v in row]
        gs = [mp.mpf(float(v)) for v in g]
        top = max(xs)
        e = [mp.exp(v - top) for v in xs]
        s = mp.fsum(e)
        p = [v / s for v in e]
        if name == "log_softmax":
            fwd = [v - top - mp.log(s) for v in xs]
            total, total_abs = mp.fsum(gs), mp.fsum(abs(v) for v in gs)
            vjp = [gi - pi * total for gi, pi in zip(gs, p)]
            absg = [abs(gi) * (1 - pi) + pi * (total_abs - abs(gi)) for gi, pi in zip(gs, p)]
        else:
            sign = -1 if name == "softmin" else 1
            t = mp.fsum(gi * pi for gi, pi in zip(gs, p))
            weighted = mp.fsum(abs(gi) * pi for gi, pi in zip(gs, p))
            fwd = p
            vjp = [sign * pi * (gi - t) for gi, pi in zip(gs, p)]
            absg = [pi * (abs(gi) * (1 - 2 * pi) + weighted) for gi, pi in zip(gs, p)]
        return tuple(np.array([float(v) for v in a]) for a in (fwd, vjp, absg))


@names
def test_long_rows_against_mpmath(name):
    """Rows of 1000 and 4099: the double sums keep every output within a few ulps where PyTorch's
    float ones lose tens (softmax) to millions (log_softmax's maximum, the dominant vjp)."""
    r = np.random.default_rng(7)
    for n, row in [
        (1000, np.r_[r.normal(0, 10, 999), 60.0]),
        (1000, np.r_[r.normal(0, 10, 999), -60.0]),
        (4099, r.normal(0, 30, 4099)),
    ]:
        row = row.astype(np.float32).astype(np.float64)
        g = r.normal(0, 1, n).astype(np.float32).astype(np.float64)
        fwd, vjp, absg = _closed_form(name, row, g)
        y, gx = _fwd_bwd(name, torch.tensor(row, dtype=torch.float32), torch.tensor(g, dtype=torch.float32))
        f_err, _ = ulp_errors(y.double().numpy(), fwd, "float32")
        v_err, _ = ulp_errors(gx.double().numpy(), vjp, "float32", floor=ulp(absg, "float32") / 2)
        assert f_err.max() <= FORWARD_LIMIT["float32"], (n, f_err.max())
        assert v_err.max() <= DERIVATIVE_LIMIT, (n, v_err.max())


def test_log_softmax_keeps_the_maximums_tiny_output():
    """log_softmax([0, 30]) = [-30 - 9.36e-14, -9.36e-14] (PyTorch: [-30, 0]); the dominant entry of
    softmax([0, 30]) has a vjp of the size of the other's weight (PyTorch: 0)."""
    x = torch.tensor([0.0, 30.0])
    want = -math.log1p(math.exp(-30.0))
    assert F.log_softmax(x)[1].item() == pytest.approx(want, rel=1e-6, abs=0)
    _, gx = _fwd_bwd("softmax", x, torch.tensor([0.0, 1.0]))
    p = math.exp(-30.0) / (1 + math.exp(-30.0))
    assert gx[1].item() == pytest.approx(p * (1 - p), rel=1e-6, abs=0)


@names
def test_special_rows_match_the_float64_eager_path(name):
    """Infinite and NaN entries: the limits and NaN rows of the eager code (catalog.vector)."""
    inf, nan = math.inf, math.nan
    specials = [
        [inf, 1.0, -2.0, 0.0],
        [-inf, 1.0, -2.0, 0.0],
        [-inf, -inf, -inf, -inf],
        [inf, inf, 0.0, 1.0],
        [nan, 1.0, 2.0, 3.0],
        [0.0, -0.0, 1e-40, -1e-40],
        [3e38, -3e38, 3e38, 0.0],
        [3e38, -3e38, 1.0, 0.0],
    ]
    x = torch.tensor(specials, dtype=torch.float32)
    g = torch.tensor([[0.5, -1.0, 2.0, 1.0]] * len(specials))
    y, gx = _fwd_bwd(name, x, g)
    with kernels.use(False):
        ye, ge = _fwd_bwd(name, x.double(), g.double())
    torch.testing.assert_close(y, ye.float(), equal_nan=True, rtol=3e-7, atol=0)
    torch.testing.assert_close(gx, ge.float(), equal_nan=True, rtol=3e-7, atol=1e-45)


# ----------------------------------------------------------------------------- layouts, dtypes
@names
def test_other_dims_and_non_contiguous_inputs_equal_the_last_dim(name):
    """Each row is computed alone: the same rows along dim 0, 1, -1 of a 3-d tensor, through a
    transposed or strided view, give bitwise the same outputs and gradients."""
    base = torch.randn(6, 50, generator=_gen(3)) * 5
    g = torch.randn(6, 50, generator=_gen(4))
    y, gx = _fwd_bwd(name, base, g)
    for axis, perm in [(0, (1, 0)), (1, (0, 1)), (-2, (1, 0))]:
        yt, gt = _fwd_bwd(name, base.t().contiguous().t().permute(*perm), g.permute(*perm), axis)
        assert torch.equal(yt.permute(*perm), y) and torch.equal(gt.permute(*perm), gx), axis
    x3 = base.reshape(6, 1, 50).expand(6, 3, 50).permute(2, 1, 0)  # (50, 3, 6), rows along 0
    g3 = g.reshape(6, 1, 50).expand(6, 3, 50).permute(2, 1, 0).contiguous()
    y3, g3x = _fwd_bwd(name, x3, g3, 0)
    for k in range(3):
        assert torch.equal(y3[:, k].t(), y) and torch.equal(g3x[:, k].t(), gx)
    wide = torch.zeros(6, 100)
    wide[:, ::2] = base  # a strided view
    ys, gs = _fwd_bwd(name, wide[:, ::2], g)
    assert torch.equal(ys, y) and torch.equal(gs, gx)


@names
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_against_float64(name, dtype):
    """bfloat16/float16 in, the same dtype out, within one step of the float64 result (computed in
    float/double and rounded once; the backward from the float32 output recomputed from x)."""
    x = (torch.randn(5, 70, generator=_gen(5)) * 4).to(dtype)
    x[0, 3] = 40.0  # a dominant entry
    g = torch.randn(5, 70, generator=_gen(6)).to(dtype)
    y, gx = _fwd_bwd(name, x, g)
    assert y.dtype == dtype and gx.dtype == dtype
    with kernels.use(False):
        ye, ge = _fwd_bwd(name, x.double(), g.double())
    eps = torch.finfo(dtype).eps
    for got, want in ((y, ye), (gx, ge)):
        step = eps * want.abs().clamp_min(torch.finfo(dtype).tiny)
        assert bool(((got.double() - want).abs() <= step).all()), (got.double() - want).abs().max()


# ----------------------------------------------------------------------------- autograd, compile
@names
@pytest.mark.parametrize("mode", ["grad", "no_grad"])
def test_compiled_fullgraph(name, mode):
    """torch.compile(fullgraph=True) through the fake kernels: values and gradients equal eager."""
    torch._dynamo.reset()
    fn = getattr(F, name)

    def model(t: torch.Tensor) -> torch.Tensor:
        return fn(t * 2.0, dim=1) + fn(t, dim=-1)

    x = torch.randn(4, 6, 10, generator=_gen(10))
    _check_compiled(model, x, mode, FORWARD_OP, BACKWARD_OP)


def _check_compiled(model, x: torch.Tensor, mode: str, forward_op: str, backward_op: str) -> None:
    """``model`` compiled (fullgraph, aot_eager) equals it eagerly, values and gradients, and runs the
    fused operators (both with grad, the forward without)."""
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    if mode == "grad":
        xr = x.clone().requires_grad_()
        out = compiled(xr)
        ops = dispatched_ops(lambda: torch.autograd.grad(compiled(xr), xr, torch.ones_like(out)))
        assert forward_op in ops and backward_op in ops
        (gc,) = torch.autograd.grad(out, xr, torch.ones_like(out))
        xe = x.clone().requires_grad_()
        want = model(xe)
        (ge,) = torch.autograd.grad(want, xe, torch.ones_like(want))
        torch.testing.assert_close(out, want, rtol=0, atol=0)
        torch.testing.assert_close(gc, ge, rtol=0, atol=0)
    else:
        with torch.no_grad():
            ops = dispatched_ops(lambda: compiled(x))
            torch.testing.assert_close(compiled(x), model(x), rtol=0, atol=0)
        assert forward_op in ops


def test_inductor_reads_the_kernels_layout():
    """Inductor lays out the code after the kernel by the fake's strides (dim moved last): a wrong
    fake would make it read the output in the wrong order."""
    torch._dynamo.reset()

    def model(t: torch.Tensor) -> torch.Tensor:
        return F.softmax(t, dim=1) * 3.0 + F.log_softmax(t, dim=0)

    x = torch.randn(5, 7, 3, generator=_gen(11))
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, fullgraph=True)(x), model(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_fake_kernels_agree_with_the_real_ones(dim):
    """torch.library.opcheck: the schema, and the fakes' shapes, strides and dtypes against the real
    outputs (a dim other than the last leaves the output with that dim innermost)."""
    x = torch.randn(4, 5, 6, generator=_gen(12))
    y = torch.ops.actlab_kernels.softmax_forward(x, dim, True, False)
    checks = ("test_schema", "test_faketensor")
    ops = torch.ops.actlab_kernels
    for log in (False, True):
        torch.library.opcheck(ops.softmax_forward.default, (x, dim, log, False), test_utils=checks)
        torch.library.opcheck(ops.softmax_backward.default, (y, x * 0.5, dim, log, True), test_utils=checks)


def test_threads_do_not_change_the_result():
    """Rows are split between threads whole: any thread count gives bitwise the same output."""
    x = torch.randn(300, 257, generator=_gen(13)) * 3
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = F.log_softmax(x)
        torch.set_num_threads(2)
        two = F.log_softmax(x)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, two)


# ============================================================================ gated units, sparse
# The glu family (gated_forward/backward, the halves' gates from the elementwise kernels) and
# sparsemax/entmax15 (sparse_forward/backward). The spec lists come from the registry.
def _vector_specs_with(table: dict) -> list[str]:
    from actlab.registry import all_specs

    return sorted(s.name for s in all_specs() if s.kind == "vector" and rows.has_kernel(s.name) and s.name in table)


GATED = _vector_specs_with(rows.GATED_KERNELS)
SPARSE = _vector_specs_with(rows.SPARSE_KERNELS)
OTHERS = GATED + SPARSE
others = pytest.mark.parametrize("name", OTHERS)
_OPS = {**{n: "gated" for n in GATED}, **{n: "sparse" for n in SPARSE}}


def test_the_row_kernels_cover_registered_specs():
    """Every table entry names a registered vector spec of the right kind (gated: saves its input and
    splits the axis; sparse: a normaliser that saves its output)."""
    assert set(GATED) == set(rows.GATED_KERNELS) and set(SPARSE) == set(rows.SPARSE_KERNELS)
    assert len(GATED) >= 6 and len(SPARSE) >= 2
    for name in GATED:
        spec = get_spec(name)
        assert spec.saves == "input" and spec.masked is None, name
        with pytest.raises(ValueError, match="not divisible by 2"):
            _run(name, torch.ones(3, 5))  # an odd split still says what is wrong
    for name in SPARSE:
        spec = get_spec(name)
        assert spec.saves == "output" and spec.masked is not None, name


@others
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_the_fused_gated_and_sparse_paths_are_taken(name, dtype):
    x = torch.randn(4, 34, generator=_gen(21)).to(dtype).requires_grad_()
    fwd, bwd = f"actlab_kernels::{_OPS[name]}_forward", f"actlab_kernels::{_OPS[name]}_backward"

    def step():
        y = _run(name, x)
        y.backward(torch.ones_like(y))

    ops = dispatched_ops(step)
    assert ROW_OP in ops and NODE in ops, ops
    assert "aten::sigmoid" not in ops and "aten::sort" not in ops  # none of the eager chain
    with kernels.use(False):
        ops = dispatched_ops(step)
    assert ROW_OP not in ops and NODE not in ops and fwd not in ops and bwd not in ops
    assert ROW_OP not in dispatched_ops(lambda: _run(name, x.detach().double()))  # float64: the eager reference


@others
def test_gated_units_save_the_input_and_sparse_ones_the_output(name):
    x = torch.randn(3, 20, generator=_gen(22)).requires_grad_()
    y, saved = _packed(lambda t: _run(name, t), x)
    assert len(saved) == 1 and saved[0].data_ptr() == (x.data_ptr() if name in GATED else y.data_ptr())


def _compare(name: str, x: torch.Tensor, g: torch.Tensor, axis: int) -> None:
    """Fused (x's dtype) against the float64 eager path: float32 forward within 4 ulp, the vjp within
    8 ulp of the float64 value or of sum |g_i J_ij| (sparsemax/entmax: of max |g| on the row); half
    precision within one step of the float64 value."""
    y, gx = _fwd_bwd(name, x, g, axis)
    assert y.dtype == x.dtype and gx.dtype == x.dtype and gx.shape == x.shape
    with kernels.use(False):
        ye, ge = _fwd_bwd(name, x.double(), g.double(), axis)
    if x.dtype != torch.float32:
        eps, tiny = torch.finfo(x.dtype).eps, torch.finfo(x.dtype).tiny
        for got, want in ((y, ye), (gx, ge)):
            assert bool(((got.double() - want).abs() <= eps * want.abs().clamp_min(tiny)).all()), name
        return
    f_err, f_bad = ulp_errors(y.double().numpy(), ye.numpy(), "float32")
    if name in GATED:  # each gradient element is one product: sum |g J| is |true|
        floor = 0.0
    else:
        row = g.double().abs().amax(dim=axis, keepdim=True).expand_as(g)
        floor = ulp(row.numpy(), "float32") / 2.0
    v_err, v_bad = ulp_errors(gx.double().numpy(), ge.numpy(), "float32", floor=floor)
    assert not f_bad.any() and not v_bad.any()
    assert f_err.max() <= FORWARD_LIMIT["float32"], (name, f_err.max())
    assert v_err.max() <= DERIVATIVE_LIMIT, (name, v_err.max())


@others
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gated_and_sparse_against_float64_across_axes_and_layouts(name, dtype):
    """Axes 0, 1, -1 of 2-d and 3-d inputs, a transposed and a strided view, rows of one pair (or
    one element) and empty inputs."""
    r = _gen(23)
    cases = [
        (torch.randn(5, 74, generator=r) * 3, -1),  # 37 pairs: vector tails
        (torch.randn(3, 8, 7, generator=r) * 3, 1),
        (torch.randn(6, 3, 5, generator=r) * 3, 0),
        (torch.randn(40, 6, generator=r).t() * 3, 0),  # non-contiguous
        ((torch.randn(4, 20, generator=r) * 3)[:, ::2], 1),  # strided
        (torch.randn(7, 2, generator=r) * 3, -1),  # one pair (gated) per row
        (torch.randn(7, 1, generator=r) * 3, -1) if name in SPARSE else (torch.randn(2, 2, 1, generator=r), 1),
    ]
    for x, axis in cases:
        y = _run(name, x, axis)
        g = torch.randn(y.shape, generator=r).to(dtype)
        _compare(name, x.to(dtype), g, axis)
    empty = torch.zeros(0, 6, dtype=dtype)
    assert _run(name, empty).shape == _run(name, empty.double()).shape


def _gated_hard_rows() -> np.ndarray:
    """a * act(b) where act(b) is subnormal or 0 in float32 but the product is not (b down to -150,
    a up to 1e38), b near the roots of gelu' (-0.7518) and silu' (-1.2785), large and tiny gates."""
    r = np.random.default_rng(24)
    b = np.array([-150.0, -100.0, -90.0, -40.0, -13.0, -0.7517915, -0.76, -1.2784646, -1.3, 0.0, 1e-20, 17.0, 90.0])
    a = np.array([1e38, 1e30, 3e35, 1e15, 1e3, 1.0, -2.0, 1.0, 0.5, 3.0, -1.0, 1.0, 2.0])
    rows_ = [np.r_[a, b], np.r_[r.normal(0, 1, 13), r.normal(0, 4, 13)], np.r_[b[::-1] / 3, a[::-1] * 1e-30]]
    return np.stack(rows_).astype(np.float32).astype(np.float64)


def _sparse_hard_rows() -> np.ndarray:
    """Supports of 1, 2, several and all entries, ties, a large offset, tiny spreads."""
    r = np.random.default_rng(25)
    w = 21
    out = [
        np.r_[r.normal(0, 1, w - 1), 25.0],  # support of one
        np.r_[r.normal(0, 0.01, w)],  # all
        np.r_[[3.0, 2.9], r.normal(0, 1, w - 2)],
        r.normal(0, 3, w),
        1e4 + r.normal(0, 2, w),
        r.choice([-1.0, 0.0, 0.5, 2.0], w),
    ]
    return np.stack(out).astype(np.float32).astype(np.float64)


@others
def test_gated_and_sparse_hard_rows_against_the_row_oracle(name):
    """The mpmath row oracle (actlab.verify.vector) on rows where a float-only evaluation fails: the
    catalog's limits (forward 4 ulp, vjp 8 ulp or 4 ulp of sum |g J|; condition allowance where the
    spec declares one)."""
    spec = get_spec(name)
    xs = _gated_hard_rows() if name in GATED else _sparse_hard_rows()
    gs = np.random.default_rng(26).normal(0, 1, (xs.shape[0], xs.shape[1] // (2 if name in GATED else 1)))
    gs = gs.astype(np.float32).astype(np.float64)
    truth = _truth(spec, spec.resolve_params(), xs, gs, _TINY["float32"])
    y, gx = _fwd_bwd(name, torch.tensor(xs, dtype=torch.float32), torch.tensor(gs, dtype=torch.float32))
    cond = truth["cond"] if spec.tolerance.condition_allowance else np.ones_like(truth["forward"])
    f_err, f_bad = ulp_errors(y.double().numpy(), truth["forward"], "float32")
    v_err, v_bad = ulp_errors(gx.double().numpy(), truth["vjp"], "float32", floor=ulp(truth["absg"], "float32") / 2)
    v_err = np.where(truth["kink"], 0.0, v_err)
    if spec.tolerance.condition_allowance:
        v_err = v_err / np.max(cond, axis=1, keepdims=True)
    assert not f_bad.any() and not v_bad.any()
    assert (f_err / cond).max() <= (spec.tolerance.forward_ulps or FORWARD_LIMIT["float32"]), (f_err / cond).max()
    assert v_err.max() <= (spec.tolerance.derivative_ulps or DERIVATIVE_LIMIT), v_err.max()


@others
def test_gated_and_sparse_special_values_match_the_float64_eager_path(name):
    inf, nan = math.inf, math.nan
    x = torch.tensor(
        [[inf, 1.0, -2.0, 0.0], [-inf, 1.0, -inf, 0.0], [nan, 1.0, 2.0, 3.0], [0.0, -0.0, 1e-40, -1e-40]]
        + ([[inf, inf, 0.0, 1.0], [-inf, -inf, -inf, -inf]] if name in SPARSE else [[1.0, 2.0, inf, -inf]])
    )
    y = _run(name, x)
    g = torch.tensor([[0.5, -1.0, 2.0, 1.0][: y.shape[1]]] * len(x))
    y, gx = _fwd_bwd(name, x, g)
    with kernels.use(False):
        ye, ge = _fwd_bwd(name, x.double(), g.double())
    if name in GATED:
        # a * act(-inf) with a finite: the limit 0, where the eager swiglu forms (a p1) (b p2) = 0 * NaN
        a, b = x.chunk(2, dim=1)
        limit = ye.isnan() & (b == -inf) & a.isfinite()
        assert bool((y[limit] == 0).all())
        y, ye = y[~limit], ye[~limit]
    torch.testing.assert_close(y, ye.float(), equal_nan=True, rtol=3e-7, atol=0)
    finite = torch.isfinite(x).all(dim=1) if name in GATED else torch.ones(len(x), dtype=torch.bool)
    # gated: inf * 0 in the gradient of an infinite half is NaN either way or 0 by the exact-zero rule
    torch.testing.assert_close(gx[finite], ge.float()[finite], equal_nan=True, rtol=3e-7, atol=1e-45)


@pytest.mark.parametrize("name", NAMES + OTHERS)
def test_double_backward_forward_ad_and_vmap_take_the_eager_formulas(name):
    """Every row kernel: create_graph=True records the spec's vjp (second derivatives match
    float64); forward-mode AD and vmap take the eager Function (its jvp)."""
    x = torch.randn(3, 10, generator=_gen(27)) * 2
    g = torch.randn(_run(name, x).shape, generator=_gen(28))
    v = torch.randn(3, 10, generator=_gen(29))

    def hvp(t: torch.Tensor) -> torch.Tensor:
        t = t.clone().requires_grad_()
        (gx,) = torch.autograd.grad(_run(name, t), t, g.to(t.dtype), create_graph=True)
        (h,) = torch.autograd.grad(gx, t, v.to(t.dtype))
        return h

    torch.testing.assert_close(hvp(x), hvp(x.double()).float(), rtol=1e-4, atol=1e-5)
    _, tangent = torch.func.jvp(lambda t: _run(name, t), (x,), (v,))
    _, tangent64 = torch.func.jvp(lambda t: _run(name, t), (x.double(),), (v.double(),))
    torch.testing.assert_close(tangent, tangent64.float(), rtol=1e-5, atol=1e-6)
    batched = torch.func.vmap(lambda t: _run(name, t))(x)
    torch.testing.assert_close(batched, _run(name, x), rtol=3e-7, atol=0)


@others
@pytest.mark.parametrize("mode", ["grad", "no_grad"])
def test_gated_and_sparse_compiled_fullgraph(name, mode):
    """torch.compile(fullgraph=True) through the fakes: values and gradients equal eager."""
    torch._dynamo.reset()
    fn = getattr(F, name)
    fwd = f"actlab_kernels::{_OPS[name]}_forward"

    def model(t: torch.Tensor) -> torch.Tensor:
        return fn(t * 2.0, dim=1).sum(dim=(1, 2)) + fn(t, dim=-1).sum(dim=(1, 2))

    x = torch.randn(4, 6, 10, generator=_gen(30))
    _check_compiled(model, x, mode, fwd, f"actlab_kernels::{_OPS[name]}_backward")


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_gated_and_sparse_fakes_agree_with_the_real_kernels(dim):
    """torch.library.opcheck of the four operators' schemas and fakes (shapes, strides, dtypes)."""
    x = torch.randn(4, 6, 8, generator=_gen(31))
    ops = torch.ops.actlab_kernels
    checks = ("test_schema", "test_faketensor")
    for entmax in (False, True):
        y = ops.sparse_forward(x, dim, entmax)
        torch.library.opcheck(ops.sparse_forward.default, (x, dim, entmax), test_utils=checks)
        torch.library.opcheck(ops.sparse_backward.default, (y, x * 0.5, dim, entmax), test_utils=checks)
    for name in GATED:
        y = ops.gated_forward(x, dim, name)
        torch.library.opcheck(ops.gated_forward.default, (x, dim, name), test_utils=checks)
        torch.library.opcheck(ops.gated_backward.default, (x, y * 0.5, dim, name), test_utils=checks)


def test_inductor_compiles_gated_and_sparse_kernels():
    """Inductor (not only aot_eager) around the gated and sparse operators, under no_grad: the fakes'
    layouts are what the code after them reads."""
    torch._dynamo.reset()

    def model(t: torch.Tensor) -> torch.Tensor:
        return F.swiglu(t, dim=1) * 3.0 + F.sparsemax(t[:, :3], dim=0) - F.entmax15(t[:, 3:], dim=-1)

    x = torch.randn(5, 6, 4, generator=_gen(32)) * 2
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, fullgraph=True)(x), model(x), rtol=1e-6, atol=1e-6)


# ============================================================================ the C++ autograd node
# Eagerly a row kernel is one operator (actlab_kernels::row_apply) whose backward is ActlabRowBackward,
# a plain C++ autograd node (no torch.autograd.Function on the path): it must keep the graph semantics
# of PyTorch's own nodes and the values of the Python Functions it replaces.
EAGER_ONLY = _vector_specs_with(rows.EAGER_ONLY_KERNELS)
ALL = NAMES + OTHERS + EAGER_ONLY
every = pytest.mark.parametrize("name", ALL)


def _through_function(name: str, x: torch.Tensor, g: torch.Tensor, dim: int) -> torch.Tensor:
    """The gradient through the Python autograd Functions (what torch.compile traces); crelu and
    maxout (no Function, exact in every dtype): the float64 eager path's, rounded."""
    xr = x.detach().clone().requires_grad_()
    if name in rows.EAGER_ONLY_KERNELS:
        with kernels.use(False):
            return _fwd_bwd(name, x.double(), g.double(), dim)[1].to(x.dtype)
    if name in rows.GATED_KERNELS:
        y = rows.GatedFunction.apply(xr, dim, name)
    elif name in rows.SPARSE_KERNELS:
        y = rows.SparseFunction.apply(xr, dim, rows.SPARSE_KERNELS[name], name)
    else:
        y = rows.RowFunction.apply(xr, dim, *rows.ROW_KERNELS[name], name)
    (gx,) = torch.autograd.grad(y, xr, g)
    return gx


@every
def test_every_call_form_records_the_cpp_node(name):
    """The functional form, the module and apply record ActlabRowBackward; float64, kernels off and
    an odd split do not; no_grad and inference_mode record nothing; vmap and jvp through the bound
    functional call take the eager Function (its jvp) and agree with it."""
    from actlab.nn import Activation

    x = torch.randn(4, 12, generator=_gen(40)).requires_grad_()
    for f in (getattr(F, name), Activation(name), lambda t: _run(name, t)):
        assert f(x).grad_fn.name() == NODE
        assert f(x.bfloat16()).grad_fn.name() == NODE
        assert f(x.double()).grad_fn.name() != NODE
        with kernels.use(False):
            assert f(x).grad_fn.name() != NODE
        with torch.no_grad():
            assert f(x).grad_fn is None
        with torch.inference_mode():
            assert f(x).is_inference()
    if name in GATED:
        with pytest.raises(ValueError, match="not divisible by 2"):
            getattr(F, name)(torch.ones(3, 5, requires_grad=True))
    with pytest.raises(ValueError, match="out of range"):
        getattr(F, name)(x, dim=2)
    for dim in (0, -2):  # the bound call's axis, against the float64 eager path
        want = getattr(F, name)(x.detach().double(), dim=dim).float()
        torch.testing.assert_close(getattr(F, name)(x, dim=dim).detach(), want, rtol=1e-5, atol=1e-6)
    v = torch.randn(4, 12, generator=_gen(41))
    _, tangent = torch.func.jvp(getattr(F, name), (x.detach(),), (v,))
    _, tangent64 = torch.func.jvp(getattr(F, name), (x.detach().double(),), (v.double(),))
    torch.testing.assert_close(tangent, tangent64.float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.func.vmap(getattr(F, name))(x.detach()), getattr(F, name)(x.detach()))


@every
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_cpp_node_equals_the_functions_and_the_float64_eager_path(name, dtype):
    """Along either axis: the node's gradient is bitwise the Python Functions' (the same kernels from
    the same saved tensor) and within the catalog's limits of the float64 eager path."""
    x = torch.randn(6, 16, generator=_gen(42)) * 3
    x[1, 5] = 30.0  # a dominant entry
    for dim in (0, 1):
        y = _run(name, x, dim)
        g = torch.randn(y.shape, generator=_gen(43)).to(dtype)
        _, gx = _fwd_bwd(name, x.to(dtype), g, dim)
        assert torch.equal(gx, _through_function(name, x.to(dtype), g, dim)), dim
        if name not in EAGER_ONLY:  # (crelu, maxout: exact, the line above)
            _compare(name, x.to(dtype), g, dim)


@every
def test_a_freed_graph_raises_and_an_inplace_change_is_caught(name):
    """backward twice with retain_graph gives the gradient twice; once more after the graph was
    freed raises PyTorch's usual error; changing the saved tensor in place is refused."""
    x = torch.randn(3, 8, generator=_gen(44)).requires_grad_()
    y = getattr(F, name)(x)
    g = torch.randn(y.shape, generator=_gen(45))
    y.backward(g, retain_graph=True)
    first = x.grad.clone()
    y.backward(g)
    torch.testing.assert_close(x.grad, 2 * first, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="second time"):
        y.backward(g)
    inner = x.detach().clone().requires_grad_()
    t = inner * 1.0
    y = getattr(F, name)(t)
    (t if get_spec(name).saves == "input" else y).mul_(2.0)  # the saved tensor
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward(g)


@every
def test_saved_tensors_hooks_pack_and_unpack_what_the_node_keeps(name):
    """The node saves one tensor through the hooks and its backward uses what the unpack hook
    returns: a copy gives the same gradient, a reversed one another."""
    x = torch.randn(3, 8, generator=_gen(46)).requires_grad_()
    f = getattr(F, name)
    g = torch.randn(f(x).shape, generator=_gen(47))
    (want,) = torch.autograd.grad(f(x), x, g)
    for unpack, same in ((lambda t: t, True), (lambda t: t.flip(-1), False)):
        packed = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: packed.append(t) or t.clone(), unpack):
            y = f(x)
        assert len(packed) == 1
        (got,) = torch.autograd.grad(y, x, g)
        assert torch.equal(got, want) == same


@every
def test_double_backward_in_half_precision_through_the_node(name):
    """create_graph=True from a bfloat16 node (it kept the input): the second derivative recorded by
    the eager vjp (the float32 output recomputed through the node) is close to float64's."""
    x = torch.randn(2, 8, generator=_gen(48)) * 2
    g = torch.randn(_run(name, x).shape, generator=_gen(49))
    v = torch.randn(2, 8, generator=_gen(50))

    def hvp(t: torch.Tensor) -> torch.Tensor:
        t = t.clone().requires_grad_()
        y = _run(name, t)
        (gx,) = torch.autograd.grad(y, t, g.to(t.dtype), create_graph=True)
        if name in EAGER_ONLY:  # piecewise linear: a gradient that does not depend on x, no graph
            assert not gx.requires_grad
            return torch.zeros(t.shape, dtype=torch.float64)
        assert gx.requires_grad
        (h,) = torch.autograd.grad(gx, t, v.to(t.dtype))
        return h.double()

    want = hvp(x.bfloat16().double())  # the same (rounded) input in float64
    torch.testing.assert_close(hvp(x.bfloat16()), want, rtol=0.05, atol=0.05 * want.abs().max().item() + 1e-3)


def test_row_kernels_are_bound_once(monkeypatch):
    """The functional call and the module bind the kernel once: later calls never bind again."""
    from actlab.nn import Activation

    x = torch.randn(4, 10, generator=_gen(51)).requires_grad_()
    module = Activation("swiglu")
    before = F.swiglu(x), module(x), F.sparsemax(x, dim=0), F.maxout(x, pieces=5)

    def refuse(name: str) -> int:
        raise AssertionError(f"bound again: {name}")

    monkeypatch.setattr(rows, "bind", refuse)
    after = F.swiglu(x), module(x), F.sparsemax(x, dim=0), F.maxout(x, pieces=5)
    for a, b in zip(before, after):
        assert b.grad_fn.name() == NODE and torch.equal(a, b)


# ============================================================================ crelu, maxout
def _maxout_rows() -> torch.Tensor:
    """Groups with ties (the first maximal entry takes the gradient), a NaN, infinities, signed zeros."""
    inf, nan = math.inf, math.nan
    return torch.tensor(
        [
            [1.0, 1.0, -2.0, 3.0, 3.0, 3.0],
            [nan, 5.0, 2.0, nan, -inf, -inf],
            [0.0, -0.0, -0.0, 0.0, inf, 1.0],
            [-1e-40, -3e38, 2.0, -2.0, 7.0, 7.0],
        ]
    )


@pytest.mark.parametrize("name", ["crelu", "maxout"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_eager_only_kernels_are_exact_against_the_float64_eager_path(name, dtype):
    """crelu's and maxout's kernels: every output and gradient entry is an input or gradient entry
    (or its negation), so they equal the float64 eager path rounded, bitwise (signed zeros,
    infinities, NaNs, maxout's ties included), along every axis, through non-contiguous views, for
    maxout with 1, 2 and 3 pieces."""
    assert EAGER_ONLY == ["crelu", "maxout"]
    assert all(get_spec(n).saves == "input" for n in EAGER_ONLY)
    r = _gen(60)
    special = torch.tensor([[0.0, -0.0, math.inf, -math.inf, 1.0, 1.0], [math.nan, 1e-40, -1e-40, 3e38, -2.0, 5.0]])
    cases = [
        (torch.randn(5, 36, generator=r) * 3, -1, 2),
        (torch.randn(3, 6, 5, generator=r), 1, 3),
        (torch.randn(4, 3, 5, generator=r), 0, 2),
        (torch.randn(40, 6, generator=r).t(), 0, 3),  # non-contiguous
        ((torch.randn(4, 24, generator=r))[:, ::2], 1, 2),  # strided
        (torch.randn(4, 6, generator=r), 1, 1),
        (special, 1, 2),
        (special, 0, 2),
        (_maxout_rows(), 1, 3),
        (_maxout_rows(), 1, 2),
    ]
    for x, axis, pieces in cases:
        params = {"axis": axis, "pieces": pieces} if name == "maxout" else {"axis": axis}
        x = x.to(dtype)
        y = apply(get_spec(name), x, params)
        g = torch.randn(y.shape, generator=r).to(dtype)
        xr = x.clone().requires_grad_()
        y = apply(get_spec(name), xr, params)
        assert y.grad_fn.name() == NODE and y.dtype == dtype
        (gx,) = torch.autograd.grad(y, xr, g)
        with kernels.use(False):
            x64 = x.double().requires_grad_()
            ye = apply(get_spec(name), x64, params)
            (ge,) = torch.autograd.grad(ye, x64, g.double())
        for got, want in ((y.detach(), ye.detach().to(dtype)), (gx, ge.to(dtype))):
            assert got.shape == want.shape and torch.equal(got.isnan(), want.isnan()), (axis, pieces, x)
            ok = ~want.isnan()
            assert torch.equal(got[ok], want[ok]) and torch.equal(got[ok].signbit(), want[ok].signbit()), (axis, x)
    with pytest.raises(ValueError, match="not divisible by pieces=4"):
        F.maxout(torch.ones(3, 6), pieces=4)  # the eager error, from the bound call too


@pytest.mark.parametrize("name", ["crelu", "maxout"])
@pytest.mark.parametrize("mode", ["grad", "no_grad"])
def test_eager_only_kernels_compile_through_their_eager_code(name, mode):
    """crelu and maxout have no traced Function: torch.compile (fullgraph) traces their eager code,
    equal to the kernel's values and gradients."""
    torch._dynamo.reset()
    fn = getattr(F, name)

    def model(t: torch.Tensor) -> torch.Tensor:
        return fn(t * 2.0, dim=1) * 3.0

    x = torch.randn(4, 6, 5, generator=_gen(61))
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    if mode == "grad":
        xr, xe = x.clone().requires_grad_(), x.clone().requires_grad_()
        out, want = compiled(xr), model(xe)
        assert want.grad_fn is not None
        g = torch.randn(out.shape, generator=_gen(62))
        torch.testing.assert_close(torch.autograd.grad(out, xr, g), torch.autograd.grad(want, xe, g), rtol=0, atol=0)
    else:
        with torch.no_grad():
            out, want = compiled(x), model(x)
    torch.testing.assert_close(out, want, rtol=0, atol=0)
