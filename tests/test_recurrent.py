"""actlab.nn.recurrent: LSTM/GRU cells and layers, their variants, lengths, packing and serialization."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest
import torch
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import actlab
from actlab.nn import GRU, LSTM, Bidirectional, GRUCell, LSTMCell, RecurrentCell, from_torch

F64 = torch.float64

LSTM_VARIANTS = {
    "vanilla": {},
    "peepholes": {"peepholes": True},
    "peepholes_fo": {"peepholes": "fo"},
    "cifg": {"cifg": True},
    "cifg_peepholes": {"cifg": True, "peepholes": True},
    "nig": {"no_input_gate": True},
    "nfg": {"no_forget_gate": True},
    "nog": {"no_output_gate": True},
    "niaf": {"no_input_activation": True},
    "noaf": {"no_output_activation": True},
    "fgr": {"full_gate_recurrence": True},
    "fgr_peepholes": {"full_gate_recurrence": True, "peepholes": True},
    "nig_nfg_nog": {"no_input_gate": True, "no_forget_gate": True, "no_output_gate": True},
    "activations": {"gate_activation": "hard_sigmoid", "input_activation": "gelu", "output_activation": "softsign"},
    "activations_peep": {
        "gate_activation": "cloglog",
        "input_activation": "elu",
        "output_activation": "softsign",
        "peepholes": True,
        "cifg": True,
    },
}
GRU_VARIANTS = {
    "reset_after": {},
    "reset_before": {"reset_after": False},
    "activations": {"gate_activation": "hard_sigmoid", "candidate_activation": "gelu"},
    "activations_before": {"reset_after": False, "gate_activation": "cloglog", "candidate_activation": "softsign"},
}


def _seed(seed: int = 0) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _randomize(module: torch.nn.Module, seed: int = 0, scale: float = 0.5) -> None:
    """Every parameter random (peephole and FGR weights included), so no term is silently zero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)


def _grads(module: torch.nn.Module, *inputs: torch.Tensor) -> list[torch.Tensor]:
    return [p.grad.clone() for p in module.parameters()] + [t.grad.clone() for t in inputs]


def _zero(module: torch.nn.Module, *inputs: torch.Tensor) -> None:
    module.zero_grad(set_to_none=True)
    for t in inputs:
        t.grad = None


# --------------------------------------------------------------------------- parity with torch
@pytest.mark.parametrize(
    "dtype,tol,grad_tol", [(torch.float32, 1e-6, 1e-5), (F64, 1e-12, 1e-11)], ids=["float32", "float64"]
)
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_parity_with_torch_two_layers_bidirectional(kind: str, dtype: torch.dtype, tol: float, grad_tol: float) -> None:
    """Outputs and final states agree within 1e-6 (float32) and 1e-12 (float64); gradients within
    the rounding of their longer sums."""
    _seed(1)
    ref = getattr(torch.nn, kind)(5, 7, num_layers=2, bidirectional=True, batch_first=True).to(dtype)
    ours = from_torch(ref)
    assert type(ours).__name__ == kind
    x = torch.randn(3, 6, 5, dtype=dtype, requires_grad=True)
    h0 = torch.randn(4, 3, 7, dtype=dtype)
    hx = h0 if kind == "GRU" else (h0, torch.randn(4, 3, 7, dtype=dtype))
    results = []
    for model in (ref, ours):
        out, state = model(x, hx)
        h_n = state if kind == "GRU" else torch.cat(state)
        (out.square().sum() + (h_n * torch.linspace(-1, 1, h_n.numel(), dtype=dtype).view_as(h_n)).sum()).backward()
        results.append((out.detach(), h_n.detach(), x.grad.clone(), [p.grad.clone() for p in model.parameters()]))
        x.grad = None
    (o1, h1, gx1, gp1), (o2, h2, gx2, gp2) = results
    torch.testing.assert_close(o2, o1, atol=tol, rtol=0)
    torch.testing.assert_close(h2, h1, atol=tol, rtol=0)
    torch.testing.assert_close(gx2, gx1, atol=grad_tol, rtol=grad_tol)
    assert len(gp1) == len(gp2)
    for a, b in zip(gp1, gp2):
        torch.testing.assert_close(b, a, atol=grad_tol, rtol=grad_tol)


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell"])
def test_cell_parity_with_torch(kind: str) -> None:
    _seed(2)
    ref = getattr(torch.nn, kind)(4, 6).double()
    ours = from_torch(ref)
    x = torch.randn(3, 4, dtype=F64)
    h = torch.randn(3, 6, dtype=F64)
    hx = h if kind == "GRUCell" else (h, torch.randn(3, 6, dtype=F64))
    a, b = ref(x, hx), ours(x, hx)
    for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        torch.testing.assert_close(v, u, atol=1e-12, rtol=0)
    # unbatched input, as torch.nn cells accept it
    a1 = ref(x[0])
    b1 = ours(x[0])
    for u, v in zip(a1 if isinstance(a1, tuple) else (a1,), b1 if isinstance(b1, tuple) else (b1,)):
        assert v.shape == u.shape
        torch.testing.assert_close(v, u, atol=1e-12, rtol=0)


