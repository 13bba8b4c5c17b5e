"""Forward-mode AD for every actlab autograd Function (issue #10, item 5), generated from the registry.

Every elementwise and vector spec's Function, and every layer with a fused path (gated layers,
maxout, the trainable layers and learnable forms, the fused LSTM/GRU recurrences): ``torch.func.jvp``
against the Jacobian computed by reverse mode, ``torch.autograd.forward_ad`` dual numbers agreeing,
``jacfwd == jacrev``, ``hessian`` against ``jacrev(jacrev)`` and against finite differences
(gradgradcheck's forward-over-reverse check), ``vmap`` against a Python loop, and
``gradcheck(check_forward_ad=True)`` (forward mode against finite differences). Where PyTorch has
the function with its own forward-mode rule (softmax, log_softmax, softmin, glu), the tangents are
also compared with PyTorch's. float64, small seeded inputs away from kinks.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from torch.autograd import forward_ad as fwAD
from torch.func import functional_call, hessian, jacfwd, jacrev, jvp, vmap

from actlab.nn import Activation
from actlab.nn.activation import LEARNABLE_FORMS
from actlab.nn.recurrent import GRU, LSTM
from actlab.torch import functional as F
from actlab.torch.functional import apply, autograd_function
from conftest import ELEMENTWISE, LAYERS, VECTOR, away_from_kinks, spec_id

F64 = torch.float64
TOL = {"rtol": 1e-10, "atol": 1e-12}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _reverse_jvp(f, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """J t with J from reverse mode (torch.autograd.functional.jacobian: one vjp per output)."""
    y = f(x)
    jac = torch.autograd.functional.jacobian(f, x)
    return (jac.reshape(y.numel(), x.numel()) @ t.reshape(-1)).reshape(y.shape)


def _dual_tangent(f, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    with fwAD.dual_level():
        return fwAD.unpack_dual(f(fwAD.make_dual(x, t))).tangent


# ----------------------------------------------------------------------------- elementwise specs
def _points(spec, n: int = 6, seed: int = 0) -> torch.Tensor:
    """n points in [-3, 3] at least 0.01 from every kink (finite differences must not straddle one)."""
    xs = np.random.default_rng(seed).uniform(-3.0, 3.0, 64)
    return torch.tensor(away_from_kinks(spec, xs, gap=1e-2)[:n], dtype=F64)


def _function(spec):
    """The spec's autograd Function itself (also for specs whose public path is PyTorch's kernel)."""
    cls = autograd_function(spec)
    values = [spec.defaults[n] for n in spec.param_names]
    return lambda v: cls.apply(v, *values)


elementwise = pytest.mark.parametrize("spec", ELEMENTWISE, ids=spec_id)
vector = pytest.mark.parametrize("spec", VECTOR, ids=spec_id)


def _check_jvp(f, x, t):
    """torch.func.jvp against the reverse-mode Jacobian, dual numbers and jacfwd == jacrev."""
    y, tangent = jvp(f, (x,), (t,))
    torch.testing.assert_close(y, f(x), rtol=0, atol=0)
    torch.testing.assert_close(tangent, _reverse_jvp(f, x, t), **TOL)
    torch.testing.assert_close(_dual_tangent(f, x, t), tangent, rtol=0, atol=0)
    torch.testing.assert_close(jacfwd(f)(x), jacrev(f)(x), **TOL)


@elementwise
def test_elementwise_jvp_matches_reverse_jacobian(spec):
    x = _points(spec)
    t = torch.randn(x.shape, generator=_gen(1), dtype=F64)
    for f in (_function(spec), getattr(F, spec.name)):
        _check_jvp(f, x, t)


@elementwise
def test_elementwise_forward_ad_against_finite_differences(spec):
    x = _points(spec).requires_grad_(True)
    f = _function(spec)
    assert torch.autograd.gradcheck(f, (x,), check_forward_ad=True, check_backward_ad=True)
    # forward-over-reverse (what hessian = jacfwd(jacrev) does) against finite differences
    assert torch.autograd.gradgradcheck(f, (x,), check_fwd_over_rev=True)


@elementwise
def test_elementwise_hessian_and_vmap(spec):
    x = _points(spec, 4)
    f = _function(spec)
    w = torch.randn(x.shape, generator=_gen(2), dtype=F64)
    scalar = lambda v: (f(v) * w).sum()  # noqa: E731
    torch.testing.assert_close(hessian(scalar)(x), jacrev(jacrev(scalar))(x), **TOL)
    batch = torch.stack([x, x.flip(0), -x])
    batch = torch.tensor(away_from_kinks(spec, batch.numpy().ravel(), gap=1e-2)[:12], dtype=F64).reshape(3, -1)
    looped = torch.stack([f(row) for row in batch])
    torch.testing.assert_close(vmap(f)(batch), looped, rtol=0, atol=0)
    tangents = torch.randn(batch.shape, generator=_gen(3), dtype=F64)
    vjvp = vmap(lambda a, b: jvp(f, (a,), (b,))[1])(batch, tangents)
    torch.testing.assert_close(vjvp, torch.stack([jvp(f, (a,), (b,))[1] for a, b in zip(batch, tangents)]), **TOL)


@pytest.mark.parametrize("spec", ELEMENTWISE + VECTOR, ids=spec_id)
def test_forward_ad_under_no_grad(spec):
    x = _points(spec) if spec.kind == "elementwise" else _rows(4, (2, 8))
    t = torch.randn(x.shape, generator=_gen(4), dtype=F64)
    f = getattr(F, spec.name)
    want = _dual_tangent(f, x, t)
    with torch.no_grad():
        torch.testing.assert_close(_dual_tangent(f, x, t), want, rtol=0, atol=0)


@elementwise
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_elementwise_jvp_low_precision(spec, dtype):
    """Half-precision tangents are f'(x) computed in float32 times the tangent, rounded: within 2 ulp
    of the float64 tangent at the same (rounded) inputs, as backward."""
    x = _points(spec).to(dtype)
    t = torch.randn(x.shape, generator=_gen(5), dtype=F64).to(dtype)
    f = _function(spec)
    _, tangent = jvp(f, (x,), (t,))
    assert tangent.dtype == dtype
    _, exact = jvp(f, (x.double(),), (t.double(),))
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(tangent.double(), exact, rtol=2 * eps, atol=4 * eps * float(exact.abs().max()))


# ----------------------------------------------------------------------------- vector specs
def _rows(seed: int = 0, shape: tuple = (3, 8)) -> torch.Tensor:
    # scale 1.5: some sparsemax/entmax outputs are exactly 0, most are not (both sides of the support)
    return 1.5 * torch.randn(shape, generator=_gen(seed), dtype=F64)


@vector
@pytest.mark.parametrize("axis", [-1, 0])
def test_vector_jvp_matches_reverse_jacobian(spec, axis):
    x = _rows(0, (3, 8) if axis == -1 else (8, 3))
    t = torch.randn(x.shape, generator=_gen(1), dtype=F64)
    extra = {"pieces": 4} if "pieces" in spec.param_names else {}  # maxout: not the default 2
    f = lambda v: F.__getattr__(spec.name)(v, axis=axis, **extra)  # noqa: E731
    _check_jvp(f, x, t)


@vector
def test_vector_forward_ad_against_finite_differences(spec):
    x = _rows(2, (2, 8)).requires_grad_(True)
    f = getattr(F, spec.name)
    assert torch.autograd.gradcheck(f, (x,), check_forward_ad=True)
    assert torch.autograd.gradgradcheck(f, (x,), check_fwd_over_rev=True)


@vector
def test_vector_hessian_and_vmap(spec):
    f = getattr(F, spec.name)
    x = _rows(3, (8,))
    w = torch.randn(f(x).shape, generator=_gen(4), dtype=F64)  # a weighted sum: sum(softmax) is constant
    scalar = lambda v: (f(v) * w).sum()  # noqa: E731
    torch.testing.assert_close(hessian(scalar)(x), jacrev(jacrev(scalar))(x), **TOL)
    batch = _rows(5, (4, 3, 8))
    torch.testing.assert_close(vmap(f)(batch), torch.stack([f(b) for b in batch]), rtol=0, atol=0)
    g0 = lambda v: f(v, axis=0)  # noqa: E731 - the axis is the example's own first axis under vmap
    torch.testing.assert_close(vmap(g0)(batch.transpose(1, 2)), torch.stack([g0(b) for b in batch.transpose(1, 2)]))
    tangents = torch.randn(batch.shape, generator=_gen(6), dtype=F64)
    vjvp = vmap(lambda a, b: jvp(f, (a,), (b,))[1])(batch, tangents)
    torch.testing.assert_close(vjvp, torch.stack([jvp(f, (a,), (b,))[1] for a, b in zip(batch, tangents)]), **TOL)


@vector
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_vector_jvp_low_precision(spec, dtype):
    x = _rows(7).to(dtype)
    t = torch.randn(x.shape, generator=_gen(8), dtype=F64).to(dtype)
    f = getattr(F, spec.name)
    _, tangent = jvp(f, (x,), (t,))
    assert tangent.dtype == dtype
    _, exact = jvp(f, (x.double(),), (t.double(),))
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(tangent.double(), exact, rtol=2 * eps, atol=4 * eps * float(exact.abs().max()))


PYTORCH_FORWARD_AD = {
    "softmax": lambda v: torch.softmax(v, -1),
    "log_softmax": lambda v: torch.log_softmax(v, -1),
    "softmin": lambda v: torch.nn.functional.softmin(v, -1),
    "glu": lambda v: torch.nn.functional.glu(v, -1),
}


@pytest.mark.parametrize("name", sorted(PYTORCH_FORWARD_AD))
def test_tangents_match_pytorchs_forward_ad(name):
    x, t = _rows(9), torch.randn(3, 8, generator=_gen(10), dtype=F64)
    ours = jvp(getattr(F, name), (x,), (t,))[1]
    theirs = jvp(PYTORCH_FORWARD_AD[name], (x,), (t,))[1]
    torch.testing.assert_close(ours, theirs, **TOL)


NORMALISERS = [s for s in VECTOR if s.masked is not None]


@pytest.mark.parametrize("spec", NORMALISERS, ids=spec_id)
def test_tuple_axes_and_where_are_forward_differentiable(spec):
    x = _rows(11, (2, 3, 4))
    mask = torch.rand(2, 3, 4, generator=_gen(12)) > 0.3
    mask[1] = False  # a fully masked row (axes 1, 2)
    t = torch.randn(x.shape, generator=_gen(13), dtype=F64)
    f = lambda v: F.__getattr__(spec.name)(v, axis=(1, 2), where=mask)  # noqa: E731
    _, tangent = jvp(f, (x,), (t,))
    assert torch.equal(tangent[~mask.expand_as(tangent)], torch.zeros_like(tangent[~mask]))
    torch.testing.assert_close(tangent, _reverse_jvp(f, x, t), **TOL)
    # unmasked outputs only: log_softmax's masked outputs are -inf, where differences are NaN
    kept = lambda v: f(v)[mask]  # noqa: E731
    assert torch.autograd.gradcheck(kept, (x.clone().requires_grad_(True),), check_forward_ad=True)


# ----------------------------------------------------------------------------- layers
def _layer(spec) -> torch.nn.Module:
    cls = getattr(importlib.import_module(spec.module.split(":")[0]), spec.module.split(":")[1])
    sizes = {"in_features": 4, "out_features": 3}
    config = {p.name: sizes[p.name] for p in spec.params if p.default is None and p.name in sizes}
    torch.manual_seed(0)
    module = cls(**config).double()
    with torch.no_grad():  # every parameter random: no term silently zero (PReLU's slope, APL's hinges)
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=_gen(p.numel()), dtype=F64))
    return module


def _check_module(module: torch.nn.Module, x: torch.Tensor, vmap_dim: int = 0) -> None:
    """Input and parameter tangents against reverse-mode Jacobians, jacfwd == jacrev, vmap == loop."""
    f = lambda v: _first(module(v))  # noqa: E731
    t = torch.randn(x.shape, generator=_gen(20), dtype=F64)
    y, tangent = jvp(f, (x,), (t,))
    torch.testing.assert_close(tangent, _reverse_jvp(f, x, t), **TOL)
    torch.testing.assert_close(_dual_tangent(f, x, t), tangent, **TOL)
    torch.testing.assert_close(jacfwd(f)(x), jacrev(f)(x), **TOL)
    # parameters as dual tensors (forward_ad) against the reverse-mode Jacobian
    names = [n for n, _ in module.named_parameters()]
    values = [p.detach() for _, p in module.named_parameters()]
    tans = [torch.randn(v.shape, generator=_gen(30 + i), dtype=F64) for i, v in enumerate(values)]
    with fwAD.dual_level():
        duals = {n: fwAD.make_dual(v, d) for n, v, d in zip(names, values, tans)}
        got = fwAD.unpack_dual(_first(functional_call(module, duals, (x,)))).tangent
    by_params = lambda *ps: _first(functional_call(module, dict(zip(names, ps)), (x,)))  # noqa: E731
    jacs = torch.autograd.functional.jacobian(by_params, tuple(values))
    want = sum(j.reshape(y.numel(), -1) @ d.reshape(-1) for j, d in zip(jacs, tans)).reshape(y.shape)
    torch.testing.assert_close(got, want, **TOL)
    looped = torch.stack([f(b) for b in x.unbind(vmap_dim)], vmap_dim)
    torch.testing.assert_close(vmap(f, in_dims=vmap_dim, out_dims=vmap_dim)(x), looped, **TOL)


def _first(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize("spec", LAYERS, ids=spec_id)
def test_layer_forward_ad(spec):
    module = _layer(spec)
    channels = 4 if "in_features" in spec.param_names else 1
    _check_module(module, _rows(21, (3, 2, channels if channels > 1 else 5)))


@pytest.mark.parametrize("name", sorted(LEARNABLE_FORMS))
def test_learnable_form_forward_ad(name):
    """Trainable parameters are differentiable inputs: their tangents are checked too."""
    spec = next(s for s in ELEMENTWISE if s.name == name)
    learnable = {p.name: "learnable" for p in spec.params if p.trainable}
    module = Activation(name, **learnable).double()
    x = torch.tensor(away_from_kinks(spec, np.random.default_rng(22).uniform(-3, 3, 64), gap=0.05)[:12], dtype=F64)
    _check_module(module, x.reshape(3, 4))


LSTM_VARIANTS = {
    "vanilla": {},
    "peepholes_cifg": {"cifg": True, "peepholes": True},
    "fgr": {"full_gate_recurrence": True},
    "activations": {"gate_activation": "hard_sigmoid", "input_activation": "gelu", "output_activation": "softsign"},
}
GRU_VARIANTS = {
    "reset_after": {},
    "reset_before_activations": {"reset_after": False, "gate_activation": "cloglog", "candidate_activation": "gelu"},
}


@pytest.mark.parametrize(
    "cls, kwargs",
    [(LSTM, v) for v in LSTM_VARIANTS.values()] + [(GRU, v) for v in GRU_VARIANTS.values()],
    ids=[f"lstm-{k}" for k in LSTM_VARIANTS] + [f"gru-{k}" for k in GRU_VARIANTS],
)
def test_fused_recurrence_forward_ad(cls, kwargs):
    """Reverse mode runs the fused recurrence's hand-written BPTT; forward mode and the torch.func
    transforms the step path: the two must agree (and gradcheck's forward check is independent)."""
    torch.manual_seed(0)
    module = cls(3, 4, dtype=F64, **kwargs)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=_gen(p.numel()), dtype=F64))
    x = _rows(23, (5, 2, 3))  # (time, batch, features)
    _check_module(module, x, vmap_dim=1)
    small = x[:2, :1, :2].clone()
    pad = x[:2, :1, 2:]
    w = torch.randn(2, 1, 4, generator=_gen(24), dtype=F64)
    scalar = lambda v: (_first(module(torch.cat([v, pad], -1))) * w).sum()  # noqa: E731
    torch.testing.assert_close(hessian(scalar)(small), jacrev(jacrev(scalar))(small), **TOL)
    xs = x[:3, :1].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: _first(module(v)), (xs,), check_forward_ad=True)


