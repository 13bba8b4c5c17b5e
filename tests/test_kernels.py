"""The fused fast path (actlab.torch.kernels): built from the specs, really taken, exact where the
error-free arithmetic must be, and composable (layouts, dtypes, compile, export, vmap, autocast,
double backward). Accuracy against the oracle is tested through the same path by the generated
tests (test_elementwise, test_param_samples, test_low_precision), which call ``apply``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from actlab.nn import Activation  # noqa: E402
from actlab.torch import functional as F  # noqa: E402
from actlab.torch import kernels  # noqa: E402
from conftest import ELEMENTWISE, HAS_COMPILER, dispatched_ops  # noqa: E402

KERNEL_SPECS = [s for s in ELEMENTWISE if s.kernel is not None]
FAST_SPECS = [s for s in KERNEL_SPECS if s.kernel.fast_where is not None]

# Where a C++ compiler exists the kernels must build and load: a failed build fails these tests
# (test_the_kernels_build_and_load) instead of skipping them.
pytestmark = pytest.mark.skipif(
    not kernels.enabled() or not HAS_COMPILER, reason="fused kernels off, or no C++ compiler"
)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_the_kernels_build_and_load():
    assert kernels.available(), "a C++ compiler exists but the fused kernels did not build or load (see the warning)"


def test_every_spec_with_a_kernel_is_in_the_library():
    assert KERNEL_SPECS, "no spec declares a Kernel"
    for spec in KERNEL_SPECS:
        assert kernels.has_kernel(spec) != spec.native, spec.name  # float32: PyTorch's op where native
        assert kernels.has_kernel(spec, dtype=torch.bfloat16) and kernels.has_kernel(spec, dtype=torch.float16)
        assert not kernels.has_kernel(spec, dtype=torch.float64)  # the accurate eager path
    import dataclasses

    unbuilt = dataclasses.replace(KERNEL_SPECS[0], name="not_in_the_library")  # a kernel the library lacks
    assert not kernels.has_kernel(unbuilt)
    assert not kernels.has_kernel(dataclasses.replace(KERNEL_SPECS[0], kernel=None))


@pytest.mark.parametrize("spec", KERNEL_SPECS, ids=lambda s: s.name)
def test_the_fused_path_is_taken_forward_and_backward(spec):
    """One operator forward and one backward, in every dtype the kernel serves (the eager chain runs
    many; a PyTorch-native spec runs PyTorch's op in float32)."""
    act = Activation(spec.name)
    for dtype in [d for d in kernels.DTYPES if kernels.has_kernel(spec, dtype=d)]:
        x = torch.randn(64, generator=_gen(1)).to(dtype).requires_grad_()

        def step():
            act(x).backward(torch.ones_like(x))

        ops = dispatched_ops(step)
        # training: actlab_kernels::apply runs the fused forward; its backward is the C++ node
        # that calls the fused backward loop
        assert "actlab_kernels::apply" in ops, (spec.name, dtype, ops)
        assert "ActlabFusedBackward" in ops, (spec.name, ops)
        assert not any(op in ops for op in ("aten::exp", "aten::where", "aten::mul")), (spec.name, dtype, ops)


def test_use_false_takes_the_eager_path_and_gives_the_same_values():
    x = torch.linspace(-6, 6, 97).requires_grad_()
    fused = F.gelu(x)
    (g_fused,) = torch.autograd.grad(fused.sum(), x)
    with kernels.use(False):
        ops = dispatched_ops(lambda: F.gelu(x))
        eager = F.gelu(x)
        (g_eager,) = torch.autograd.grad(eager.sum(), x)
    assert "actlab_kernels::forward" not in ops and "aten::erfc" in ops
    # both paths are within a few ulps of the true values (the oracle tests); so of each other (the
    # derivative in absolute terms near its root at -0.75, where x = -0.75 lies on this grid)
    torch.testing.assert_close(fused, eager, rtol=4e-7, atol=1e-30)
    torch.testing.assert_close(g_fused, g_eager, rtol=1e-6, atol=2.4e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_error_free_arithmetic_survives_the_compiler(dtype):
    """two_sum and two_prod as the kernels compute them return the exact rounding errors (zero if
    the compiler had contracted a*b - p into an FMA or reassociated (a + b) - a)."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal(257) * np.exp2(rng.integers(-30, 30, 257))
    b = rng.standard_normal(257)
    ta, tb = torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype)
    rows = kernels.probe(ta, tb)
    for i, (x, y) in enumerate(zip(ta.tolist(), tb.tolist())):
        s = float(torch.tensor(x, dtype=dtype) + torch.tensor(y, dtype=dtype))
        p = float(torch.tensor(x, dtype=dtype) * torch.tensor(y, dtype=dtype))
        assert Fraction(s) + Fraction(rows[0, i].item()) == Fraction(x) + Fraction(y), (x, y)
        assert Fraction(p) + Fraction(rows[1, i].item()) == Fraction(x) * Fraction(y), (x, y)
    assert (rows != 0).any(dim=1).all(), "the probe never saw a rounding error"


def test_layouts_and_strides():
    """channels_last stays channels_last; transposed, sliced and expanded tensors; a broadcast grad."""
    spec = "silu"
    x = torch.randn(2, 3, 5, 4, generator=_gen(2)).to(memory_format=torch.channels_last)
    y = F.silu(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    with kernels.use(False):
        want = F.silu(x.contiguous())
    torch.testing.assert_close(y, want, rtol=4e-7, atol=0)
    base = torch.randn(7, 9, generator=_gen(3))
    for view in (base.t(), base[::2, 1::3], base[:, :1].expand(7, 5)):
        with kernels.use(False):
            want = F.silu(view.contiguous())
        torch.testing.assert_close(F.silu(view), want, rtol=4e-7, atol=0)
    leaf = torch.randn(6, 5, generator=_gen(4), requires_grad=True)
    F.silu(leaf).sum().backward()  # the incoming grad is an expanded scalar (stride 0)
    with kernels.use(False):
        (want,) = torch.autograd.grad(F.silu(leaf).sum(), leaf)
    torch.testing.assert_close(leaf.grad, want, rtol=1e-6, atol=0)
    assert F.silu(torch.empty(0, 3)).shape == (0, 3)
    zero_d = torch.tensor(1.5)
    torch.testing.assert_close(F.silu(zero_d), torch.tensor(1.5) * torch.sigmoid(torch.tensor(1.5)))
    assert spec


def test_half_precision_output_dtype_and_values():
    x = torch.linspace(-5, 5, 41)
    for dtype in (torch.bfloat16, torch.float16):
        xh = x.to(dtype).requires_grad_()
        y = F.mish(xh)
        y.backward(torch.ones_like(y))
        assert y.dtype == dtype and xh.grad.dtype == dtype
        want = torch.nn.functional.mish(xh.detach().double())
        torch.testing.assert_close(y.double(), want, rtol=torch.finfo(dtype).eps, atol=0)


def test_parameters_reach_the_kernel():
    """A kernel that ignored its parameter would give the default's values."""
    from actlab.registry import get_spec

    with_params = [s for s in KERNEL_SPECS if any(p.kind is float and p.choices is None for p in s.params)]
    if not with_params:
        pytest.skip("no kernel spec with a numeric parameter yet")
    x = torch.arange(-30, 31) / 10.0 + 0.05  # not 0, where soft_exponential(alpha<0) has its pole
    for spec in with_params:
        param = next(p for p in spec.params if p.kind is float and p.choices is None and not p.nullable)
        from actlab.verify.samples import parameter_samples

        others = [s for s in parameter_samples(get_spec(spec.name), "ci") if s[param.name] != param.default]
        if not others:
            continue
        values = others[0]
        fused = F.apply(spec, x, values)
        with kernels.use(False):
            eager = F.apply(spec, x, values)
        torch.testing.assert_close(fused, eager, rtol=1e-5, atol=1e-30, equal_nan=True, msg=f"{spec.name} {values}")


def test_double_backward_through_the_fused_path():
    x = torch.linspace(-3, 3, 25, dtype=torch.float32, requires_grad=True)
    (g,) = torch.autograd.grad(F.gelu(x).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x)
    xd = x.detach().double()
    pdf = torch.exp(-xd * xd / 2) / np.sqrt(2 * np.pi)
    torch.testing.assert_close(gg.double(), pdf * (2 - xd * xd), rtol=1e-5, atol=1e-6)  # gelu'' = phi (2 - x^2)


def test_vmap_and_grad_transforms():
    x = torch.randn(4, 6, generator=_gen(5))
    torch.testing.assert_close(torch.func.vmap(F.mish)(x), F.mish(x))
    per_row = torch.func.vmap(torch.func.grad(lambda r: F.mish(r).sum()))(x)
    with kernels.use(False):
        want = torch.func.vmap(torch.func.grad(lambda r: F.mish(r).sum()))(x)
    torch.testing.assert_close(per_row, want, rtol=1e-6, atol=1e-30)


def test_autocast_cpu_bfloat16():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), Activation("gelu"), torch.nn.Linear(8, 2))
    x = torch.randn(3, 8, generator=_gen(6))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        assert out.dtype == torch.bfloat16
        ops = dispatched_ops(lambda: model(x))
    assert "actlab_kernels::apply" in ops
    out.float().sum().backward()
    assert model[0].weight.grad is not None


