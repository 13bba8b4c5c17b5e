"""Other frameworks' activation names resolve to the same function at that peer's defaults.

The names table is generated from the specs' ``equivalents``; the peers' own tables below are what
each project defines (read from its source), so a name the catalog forgets fails here:

- transformers: ``ACT2CLS`` in src/transformers/activations.py
- timm: ``_ACT_FN_DEFAULT`` / ``_ACT_LAYER_DEFAULT`` (+ the hardsigmoid/hardswish setdefaults) in
  timm/layers/create_act.py
- Keras 3: ``ALL_OBJECTS_DICT`` in keras/src/activations/__init__.py (+ "swish", "hard_swish") and
  the activation layers ReLU, LeakyReLU, PReLU, ELU, Softmax
- jax.nn: the activation functions of the jax.nn API reference (logsumexp, standardize and one_hot
  are reductions/encodings, not activations)
- TF Addons: tfa.activations
- torch.nn: the non-linear activation modules and torch.nn.functional's activations (gumbel_softmax
  samples noise; prelu/PReLU and MultiheadAttention carry weights: only the PReLU layer is listed)
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import actlab
from actlab.cli import main
from actlab.registry import FRAMEWORKS, BoundActivation, UnknownActivationError, peer_names

PEER_TABLES = {
    "transformers": [
        "gelu", "gelu_10", "gelu_fast", "gelu_new", "gelu_python", "gelu_pytorch_tanh", "gelu_python_tanh",
        "gelu_accurate", "hardswish", "laplace", "leaky_relu", "linear", "mish", "quick_gelu", "relu", "relu2",
        "relu6", "sigmoid", "silu", "sqrtsoftplus", "swish", "tanh", "prelu", "xielu",
    ],
    "timm": [
        "silu", "swish", "mish", "relu", "relu6", "leaky_relu", "elu", "prelu", "celu", "selu", "gelu", "gelu_tanh",
        "quick_gelu", "sigmoid", "tanh", "hard_sigmoid", "hard_swish", "hard_mish", "identity", "hardsigmoid",
        "hardswish",
    ],
    "keras": [
        "relu", "leaky_relu", "relu6", "softmax", "celu", "elu", "selu", "softplus", "softsign", "squareplus",
        "soft_shrink", "sparse_plus", "silu", "gelu", "glu", "tanh", "tanh_shrink", "threshold", "sigmoid",
        "sparse_sigmoid", "exponential", "hard_sigmoid", "hard_silu", "hard_tanh", "hard_shrink", "linear", "mish",
        "log_softmax", "log_sigmoid", "sparsemax", "swish", "hard_swish",
        "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
    ],
    "jax": [
        "relu", "relu6", "sigmoid", "softplus", "sparse_plus", "sparse_sigmoid", "soft_sign", "silu", "swish",
        "log_sigmoid", "leaky_relu", "hard_sigmoid", "hard_silu", "hard_swish", "hard_tanh", "elu", "celu", "selu",
        "gelu", "glu", "squareplus", "mish", "identity", "softmax", "log_softmax",
    ],
    "tfa": ["gelu", "hardshrink", "lisht", "mish", "rrelu", "snake", "softshrink", "sparsemax", "tanhshrink"],
    "torch": [
        "ELU", "Hardshrink", "Hardsigmoid", "Hardtanh", "Hardswish", "LeakyReLU", "LogSigmoid", "PReLU", "ReLU",
        "ReLU6", "RReLU", "SELU", "CELU", "GELU", "Sigmoid", "SiLU", "Mish", "Softplus", "Softshrink", "Softsign",
        "Tanh", "Tanhshrink", "Threshold", "GLU", "Softmin", "Softmax", "Softmax2d", "LogSoftmax", "Identity",
        "threshold", "relu", "hardtanh", "hardswish", "relu6", "elu", "selu", "celu", "leaky_relu", "rrelu", "glu",
        "gelu", "logsigmoid", "hardshrink", "tanhshrink", "softsign", "softplus", "softmin", "softmax",
        "softshrink", "log_softmax", "tanh", "sigmoid", "hardsigmoid", "silu", "mish",
    ],
}  # fmt: skip

ALL_PEERS = peer_names()


def _qualified_table() -> list[str]:
    return [f"{fw}:{name}" for fw, names in PEER_TABLES.items() for name in names]


@pytest.mark.parametrize("qualified", _qualified_table())
def test_every_name_in_the_peers_tables_resolves(qualified):
    act = actlab.get(qualified)
    assert isinstance(act, BoundActivation)


def test_generated_table_is_exactly_the_peers_tables():
    """Nothing missing, nothing invented: the generated names are the peers' tables."""
    for fw, names in PEER_TABLES.items():
        generated = {s for p in peer_names(fw) for s in p.spellings}
        assert generated == set(names), (fw, generated ^ set(names))
    assert {p.framework for p in ALL_PEERS} <= set(FRAMEWORKS)


