"""Memory modes (issue #12 item 1), generated from the registry: ``memory="mask"`` for every spec
piecewise-linear at its parameter samples (gradients identical to ``exact``), ``memory="fewbit"``
for every other elementwise spec at bits 1..4 (with a stand-in table: grad * levels[bucket], the
bucket by torch.bucketize), the saved bytes per element, and the clear errors for every disallowed
combination."""

from __future__ import annotations

import math
import statistics
import sys
import types

import numpy as np
import pytest
import torch

from actlab.nn import Activation, create_activation
from actlab.ops.numpy_ops import apply_derivative
from actlab.registry import get_spec
from actlab.torch import memory as M
from actlab.torch.functional import function_for
from actlab.verify.samples import parameter_samples, sample_label
from conftest import ELEMENTWISE, VECTOR, dispatched_ops

MASK_DEFAULT = [s for s in ELEMENTWISE if M.mask_eligible(s)]
# every other deterministic elementwise spec takes fewbit
FEWBIT = [s for s in ELEMENTWISE if s.train_forward is None and s not in MASK_DEFAULT]
STOCHASTIC = [s for s in ELEMENTWISE if s.train_forward is not None]
MASK_CASES = [
    pytest.param(spec, params, id=f"{spec.name}[{sample_label(spec, params)}]")
    for spec in ELEMENTWISE
    if spec.train_forward is None
    for params in parameter_samples(spec, "ci")
    if M.mask_eligible(spec, params)
]
DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
_INT = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16, torch.float64: torch.int64}


def _inputs(points: list[float], dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """The points, their neighbours in ``dtype``, +-0, +-inf and seeded normals; a multiple of 8 long."""
    x = torch.tensor([p for p in points if math.isfinite(p)], dtype=torch.float64).to(dtype)
    up, down = torch.full_like(x, math.inf), torch.full_like(x, -math.inf)
    gen = torch.Generator().manual_seed(seed)
    normals = (3 * torch.randn(64, generator=gen, dtype=torch.float64)).to(dtype)
    special = torch.tensor([0.0, -0.0, math.inf, -math.inf, 1.0, -1.0], dtype=dtype)
    out = torch.cat([x, torch.nextafter(x, up), torch.nextafter(x, down), special, normals])
    return torch.cat([out, normals[: (-out.numel()) % 8]])


def _grad(fn, x: torch.Tensor, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = x.detach().clone().requires_grad_()
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x.dtype)
    y = fn(x)
    (gx,) = torch.autograd.grad(y, x, g)
    return y.detach(), gx, g


def _saved_bytes(fn, x: torch.Tensor) -> float:
    """Bytes of every tensor autograd keeps for backward, per input element."""
    sizes = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        sizes.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x.detach().clone().requires_grad_())
    return sum(sizes) / x.numel()


# ----------------------------------------------------------------------------- mask
@pytest.mark.parametrize(("spec", "params"), MASK_CASES)
def test_mask_gradient_is_the_exact_gradient(spec, params):
    f = function_for(spec)
    kinks = [t for t, _ in spec.kink_points(params)]
    for dtype in DTYPES:
        x = _inputs([*kinks, *(t + 0.5 for t in kinks), *(t - 0.5 for t in kinks)], dtype)
        y0, g0, _ = _grad(lambda t: f(t, **params), x)
        y1, g1, _ = _grad(lambda t: f(t, **params, memory="mask"), x)
        torch.testing.assert_close(y1, y0, rtol=0, atol=0, equal_nan=True, msg=f"{dtype} forward")
        torch.testing.assert_close(g1, g0, rtol=0, atol=0, equal_nan=True, msg=f"{dtype} gradient")
        # bit for bit, the sign of zero too, against actlab's own backward (PyTorch's, which the exact
        # mode runs for native specs in float32/float64, writes +0 where the slope is 0, not grad * 0)
        if not (spec.native and dtype in (torch.float32, torch.float64)):
            assert torch.equal(g1.view(_INT[dtype]), g0.view(_INT[dtype])), dtype