@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_packed_sequence_matches_torch(enforce_sorted: bool) -> None:
    _seed(3)
    ref = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True).double()
    ours = from_torch(ref)
    lengths = torch.tensor([5, 3, 2]) if enforce_sorted else torch.tensor([2, 5, 3])
    x = torch.randn(5, 3, 3, dtype=F64)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
    out_r, (h_r, c_r) = ref(packed)
    out_o, (h_o, c_o) = ours(packed)
    assert torch.equal(out_o.batch_sizes, out_r.batch_sizes)
    torch.testing.assert_close(out_o.data, out_r.data, atol=1e-12, rtol=0)
    torch.testing.assert_close(h_o, h_r, atol=1e-12, rtol=0)
    torch.testing.assert_close(c_o, c_r, atol=1e-12, rtol=0)
    # the same through the lengths argument on the padded batch
    out_l, (h_l, c_l) = ours(x, lengths=lengths)
    padded, _ = pad_packed_sequence(out_r)
    torch.testing.assert_close(out_l, padded, atol=1e-12, rtol=0)
    torch.testing.assert_close(h_l, h_r, atol=1e-12, rtol=0)
    torch.testing.assert_close(c_l, c_r, atol=1e-12, rtol=0)


def test_unbatched_and_batch_first_shapes_match_torch() -> None:
    _seed(4)
    for kind in ("LSTM", "GRU"):
        ref = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=True).double()
        ours = from_torch(ref)
        x = torch.randn(5, 3, dtype=F64)
        a, b = ref(x), ours(x)
        assert b[0].shape == a[0].shape == (5, 8)
        torch.testing.assert_close(b[0], a[0], atol=1e-12, rtol=0)
        sa = a[1] if kind == "GRU" else a[1][0]
        sb = b[1] if kind == "GRU" else b[1][0]
        assert sb.shape == sa.shape == (4, 4)
        torch.testing.assert_close(sb, sa, atol=1e-12, rtol=0)


# --------------------------------------------------------------------------- fused recurrence vs autograd steps
def _pair(cls: type, seed: int, **kwargs: object) -> tuple[torch.nn.Module, torch.nn.Module]:
    fused = cls(3, 4, dtype=F64, **kwargs)
    _randomize(fused, seed)
    plain = cls(3, 4, dtype=F64, fused=False, **kwargs)
    plain.load_state_dict(fused.state_dict())
    return fused, plain


@pytest.mark.parametrize("variant", list(LSTM_VARIANTS))
def test_lstm_fused_matches_autograd_steps(variant: str) -> None:
    gen = _seed(5)
    fused, plain = _pair(LSTM, 5, num_layers=2, bidirectional=True, **LSTM_VARIANTS[variant])
    x = torch.randn(6, 3, 3, dtype=F64, generator=gen, requires_grad=True)
    lengths = torch.tensor([6, 2, 4])
    hx = (torch.randn(4, 3, 4, dtype=F64, generator=gen), torch.randn(4, 3, 4, dtype=F64, generator=gen))
    weights = torch.randn(6, 3, 8, dtype=F64, generator=gen)
    results = []
    for model in (fused, plain):
        out, (h, c) = model(x, hx, lengths=lengths)
        ((out * weights).sum() + h.sum() * 0.7 + c.square().sum()).backward()
        results.append((out.detach(), h.detach(), c.detach(), _grads(model, x)))
        _zero(model, x)
    for a, b in zip(results[0][:3], results[1][:3]):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    for a, b in zip(results[0][3], results[1][3]):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("variant", list(GRU_VARIANTS))
def test_gru_fused_matches_autograd_steps(variant: str) -> None:
    gen = _seed(6)
    fused, plain = _pair(GRU, 6, num_layers=2, bidirectional=True, **GRU_VARIANTS[variant])
    x = torch.randn(6, 3, 3, dtype=F64, generator=gen, requires_grad=True)
    lengths = torch.tensor([3, 6, 1])
    h0 = torch.randn(4, 3, 4, dtype=F64, generator=gen)
    weights = torch.randn(6, 3, 8, dtype=F64, generator=gen)
    results = []
    for model in (fused, plain):
        out, h = model(x, h0, lengths=lengths)
        ((out * weights).sum() + h.square().sum()).backward()
        results.append((out.detach(), h.detach(), _grads(model, x)))
        _zero(model, x)
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-12, rtol=1e-11)
    torch.testing.assert_close(results[0][1], results[1][1], atol=1e-12, rtol=1e-11)
    for a, b in zip(results[0][2], results[1][2]):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


