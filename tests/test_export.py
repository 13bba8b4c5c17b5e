"""Every registry entry exports (issue #12 item 5; DESIGN.md §3): generated from the registry.

- ``torch.export``: with and without grad the graph is plain ATen ops (no ``actlab_kernels`` op),
  and the exported program computes what the module does.
- ONNX, dynamo exporter: the model runs in onnxruntime and matches actlab (float32); the TorchScript
  exporter likewise.
- ``torch.jit.script``: elementwise activations compile (traced to plain ops) and serve every shape
  and float dtype; vector functions and layers raise the documented ScriptError.

One model holds every entry (one export per case: an export costs ~1 s whatever its size, ~90
exports would cost minutes); each entry is its own submodule and output, so a failure names it.
"""

from __future__ import annotations

import io
import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from actlab.nn import Activation, create_activation  # noqa: E402
from actlab.registry import all_specs  # noqa: E402
from actlab.torch.export import ONNX_OPS, ScriptError  # noqa: E402
from actlab.verify.samples import parameter_samples, sample_label  # noqa: E402

# torch 2.13 deprecates torch.jit; tracing the shape checks of vector functions and layers warns
# (the trace is for that layout, as ScriptError says)
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
]

ALL = all_specs("all")
ELEMENTWISE = [s for s in ALL if s.kind == "elementwise"]
# Parameter samples beyond the defaults: the first few of the CI level per parametric spec.
SAMPLES_PER_SPEC = 2


def _layer_config(spec) -> dict:
    # Layer entries leave their sizes to the caller (None): 8 features wherever one is required.
    return {p.name: 8 for p in spec.params if p.default is None and p.kind is int}


def _cases() -> list[tuple[str, object, dict]]:
    """(label, spec, params): every entry at its defaults, plus a few parameter samples."""
    out = []
    for spec in ALL:
        if spec.kind == "layer":
            out.append((spec.name, spec, _layer_config(spec)))
            continue
        samples = parameter_samples(spec, "ci")
        out.append((spec.name, spec, samples[0]))
        for params in samples[1 : 1 + SAMPLES_PER_SPEC]:
            out.append((f"{spec.name}[{sample_label(spec, params)}]", spec, params))
    return out


CASES = _cases()
DEFAULTS = [case for case in CASES if case[0] == case[1].name]  # one per registry entry


def _key(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label)


# Elementwise inputs: a grid over [-12, 12] (both signs, both tails of the saturating functions),
# zeros, and large magnitudes. Vector functions and layers: normal rows of 8 (the axis is last).
_GRID = np.concatenate([np.linspace(-12.0, 12.0, 97), [0.0, -0.0, 30.0, -30.0, 100.0, -100.0, 1e4, -1e4]])