def test_spec_function_defines_jvp_and_keeps_a_traceable_twin():
    """Every spec's Function has a forward-mode rule; torch.compile traces the twin without one."""
    from actlab.torch.functional import _TRACED_CLASSES

    for spec in ELEMENTWISE + VECTOR:
        assert spec.kind == "elementwise" or spec.jvp is not None, f"{spec.name}: a vector spec needs a jvp"
        cls = autograd_function(spec)
        assert cls.jvp is not torch.autograd.Function.jvp, spec.name
        assert _TRACED_CLASSES[spec.name].jvp is torch.autograd.Function.jvp, spec.name
        x = _rows(25, (2, 8))
        if spec.kind == "vector":
            torch.testing.assert_close(
                _TRACED_CLASSES[spec.name].apply(x, *(spec.defaults[n] for n in spec.param_names)),
                apply(spec, x, spec.defaults),
            )


@pytest.mark.parametrize("spec", [s for s in ELEMENTWISE + VECTOR if s.torch_native is not None], ids=spec_id)
def test_tangents_match_pytorchs_own_function(spec):
    """Where PyTorch has the function (``spec.torch_native``), its own forward-mode rule is an
    independent reference for the tangent (default parameters, points away from kinks)."""
    x = _points(spec) if spec.kind == "elementwise" else _rows(26, (2, 8))
    t = torch.randn(x.shape, generator=_gen(27), dtype=F64)
    try:
        theirs = jvp(lambda v: spec.torch_native(v, torch, **spec.defaults), (x,), (t,))[1]
    except NotImplementedError as err:  # torch.heaviside: "does not support" forward AD
        pytest.skip(f"PyTorch's {spec.name} has no forward-mode rule: {str(err)[:80]}")
    ours = jvp(_function(spec), (x,), (t,))[1]
    torch.testing.assert_close(ours, theirs, **PYTORCH_TANGENT_TOL.get(spec.name, {"rtol": 1e-9, "atol": 1e-12}))