@pytest.mark.parametrize("spec", MASK_DEFAULT, ids=lambda s: s.name)
def test_mask_saves_one_or_two_bits_per_element(spec):
    act = Activation(spec.name, memory="mask")
    plan = act._memory_call.plan
    x = _inputs([], torch.float32)
    saved = _saved_bytes(act, x)
    assert saved <= plan.bits / 8
    # two distinct slopes in 1 bit, three or four in 2
    slopes = {repr(v) for v in plan.table[: len(set(plan.lut))]}
    assert plan.bits == (1 if len(slopes) <= 2 else 2)
    assert _saved_bytes(Activation(spec.name), x) <= x.element_size()  # exact: at most the input


def test_mask_module_and_functional_agree_on_a_nan_input():
    # NaN compares false: the left-most segment's slope (documented in actlab.torch.memory)
    x = torch.tensor([math.nan, -1.0, 2.0, 0.0, 1.0, 3.0, -3.0, 5.0])
    for name, left in (("relu", 0.0), ("leaky_relu", np.float32(0.01)), ("hard_tanh", 0.0)):
        _, gx, g = _grad(Activation(name, memory="mask"), x)
        assert gx[0] == g[0] * torch.tensor(left, dtype=torch.float32)


def test_mask_double_backward_matches_exact():
    x = _inputs([0.0, 6.0], torch.float64).requires_grad_()
    gen = torch.Generator().manual_seed(3)
    g = torch.randn(x.shape, generator=gen, dtype=torch.float64, requires_grad=True)
    v = torch.randn(x.shape, generator=gen, dtype=torch.float64)
    out = []
    for act in (Activation("relu6"), Activation("relu6", memory="mask")):
        (gx,) = torch.autograd.grad(act(x), x, g, create_graph=True)
        (gg,) = torch.autograd.grad(gx, g, v)
        out.append((gx.detach(), gg))
    assert torch.equal(out[0][0], out[1][0]) and torch.equal(out[0][1], out[1][1])


# ----------------------------------------------------------------------------- fewbit
def _standin_table(spec, params, bits):
    """A stand-in for actlab.torch.fewbit.fewbit_table: N(0, 1) quantiles as breakpoints and the mean
    derivative of each bucket as its level (in the test only, never in src)."""
    n = 2**bits
    normal = statistics.NormalDist()
    breakpoints = np.array([normal.inv_cdf(k / n) for k in range(1, n)])
    levels = []
    edges = [-8.0, *breakpoints, 8.0]
    for a, b in zip(edges[:-1], edges[1:]):
        d = apply_derivative(spec, np.linspace(a, b, 33), params)
        levels.append(float(np.nan_to_num(np.mean(d), nan=0.0, posinf=1e3, neginf=-1e3)))
    return types.SimpleNamespace(breakpoints=breakpoints, levels=np.array(levels))


@pytest.fixture
def standin(monkeypatch):
    try:
        import actlab.torch.fewbit as fewbit

        monkeypatch.setattr(fewbit, "fewbit_table", _standin_table)
    except ImportError:
        monkeypatch.setitem(sys.modules, "actlab.torch.fewbit", types.SimpleNamespace(fewbit_table=_standin_table))
    M.clear_cache()
    yield
    M.clear_cache()


@pytest.mark.parametrize("bits", (1, 2, 3, 4))
@pytest.mark.parametrize("spec", FEWBIT, ids=lambda s: s.name)
def test_fewbit_gradient_is_grad_times_the_bucket_level(spec, bits, standin):
    table = _standin_table(spec, spec.resolve_params(), bits)
    b = torch.tensor(table.breakpoints, dtype=torch.float64)
    for dtype in (torch.float32, torch.bfloat16) if bits == 3 else (torch.float32,):
        x = _inputs(list(table.breakpoints), dtype)
        act = Activation(spec.name, memory="fewbit", bits=bits)
        y0, _, _ = _grad(Activation(spec.name), x)
        y1, g1, g = _grad(act, x)
        torch.testing.assert_close(y1, y0, rtol=0, atol=0, equal_nan=True)
        k = torch.bucketize(x.double(), b, right=True)  # number of breakpoints <= x
        levels = torch.tensor(table.levels, dtype=torch.float32)[k]
        expected = (g.float() * levels).to(dtype)
        torch.testing.assert_close(g1, expected, rtol=0, atol=0, equal_nan=True)
        assert _saved_bytes(act, x) <= bits / 8