@pytest.mark.parametrize("peer", ALL_PEERS, ids=lambda p: p.qualified)
def test_generated_names_resolve_with_the_bound_parameters(peer):
    want = BoundActivation(peer.spec, peer.params)
    for spelling in peer.spellings:
        assert actlab.get(f"{peer.framework}:{spelling}") == want
        assert actlab.get({"name": f"{peer.framework}:{spelling}"}) == want
    # the plain name resolves too: to the peer's meaning unless actlab has that name itself
    plain = actlab.get(peer.name)
    try:
        own = actlab.registry._BY_ALIAS[actlab.registry._key(peer.name)]
    except KeyError:
        assert plain == want
    else:
        assert plain == BoundActivation(actlab.get_spec(own))


# ----------------------------------------------------------------------------- numerics against peers
X64 = torch.linspace(-12, 12, 2001, dtype=torch.float64)


def _close(ours: torch.Tensor, theirs: torch.Tensor, rtol: float = 1e-12, atol: float = 1e-15) -> None:
    torch.testing.assert_close(ours, theirs, rtol=rtol, atol=atol)


def _gelu_new_formula(x):  # BERT / GPT-2, from the paper's constants
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def test_transformers_gelu_variants_against_formulas():
    x = X64[(X64 > -5) & (X64 < 12)]  # the written-out tanh formulas cancel below about -5
    for name in ("gelu_new", "gelu_pytorch_tanh", "gelu_python_tanh", "gelu_accurate", "timm:gelu_tanh", "jax:gelu"):
        _close(actlab.get(name)(x), _gelu_new_formula(x))
    _close(actlab.get("gelu_pytorch_tanh")(x), F.gelu(x, approximate="tanh"))
    _close(actlab.get("gelu_python")(x), x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0))))
    fast = 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x)))
    _close(actlab.get("gelu_fast")(x), fast)
    # gelu_fast's truncated constant is a different function from gelu_new in float64
    assert not torch.equal(actlab.get("gelu_fast")(x), actlab.get("gelu_new")(x))
    y = actlab.get("gelu_10")(torch.tensor([-20.0, -1.0, 3.0, 9.0, 10.0, 10.5, 1e4], dtype=torch.float64))
    _close(y, torch.clip(F.gelu(torch.tensor([-20.0, -1.0, 3.0, 9.0, 10.0, 10.5, 1e4], dtype=torch.float64)), -10, 10))
    assert y[-1] == 10.0 and y[-2] == 10.0
    _close(actlab.get("quick_gelu")(X64), X64 * torch.sigmoid(1.702 * X64))
    _close(actlab.get("relu2")(X64), F.relu(X64) ** 2)