# PyTorch's own derivative is less accurate than this (documented in the spec's equivalents).
PYTORCH_TANGENT_TOL = {"hard_sigmoid": {"rtol": 1e-7, "atol": 1e-12}}  # float64 uses float32's 1/6


def _other_params(spec) -> dict | None:
    """One non-default value per parameter (another choice, the other bool, a value moved inside
    its range) where the spec accepts it; None if no parameter could be moved."""
    moved = {}
    for p in spec.params:
        if p.choices is not None:
            options = [c for c in p.choices if c != p.default]
        elif p.kind is bool:
            options = [not p.default]
        elif p.default is None or p.name in ("axis", "pieces"):
            continue
        else:
            d = float(p.default)
            options = [d * 1.5 + 0.25, d * 0.5 - 0.125, d + 1.0, d - 0.5]
            options = [int(round(v)) for v in options] if p.kind is int else options
        for value in options:
            try:
                spec.resolve_params(**{**spec.defaults, **moved, p.name: value})
            except ValueError:
                continue
            moved[p.name] = value
            break
    return spec.resolve_params(**moved) if moved else None


@pytest.mark.parametrize("spec", [s for s in ELEMENTWISE if _other_params(s)], ids=spec_id)
def test_elementwise_jvp_at_other_parameters(spec):
    """The tangent uses the call's parameters, not the defaults."""
    params = _other_params(spec)
    xs = np.random.default_rng(28).uniform(-3.0, 3.0, 64)
    for at, _ in spec.kink_points(params):
        xs = xs[np.abs(xs - at) > 1e-2]
    x = torch.tensor(xs[:8], dtype=F64)
    t = torch.randn(x.shape, generator=_gen(29), dtype=F64)
    cls = autograd_function(spec)
    f = lambda v: cls.apply(v, *(params[n] for n in spec.param_names))  # noqa: E731
    _, tangent = jvp(f, (x,), (t,))
    torch.testing.assert_close(tangent, _reverse_jvp(f, x, t), **TOL)
    assert torch.autograd.gradcheck(f, (x.clone().requires_grad_(True),), check_forward_ad=True)


@pytest.mark.parametrize("name", ["mish", "softmax", "glu"])
def test_compiled_forward_without_gradients(name):
    """torch.compile(fullgraph=True) of an input that needs no gradient (and under no_grad): the
    forward is traced as plain ops (Dynamo mis-traces the Function there)."""
    torch._dynamo.reset()
    act = Activation(name)
    x = torch.randn(3, 8, generator=_gen(30))
    compiled = torch.compile(act, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), act(x), rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), act(x), rtol=0, atol=0)
