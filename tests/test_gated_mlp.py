"""actlab.nn.GatedMLP (actlab.torch.gated_mlp): gradients against the composed float64 form built from
the catalog's gated units, for every gated variant and every memory mode; what backward keeps;
bfloat16, torch.compile, LlamaMLP's state_dict, the few-bit codes, and bad configurations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import actlab
from actlab.nn import GatedMLP, gated_variants
from actlab.torch import functional as AF
from actlab.torch.gated_mlp import CHUNK_ROWS, RECOMPUTE, pack_codes, unpack_codes

VARIANTS = sorted(gated_variants().items())
variants = pytest.mark.parametrize("variant, act", VARIANTS, ids=[v for v, _ in VARIANTS])


def _seeded(shape, seed=0, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _composed(variant: str, x, wg, wu, wd, bg=None, bu=None, bd=None):
    """down(variant([up(x), gate(x)])): the catalog's gated unit (a vector spec, its own vjp) on the
    two projections, a * act(b) with b the gate."""
    h = getattr(AF, variant)(torch.cat([F.linear(x, wu, bu), F.linear(x, wg, bg)], -1), axis=-1)
    return F.linear(h, wd, bd)


def _params(m: GatedMLP) -> list[torch.Tensor]:
    return [p for _, p in sorted(m.named_parameters())]


def _reference_grads(m: GatedMLP, variant: str, x: torch.Tensor, r: torch.Tensor) -> tuple:
    names = [n for n, _ in sorted(m.named_parameters())]
    ps = {n: p.detach().clone().requires_grad_(True) for n, p in zip(names, _params(m))}
    xr = x.detach().clone().requires_grad_(True)
    y = _composed(
        variant,
        xr,
        ps["gate_proj.weight"],
        ps["up_proj.weight"],
        ps["down_proj.weight"],
        ps.get("gate_proj.bias"),
        ps.get("up_proj.bias"),
        ps.get("down_proj.bias"),
    )
    return y, torch.autograd.grad((y * r).sum(), [xr, *ps.values()])


def test_the_variants_are_the_catalogs_gated_units():
    """Each (variant, act) found from the aliases is what the catalog computes: variant([a, b]) = a act(b)."""
    assert len(VARIANTS) >= 4  # glu, reglu, geglu, swiglu
    b = np.linspace(-4, 4, 17)
    for variant, act in VARIANTS:
        a = np.linspace(0.5, 2.0, 17)
        got = actlab.get_spec(variant)(np.concatenate([a, b]), axis=-1)
        np.testing.assert_allclose(got, a * actlab.get_spec(act)(b), rtol=1e-14, atol=1e-300)


@variants
@pytest.mark.parametrize("recompute", RECOMPUTE)
@pytest.mark.parametrize("bias", [False, True])
def test_gradients_match_the_composed_float64_form(variant, act, recompute, bias):
    torch.manual_seed(0)
    m = GatedMLP(5, 7, 3, activation=variant, bias=bias, recompute=recompute).double()
    n = CHUNK_ROWS + 37  # two blocks, the second partial
    x = _seeded((n, 5), seed=1).requires_grad_(True)
    r = _seeded((n, 3), seed=2)
    y = m(x)
    grads = torch.autograd.grad((y * r).sum(), [x, *_params(m)])
    want_y, want = _reference_grads(m, variant, x, r)
    torch.testing.assert_close(y, want_y, rtol=1e-12, atol=1e-12)
    assert len(grads) == len(want) == 1 + (6 if bias else 3)
    for got, ref in zip(grads, want):
        torch.testing.assert_close(got, ref, rtol=1e-11, atol=1e-11)


@variants
def test_float32_fused_path_is_close_to_float64(variant, act):
    """float32 on CPU runs the activation through the fused kernels: within float32 rounding of the
    float64 composed form (an approximate gelu, say, would be off by ~1e-3)."""
    torch.manual_seed(12)
    m = GatedMLP(6, 10, 4, activation=variant, bias=True)
    x = _seeded((CHUNK_ROWS + 3, 6), seed=13, dtype=torch.float32).requires_grad_(True)
    r = _seeded((CHUNK_ROWS + 3, 4), seed=14, dtype=torch.float32)
    y = m(x)
    got = torch.autograd.grad((y * r).sum(), [x, *_params(m)])
    m64 = GatedMLP(6, 10, 4, activation=variant, bias=True).double()
    m64.load_state_dict(m.state_dict())
    want_y, want = _reference_grads(m64, variant, x.double(), r.double())
    torch.testing.assert_close(y.double(), want_y, rtol=1e-5, atol=1e-5)
    for a, b in zip(got, want):
        torch.testing.assert_close(a.double(), b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("recompute", RECOMPUTE)
def test_three_dimensional_input_and_the_default_activation(recompute):
    m = GatedMLP(4, 6, recompute=recompute).double()  # silu, no biases, out = in
    assert m.act.spec.name == gated_variants()["swiglu"] and m.down_proj.out_features == 4
    x = _seeded((2, 3, 4), seed=3).requires_grad_(True)
    y = m(x)
    assert y.shape == (2, 3, 4)
    gx, *gw = torch.autograd.grad(y.square().sum(), [x, *_params(m)])
    want_y, want = _reference_grads(m, "swiglu", x, 2 * y.detach())
    torch.testing.assert_close(y, want_y)
    for got, ref in zip([gx, *gw], want):
        torch.testing.assert_close(got, ref)


def test_no_tokens():
    m = GatedMLP(4, 6, bias=True)
    x = torch.empty(0, 4, requires_grad=True)
    m(x).sum().backward()
    assert x.grad.shape == (0, 4) and all(torch.equal(p.grad, torch.zeros_like(p)) for p in m.parameters())


def test_double_backward_is_a_clear_error():
    m = GatedMLP(4, 6).double()
    x = _seeded((3, 4)).requires_grad_(True)
    with pytest.raises(RuntimeError, match=r"double backward \(create_graph=True\) is not supported"):
        torch.autograd.grad(m(x).sum(), x, create_graph=True)


def _saved_storages(fn) -> dict[int, int]:
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return seen


def test_backward_keeps_less_than_the_composed_form():
    """Structural: the bytes autograd keeps (parameters aside), counted by saved_tensors_hooks."""
    n, d, hidden = 64, 16, 48
    m = GatedMLP(d, hidden)
    x = _seeded((n, d), dtype=torch.float32).requires_grad_(True)
    params = {p.untyped_storage().data_ptr() for p in m.parameters()}
    act = m.act.spec.torch_native

    def composed():
        return m.down_proj(act(m.gate_proj(x), torch) * m.up_proj(x))

    def kept(fn) -> int:
        return sum(v for k, v in _saved_storages(fn).items() if k not in params)

    x_bytes, h_bytes = n * d * 4, n * hidden * 4
    assert kept(composed) >= x_bytes + 4 * h_bytes  # g, silu(g), u and the product
    assert kept(lambda: m(x)) == x_bytes + 2 * h_bytes  # x, g, u
    m.recompute = "projections"
    assert kept(lambda: m(x)) == x_bytes  # x alone


def test_bfloat16_smoke():
    m32 = GatedMLP(16, 40, activation="gelu")
    m16 = GatedMLP(16, 40, activation="gelu").bfloat16()
    m16.load_state_dict(m32.state_dict())
    x = _seeded((300, 16), dtype=torch.float32)
    x16 = x.bfloat16().requires_grad_(True)
    y16 = m16(x16)
    y16.float().sum().backward()
    assert y16.dtype == torch.bfloat16 and x16.grad.dtype == torch.bfloat16
    y32 = m32(x16.detach().float())
    torch.testing.assert_close(y16.float(), y32, rtol=0.05, atol=0.05)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m16.parameters())


def test_torch_compile_fullgraph_smoke():
    torch._dynamo.reset()
    m = GatedMLP(8, 20, bias=True)
    x = _seeded((2, 5, 8), dtype=torch.float32)
    xe, xc = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ye = m(xe)
    ye.sum().backward()
    grads = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    yc = torch.compile(m, fullgraph=True, backend="aot_eager")(xc)
    yc.sum().backward()
    torch.testing.assert_close(yc, ye)
    torch.testing.assert_close(xc.grad, xe.grad)
    for p, g in zip(m.parameters(), grads):
        torch.testing.assert_close(p.grad, g)


def test_llama_mlp_state_dict_loads_as_it_is():
    transformers = pytest.importorskip("transformers")
    from transformers.models.llama.modeling_llama import LlamaMLP

    config = transformers.LlamaConfig(
        hidden_size=8,
        intermediate_size=12,
        num_attention_heads=2,
        num_key_value_heads=2,
        hidden_act="silu",
        mlp_bias=False,
    )
    torch.manual_seed(4)
    llama = LlamaMLP(config).double()
    m = GatedMLP(8, 12).double()
    m.load_state_dict(llama.state_dict())  # strict: the same names and shapes
    x = _seeded((3, 8), seed=5).requires_grad_(True)
    torch.testing.assert_close(m(x), llama(x))
    gm = torch.autograd.grad(m(x).sum(), [x, *(p for _, p in sorted(m.named_parameters()))])
    gl = torch.autograd.grad(llama(x).sum(), [x, *(p for _, p in sorted(llama.named_parameters()))])
    for a, b in zip(gm, gl):
        torch.testing.assert_close(a, b)


# ----------------------------------------------------------------------------- few-bit codes
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_pack_codes_roundtrip(bits):
    codes = torch.randint(0, 2**bits, (3, 13), generator=torch.Generator().manual_seed(bits))
    packed = pack_codes(codes, bits)
    width = {1: 1, 2: 2, 3: 4, 4: 4}[bits]
    assert packed.dtype == torch.uint8 and packed.shape == (3, -(-13 * width // 8))
    assert torch.equal(unpack_codes(packed, bits, 13), codes)
    # the first code sits in the lowest bits of the first byte
    assert int(packed[0, 0]) & ((1 << width) - 1) == int(codes[0, 0])


@pytest.mark.parametrize("bits", [1, 3])
def test_fewbit_gradient_uses_the_tables_levels(bits):
    torch.manual_seed(6)
    m = GatedMLP(5, 9, 4, activation="gelu", fewbit=bits, bias=True).double()
    assert m.fewbit_levels.shape == (2**bits,) and "fewbit_levels" not in m.state_dict()
    x = _seeded((CHUNK_ROWS + 10, 5), seed=7).requires_grad_(True)
    r = _seeded((CHUNK_ROWS + 10, 4), seed=8)
    y = m(x)
    grads = dict(
        zip(["x", *(n for n, _ in sorted(m.named_parameters()))], torch.autograd.grad((y * r).sum(), [x, *_params(m)]))
    )
    # independent: the gate's gradient with f'(g) replaced by levels[bin of g]
    with torch.no_grad():
        g, u = m.gate_proj(x), m.up_proj(x)
        bins = torch.searchsorted(m.fewbit_breakpoints, g, right=True)
        gh = r @ m.down_proj.weight
        gg = gh * u * m.fewbit_levels[bins]
        gu = gh * F.gelu(g)
    torch.testing.assert_close(y, m.down_proj(F.gelu(g) * u))
    torch.testing.assert_close(grads["gate_proj.weight"], gg.t() @ x.detach())
    torch.testing.assert_close(grads["gate_proj.bias"], gg.sum(0))
    torch.testing.assert_close(grads["up_proj.weight"], gu.t() @ x.detach())
    torch.testing.assert_close(grads["x"], gg @ m.gate_proj.weight + gu @ m.up_proj.weight)


def test_fewbit_keeps_the_packed_code():
    n, d, hidden = 64, 8, 30
    m = GatedMLP(d, hidden, fewbit=3)
    x = _seeded((n, d), dtype=torch.float32).requires_grad_(True)
    params = {p.untyped_storage().data_ptr() for p in m.parameters()}
    sizes = sorted(v for k, v in _saved_storages(lambda: m(x)).items() if k not in params)
    # x, act(g), u (float32), 16 levels (float32) and the codes: 2 per byte
    assert sizes == sorted([n * d * 4, n * hidden * 4, n * hidden * 4, 8 * 4, n * hidden // 2])


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"recompute": "all"}, r"recompute must be one of 'elementwise', 'projections', got 'all'"),
        (
            {"activation": "softmax"},
            r"activation must be an elementwise catalog activation or one of .*swiglu \(silu\)",
        ),
        ({"activation": "no_such_act"}, r"activation 'no_such_act'"),
        ({"fewbit": 5}, r"fewbit must be None or an integer 1..4, got 5"),
        ({"fewbit": 2, "recompute": "projections"}, r"fewbit needs recompute='elementwise'"),
        ({"activation": "elu(alpha='learnable')"}, r"learnable activation parameters are not supported"),
    ],
)
def test_bad_configuration_is_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GatedMLP(4, 6, **kwargs)
    with pytest.raises(ValueError, match="hidden_features must be an integer >= 1, got 0"):
        GatedMLP(4, 0)


# ----------------------------------------------------------------------------- the existing gated layers
def _layer_class(variant: str) -> type:
    from actlab.nn.gated import _GatedLayer

    return next(c for c in _GatedLayer.__subclasses__() if c.variant == variant)


@variants
@pytest.mark.parametrize("recompute", RECOMPUTE)
def test_gated_layers_take_recompute(variant, act, recompute):
    """SwiGLU(..., recompute=...) computes what the plain layer (the catalog's gated unit) does,
    gradients included, and keeps less for backward."""
    cls = _layer_class(variant)
    torch.manual_seed(9)
    plain = cls(5, 7, 3).double()
    fused = cls(5, 7, 3, recompute=recompute).double()
    fused.load_state_dict(plain.state_dict())
    assert actlab.serialize(fused)["config"]["recompute"] == recompute
    x = _seeded((CHUNK_ROWS + 5, 5), seed=10).requires_grad_(True)
    r = _seeded((CHUNK_ROWS + 5, 3), seed=11)
    got = torch.autograd.grad((fused(x) * r).sum(), [x, *fused.parameters()])
    want = torch.autograd.grad((plain(x) * r).sum(), [x, *plain.parameters()])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)
    params = {p.untyped_storage().data_ptr() for p in plain.parameters()} | {
        p.untyped_storage().data_ptr() for p in fused.parameters()
    }

    def kept(m) -> int:
        return sum(v for k, v in _saved_storages(lambda: m(x)).items() if k not in params)

    assert kept(fused) < kept(plain)


def test_gated_layer_recompute_errors():
    with pytest.raises(ValueError, match=r"gtu_layer: recompute='elementwise' needs a gate a \* act\(b\)"):
        _layer_class("gtu")(4, 6, 4, recompute="elementwise")
    with pytest.raises(ValueError, match=r"needs .* out_features \(the down projection\)"):
        _layer_class("swiglu")(4, 6, recompute="projections")
    with pytest.raises(ValueError, match=r"allowed: one of 'elementwise', 'projections' or None"):
        _layer_class("swiglu")(4, 6, 4, recompute="all")


def test_bench_gated_measures_every_form():
    from actlab.bench.gated import measure

    costs, notes = measure(activation="relu", d_model=8, hidden=24, batch=2, tokens=64, repeats=1)
    assert [c.form for c in costs][0].startswith("composed down(relu(gate(x))")
    assert [c.form for c in costs][1:] == ["GatedMLP recompute='elementwise'", "GatedMLP recompute='projections'"]
    assert notes and "fewbit=3 skipped" in notes[0]  # relu has no few-bit table (mask is its mode)
    x_bytes, h_bytes = 2 * 64 * 8 * 4, 2 * 64 * 24 * 4
    assert [c.saved_bytes for c in costs[1:]] == [x_bytes + 2 * h_bytes, x_bytes]
    assert costs[0].saved_bytes > costs[1].saved_bytes
    assert all(c.step_ms > 0 and c.peak_bytes > 0 for c in costs)