def test_xielu_matches_transformers_formula():
    a_p, a_n, beta, eps = 0.8, 0.8, 0.5, -1e-6  # XIELUActivation's defaults, at full precision
    x = torch.cat([X64, torch.tensor([-1e-6, -5e-7, 0.0, 1e-7], dtype=torch.float64)])
    want = torch.where(x > 0, a_p * x * x + beta * x, (torch.expm1(torch.clamp(x, max=eps)) - x) * a_n + beta * x)
    _close(actlab.get("transformers:xielu")(x), want, rtol=1e-10, atol=1e-15)
    assert actlab.get("xielu")(torch.tensor([0.0], dtype=torch.float64)).item() == pytest.approx(a_n * math.expm1(eps))
    # the gradient at x == eps: torch.min splits it between its equal arguments
    xe = torch.tensor([eps], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(actlab.get("xielu")(xe).sum(), xe)
    xt = xe.detach().clone().requires_grad_(True)
    ref = (torch.expm1(torch.min(xt, torch.tensor(eps, dtype=torch.float64))) - xt) * a_n + beta * xt
    (gt,) = torch.autograd.grad(ref.sum(), xt)
    assert g.item() == pytest.approx(gt.item(), abs=1e-15)


def test_sqrtsoftplus_matches_transformers_formula():
    x = X64[X64 < 20]  # F.softplus switches to x above 20
    _close(actlab.get("sqrtsoftplus")(x), torch.sqrt(F.softplus(x)))
    # below x = -745 softplus underflows; the function does not
    assert actlab.get("sqrtsoftplus")(torch.tensor([-1000.0], dtype=torch.float64)).item() == pytest.approx(
        math.exp(-500.0), rel=1e-15
    )


def _torch_reference(name: str):
    """PyTorch's own module or function for a torch peer name, at its defaults."""
    if name == "Softmax2d":
        return torch.nn.Softmax2d()
    if name in ("Softmax", "Softmin", "LogSoftmax"):
        return getattr(torch.nn, name)(dim=-1)
    if name in ("softmax", "softmin", "log_softmax"):
        return lambda t: getattr(F, name)(t, dim=-1)
    if name[0].isupper():
        return getattr(torch.nn, name)().eval()
    return getattr(F, name) if hasattr(F, name) else getattr(torch, name)


@pytest.mark.parametrize(
    "name",
    [n for n in PEER_TABLES["torch"] if n not in ("Threshold", "threshold", "PReLU")],  # required args / a layer
)
def test_torch_names_equal_pytorch_at_its_defaults(name):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 3, 6, generator=g, dtype=torch.float64) * 4
    ours = actlab.get(f"torch:{name}")(x)
    theirs = _torch_reference(name)(x)
    _close(ours, theirs, rtol=1e-12, atol=1e-14)


def test_softplus_threshold_semantics():
    x = torch.tensor([-3.0, 0.05, 0.0666, 0.1, 0.5, 20.5, 30.0], dtype=torch.float64)
    got = actlab.get("softplus(beta=3, threshold=0.2)")(x)
    _close(got, F.softplus(x, beta=3, threshold=0.2), rtol=1e-14, atol=0)
    assert got[3].item() == 0.1  # PyTorch's value at beta x = 0.3 > 0.2 (exact is 0.2848)
    # default: exact everywhere; PyTorch's defaults under its own name
    assert actlab.get("softplus")(x)[5].item() - 20.5 == pytest.approx(math.log1p(math.exp(-20.5)), rel=1e-9)
    _close(actlab.get("torch:softplus")(x), F.softplus(x), rtol=1e-14, atol=0)
    assert actlab.get("torch:Softplus").params["threshold"] == 20.0
    xg = x.clone().requires_grad_(True)
    (ours,) = torch.autograd.grad(actlab.get("softplus(beta=3, threshold=0.2)")(xg).sum(), xg)
    xt = x.clone().requires_grad_(True)
    (theirs,) = torch.autograd.grad(F.softplus(xt, beta=3, threshold=0.2).sum(), xt)
    _close(ours, theirs, rtol=1e-14, atol=1e-300)
    # `actlab accuracy` shows PyTorch beside actlab at every parameter value, threshold=None included
    spec = actlab.get_spec("softplus")
    for threshold in (None, 0.2):
        _close(spec.torch_native(x, torch, beta=3.0, threshold=threshold), F.softplus(x, 3.0, threshold or 20.0))