# --------------------------------------------------------------------------- gradcheck (float64)
def _gradcheck_module(module: torch.nn.Module, call, *inputs: torch.Tensor) -> None:  # noqa: ANN001
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in module.parameters()]

    def fn(*args: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ins, ps = args[: len(inputs)], args[len(inputs) :]
        out = call(lambda *a, **k: functional_call(module, dict(zip(names, ps)), a, k), *ins)
        return tuple(o for o in out if isinstance(o, torch.Tensor))

    assert torch.autograd.gradcheck(fn, (*inputs, *params), eps=1e-6, atol=1e-6, rtol=1e-5)


def _flat(result: object) -> tuple[torch.Tensor, ...]:
    out: list[torch.Tensor] = []
    stack = [result]
    while stack:
        item = stack.pop(0)
        if isinstance(item, torch.Tensor):
            out.append(item)
        elif isinstance(item, (tuple, list)):
            stack[:0] = list(item)
    return tuple(out)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"peepholes": True, "full_gate_recurrence": True},
        {"cifg": True, "peepholes": True},
        LSTM_VARIANTS["activations"],
    ],
    ids=["vanilla", "peep_fgr", "cifg_peep", "activations"],
)
def test_lstm_cell_gradcheck(kwargs: dict) -> None:
    gen = _seed(7)
    cell = LSTMCell(3, 2, dtype=F64, **kwargs)
    _randomize(cell, 7)
    x = torch.randn(2, 3, dtype=F64, generator=gen, requires_grad=True)
    h = torch.randn(2, 2, dtype=F64, generator=gen, requires_grad=True)
    c = torch.randn(2, 2, dtype=F64, generator=gen, requires_grad=True)
    _gradcheck_module(cell, lambda m, x, h, c: _flat(m(x, (h, c))), x, h, c)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_cell_gradcheck(reset_after: bool) -> None:
    gen = _seed(8)
    cell = GRUCell(3, 2, dtype=F64, reset_after=reset_after, candidate_activation="softsign")
    _randomize(cell, 8)
    x = torch.randn(2, 3, dtype=F64, generator=gen, requires_grad=True)
    h = torch.randn(2, 2, dtype=F64, generator=gen, requires_grad=True)
    _gradcheck_module(cell, lambda m, x, h: (m(x, h),), x, h)


@pytest.mark.parametrize(
    "variant", ["vanilla", "peepholes", "cifg_peepholes", "fgr_peepholes", "nig_nfg_nog", "activations"]
)
def test_fused_lstm_sequence_gradcheck(variant: str) -> None:
    gen = _seed(9)
    model = LSTM(2, 2, dtype=F64, bidirectional=True, **LSTM_VARIANTS[variant])
    _randomize(model, 9)
    x = torch.randn(4, 2, 2, dtype=F64, generator=gen, requires_grad=True)
    h0 = torch.randn(2, 2, 2, dtype=F64, generator=gen, requires_grad=True)
    c0 = torch.randn(2, 2, 2, dtype=F64, generator=gen, requires_grad=True)
    lengths = torch.tensor([4, 3])
    _gradcheck_module(model, lambda m, x, h, c: _flat(m(x, (h, c), lengths=lengths)), x, h0, c0)


@pytest.mark.parametrize("variant", list(GRU_VARIANTS))
def test_fused_gru_sequence_gradcheck(variant: str) -> None:
    gen = _seed(10)
    model = GRU(2, 2, dtype=F64, **GRU_VARIANTS[variant])
    _randomize(model, 10)
    x = torch.randn(4, 2, 2, dtype=F64, generator=gen, requires_grad=True)
    h0 = torch.randn(1, 2, 2, dtype=F64, generator=gen, requires_grad=True)
    _gradcheck_module(model, lambda m, x, h: _flat(m(x, h, lengths=torch.tensor([2, 4]))), x, h0)


def test_double_backward_with_unfused_cells() -> None:
    gen = _seed(11)
    model = LSTM(2, 3, dtype=F64, fused=False, peepholes=True)
    x = torch.randn(3, 2, 2, dtype=F64, generator=gen, requires_grad=True)
    (g,) = torch.autograd.grad(model(x)[0].square().sum(), x, create_graph=True)
    g.square().sum().backward()
    assert model.cell(0).weight_ci.grad is not None and model.cell(0).weight_ci.grad.abs().sum() > 0