def _input(spec, seed: int) -> torch.Tensor:
    if spec.kind == "elementwise":
        return torch.tensor(_GRID, dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    return 3.0 * torch.randn(4, 8, generator=g)


class AllEntries(torch.nn.Module):
    """Every case as a submodule named after it; forward takes one input per case, returns one output per
    case. ``scale`` (a parameter, 1.0) makes every input require grad when grad is on."""

    def __init__(self, cases):
        super().__init__()
        self.labels = [label for label, _, _ in cases]
        self.acts = torch.nn.ModuleDict()
        for label, spec, params in cases:
            module = create_activation(spec.name, **params) if spec.kind == "layer" else Activation(spec.name, **params)
            self.acts[_key(label)] = module
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.eval()  # rrelu: its deterministic eval() form

    def forward(self, *xs: torch.Tensor) -> tuple:
        return tuple(act(x * self.scale) for act, x in zip(self.acts.values(), xs))


def _inputs(cases) -> tuple:
    torch.manual_seed(0)  # layer weights
    return tuple(_input(spec, i) for i, (_, spec, _) in enumerate(cases))


@pytest.fixture(scope="module")
def model():
    """Every entry at its defaults."""
    torch.manual_seed(0)
    return AllEntries(DEFAULTS)


@pytest.fixture(scope="module")
def inputs():
    return _inputs(DEFAULTS)


def _owner(node) -> str:
    """The case whose submodule emitted a graph node (from the exporter's module stack)."""
    stack = node.meta.get("nn_module_stack") or {}
    for path, _ in stack.values():
        parts = path.replace("acts.", "acts/").split("/")
        if len(parts) > 1:
            return parts[1].split(".")[0]
    return "?"


# ----------------------------------------------------------------------------- torch.export
@pytest.mark.parametrize("grad", [False, True], ids=["no_grad", "grad"])
def test_torch_export_is_plain_aten(grad):
    """Without grad every case (defaults and parameter samples); with grad (the inputs require it:
    the custom autograd Function's path) every entry at its defaults."""
    cases = DEFAULTS if grad else CASES
    torch.manual_seed(0)
    model, inputs = AllEntries(cases), _inputs(cases)
    with torch.set_grad_enabled(grad):
        program = torch.export.export(model, inputs)
    custom = sorted(
        {
            f"{_owner(n)}: {n.target}"
            for n in program.graph.nodes
            if n.op == "call_function" and "actlab" in str(n.target)
        }
    )
    assert not custom, f"actlab's custom ops in the exported graph: {custom}"
    with torch.no_grad():
        got, want = program.module()(*inputs), model(*inputs)
    for (label, spec, _), g, w in zip(cases, got, want):
        # the exported graph is the spec's eager torch code, the module the fused kernel: both
        # within a few ulp of the true value. Rows and layers: also a floor at the output's scale
        # (entmax's entries next to the threshold are ill-conditioned, and in a layer the Linear
        # after a gated unit turns a 1-ulp difference into an absolute one)
        rows = spec.kind != "elementwise" and w.numel()
        floor = 16 * 2.0**-23 * float(w.detach().abs().nan_to_num(posinf=0.0, neginf=0.0).max()) if rows else 0.0
        torch.testing.assert_close(
            g, w, rtol=16 * 2.0**-23, atol=max(floor, 1e-30), equal_nan=True, msg=lambda m: f"{label}: {m}"
        )


# ----------------------------------------------------------------------------- ONNX
def _tolerance(want: np.ndarray, x: np.ndarray) -> np.ndarray:
    """onnxruntime evaluates the same float32 formula with its own exp/log (a few ulp each, not
    correctly rounded) over chains of up to ~30 ops: 64 ulp relative. Its Tanh, Sigmoid and Erf are
    fast approximations accurate to ~eps absolute, not relative (sigmoid(-12) = 6e-6 comes out ~1 %
    off), and the self-gated functions multiply them by x: plus 8 eps |x| (at least 8 eps)."""
    scale = np.maximum(1.0, np.abs(x) if x.shape == want.shape else np.abs(x).max())
    return 64 * 2.0**-23 * np.abs(want) + 8 * 2.0**-23 * scale


def _compare_onnx(onnx_bytes: bytes, model, inputs) -> None:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    feeds = {arg.name: x.numpy() for arg, x in zip(session.get_inputs(), inputs)}
    got = session.run(None, feeds)
    with torch.no_grad():
        want = [y.numpy() for y in model(*inputs)]
    assert len(got) == len(want)
    bad = []
    for label, g, w, x in zip(model.labels, got, want, inputs):
        if g.shape != w.shape:
            bad.append(f"{label}: shape {g.shape} != {w.shape}")
            continue
        same_special = (np.isnan(g) & np.isnan(w)) | ((g == w) & np.isinf(w))
        with np.errstate(invalid="ignore"):  # inf - inf where the infinities agree (kept at 0)
            err = np.where(same_special, 0.0, np.abs(g.astype(np.float64) - w))
        tol = _tolerance(w, x.numpy())
        over = err > tol
        if over.any():
            i = int(np.argmax(err - tol))
            bad.append(f"{label}: {int(over.sum())} values off, e.g. onnxruntime {g.flat[i]!r} vs actlab {w.flat[i]!r}")
    assert not bad, "onnxruntime differs from actlab:\n" + "\n".join(bad)


def _export_or_name_culprits(export, cases) -> bytes:
    """Export the whole model; where that fails, export each case alone to name the ones that fail."""
    try:
        return export(AllEntries(cases), _inputs(cases))
    except Exception as whole:
        failed = []
        for case in cases:
            try:
                export(AllEntries([case]), _inputs([case]))
            except Exception as err:
                lines = str(err).strip().splitlines() or [type(err).__name__]
                why = next((line for line in lines if "No ONNX function" in line or "not supported" in line), lines[-1])
                failed.append(f"{case[0]}: {why.strip()[:200]}")
        raise AssertionError("ONNX export failed for:\n" + "\n".join(failed or [repr(whole)])) from whole


def _dynamo_export(model, inputs) -> bytes:
    pytest.importorskip("onnxscript")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, inputs, dynamo=True, verbose=False)
    opsets = {op.domain: op.version for op in program.model_proto.opset_import}
    assert opsets[""] >= 18, opsets
    return program.model_proto.SerializeToString()


def _torchscript_export(model, inputs) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, inputs, buffer, dynamo=False)
    return buffer.getvalue()


def test_onnx_dynamo_matches_onnxruntime(model, inputs):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    _compare_onnx(_export_or_name_culprits(_dynamo_export, DEFAULTS), model, inputs)


def test_onnx_torchscript_exporter_matches_onnxruntime(model, inputs):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    _compare_onnx(_export_or_name_culprits(_torchscript_export, DEFAULTS), model, inputs)


# ----------------------------------------------------------------------------- the ONNX stand-ins
_SPECIAL = [0.0, -0.0, 1.0, -1.0, 3.0, -4.0, 1e-30, -1e-300, 1e300, -1e300, math.inf, -math.inf, math.nan]