# ----------------------------------------------------------------------------- degenerate values
def _grad(fn, x):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(x).sum(), x)
    return g


XS = torch.tensor([-7.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0, 5.0, 5.5, 7.0], dtype=torch.float64)


def test_pytorch_degenerate_values_give_pytorch_values_and_gradients():
    for ident, ref in (
        ("hardshrink(lambd=-0.5)", lambda t: F.hardshrink(t, -0.5)),
        ("hardtanh(min_val=0, max_val=0)", lambda t: F.hardtanh(t, 0.0, 0.0)),
        ("hardtanh(min_val=0.5, max_val=0.5)", lambda t: F.hardtanh(t, 0.5, 0.5)),
        ("hardshrink(lambd=0)", lambda t: F.hardshrink(t, 0.0)),
    ):
        act = actlab.get(ident)
        _close(act(XS), ref(XS), rtol=0, atol=0)
        _close(_grad(act, XS), _grad(ref, XS), rtol=0, atol=0)
        np.testing.assert_array_equal(act(XS.numpy()), ref(XS).numpy())  # the NumPy path too
        np.testing.assert_array_equal(act.derivative(XS.numpy()), _grad(ref, XS).numpy())
        for at, declared in act.spec.kink_points(act.params):  # the declared kinks are PyTorch's
            assert declared == _grad(ref, torch.tensor([at], dtype=torch.float64)).item(), (ident, at)


DEGENERATE = [
    "relu(threshold=5, max_value=5, negative_slope=0.5)",
    "hardshrink(lambd=-0.5)",
    "hardtanh(min_val=0, max_val=0)",
    "snake(frequency=-0.5)",
    "softplus(beta=3, threshold=0.2)",
    "clipped_gelu(min_val=-0.1, max_val=2)",
    "xielu(alpha_p=2, alpha_n=1.5, beta=0.1)",
]


@pytest.mark.parametrize("ident", DEGENERATE)
def test_peer_values_against_the_oracle(ident):
    """The implementation and the oracle's definition agree at the peers' values too."""
    from actlab.verify.accuracy import measure

    act = actlab.get(ident)
    for dtype in ("float32", "float64"):
        row = measure(act.spec, dtype, params=act.params, size=400, with_torch=False)
        assert row.nonfinite == 0 and row.forward_ulps <= row.forward_limit, row
        assert row.derivative_ulps <= row.derivative_limit, row


def test_keras_relu_threshold_equal_to_max_value():
    # Keras' ReLU.static_call: x * (x > threshold), clipped to [0, max_value], minus slope * relu(threshold - x)
    for slope in (0.0, 0.5):
        want = torch.clip(XS * (XS > 5.0), 0.0, 5.0) - slope * F.relu(5.0 - XS)
        act = actlab.get(f"relu(threshold=5, max_value=5, negative_slope={slope})")
        _close(act(XS), want, rtol=0, atol=0)
        np.testing.assert_array_equal(act(XS.numpy()), want.numpy())  # the NumPy path too
        np.testing.assert_array_equal(act.derivative(XS.numpy()), _grad(act, XS).numpy())
    assert actlab.get("relu(threshold=5, max_value=5)")(torch.tensor([5.0, 5.0001])).tolist() == [0.0, 5.0]


def test_tfa_snake_negative_frequency():
    f = -0.5
    x = torch.linspace(-20, 20, 801, dtype=torch.float64)
    want = x + (1.0 - torch.cos(2.0 * f * x)) / (2.0 * f)  # tfa.activations.snake
    _close(actlab.get(f"snake(frequency={f})")(x), want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="frequency"):
        actlab.get("snake(frequency=0)")


