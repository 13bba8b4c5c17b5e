"""The fused CUDA path (issue #11 item 6), checked without a GPU as far as that goes, and on one.

Without a GPU (CI):
- the generated CUDA source (the text NVRTC gets, every spec and dtype) compiled as host C++ and run
  through the Python launch path with a host "launcher" (actlab.torch.cuda.HostLauncher): forward and
  backward against the mpmath oracle within the catalog's float32 limits (defaults and the parameter
  samples of tests/test_param_samples.py), against the CPU fused kernels on special values (±0, ±inf,
  NaN, subnormals, huge) and on every float16/bfloat16 input; the half/bfloat16 conversions against
  torch's on every bit pattern;
- the same source compiled by NVRTC for sm_80 and sm_90 (skips where libnvrtc is not found: the
  ``nvidia-cuda-nvrtc-cu12`` wheel, or ACTLAB_NVRTC=/path/to/libnvrtc.so.12);
- the launch logic: parameter padding, dtypes, non-contiguous inputs and outputs, chunked launches.
With a GPU (``-m gpu``): every spec and dtype against the CPU kernels, autograd, torch.compile.
"""

from __future__ import annotations

import ctypes
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from actlab.registry import get_spec
from actlab.torch import cuda, kernels
from actlab.verify.accuracy import measure, ulp
from actlab.verify.samples import parameter_samples, sample_label
from conftest import HAS_COMPILER

pytestmark = pytest.mark.skipif(not HAS_COMPILER, reason="no C++ compiler")

SPECS = cuda.specs()
# the grids of tests/test_elementwise.py (defaults) and tests/test_param_samples.py (samples): the
# oracle's cache serves both
GRID, SAMPLE_GRID = 3000, 1000
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@pytest.fixture(scope="module")
def host_lib() -> Path:
    return cuda.host_library()


@pytest.fixture
def host(host_lib, monkeypatch):
    """The host-compiled kernels as the launcher; small grids, so each launch runs several blocks."""
    launcher = cuda.HostLauncher(host_lib, max_grid=3)
    monkeypatch.setattr(cuda, "launcher", launcher)
    return launcher


class _HostFunction(torch.autograd.Function):
    """f through the CUDA operators' Python side (actlab.torch.cuda.forward_impl/backward_impl)."""

    @staticmethod
    def forward(ctx, x, name, params):
        ctx.save_for_backward(x)
        ctx.name, ctx.params = name, params
        return cuda.forward_impl(x, name, params)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return cuda.backward_impl(x, grad, ctx.name, ctx.params), None, None


def _encoded(spec, params):
    return kernels.param_encoder(spec)(tuple(params[n] for n in spec.param_names))


def _cases():
    out = []
    for spec in SPECS:
        for i, params in enumerate(parameter_samples(spec, "ci")):
            label = "defaults" if i == 0 else sample_label(spec, params)
            out.append(pytest.param(spec, params, GRID if i == 0 else SAMPLE_GRID, id=f"{spec.name}[{label}]"))
    return out


# ----------------------------------------------------------------------------- host instantiation
@pytest.mark.parametrize(("spec", "params", "size"), _cases())
def test_host_kernels_reach_the_catalog_accuracy(spec, params, size, host):
    """float32 forward and backward of the CUDA kernels, against the oracle, within the spec's limits."""
    encoded = _encoded(spec, params)
    row = measure(spec, "float32", params=params, size=size, with_torch=False,
                  paths={"cuda": lambda t: _HostFunction.apply(t, spec.name, encoded)})  # fmt: skip
    p = row.paths["cuda"]
    assert row.path_passed("cuda"), (
        f"{spec.name} {params}: forward {p['forward_ulps']:.2f} ulp at {p['worst_forward_x']} (limit "
        f"{row.forward_limit}), derivative {p['derivative_ulps']:.2f} at {p['worst_derivative_x']} (limit "
        f"{row.derivative_limit}), {p['nonfinite']} non-finite"
    )


def _specials() -> torch.Tensor:
    f = np.finfo(np.float32)
    mags = [0.0, 1e-45, 3e-42, 1e-40, float(f.tiny) / 2, float(f.tiny), 1e-30, 1e-8, 0.1, 0.5, 1.0, 2.5, 7.0, 20.0,
            88.0, 89.0, 104.0, 200.0, 1e4, 1e6, 1e10, 1e20, 1e30, 1e38, float(f.max), math.inf]  # fmt: skip
    vals = [m for v in mags for m in (v, -v)] + [math.nan]
    return torch.tensor(vals, dtype=torch.float32)