def test_fewbit_float64_and_functional_form(standin):
    spec = FEWBIT[0]
    table = _standin_table(spec, spec.resolve_params(), 2)
    x = _inputs(list(table.breakpoints), torch.float64)
    _, g1, g = _grad(lambda t: function_for(spec)(t, memory="fewbit", bits=2), x)
    k = torch.bucketize(x, torch.tensor(table.breakpoints), right=True)
    assert torch.equal(g1, g * torch.tensor(table.levels)[k])


def test_fewbit_refuses_double_backward(standin):
    x = torch.randn(16, requires_grad=True)
    (gx,) = torch.autograd.grad(Activation("gelu", memory="fewbit", bits=3)(x).sum(), x, create_graph=False)
    with pytest.raises(RuntimeError, match="double backward"):
        torch.autograd.grad(Activation("gelu", memory="fewbit", bits=3)(x).sum(), x, create_graph=True)


# ----------------------------------------------------------------------------- no_grad, compile, layouts
def test_no_codes_without_a_gradient():
    act = Activation("relu", memory="mask")
    x = torch.randn(64)
    with torch.no_grad():
        ops = dispatched_ops(lambda: act(x.requires_grad_()))
    assert not any("mem_" in op for op in ops)
    assert not any("mem_" in op for op in dispatched_ops(lambda: act(torch.randn(64))))
    assert any("mem_" in op for op in dispatched_ops(lambda: act(torch.randn(64, requires_grad=True))))


@pytest.mark.parametrize(("name", "memory", "bits"), [("relu", "mask", None), ("gelu", "fewbit", 3)])
def test_modes_under_torch_compile(name, memory, bits, standin):
    act = Activation(name, memory=memory, bits=bits)
    compiled = torch.compile(act, fullgraph=True, backend="aot_eager")
    x = torch.randn(4, 40)
    y0, g0, _ = _grad(act, x)
    y1, g1, _ = _grad(compiled, x)
    assert torch.equal(y0, y1) and torch.equal(g0, g1)


def test_non_contiguous_input_and_odd_length():
    x = torch.randn(7, 5).t()  # 35 elements, transposed
    y0, g0, _ = _grad(Activation("hard_tanh"), x)
    y1, g1, _ = _grad(Activation("hard_tanh", memory="mask"), x)
    assert torch.equal(y0, y1) and torch.equal(g0, g1)


def test_torch_ops_fallback_matches_the_kernels():
    from actlab.torch import kernels

    x = _inputs([0.0, 6.0], torch.float32)
    y0, g0, _ = _grad(Activation("relu6", memory="mask"), x)
    with kernels.use(False):
        y1, g1, _ = _grad(Activation("relu6", memory="mask"), x)
    assert torch.equal(y0, y1) and torch.equal(g0, g1)


# ----------------------------------------------------------------------------- the clear errors
@pytest.mark.parametrize("spec", FEWBIT, ids=lambda s: s.name)
def test_mask_refused_for_a_function_that_is_not_piecewise_linear(spec):
    with pytest.raises(ValueError, match="memory='mask' needs a piecewise-linear function") as err:
        Activation(spec.name, memory="mask")
    assert "relu" in str(err.value) and "fewbit" in str(err.value)


@pytest.mark.parametrize("spec", MASK_DEFAULT, ids=lambda s: s.name)
def test_fewbit_refused_for_a_piecewise_linear_function(spec):
    with pytest.raises(ValueError, match="use memory='mask'"):
        Activation(spec.name, memory="fewbit", bits=2)


@pytest.mark.parametrize("spec", VECTOR + STOCHASTIC, ids=lambda s: s.name)
def test_vector_and_random_functions_take_exact_only(spec):
    for memory, bits in (("mask", None), ("fewbit", 2)):
        with pytest.raises(ValueError, match="use memory='exact'"):
            Activation(spec.name, memory=memory, bits=bits)


@pytest.mark.parametrize("bits", (0, 5, 2.0, True, "3", None))
def test_fewbit_bits_outside_1_to_4(bits):
    with pytest.raises(ValueError, match="bits=1, 2, 3 or 4"):
        Activation("gelu", memory="fewbit", bits=bits)