# ----------------------------------------------------------------------------- spellings
def test_peer_spellings():
    assert actlab.get("gelu(approximate=True)") == actlab.get("gelu(approximate='tanh')")
    assert actlab.get("gelu(approximate=False)") == actlab.get("gelu")
    assert actlab.get("gelu", approximate=True) == actlab.get("gelu_new")
    with pytest.raises(ValueError, match="approximate"):
        actlab.get("gelu(approximate=1)")  # a bool only, not a number equal to True
    assert actlab.get("hard_shrink(threshold=0.3)") == actlab.get("hardshrink(lambd=0.3)")
    assert actlab.get("soft_shrink(threshold=0.3)") == actlab.get("softshrink(lambd=0.3)")
    assert actlab.get("threshold(threshold=1.0, default_value=-2.0)") == actlab.get("threshold(1.0, -2.0)")
    assert actlab.get("hardshrink", threshold=0.25).params == {"lambd": 0.25}
    with pytest.raises(TypeError, match="twice"):
        actlab.get("hardshrink(lambd=0.3, threshold=0.3)")
    assert actlab.get("clipped_gelu(min=-1, max=1)") == actlab.get("clipped_gelu(min_val=-1, max_val=1)")
    assert actlab.get("torch:softmax(dim=0)") == actlab.get("softmax(axis=0)")  # PyTorch's name for the axis


def test_plain_names_keep_actlab_defaults_and_prefixes_give_the_peers():
    assert actlab.get("leaky_relu").params == {"negative_slope": 0.01}
    assert actlab.get("keras:leaky_relu").params == {"negative_slope": 0.2}
    assert actlab.get("keras:LeakyReLU").params == {"negative_slope": 0.3}
    assert actlab.get("keras:leaky_relu(negative_slope=0.1)").params == {"negative_slope": 0.1}
    assert actlab.get("torch:leaky_relu") == actlab.get("leaky_relu")
    assert actlab.get("gelu").params == {"approximate": "none"}
    assert actlab.get("jax:gelu").params == {"approximate": "tanh"}
    assert actlab.get("tfa:gelu").params == {"approximate": "tanh"}
    assert actlab.get("keras:gelu").params == {"approximate": "none"}
    assert actlab.get("Softmax2d") == actlab.get("softmax(axis=-3)")
    assert actlab.get("HF:gelu_new") == actlab.get("gelu_new")
    with pytest.raises(UnknownActivationError, match="keras has no activation"):
        actlab.get("keras:sinusoid")
    with pytest.raises(ValueError, match="unknown framework"):
        actlab.get("flax:relu")


def test_get_spec_of_peer_names():
    assert actlab.get_spec("relu2").name == "squared_relu"
    assert actlab.get_spec("soft_sign").name == "softsign"
    with pytest.raises(KeyError, match=r"actlab\.get"):
        actlab.get_spec("gelu_new")  # a spec with bound parameters, not a spec


# ----------------------------------------------------------------------------- Keras 3 configs
PRELU_CONFIG = {
    "module": "keras.layers",
    "class_name": "PReLU",
    "config": {
        "name": "p_re_lu",
        "trainable": True,
        "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}},
        "alpha_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}},
        "alpha_regularizer": None,
        "alpha_constraint": None,
        "shared_axes": None,
    },
    "registered_name": None,
}