def _close(got: torch.Tensor, ref: torch.Tensor, units: float, dtype: torch.dtype) -> torch.Tensor:
    """Where ``got`` differs from ``ref`` by more than ``units`` steps of ``dtype`` (NaN = NaN, inf = inf)."""
    g, r = got.double().numpy(), ref.double().numpy()
    step = ulp(np.maximum(np.abs(g), np.abs(r)), "float32")
    if dtype != torch.float32:  # a step of the narrow type: 2^-7 (bf16) or 2^-10 (f16) relative, its own subnormals
        bits, tiny = (7, 2.0**-133) if dtype == torch.bfloat16 else (10, 2.0**-24)
        step = np.maximum(np.maximum(np.abs(g), np.abs(r)) * 2.0**-bits, tiny)
    with np.errstate(invalid="ignore"):
        bad = ~((g == r) | (np.isnan(g) & np.isnan(r)) | (np.abs(g - r) <= units * step))
    return torch.from_numpy(bad)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_host_kernels_agree_with_the_cpu_kernels(spec, host):
    """Special values in float32, and every float16 and bfloat16 input, forward and backward, against the
    CPU fused kernels (actlab_kernels::forward/backward), which may take the float form: within the
    spec's limits (float32) or one step of the narrow type."""
    assert kernels.build(), "the CPU kernels are the reference here"
    params = spec.resolve_params()
    enc = _encoded(spec, params)
    bits = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    inputs = {torch.float32: _specials(), torch.float16: bits.view(torch.float16),
              torch.bfloat16: bits.view(torch.bfloat16)}  # fmt: skip
    f_limit = spec.tolerance.forward_ulps or 4.0
    d_limit = spec.tolerance.derivative_ulps or 8.0
    for dtype, x in inputs.items():
        lo, hi = spec.domain
        x = x[(x.float() >= lo) & (x.float() <= hi) | x.isnan()] if (lo, hi) != (-math.inf, math.inf) else x
        g = torch.full_like(x, 0.75)
        y = cuda.forward_impl(x, spec.name, enc)
        d = cuda.backward_impl(x, g, spec.name, enc)
        y_cpu = torch.ops.actlab_kernels.forward(x, spec.name, enc)
        d_cpu = torch.ops.actlab_kernels.backward(x, g, spec.name, enc)
        for what, got, ref, units in (("forward", y, y_cpu, 2 * f_limit), ("backward", d, d_cpu, 2 * d_limit)):
            if dtype != torch.float32:
                units = 1.0
            bad = _close(got, ref, units, dtype)
            assert not bad.any(), (
                f"{spec.name} {dtype} {what}: at x = {x[bad][:6].tolist()} got {got[bad][:6].tolist()}, "
                f"CPU kernels {ref[bad][:6].tolist()}"
            )