@pytest.mark.parametrize("mode", ["grad", "no_grad", "inference_mode"])
def test_compiled_fullgraph_every_kernel(mode):
    """Every activation with a kernel in one model, compiled with fullgraph=True (no graph breaks),
    with and without gradients; values and gradients equal eager."""
    torch._dynamo.reset()
    model = torch.nn.Sequential(*[Activation(s.name) for s in KERNEL_SPECS])
    for m in model:  # keep values moderate through the chain
        m.register_forward_hook(lambda mod, inp, out: out.clamp(-4, 4) if out.requires_grad else out.clamp_(-4, 4))
    x = torch.randn(5, 7, generator=_gen(8))
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    if mode == "grad":
        xr = x.clone().requires_grad_()
        out = compiled(xr)
        (g,) = torch.autograd.grad(out.sum(), xr)
        xe = x.clone().requires_grad_()
        (ge,) = torch.autograd.grad(model(xe).sum(), xe)
        torch.testing.assert_close(out, model(x))
        torch.testing.assert_close(g, ge)
    else:
        ctx = torch.no_grad() if mode == "no_grad" else torch.inference_mode()
        with ctx:
            torch.testing.assert_close(compiled(x), model(x))


def test_inductor_dynamic_shapes_and_no_recompiles():
    """Inductor with dynamic shapes; 200 activation modules (a few distinct parameter values) in one
    compiled model compile once, without hitting the recompile limit."""
    torch._dynamo.reset()
    forms = ("none", "tanh")
    layers = [Activation("gelu", approximate=forms[i % 2]) if i % 3 else Activation("silu") for i in range(200)]
    model = torch.nn.Sequential(*layers)
    compiled = torch.compile(model, dynamic=True, fullgraph=True)
    from torch._dynamo.utils import counters

    counters.clear()
    for n in (3, 5, 11):
        x = torch.randn(n, 4, generator=_gen(n)) * 0.1
        torch.testing.assert_close(compiled(x), model(x))
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])