def test_unknown_mode_bits_without_fewbit_and_other_entry_points():
    with pytest.raises(ValueError, match="memory must be one of 'exact', 'mask', 'fewbit'; got 'half'"):
        Activation("relu", memory="half")
    with pytest.raises(ValueError, match="takes no bits"):
        Activation("relu", memory="mask", bits=1)
    with pytest.raises(ValueError, match="not piecewise-linear"):
        function_for(FEWBIT[0])(torch.randn(8), memory="mask")
    with pytest.raises(ValueError, match="not piecewise-linear"):
        create_activation("silu", memory="mask")
    with pytest.raises(ValueError, match="learnable"):
        Activation("leaky_relu", negative_slope="learnable", memory="mask")
    with pytest.raises(ValueError, match="layer, module or callable"):
        create_activation("prelu(num_parameters=3)", memory="mask")
    # a parameter that makes a smooth function linear makes it eligible (swish with beta=0 is x/2)
    assert isinstance(create_activation("swish", beta=0.0, memory="mask"), Activation)
    assert "memory='mask'" in repr(Activation("relu", memory="mask"))
    with pytest.raises(ValueError, match="choose one"):
        Activation("relu", memory="mask", inplace=True)
    with pytest.raises(ValueError, match="choose one"):
        function_for(get_spec("relu"))(torch.randn(8), memory="mask", inplace=True)


def test_a_memory_mode_module_pickles_and_copies():
    import copy
    import pickle

    act = Activation("hard_tanh", memory="mask")
    x = _inputs([-1.0, 1.0], torch.float32)
    _, g0, _ = _grad(act, x)
    for clone in (pickle.loads(pickle.dumps(act)), copy.deepcopy(act)):
        _, g1, _ = _grad(clone, x)
        assert torch.equal(g0, g1) and _saved_bytes(clone, x) <= 1 / 8


def test_bench_memory_reports_the_saved_bytes(capsys):
    import json

    from actlab.cli import main

    args = ["bench", "memory", "relu", "hard_tanh", "--size", "4096", "--repeats", "1", "--width", "8", "--tokens", "8"]
    assert main([*args, "--format", "json", "--quiet"]) == 0
    rows = {(r["activation"], r["mode"]): r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {("relu", "exact"), ("relu", "mask"), ("hard_tanh", "exact"), ("hard_tanh", "mask")}
    assert rows["relu", "mask"]["saved"] == 0.125 and rows["hard_tanh", "exact"]["saved"] == 4.0
    # the block keeps hard_tanh's input in exact mode and 1 bit per element of it in mask mode
    hidden = 8 * 32 * 4 / 2**20
    assert rows["hard_tanh", "exact"]["block"] - rows["hard_tanh", "mask"]["block"] == pytest.approx(hidden * 31 / 32)
    with pytest.raises(SystemExit):
        main(["bench", "memory", "relu", "--bits", "5"])


def test_functional_form_under_torch_compile():
    f = function_for(get_spec("hard_sigmoid"))
    x = torch.randn(40)
    compiled = torch.compile(lambda t: f(t, memory="mask"), fullgraph=True, backend="aot_eager")
    M.clear_cache()
    with pytest.raises(Exception, match="first called inside torch.compile"):
        compiled(x.clone().requires_grad_())
    y0, g0, _ = _grad(lambda t: f(t, memory="mask"), x)  # prepared by an eager call
    torch._dynamo.reset()
    y1, g1, _ = _grad(compiled, x)
    assert torch.equal(y0, y1) and torch.equal(g0, g1)


@pytest.mark.parametrize("name", ["gelu", "silu", "mish"])
def test_fewbit3_with_the_fitted_tables_is_close_to_exact(name):
    # issue #12's figure: cosine similarity >= 0.99 with the exact gradient on N(0, 1) inputs
    pytest.importorskip("actlab.torch.fewbit", reason="the fitted few-bit tables (actlab.torch.fewbit) are not here")
    M.clear_cache()
    x = torch.randn(1 << 14, generator=torch.Generator().manual_seed(0))
    _, g0, g = _grad(Activation(name), x)
    _, g1, _ = _grad(Activation(name, memory="fewbit", bits=3), x)
    assert torch.nn.functional.cosine_similarity(g0, g1, dim=0) >= 0.99