def test_half_and_bfloat16_conversions_match_torch(host_lib):
    """Every 16-bit pattern to float and back, and float32 values around every rounding boundary
    (random bit patterns, ties, overflow, underflow) to float16/bfloat16, against torch's ``.to()``."""
    lib = ctypes.CDLL(str(host_lib))
    patterns = torch.arange(0, 2**16, dtype=torch.int32).to(torch.int16)
    rng = np.random.default_rng(11)
    rand = torch.from_numpy(rng.integers(0, 2**32, size=400_000, dtype=np.uint32).view(np.int32))
    # halfway points between neighbouring narrow values (ties: round to even), and one bit either side
    for dtype, to_name, from_name in ((torch.float16, "host_to_half", "host_half_to_float"),
                                      (torch.bfloat16, "host_to_bf16", "host_bf16_to_float")):  # fmt: skip
        narrow = patterns.view(dtype)
        wide = torch.empty(2**16, dtype=torch.float32)
        getattr(lib, from_name)(
            ctypes.c_void_p(patterns.data_ptr()), ctypes.c_void_p(wide.data_ptr()), ctypes.c_int(2**16)
        )
        ref = narrow.float()
        same = (wide.view(torch.int32) == ref.view(torch.int32)) | (wide.isnan() & ref.isnan())
        assert same.all(), f"{dtype} -> float32 differs at bits {patterns[~same][:8].tolist()}"

        finite = ref[ref.isfinite()].double().sort().values.unique()
        mids = ((finite[1:] + finite[:-1]) / 2).float()  # exact in float32 (a few more bits than the narrow type)
        mid_bits = mids.view(torch.int32)
        probes = torch.cat([rand, ref.view(torch.int32), mid_bits, mid_bits + 1, mid_bits - 1,
                            torch.tensor([0x7F800000, -0x800000, 0x7FC00000, 0x477FF000, 0x477FEFFF, 0x33000000,
                                          0x33000001, 0x32FFFFFF], dtype=torch.int32)]).view(torch.float32)  # fmt: skip
        probes = probes.contiguous()
        out = torch.empty(probes.numel(), dtype=torch.int16)
        getattr(lib, to_name)(
            ctypes.c_void_p(probes.data_ptr()), ctypes.c_void_p(out.data_ptr()), ctypes.c_int(probes.numel())
        )
        got, want = out.view(dtype), probes.to(dtype)
        same = (got.view(torch.int16) == want.view(torch.int16)) | (got.isnan() & want.isnan())
        assert same.all(), (
            f"float32 -> {dtype} differs for {probes[~same][:6].tolist()}: {got[~same][:6].tolist()} against "
            f"torch's {want[~same][:6].tolist()}"
        )


# ----------------------------------------------------------------------------- NVRTC
def _libnvrtc() -> ctypes.CDLL | None:
    candidates = [os.environ.get("ACTLAB_NVRTC", "")]
    try:
        import nvidia.cuda_nvrtc as pkg

        for root in list(getattr(pkg, "__path__", [])):
            candidates += sorted(str(p) for p in Path(root, "lib").glob("libnvrtc.so*") if "builtins" not in p.name)
    except ImportError:
        pass
    candidates.append("libnvrtc.so.12")
    for path in filter(None, candidates):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def _nvrtc_compile(lib: ctypes.CDLL, src: str, arch: str) -> tuple[int, str, int]:
    """(result, log, CUBIN size) of compiling ``src`` for sm_<arch> with the runtime's options."""
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), b"actlab.cu", 0, None, None) == 0
    from torch.cuda._utils import _get_gpu_rtc_compatible_flags

    # what torch.cuda._utils._nvrtc_compile passes at run time (besides include paths)
    opts = [f"--gpu-architecture=sm_{arch}", *cuda.nvrtc_options(), *_get_gpu_rtc_compatible_flags()]
    arr = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
    res = lib.nvrtcCompileProgram(prog, len(opts), arr)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    cubin = ctypes.c_size_t(0)
    if res == 0:
        lib.nvrtcGetCUBINSize(prog, ctypes.byref(cubin))
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return res, log.value.decode(errors="replace"), cubin.value


@pytest.mark.parametrize("arch", ["80", "90"])
def test_nvrtc_compiles_every_kernel(arch):
    lib = _libnvrtc()
    if lib is None:
        pytest.skip("libnvrtc not found (pip install nvidia-cuda-nvrtc-cu12, or set ACTLAB_NVRTC)")
    res, log, size = _nvrtc_compile(lib, cuda.source(), arch)
    assert res == 0, f"NVRTC failed for sm_{arch}:\n{log[-4000:]}"
    assert size > 0


def test_nvrtc_compiles_one_spec_as_the_runtime_does():
    """The per-(spec, dtype) source the runtime compiles (the header inlined, one dtype)."""
    lib = _libnvrtc()
    if lib is None:
        pytest.skip("libnvrtc not found")
    res, log, _ = _nvrtc_compile(lib, cuda.spec_source(get_spec("gelu"), (torch.bfloat16,)), "90")
    assert res == 0, log[-4000:]


# ----------------------------------------------------------------------------- the launch path (CPU)
def _reference(spec, x, enc, grad=None):
    if grad is None:
        return torch.ops.actlab_kernels.forward(x.contiguous(), spec.name, enc)
    return torch.ops.actlab_kernels.backward(x.contiguous(), grad.contiguous(), spec.name, enc)