def _values(dtype, scale: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    rand = torch.randn(300, generator=g, dtype=torch.float64) * scale
    tiny = torch.logspace(-40, 0, 41, dtype=torch.float64)
    return torch.cat([torch.tensor(_SPECIAL, dtype=torch.float64), rand, tiny, -tiny]).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_onnx_ops_match_torch(dtype):
    """The ONNX stand-ins against torch's own functions: zeros of both signs, infinities, NaN, huge and tiny."""
    eps = torch.finfo(dtype).eps
    x = _values(dtype, 1e3, 1)
    a, b = (t.flatten() for t in torch.meshgrid(x, x.flip(0), indexing="ij"))
    close = dict(rtol=4 * eps, atol=0, equal_nan=True)
    torch.testing.assert_close(ONNX_OPS.hypot(a, b), torch.hypot(a, b), **close)
    number = ~torch.isnan(b)  # copysign(a, NaN) follows NaN's sign bit, which plain ops cannot read
    got, want = ONNX_OPS.copysign(a, b)[number], torch.copysign(a, b)[number]
    assert torch.equal(torch.signbit(got), torch.signbit(want))
    torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)
    # logaddexp cancels where a ~ -b (max + log1p(.) near 0): error relative to the larger input
    got, want = ONNX_OPS.logaddexp(a, b), torch.logaddexp(a, b)
    scale = torch.maximum(a.abs(), b.abs()).nan_to_num(0.0, posinf=0.0)
    finite = torch.isfinite(want)
    assert torch.equal(got[~finite].nan_to_num(1.0), want[~finite].nan_to_num(1.0))
    assert ((got - want).abs()[finite] <= 4 * eps * (want.abs() + scale)[finite]).all()
    y = _values(dtype, 30.0, 2)
    torch.testing.assert_close(ONNX_OPS.expm1(y), torch.expm1(y), **close)
    torch.testing.assert_close(ONNX_OPS.log1p(y), torch.log1p(y), **close)
    torch.testing.assert_close(
        ONNX_OPS.softplus(y), torch.nn.functional.softplus(y.double(), threshold=800).to(dtype), **close
    )
    # erfc, erfcx: a 1.2e-7 fit (float32's accuracy), where erfc is a normal float32
    z = torch.linspace(-9.0, 9.0, 2001, dtype=dtype)
    # (float32: the fit's 1.2e-7 plus the polynomial's and exp's roundings, 8 ulp)
    fit = dict(rtol=1e-6 if dtype == torch.float32 else 2e-7, atol=0)
    torch.testing.assert_close(ONNX_OPS.erfcx(z), torch.special.erfcx(z), **fit)
    if dtype == torch.float32:
        torch.testing.assert_close(ONNX_OPS.erfc(z), torch.special.erfc(z.double()).float(), **fit)


# ----------------------------------------------------------------------------- torch.jit.script
_SHAPES = [(), (0,), (7,), (2, 3, 5)]


@pytest.mark.parametrize("spec", ELEMENTWISE, ids=lambda s: s.name)
def test_jit_script_elementwise(spec):
    module = Activation(spec.name).eval()
    scripted = torch.jit.script(module)
    assert isinstance(scripted, torch.jit.ScriptModule)
    g = torch.Generator().manual_seed(2)
    for shape in _SHAPES:  # the trace serves every shape (elementwise code reads none)
        for dtype in (torch.float32, torch.bfloat16):
            x = (4.0 * torch.randn(shape, generator=g, dtype=torch.float64)).to(dtype)
            with torch.no_grad():
                want = module(x)
                got = scripted(x)
            assert got.shape == want.shape and got.dtype == want.dtype
            # plain eager torch code against actlab's default path (fused kernels in float32/bf16)
            tol = 16 * torch.finfo(dtype).eps
            torch.testing.assert_close(got, want, rtol=tol, atol=1e-300, equal_nan=True)
    with pytest.raises(Exception, match="float32, float16 or bfloat16"):
        scripted(torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("spec", [s for s in ALL if s.kind != "elementwise"], ids=lambda s: s.name)
def test_jit_script_refuses_vector_functions_and_layers_clearly(spec):
    module = create_activation(spec.name, **(_layer_config(spec) if spec.kind == "layer" else {}))
    with pytest.raises(ScriptError, match=r"torch\.jit\.trace\(module, example_input\)"):
        torch.jit.script(module)
    # what the message offers works: a trace in plain ATen ops
    x = _input(spec, 3)
    with torch.no_grad():
        traced = torch.jit.trace(module.eval(), x)
        assert "actlab_kernels" not in str(traced.inlined_graph)
        want = module(x)  # the fused path: ulps from the traced eager ops, which a layer's Linear can amplify
        torch.testing.assert_close(traced(x), want, rtol=16 * 2.0**-23, atol=16 * 2.0**-23 * float(want.abs().max()))