# --------------------------------------------------------------------------- NumPy reference of one step
def _np_act(name: str, x: np.ndarray) -> np.ndarray:
    return {
        "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
        "tanh": np.tanh,
        "hard_sigmoid": lambda v: np.clip(v / 6.0 + 0.5, 0.0, 1.0),
        "softsign": lambda v: v / (1.0 + np.abs(v)),
    }[name](x)


def _np_lstm_step(cell: LSTMCell, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = {n: v.detach().numpy() for n, v in cell.named_parameters()}
    stored = [g for g, keep in (("i", not (cell.no_input_gate or cell.cifg)), ("f", not cell.no_forget_gate)) if keep]
    stored += ["g"] + (["o"] if not cell.no_output_gate else [])
    pre = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
    z = dict(zip(stored, np.split(pre, len(stored), axis=1)))
    sig = lambda v: _np_act(repr(cell.gate_activation), v)  # noqa: E731
    f = sig(z["f"] + p["weight_cf"] * c if "weight_cf" in p else z["f"]) if "f" in z else 1.0
    i = (
        1.0 - f
        if cell.cifg
        else (sig(z["i"] + p["weight_ci"] * c if "weight_ci" in p else z["i"]) if "i" in z else 1.0)
    )
    g = z["g"] if cell.no_input_activation else _np_act(repr(cell.input_activation), z["g"])
    c_new = f * c + i * g
    o = sig(z["o"] + p["weight_co"] * c_new if "weight_co" in p else z["o"]) if "o" in z else 1.0
    y = c_new if cell.no_output_activation else _np_act(repr(cell.output_activation), c_new)
    return o * y, c_new


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"peepholes": True, "gate_activation": "hard_sigmoid", "output_activation": "softsign"},
        {"cifg": True, "peepholes": ("forget", "output")},
        {"no_input_gate": True, "no_output_activation": True, "no_input_activation": True},
        {"no_forget_gate": True, "no_output_gate": True},
    ],
    ids=["vanilla", "peep_hard_sigmoid", "cifg", "nig_noaf_niaf", "nfg_nog"],
)
def test_lstm_cell_matches_numpy_reference(kwargs: dict) -> None:
    gen = _seed(12)
    cell = LSTMCell(3, 4, dtype=F64, **kwargs)
    _randomize(cell, 12, scale=1.0)
    x, h, c = (torch.randn(5, n, dtype=F64, generator=gen) for n in (3, 4, 4))
    h_new, c_new = cell(x, (h, c))
    h_ref, c_ref = _np_lstm_step(cell, x.numpy(), h.numpy(), c.numpy())
    np.testing.assert_allclose(h_new.detach().numpy(), h_ref, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c_new.detach().numpy(), c_ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_cell_matches_numpy_reference(reset_after: bool) -> None:
    gen = _seed(13)
    cell = GRUCell(3, 4, dtype=F64, reset_after=reset_after, gate_activation="hard_sigmoid")
    _randomize(cell, 13, scale=1.0)
    x, h = torch.randn(5, 3, dtype=F64, generator=gen), torch.randn(5, 4, dtype=F64, generator=gen)
    p = {n: v.detach().numpy() for n, v in cell.named_parameters()}
    xn, hn = x.numpy(), h.numpy()
    xr, xz, xc = np.split(xn @ p["weight_ih"].T + p["bias_ih"], 3, axis=1)
    wr, wz, wc = np.split(p["weight_hh"], 3, axis=0)
    br, bz, bc = np.split(p["bias_hh"], 3)
    r = _np_act("hard_sigmoid", xr + hn @ wr.T + br)
    z = _np_act("hard_sigmoid", xz + hn @ wz.T + bz)
    n = np.tanh(xc + r * (hn @ wc.T + bc)) if reset_after else np.tanh(xc + (r * hn) @ wc.T + bc)
    expected = (1 - z) * n + z * hn
    np.testing.assert_allclose(cell(x, h).detach().numpy(), expected, rtol=1e-12, atol=1e-14)
    # the fused sequence path gives the same step
    out, h_n = cell.scan(x.unsqueeze(0), h)
    np.testing.assert_allclose(out[0].detach().numpy(), expected, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- variants: each changes what it says
def _copy_rows(src: LSTMCell, dst: LSTMCell) -> None:
    """dst's parameters from a vanilla src: the rows of the gates dst has, and shared extras."""
    H = src.hidden_size
    have = {"i": not (dst.no_input_gate or dst.cifg), "f": not dst.no_forget_gate, "g": True}
    have["o"] = not dst.no_output_gate
    rows = torch.cat([torch.arange(k * H, (k + 1) * H) for k, g in enumerate("ifgo") if have[g]])
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(dst, name).copy_(getattr(src, name)[rows])
        for name in ("weight_ci", "weight_cf", "weight_co"):
            if getattr(dst, name) is not None and getattr(src, name) is not None:
                getattr(dst, name).copy_(getattr(src, name))


def _step_setup(seed: int, **kwargs: object) -> tuple[LSTMCell, LSTMCell, torch.Tensor, tuple]:
    gen = _seed(seed)
    base = LSTMCell(3, 4, dtype=F64)
    _randomize(base, seed, scale=1.0)
    cell = LSTMCell(3, 4, dtype=F64, **kwargs)
    _randomize(cell, seed + 1)
    _copy_rows(base, cell)
    x = torch.randn(5, 3, dtype=F64, generator=gen)
    state = (torch.randn(5, 4, dtype=F64, generator=gen), torch.randn(5, 4, dtype=F64, generator=gen))
    return base, cell, x, state


def _assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, atol=1e-14, rtol=0)


def _differs(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool((a - b).abs().max() > 1e-3)


def test_cifg_input_gate_is_one_minus_forget_gate() -> None:
    base, cell, x, state = _step_setup(20, cifg=True)
    assert cell.weight_ih.shape[0] == 3 * 4  # no input-gate rows
    g = cell.gates(x, state)
    assert torch.equal(g["input"], 1.0 - g["forget"])
    _assert_same(g["forget"], base.gates(x, state)["forget"])
    # through the fused layer too: c_t = f c + (1 - f) z
    layer = LSTM(3, 4, cifg=True, dtype=F64)
    with torch.no_grad():
        layer.cell(0).load_state_dict(cell.state_dict())
    _, (h_n, c_n) = layer(x.unsqueeze(0), (state[0].unsqueeze(0), state[1].unsqueeze(0)))
    expected = g["forget"] * state[1] + (1 - g["forget"]) * g["cell"]
    _assert_same(c_n[0], expected)


def test_no_input_gate_sets_input_gate_to_one() -> None:
    base, cell, x, state = _step_setup(21, no_input_gate=True)
    g, g0 = cell.gates(x, state), base.gates(x, state)
    assert torch.equal(g["input"], torch.ones_like(g["input"]))
    for name in ("forget", "cell", "output"):
        _assert_same(g[name], g0[name])
    h, c = cell(x, state)
    _assert_same(c, g0["forget"] * state[1] + g0["cell"])
    assert _differs(c, base(x, state)[1])


def test_no_forget_gate_sets_forget_gate_to_one() -> None:
    base, cell, x, state = _step_setup(22, no_forget_gate=True)
    g, g0 = cell.gates(x, state), base.gates(x, state)
    assert torch.equal(g["forget"], torch.ones_like(g["forget"]))
    for name in ("input", "cell", "output"):
        _assert_same(g[name], g0[name])
    _, c = cell(x, state)
    _assert_same(c, state[1] + g0["input"] * g0["cell"])


def test_no_output_gate_sets_output_gate_to_one() -> None:
    base, cell, x, state = _step_setup(23, no_output_gate=True)
    g, g0 = cell.gates(x, state), base.gates(x, state)
    assert torch.equal(g["output"], torch.ones_like(g["output"]))
    for name in ("input", "forget", "cell"):
        _assert_same(g[name], g0[name])
    h, c = cell(x, state)
    _assert_same(c, base(x, state)[1])
    _assert_same(h, torch.tanh(c))


def test_no_input_activation_leaves_block_input_linear() -> None:
    base, cell, x, state = _step_setup(24, no_input_activation=True)
    g, g0 = cell.gates(x, state), base.gates(x, state)
    torch.testing.assert_close(torch.tanh(g["cell"]), g0["cell"], atol=1e-14, rtol=1e-12)
    assert g["cell"].abs().max() > 1.0  # unbounded: not squashed
    for name in ("input", "forget", "output"):
        _assert_same(g[name], g0[name])


def test_no_output_activation_outputs_gated_cell() -> None:
    base, cell, x, state = _step_setup(25, no_output_activation=True)
    h, c = cell(x, state)
    h0, c0 = base(x, state)
    _assert_same(c, c0)
    _assert_same(h, cell.gates(x, state)["output"] * c)
    assert _differs(h, h0)


def test_peepholes_add_only_the_cell_terms() -> None:
    """NP: without peepholes the cell equals a peephole cell whose peephole weights are zero."""
    base, cell, x, state = _step_setup(26, peepholes=True)
    c_prev = state[1]
    g, g0 = cell.gates(x, state), base.gates(x, state)
    _assert_same(g["cell"], g0["cell"])
    logit = torch.logit
    torch.testing.assert_close(logit(g["input"]) - logit(g0["input"]), cell.weight_ci * c_prev, atol=1e-9, rtol=0)
    torch.testing.assert_close(logit(g["forget"]) - logit(g0["forget"]), cell.weight_cf * c_prev, atol=1e-9, rtol=0)
    _, c = cell(x, state)
    o_plain = base.gates(x, state)["output"]
    torch.testing.assert_close(logit(g["output"]) - logit(o_plain), cell.weight_co * c, atol=1e-9, rtol=0)
    with torch.no_grad():
        for name in ("weight_ci", "weight_cf", "weight_co"):
            getattr(cell, name).zero_()
    for a, b in zip(cell(x, state), base(x, state)):
        _assert_same(a, b)


def test_peephole_subset_and_gradients() -> None:
    cell = LSTMCell(3, 4, peepholes=("forget",))
    assert cell.weight_cf is not None and cell.weight_ci is None and cell.weight_co is None
    _seed(27)
    model = LSTM(3, 4, num_layers=2, peepholes=True)
    out, (h, c) = model(torch.randn(5, 2, 3))
    (out.sum() + c.sum()).backward()
    for cell in model.cells():
        for name in ("weight_ci", "weight_cf", "weight_co"):
            grad = getattr(cell, name).grad
            assert grad is not None and grad.abs().sum() > 0, name


def test_full_gate_recurrence_feeds_previous_gates() -> None:
    gen = _seed(28)
    base, cell, x, state = _step_setup(28, full_gate_recurrence=True)
    assert cell.weight_gg.shape == (12, 12)
    s = torch.rand(5, 12, dtype=F64, generator=gen)
    g, g0 = cell.gates(x, (*state, s)), base.gates(x, state)
    _assert_same(g["cell"], g0["cell"])
    shift = s @ cell.weight_gg.T
    for k, name in enumerate(("input", "forget")):
        torch.testing.assert_close(
            torch.logit(g[name]) - torch.logit(g0[name]), shift[:, 4 * k : 4 * k + 4], atol=1e-9, rtol=0
        )
    h, c, gates = cell(x, (*state, s))
    _assert_same(gates, torch.cat([g["input"], g["forget"], g["output"]], dim=1))
    with torch.no_grad():
        cell.weight_gg.zero_()
    for a, b in zip(cell(x, (*state, s))[:2], base(x, state)):
        _assert_same(a, b)


@pytest.mark.parametrize("variant", ["peepholes", "cifg", "fgr", "nig", "nfg", "nog", "niaf", "noaf"])
def test_variant_changes_the_layer_output(variant: str) -> None:
    gen = _seed(29)
    base = LSTM(3, 4, dtype=F64)
    _randomize(base, 29)
    other = LSTM(3, 4, dtype=F64, **LSTM_VARIANTS[variant])
    _randomize(other, 30)
    _copy_rows(base.cell(0), other.cell(0))
    x = torch.randn(4, 2, 3, dtype=F64, generator=gen)
    assert _differs(other(x)[0], base(x)[0])


def test_forget_bias_initialisation() -> None:
    _seed(31)
    cell = LSTMCell(3, 4)
    assert torch.equal(cell.bias_ih[4:8], torch.ones(4)) and torch.equal(cell.bias_hh[4:8], torch.zeros(4))
    assert LSTMCell(3, 4, forget_bias=2.5).bias_ih[4:8].eq(2.5).all()
    plain = LSTMCell(3, 4, forget_bias=None)
    assert plain.bias_ih.abs().max() <= 0.5 and not plain.bias_ih[4:8].eq(1.0).any()
    nig = LSTMCell(3, 4, no_input_gate=True)  # forget rows come first when there is no input gate
    assert nig.bias_ih[:4].eq(1.0).all()


def test_invalid_configurations_raise_clearly() -> None:
    with pytest.raises(ValueError, match="cifg"):
        LSTMCell(3, 4, cifg=True, no_forget_gate=True)
    with pytest.raises(ValueError, match="peepholes"):
        LSTMCell(3, 4, cifg=True, peepholes="input")
    with pytest.raises(ValueError, match="peepholes"):
        LSTMCell(3, 4, peepholes="x")
    with pytest.raises(ValueError, match="gate_activation.*vector"):
        LSTM(3, 4, gate_activation="softmax")
    with pytest.raises(KeyError, match="sigmoid"):
        GRU(3, 4, gate_activation="sigmoidd")
    with pytest.raises(ValueError, match="hidden_size"):
        LSTM(3, 0)
    with pytest.raises(ValueError, match="dropout"):
        GRU(3, 4, dropout=1.5)
    with pytest.warns(UserWarning, match="num_layers=1"):
        LSTM(3, 4, dropout=0.2)


def test_invalid_inputs_raise_clearly() -> None:
    model = LSTM(3, 4, num_layers=2)
    x = torch.randn(5, 2, 3)
    with pytest.raises(ValueError, match="input_size=3"):
        model(torch.randn(5, 2, 4))
    with pytest.raises(ValueError, match=r"h_0.*\(2, 2, 4\)"):
        model(x, (torch.zeros(1, 2, 4), torch.zeros(2, 2, 4)))
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, 5\]"):
        model(x, lengths=[6, 1])
    with pytest.raises(ValueError, match=r"lengths must have shape"):
        model(x, lengths=[1, 2, 3])
    with pytest.raises(TypeError, match="integers"):
        model(x, lengths=torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="not both"):
        model(pack_padded_sequence(x, torch.tensor([5, 2])), lengths=[5, 2])
    with pytest.raises(ValueError, match=r"\(batch, 3\)"):
        LSTMCell(3, 4)(torch.randn(2, 5))
    with pytest.raises(TypeError, match="floating"):
        GRU(3, 4)(torch.ones(5, 2, 3, dtype=torch.long))


# --------------------------------------------------------------------------- lengths, bidirectional, dropout
def test_lengths_equal_running_each_sequence_alone() -> None:
    gen = _seed(40)
    model = LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, peepholes=True, dtype=F64)
    _randomize(model, 40)
    x = torch.randn(3, 6, 3, dtype=F64, generator=gen)
    lengths = torch.tensor([6, 2, 4])
    out, (h, c) = model(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        alone, (h1, c1) = model(x[b : b + 1, :n])
        _assert_same(out[b, :n], alone[0])
        assert torch.equal(out[b, n:], torch.zeros_like(out[b, n:]))
        _assert_same(h[:, b], h1[:, 0])
        _assert_same(c[:, b], c1[:, 0])


def test_zero_length_keeps_the_initial_state() -> None:
    gen = _seed(41)
    model = GRU(3, 4, dtype=F64)
    h0 = torch.randn(1, 2, 4, dtype=F64, generator=gen)
    out, h = model(torch.randn(3, 2, 3, dtype=F64, generator=gen), h0, lengths=[0, 3])
    _assert_same(h[0, 0], h0[0, 0])
    assert torch.equal(out[:, 0], torch.zeros_like(out[:, 0]))


class _Elman(RecurrentCell):
    """A minimal user cell: h' = tanh(W x + U h). Bidirectional and lengths must work for it."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.w = torch.nn.Linear(input_size, hidden_size, dtype=F64)
        self.u = torch.nn.Linear(hidden_size, hidden_size, bias=False, dtype=F64)

    def forward(self, input: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        state = input.new_zeros(input.shape[0], self.hidden_size) if state is None else state
        return torch.tanh(self.w(input) + self.u(state))


def test_bidirectional_wraps_any_cell() -> None:
    gen = _seed(42)
    bi = Bidirectional(_Elman(3, 2), merge="concat")
    assert not torch.equal(bi.forward_cell.u.weight, bi.backward_cell.u.weight)
    x = torch.randn(5, 2, 3, dtype=F64, generator=gen)
    lengths = torch.tensor([5, 3])
    out, (hf, hb) = bi(x, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        h = torch.zeros(1, 2, dtype=F64)
        fwd = []
        for t in range(n):
            h = bi.forward_cell(x[t, b : b + 1], h)
            fwd.append(h)
        _assert_same(hf[b], h[0])
        h = torch.zeros(1, 2, dtype=F64)
        bwd = [None] * n
        for t in reversed(range(n)):
            h = bi.backward_cell(x[t, b : b + 1], h)
            bwd[t] = h
        _assert_same(hb[b], h[0])
        _assert_same(out[:n, b], torch.cat([torch.cat(fwd), torch.cat(bwd)], dim=1))
        assert torch.equal(out[n:, b], torch.zeros_like(out[n:, b]))


@pytest.mark.parametrize("merge", ["sum", "mean", "mul"])
def test_bidirectional_merge_modes(merge: str) -> None:
    gen = _seed(43)
    cat = Bidirectional(GRUCell(3, 4), batch_first=True)
    other = Bidirectional(cat.forward_cell, cat.backward_cell, merge=merge, batch_first=True)
    x = torch.randn(2, 5, 3, generator=gen)
    both, _ = cat(x)
    a, b = both[..., :4], both[..., 4:]
    expected = {"sum": a + b, "mean": (a + b) / 2, "mul": a * b}[merge]
    torch.testing.assert_close(other(x)[0], expected)


def test_dropout_between_layers() -> None:
    gen = _seed(44)
    model = LSTM(3, 4, num_layers=2, dropout=0.5)
    x = torch.randn(5, 2, 3, generator=gen)
    model.eval()
    eval_out = model(x)[0]
    no_dropout = LSTM(3, 4, num_layers=2)
    no_dropout.load_state_dict(model.state_dict())
    torch.testing.assert_close(eval_out, no_dropout(x)[0])
    model.train()
    torch.manual_seed(1)
    a = model(x)[0]
    torch.manual_seed(1)
    b = model(x)[0]
    assert torch.equal(a, b) and _differs(a, eval_out)


def test_stochastic_activation_falls_back_and_is_reproducible() -> None:
    gen = _seed(45)
    model = LSTM(3, 4, input_activation="rrelu", dtype=F64)
    x = torch.randn(5, 2, 3, dtype=F64, generator=gen)
    torch.manual_seed(3)
    a = model(x)[0]
    torch.manual_seed(3)
    b = model(x)[0]
    assert torch.equal(a, b)
    model.eval()  # eval: the slope is the mean, the fused path applies
    plain = LSTM(3, 4, input_activation="rrelu", dtype=F64, fused=False).eval()
    plain.load_state_dict(model.state_dict())
    torch.testing.assert_close(model(x)[0], plain(x)[0], atol=1e-12, rtol=0)


# --------------------------------------------------------------------------- serialization
MODELS = {
    "lstm": lambda: LSTM(
        3, 4, num_layers=2, bidirectional=True, peepholes="fo", cifg=True, gate_activation="hard_sigmoid"
    ),
    "lstm_ablated": lambda: LSTM(
        3, 4, no_output_gate=True, full_gate_recurrence=True, forget_bias=None, batch_first=True
    ),
    "gru": lambda: GRU(3, 4, num_layers=2, reset_after=False, candidate_activation="leaky_relu(negative_slope=0.2)"),
    "lstm_cell": lambda: LSTMCell(3, 4, peepholes=True, output_activation="softsign"),
    "gru_cell": lambda: GRUCell(3, 4, bias=False),
}


def _run(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(model, RecurrentCell):
        return model(x[0])[0]
    return model(x)[0]


@pytest.mark.parametrize("name", list(MODELS))
def test_config_state_dict_and_pickle_round_trip(name: str) -> None:
    _seed(50)
    model = MODELS[name]()
    x = torch.randn(2, 5, 3) if getattr(model, "batch_first", False) else torch.randn(5, 2, 3)
    expected = _run(model, x)
    config = json.loads(json.dumps(model.get_config()))
    rebuilt = type(model).from_config(config)
    assert rebuilt.get_config() == model.get_config()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    rebuilt.load_state_dict(torch.load(buf))
    torch.testing.assert_close(_run(rebuilt, x), expected, atol=0, rtol=0)
    clone = pickle.loads(pickle.dumps(model))
    torch.testing.assert_close(_run(clone, x), expected, atol=0, rtol=0)
    assert repr(clone) == repr(model)


def test_activation_identifiers_are_canonical() -> None:
    cell = LSTMCell(2, 3, gate_activation={"name": "hard_sigmoid", "config": {"slope": 0.2}})
    assert cell.gate_activation == actlab.get("hard_sigmoid(slope=0.2)")
    assert cell.get_config()["gate_activation"] == {"name": "hard_sigmoid", "config": {"slope": 0.2}}
    assert "hard_sigmoid(slope=0.2)" in repr(cell)


# --------------------------------------------------------------------------- the benchmark command
def test_bench_lstm_command_reports_every_variant(capsys: pytest.CaptureFixture[str]) -> None:
    from actlab.cli import main

    args = ["bench", "lstm", "--seq", "3", "--batch", "2", "--input-size", "4", "--hidden", "5"]
    assert main([*args, "--repeats", "1", "--warmup", "0", "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    from actlab.bench.recurrent import VARIANTS

    assert [r["model"] for r in result["rows"]] == list(VARIANTS)
    assert result["setting"]["threads"] == 1 and result["setting"]["seq"] == 3
    for row in result["rows"]:
        assert row["total_ms"] >= row["forward_ms"] > 0 and row["vs_torch"] > 0
    by_name = {r["model"]: r for r in result["rows"]}
    assert by_name["torch.nn.LSTM"]["vs_torch"] == 1.0 and by_name["GRU"]["vs_vanilla"] == 1.0
    assert main([*args, "--repeats", "1", "--warmup", "0", "--variant", "LSTM cifg", "--format", "md"]) == 0
    table = capsys.readouterr().out
    assert "| LSTM cifg |" in table and "| torch.nn.LSTM |" in table and "GRU" not in table