@pytest.mark.parametrize("name", ["elu", "softplus", "srelu"])
def test_launch_pads_and_passes_parameters(name, host):
    """Non-default parameters reach the kernel in their places (padded to 16 doubles), as on the CPU."""
    spec = get_spec(name)
    params = parameter_samples(spec, "ci")[-1]
    assert params != spec.resolve_params()
    enc = _encoded(spec, params)
    x = torch.linspace(-6, 6, 1001)
    g = torch.linspace(-1, 2, 1001)
    torch.testing.assert_close(cuda.forward_impl(x, name, enc), _reference(spec, x, enc))
    torch.testing.assert_close(cuda.backward_impl(x, g, name, enc), _reference(spec, x, enc, g))
    with pytest.raises(ValueError, match="parameters"):
        cuda.forward_impl(x, name, enc + [0.0])
    with pytest.raises(ValueError, match="at most 16"):
        cuda._padded([1.0] * 17)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_launch_handles_layouts_like_the_cpu_operator(dtype, host):
    """Transposed, strided and channels_last inputs (and a grad laid out differently): the output has
    the strides the CPU operator and the fake give it, and the values of the contiguous computation."""
    spec = get_spec("gelu")
    enc = _encoded(spec, spec.resolve_params())
    gen = torch.Generator().manual_seed(3)
    base = (torch.randn(4, 6, 5, 7, generator=gen) * 4).to(dtype)
    for x in (base.transpose(1, 3), base[:, ::2], base.to(memory_format=torch.channels_last), base[1]):
        g = torch.randn(x.shape, generator=gen).to(dtype).transpose(-1, -2).contiguous().transpose(-1, -2)
        y = cuda.forward_impl(x, "gelu", enc)
        cpu = torch.ops.actlab_kernels.forward(x, "gelu", enc)
        assert y.shape == x.shape and y.stride() == cpu.stride()
        assert torch.equal(y.contiguous(), cuda.forward_impl(x.contiguous(), "gelu", enc))
        assert not _close(y.contiguous(), cpu.contiguous(), 1 if dtype != torch.float32 else 8, dtype).any()
        d = cuda.backward_impl(x, g, "gelu", enc)
        assert d.stride() == torch.ops.actlab_kernels.backward(x, g, "gelu", enc).stride()
        assert torch.equal(d.contiguous(), cuda.backward_impl(x.contiguous(), g.contiguous(), "gelu", enc))
    with pytest.raises(ValueError, match="float32, bfloat16 or float16"):
        cuda.forward_impl(base.double(), "gelu", enc)
    with pytest.raises(ValueError, match="grad shape"):
        cuda.backward_impl(base, base[0], "gelu", enc)
    with pytest.raises(ValueError, match="no kernel named"):
        cuda.forward_impl(base, "softmax", [])


def test_launch_splits_large_tensors_into_chunks(host, monkeypatch):
    """Tensors above the 32-bit launch limit go in pieces (here the limit made small): every element is
    computed once, each launch within the limit, the last one the remainder."""
    monkeypatch.setattr(cuda, "CHUNK", 1000)
    x = torch.linspace(-8, 8, 2500)
    y = cuda.forward_impl(x, "silu", [])
    assert [n for _, n in host.launches] == [1000, 1000, 500]
    assert [grid for grid, _ in host.launches] == [3, 3, 2]  # 768 threads for 1000: the grid-stride loop
    host.launches.clear()
    d = cuda.backward_impl(x, torch.ones_like(x), "silu", [])
    assert [n for _, n in host.launches] == [1000, 1000, 500]
    monkeypatch.setattr(cuda, "CHUNK", 1 << 30)
    host.launches.clear()
    assert torch.equal(y, cuda.forward_impl(x, "silu", [])) and [n for _, n in host.launches] == [2500]
    assert torch.equal(d, cuda.backward_impl(x, torch.ones_like(x), "silu", []))
    torch.testing.assert_close(y, torch.ops.actlab_kernels.forward(x, "silu", []))
    host.launches.clear()
    assert cuda.forward_impl(torch.empty(0, 3), "silu", []).shape == (0, 3) and host.launches == []