@pytest.mark.parametrize(
    ("config", "want"),
    [
        (PRELU_CONFIG, "prelu(init=0.0)"),
        (
            {**PRELU_CONFIG, "config": {"alpha_initializer": {"class_name": "Constant", "config": {"value": 0.25}}}},
            "prelu",
        ),
        ({"class_name": "LeakyReLU", "config": {"name": "l", "negative_slope": 0.3}}, "leaky_relu(0.3)"),
        ({"class_name": "LeakyReLU", "config": {}}, "leaky_relu(0.3)"),
        ({"class_name": "LeakyReLU", "config": {"alpha": 0.1}}, "leaky_relu(0.1)"),  # Keras 2
        (
            {"class_name": "ReLU", "config": {"max_value": 6.0, "negative_slope": 0.0, "threshold": 0.0}},
            "relu6_as_relu",
        ),
        ({"class_name": "ELU", "config": {"alpha": 1.0}}, "elu"),
        ({"class_name": "Softmax", "config": {"axis": -1}}, "softmax"),
        ({"class_name": "Activation", "config": {"activation": "leaky_relu"}}, "leaky_relu(0.2)"),
        ({"class_name": "Activation", "config": {"activation": "gelu"}}, "gelu"),
        ({"class_name": "function", "config": "hard_silu"}, "hardswish"),
        ({"module": "keras.activations", "class_name": "function", "config": "leaky_relu"}, "leaky_relu(0.2)"),
    ],
)
def test_keras_layer_configs(config, want):
    if want == "relu6_as_relu":
        want = "relu(max_value=6.0)"
    act = actlab.get(config)
    assert act == actlab.get(want)
    assert actlab.deserialize(actlab.serialize(act)) == act


def test_keras_prelu_refuses_what_it_cannot_represent():
    bad = {**PRELU_CONFIG, "config": {"alpha_initializer": {"class_name": "RandomNormal", "config": {}}}}
    with pytest.raises(TypeError, match="alpha_initializer"):
        actlab.get(bad)
    with pytest.raises(TypeError, match="alpha_regularizer"):
        actlab.get({"class_name": "PReLU", "config": {"alpha_regularizer": {"class_name": "L2"}}})


# ----------------------------------------------------------------------------- actlab list --framework
@pytest.mark.parametrize("framework", ["transformers", "timm", "keras", "jax", "torch", "tfa"])
def test_list_framework(framework, capsys):
    assert main(["list", "--framework", framework]) == 0
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= 100
    folded = re.sub(r"[\s│┃]", "", out)  # cells fold long text over several lines
    for name in PEER_TABLES[framework]:
        assert name in folded
    if framework == "keras":
        assert main(["list", "--framework", framework, "--format", "json"]) == 0
        rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
        assert rows["leaky_relu"]["actlab"] == "leaky_relu(negative_slope=0.2)"
        assert rows["LeakyReLU"]["actlab"] == "leaky_relu(negative_slope=0.3)"
        assert rows["leaky_relu"]["unqualified"] == "leaky_relu"  # the plain name keeps 0.01


def test_list_framework_json_and_errors(capsys):
    assert main(["list", "--framework", "transformers", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert by_name["gelu_new"]["actlab"] == "gelu(approximate='tanh')"
    assert by_name["gelu_10"]["actlab"] == "clipped_gelu"
    assert by_name["leaky_relu"]["unqualified"] == "same"
    assert main(["list", "--framework", "flax"]) == 2


def test_list_keeps_bracketed_summaries(capsys):
    assert main(["list"]) == 0
    folded = re.sub(r"[\s│┃]", "", capsys.readouterr().out)
    for name in ("glu", "geglu", "swiglu"):
        summary = actlab.get_spec(name).summary
        bracket = summary[summary.index("[") : summary.index("]") + 1]
        assert re.sub(r"\s", "", bracket) in folded  # rich markup would have swallowed it


def test_numpy_and_keras_names_agree_on_values():
    xs = np.linspace(-4, 4, 81)
    np.testing.assert_allclose(actlab.get("keras:leaky_relu")(xs), np.where(xs > 0, xs, 0.2 * xs), rtol=0, atol=0)
    np.testing.assert_allclose(actlab.get("keras:hard_sigmoid")(xs), np.clip(xs / 6 + 0.5, 0, 1), atol=1e-16)