def test_torch_export():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), Activation("mish"), Activation("gelu"))
    x = torch.randn(2, 4, generator=_gen(9))
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), model(x))


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full, timeout=300
    )


def test_environment_variable_turns_the_fast_path_off():
    done = _run(
        """
        import torch
        from actlab.torch import functional as F, kernels
        assert not kernels.enabled() and not kernels.available()
        with torch.profiler.profile() as prof:
            F.silu(torch.linspace(-3.0, 3.0, 8))
        keys = [e.key for e in prof.key_averages()]
        assert "actlab_kernels::forward" not in keys, keys
        print("eager")
        """,
        ACTLAB_KERNELS="0",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "eager" and "Warning" not in done.stderr


def test_without_a_compiler_one_warning_and_the_eager_path(tmp_path):
    done = _run(
        """
        import warnings, torch
        from actlab.torch import functional as F
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            a = F.silu(torch.tensor([-1.0, 0.0, 2.0]))
            b = F.gelu(torch.tensor([1.0]))
        messages = [str(w.message) for w in caught if "fused kernels" in str(w.message)]
        assert len(messages) == 1, messages
        assert "no C++ compiler" in messages[0], messages
        print(round(float(a[2]), 6), round(float(b[0]), 6))
        """,
        CXX=str(tmp_path / "no-such-compiler"),
        ACTLAB_KERNEL_CACHE=str(tmp_path / "cache"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1.761594", "0.841345"]
    assert not any((tmp_path / "cache").rglob("*.so"))  # nothing half-built left behind


def test_bad_calls_to_the_operators_are_refused():
    with pytest.raises(RuntimeError, match="no kernel named 'nosuch'"):
        torch.ops.actlab_kernels.forward(torch.ones(2), "nosuch", [])
    with pytest.raises(RuntimeError, match="takes 1 parameters, got 0"):
        torch.ops.actlab_kernels.forward(torch.ones(2), "gelu", [])
    with pytest.raises(RuntimeError, match="float32, bfloat16 or float16 only"):
        torch.ops.actlab_kernels.forward(torch.ones(2, dtype=torch.float64), "silu", [])
    with pytest.raises(RuntimeError, match="grad shape"):
        torch.ops.actlab_kernels.backward(torch.ones(2), torch.ones(3), "silu", [])


def test_functional_parameters_are_validated_once_per_distinct_call(monkeypatch):
    from actlab.catalog import ParameterError, Spec

    calls = []
    original = Spec.resolve_params

    def counting(self, **given):
        calls.append((self.name, given))
        return original(self, **given)

    monkeypatch.setattr(Spec, "resolve_params", counting)
    x = torch.randn(4, generator=_gen(10))
    # (a slope no other test uses: the cache lives for the process)
    for _ in range(3):
        F.leaky_relu(x, 0.2171)
    assert len(calls) == 1
    F.leaky_relu(x, negative_slope=0.2171)  # another spelling of the call: validated once more
    assert len(calls) == 2
    F.elu(x, 1)
    with pytest.raises(ParameterError, match="expected a number"):
        F.elu(x, True)  # equal to 1 and hashing alike, but refused: the key keeps the type
    with pytest.raises(ParameterError, match="must be finite"):
        F.elu(x, float("nan"))
    with pytest.raises(ParameterError, match="must be finite"):
        F.elu(x, float("nan"))  # NaN never cached as valid


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("spec", KERNEL_SPECS[:: max(1, len(KERNEL_SPECS) // 8)], ids=lambda s: s.name)
def test_cuda_tensors_give_the_cpu_kernels_values(spec):
    """CUDA tensors (fused CUDA kernels, or the eager path where NVRTC is missing) give the CPU kernel's values."""
    x = torch.linspace(-6, 6, 257)
    act = Activation(spec.name)
    xc = x.cuda().requires_grad_()
    yc = act(xc)
    yc.backward(torch.ones_like(yc))
    xr = x.clone().requires_grad_()
    y = act(xr)
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(yc.cpu(), y, rtol=2e-6, atol=1e-30)
    torch.testing.assert_close(xc.grad.cpu(), xr.grad, rtol=2e-5, atol=1e-6)


def _ulps(got: np.ndarray, true: np.ndarray) -> np.ndarray:
    """|got - true| in ulps of float32 at the rounded true value (independent of actlab.verify)."""
    r = true.astype(np.float32).astype(np.float64)
    unit = np.spacing(np.maximum(np.abs(r), np.finfo(np.float32).tiny).astype(np.float32)).astype(np.float64)
    return np.where(got == r, 0.0, np.abs(got - r) / unit)


@pytest.mark.parametrize(
    ("name", "lo", "hi", "hot"),
    # inside each float form's fast_where; `hot`: where the errors peak (gelu: the far left tail, where
    # e^(-x^2/2) amplifies argument errors; mish: f' = t + x (1 - t^2) sigmoid(x) cancels near x = -2)
    [("gelu", -12.0, 8.0, (-12.0, -6.0)), ("mish", -20.0, 20.0, (-2.6, -1.6))],
)
def test_float_forms_on_a_dense_sample(name, lo, hi, hot):
    """The float (fast) forms of gelu (float erfc from one exp) and mish (f' summed before dividing)
    against the float64 eager path on 3 * 10^5 seeded points: 4 ulp forward, 8 ulp derivative, the
    latter times the condition number |x f''/f'| next to f''s root (as actlab.verify.accuracy)."""
    gen = _gen(11)
    x = torch.cat(
        [torch.empty(100_000).uniform_(lo, hi, generator=gen), torch.empty(200_000).uniform_(*hot, generator=gen)]
    )
    f = getattr(F, name)
    x32 = x.clone().requires_grad_()
    f(x32).sum().backward()
    with kernels.use(False):
        x64 = x.double().requires_grad_()
        y64 = f(x64)
        y64.sum().backward()
        h = 1e-5
        xp, xm = (x.double() + h).requires_grad_(), (x.double() - h).requires_grad_()
        f(xp).sum().backward()
        f(xm).sum().backward()
    d64 = x64.grad.numpy()
    cond = np.maximum(1.0, np.abs(x.double().numpy() * (xp.grad.numpy() - xm.grad.numpy()) / (2 * h) / d64))
    fwd = _ulps(f(x).double().numpy(), y64.detach().numpy())
    der = _ulps(x32.grad.double().numpy(), d64) / cond
    assert fwd.max() <= 4.0, (fwd.max(), x[fwd.argmax()].item())
    assert der.max() <= 8.0, (der.max(), x[der.argmax()].item())