def test_bound_calls_reach_the_same_kernel(host):
    spec = get_spec("elu")
    enc = _encoded(spec, {"alpha": 0.5})
    bound = torch.ops.actlab_kernels.bind("elu", enc)
    assert torch.ops.actlab_kernels.bound_info(bound) == ("elu", enc)
    x = torch.linspace(-5, 5, 300)
    assert torch.equal(cuda.bound_forward_impl(x, bound), cuda.forward_impl(x, "elu", enc))


# ----------------------------------------------------------------------------- routing (fake CUDA tensors)
def _fake_cuda(*shape, dtype=torch.float32, requires_grad=False):
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode()
    with mode:
        x = torch.empty(*shape, device="cuda", dtype=dtype, requires_grad=requires_grad)
    return mode, x


def test_cuda_tensors_are_eligible_only_where_the_cuda_path_is(monkeypatch):
    from actlab.torch import rows

    assert kernels.build()
    mode, x = _fake_cuda(8, 4)
    with mode:
        monkeypatch.setattr(kernels, "_cuda_ready", False)
        assert not kernels.eligible(x) and not kernels.has_kernel(get_spec("gelu"), torch.float32, "cuda")
        monkeypatch.setattr(kernels, "_cuda_ready", True)
        assert kernels.eligible(x) and kernels.has_kernel(get_spec("gelu"), torch.bfloat16, "cuda")
        assert not kernels.eligible(x.double())  # float64: eager on both devices
        assert not kernels.has_kernel(get_spec("gelu"), torch.float64, "cuda")
        assert not rows.takes("softmax", x, -1, None)  # the row kernels stay eager on CUDA
    if not torch.cuda.is_available():
        assert not cuda.available()


def test_autograd_node_routes_other_devices_through_the_dispatcher():
    """actlab_kernels::apply and apply.bound on a tensor off the CPU: the C++ autograd path calls the
    operators through the dispatcher, forward and backward (on a GPU to actlab.torch.cuda's
    implementations; here, on the meta device, to the fakes) instead of the CPU loops. (A fake CUDA
    tensor cannot carry an autograd graph in a CPU-only torch.)"""
    assert kernels.build()
    x = torch.empty(16, device="meta", requires_grad=True)
    bound = torch.ops.actlab_kernels.bind("elu", [0.5])
    for y in (torch.ops.actlab_kernels.apply(x, "elu", [0.5]), torch.ops.actlab_kernels.apply.bound(x, bound)):
        assert y.device.type == "meta" and y.grad_fn.name() == "ActlabFusedBackward"
        (g,) = torch.autograd.grad(y, x, torch.empty_like(y))
        assert g.shape == x.shape and g.device.type == "meta"


# ----------------------------------------------------------------------------- on a GPU
GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _gpu_ready():
    assert kernels.build() and cuda.available(), "CUDA present but the fused CUDA path is not available"


@pytest.mark.gpu
@GPU
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_gpu_kernels_match_the_cpu_kernels(spec):
    """Every spec and dtype: forward and backward on the GPU against the CPU fused kernels (special
    values and a dense grid in float32; every 16-bit input in float16 and bfloat16)."""
    _gpu_ready()
    enc = _encoded(spec, spec.resolve_params())
    f_limit = spec.tolerance.forward_ulps or 4.0
    d_limit = spec.tolerance.derivative_ulps or 8.0
    bits = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16)
    inputs = {
        torch.float32: _specials(),
        torch.float16: bits.view(torch.float16),
        torch.bfloat16: bits.view(torch.bfloat16),
    }
    for dtype, x in inputs.items():
        g = torch.full_like(x, 0.75)
        y = torch.ops.actlab_kernels.forward(x.cuda(), spec.name, enc).cpu()
        d = torch.ops.actlab_kernels.backward(x.cuda(), g.cuda(), spec.name, enc).cpu()
        y_cpu = torch.ops.actlab_kernels.forward(x, spec.name, enc)
        d_cpu = torch.ops.actlab_kernels.backward(x, g, spec.name, enc)
        for what, got, ref, units in (("forward", y, y_cpu, 2 * f_limit), ("backward", d, d_cpu, 2 * d_limit)):
            bad = _close(got, ref, 1.0 if dtype != torch.float32 else units, dtype)
            assert not bad.any(), (
                f"{spec.name} {dtype} {what}: x = {x[bad][:6].tolist()}: {got[bad][:6].tolist()} "
                f"vs {ref[bad][:6].tolist()}"
            )
    # a dense float32 grid: the GPU's double functions against the host build of the same source
    x = torch.linspace(-30, 30, 100_001)
    launcher = cuda.HostLauncher(cuda.host_library(), max_grid=64)
    host = launcher.kernels(spec, torch.float32, x.device)
    want = torch.empty_like(x)
    launcher.launch(host[0], launcher.grid(x.numel(), x.device), [x, want, x.numel(), *cuda._padded(enc)])
    torch.testing.assert_close(
        torch.ops.actlab_kernels.forward(x.cuda(), spec.name, enc).cpu(), want, rtol=4e-7, atol=1e-12
    )


GRAD_CASES = [("gelu", {}), ("silu", {}), ("mish", {}), ("elu", {"alpha": 0.5}), ("softplus", {"beta": 2.0})]


@pytest.mark.gpu
@GPU
@pytest.mark.parametrize(("name", "params"), GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_gpu_module_training_step_matches_eager(name, params):
    """actlab.nn.Activation on CUDA: fused (one operator forward, one backward, one saved tensor) and
    within the catalog's limits of the float64 eager path, value and gradient."""
    from actlab.nn import Activation

    _gpu_ready()
    spec = get_spec(name)
    x = (torch.randn(4096, generator=torch.Generator().manual_seed(5)) * 6).cuda().requires_grad_()
    g = torch.rand(4096, generator=torch.Generator().manual_seed(6)).cuda()
    act = Activation(name, **params)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = act(x)
    assert len({t.untyped_storage().data_ptr() for t in saved}) == 1, "one saved tensor"
    assert y.grad_fn.name() == "ActlabFusedBackward"
    (dx,) = torch.autograd.grad(y, x, g)
    with kernels.use(False):
        x64 = x.detach().double().cpu().requires_grad_()
        y64 = Activation(name, **params)(x64)
        (dx64,) = torch.autograd.grad(y64, x64, g.double().cpu())
    torch.testing.assert_close(
        y.detach().cpu(), y64.float(), rtol=(spec.tolerance.forward_ulps or 4.0) * 2**-23, atol=1e-6
    )
    torch.testing.assert_close(dx.cpu(), dx64.float(), rtol=(spec.tolerance.derivative_ulps or 8.0) * 2**-23, atol=1e-6)


@pytest.mark.gpu
@GPU
def test_gpu_compiled_inference_runs_the_fused_operator():
    from actlab.nn import Activation

    _gpu_ready()
    torch.manual_seed(0)  # the Linear layers' initialisation
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), Activation("gelu"), torch.nn.Linear(64, 8)).cuda()
    x = torch.randn(32, 64, device="cuda", generator=torch.Generator("cuda").manual_seed(1))
    with torch.no_grad():
        want = model(x)
        got = torch.compile(model, fullgraph=True)(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
@GPU
def test_gpu_kernels_are_cached_on_disk_and_chunked(monkeypatch):
    _gpu_ready()
    x = torch.linspace(-5, 5, 5000, device="cuda", dtype=torch.bfloat16)
    y = torch.ops.actlab_kernels.forward(x, "mish", [])
    assert any(p.name.startswith("actlab_fwd_mish_bf16") for p in cuda._cache_dir().glob("*.cubin"))
    monkeypatch.setattr(cuda, "CHUNK", 1024)
    assert torch.equal(torch.ops.actlab_kernels.forward(x, "mish", []), y)


def test_bound_call_routes_cuda_tensors_to_the_fused_operator(monkeypatch):
    """actlab.nn.Activation's per-call path (functional.bound_call) on a (fake) CUDA tensor: the bound
    fused operator where the CUDA path is available, the eager ops where it is not."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from actlab.torch.functional import bound_call

    class Record(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    assert kernels.build()
    spec = get_spec("silu")
    call = bound_call(spec, spec.resolve_params())
    mode, x = _fake_cuda(8, dtype=torch.bfloat16)
    for ready in (True, False):
        monkeypatch.setattr(kernels, "_cuda_ready", ready)
        with mode, Record() as rec:
            call(x)
        fused = [op for op in rec.ops if op.startswith("actlab_kernels.")]
        assert fused == (["actlab_kernels.forward.bound"] if ready else []), rec.ops
