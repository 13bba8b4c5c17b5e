"""Trainable activations: learnable catalog parameters, PReLU, RReLU, PAU, APL, the registry's
layer entries, create_activation and the weight-decay helpers.

The learnable forms are checked against the catalog's NumPy forward at the same parameter
values (per channel), and by gradcheck in float64 over the input and every parameter."""

from __future__ import annotations

import copy
import io
import json
import pickle

import numpy as np
import pytest
import torch
from torch.func import functional_call

import actlab
from actlab.catalog.trainable import pade_fit, pade_numpy
from actlab.cli import main
from actlab.nn import (
    APL,
    PAU,
    Activation,
    PReLU,
    RReLU,
    SoftExponential,
    Swish,
    activation_parameters,
    create_activation,
    param_groups,
)
from actlab.registry import learnable_params
from conftest import LAYERS, spec_id

LEARNABLE_SPECS = [s for s in actlab.registry.all_specs() if learnable_params(s)]
learnable_specs = pytest.mark.parametrize("spec", LEARNABLE_SPECS, ids=spec_id)
C = 3  # channels in the per-channel tests


def _channel_values(param) -> list[float]:
    """C valid, distinct values near the default (the default itself among them)."""
    base = float(param.default)
    scale = max(1.0, abs(base))
    out = []
    for step in (-0.2, 0.0, 0.15, 0.3, -0.1):
        try:
            out.append(param.validate(base + step * scale, "test"))
        except ValueError:
            continue
        if len(out) == C:
            return out
    raise AssertionError(f"no {C} valid values for {param.name}")


def _learnable_module(spec, channel_dim: int = 1, dtype=torch.float64) -> tuple[Activation, dict[str, list[float]]]:
    names = learnable_params(spec)
    module = Activation(spec.name, num_parameters=C, channel_dim=channel_dim, **{n: "learnable" for n in names})
    values = {n: _channel_values(spec.param(n)) for n in names}
    module.to(dtype)  # before the values go in: the reference uses them unrounded
    with torch.no_grad():
        for n, v in values.items():
            getattr(module, n).copy_(torch.tensor(v, dtype=torch.float64))
    return module, values


def _numpy_reference(spec, x: np.ndarray, values: dict[str, list[float]], axis: int) -> np.ndarray:
    """The catalog spec (NumPy, validated parameters) evaluated channel by channel."""
    out = np.empty_like(x)
    for c in range(C):
        index = [slice(None)] * x.ndim
        index[axis] = c
        out[tuple(index)] = spec(x[tuple(index)], **{k: v[c] for k, v in values.items()})
    return out


def _input(shape, seed: int = 0, avoid: tuple[float, ...] = ()) -> torch.Tensor:
    """Seeded float64 input, kept 0.02 away from the points in ``avoid`` (kinks) for gradcheck."""
    x = 2.0 * torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    for point in avoid:
        close = (x - point).abs() < 0.02
        x = torch.where(close, x + 0.05, x)
    return x


def _kinks(spec, values: dict[str, list[float]]) -> tuple[float, ...]:
    points = {0.0}
    for c in range(C):
        params = spec.resolve_params(**{k: v[c] for k, v in values.items()})
        points.update(at for at, _ in spec.kink_points(params))
        points.update(v for k, v in params.items() if k.startswith("t_"))
    return tuple(points)


# ----------------------------------------------------------------------------- identifiers
def test_learnable_identifiers_round_trip():
    act = actlab.get("swish", beta="learnable")
    assert act.learnable == {"beta"} and act.params == {"beta": 1.0}
    assert actlab.serialize(act) == {"name": "swish", "config": {"beta": "learnable"}}
    started = actlab.get("swish(beta='learnable(0.5)', num_parameters=8, channel_dim=-1)")
    assert started.params["beta"] == 0.5 and started.num_parameters == 8 and started.channel_dim == -1
    for a in (act, started, actlab.get("prelu(num_parameters=64)")):
        assert actlab.deserialize(actlab.serialize(a)) == a
        assert actlab.deserialize(json.loads(json.dumps(actlab.serialize(a)))) == a
        assert actlab.get(repr(a)) == a
        assert pickle.loads(pickle.dumps(a)) == a
    assert act != actlab.get("swish")  # learnable-ness is part of the identity


@pytest.mark.parametrize(
    "identifier, words",
    [
        ("gelu(approximate='learnable')", ["approximate", "cannot be learnable"]),
        ("swish(num_parameters=4)", ["num_parameters", "learnable"]),
        ("swish(beta='learnable(fast)')", ["beta", "learnable(<number>)"]),
        ("elu(alpha='learnable(-1)')", ["alpha", "-1"]),
        ("swish(beta='learnable', num_parameters=0)", ["num_parameters", "0"]),
        ("prelu(num_parameters=0)", ["num_parameters", "0"]),
        ("pau(approximates='gleu')", ["approximates", "gelu"]),
        ("pau(approximates='softmax')", ["approximates", "elementwise"]),
        ("apl(hinges=0)", ["hinges", "0"]),
    ],
)
def test_invalid_configuration_names_the_argument(identifier, words):
    with pytest.raises(ValueError) as info:
        actlab.get(identifier)
    for word in words:
        assert word in str(info.value)


def test_layers_are_listed_apart_from_functions():
    layers = actlab.list_activations(kind="layer")
    assert {"prelu", "pau", "apl", "maxout_layer", "swiglu_layer"} <= set(layers)
    assert not set(layers) & set(actlab.list_activations())  # functions only by default
    assert set(actlab.list_activations(kind="all")) == set(layers) | set(actlab.list_activations())
    with pytest.raises(TypeError, match="layer"):
        actlab.get("prelu")(np.ones(3))
    with pytest.raises(TypeError, match="create_activation"):
        Activation("prelu")


@pytest.mark.parametrize("spec", LAYERS, ids=spec_id)
def test_every_layer_entry_builds_its_module(spec):
    sizes = {"in_features": 4, "out_features": 3}
    config = {k: v for k, v in sizes.items() if k in spec.param_names}
    module = create_activation(spec.name, **config)
    assert type(module).__name__ == spec.module.split(":")[1]
    assert module.actlab_activation == actlab.get(spec.name, **config)
    clone = create_activation(actlab.serialize(module))  # same architecture ...
    clone.load_state_dict(module.state_dict())  # ... so the trained weights load
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(clone(x), module(x))
    names = {n for n, _ in module.named_parameters()}
    declared = {w.name for w in spec.weights}
    assert names <= declared, names - declared


def test_create_activation_for_every_identifier_form():
    for name in actlab.list_activations():
        module = create_activation(name)
        assert type(module) is Activation and module.name == name
    assert isinstance(create_activation("prelu(num_parameters=64)"), PReLU)
    assert isinstance(create_activation("pau(approximates='gelu')"), PAU)
    assert create_activation("rrelu").name == "rrelu"
    learned = create_activation("swish(beta='learnable')")
    assert isinstance(learned.beta, torch.nn.Parameter)
    same = torch.nn.GELU()
    assert create_activation(same) is same
    wrapped = create_activation(torch.tanh)
    torch.testing.assert_close(wrapped(torch.ones(2)), torch.tanh(torch.ones(2)))
    with pytest.raises(ValueError, match="in_features is required"):
        create_activation("swiglu_layer")


# ----------------------------------------------------------------------------- learnable catalog functions
@learnable_specs
@pytest.mark.parametrize("channel_dim", [1, -1])
def test_learnable_forward_matches_catalog_numpy(spec, channel_dim):
    module, values = _learnable_module(spec, channel_dim)
    shape = (2, C, 5) if channel_dim == 1 else (2, 5, C)
    x = _input(shape, seed=3)
    want = _numpy_reference(spec, x.numpy(), values, axis=channel_dim % 3)
    torch.testing.assert_close(module(x), torch.from_numpy(want), rtol=1e-9, atol=1e-12)


@learnable_specs
def test_learnable_gradcheck_input_and_parameters(spec):
    module, values = _learnable_module(spec)
    x = _input((2, C, 4), seed=5, avoid=_kinks(spec, values)).requires_grad_(True)
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for _, p in module.named_parameters()]

    def f(x, *ps):
        return functional_call(module, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params))


@learnable_specs
def test_learnable_parameter_trains_and_survives_serialization(spec):
    torch.manual_seed(0)
    module, _ = _learnable_module(spec, dtype=torch.float32)
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    x = _input((4, C, 6), seed=7).float()
    loss = (module(x) - 0.3).square().mean()
    loss.backward()
    torch.optim.SGD(module.parameters(), lr=0.1).step()
    assert any(not torch.equal(before[n], p) for n, p in module.named_parameters()), "no parameter moved"
    rebuilt = create_activation(actlab.deserialize(json.loads(json.dumps(actlab.serialize(module)))))
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    buf.seek(0)
    rebuilt.load_state_dict(torch.load(buf))
    torch.testing.assert_close(rebuilt(x), module(x))
    torch.testing.assert_close(copy.deepcopy(module)(x), module(x))
    torch.testing.assert_close(pickle.loads(pickle.dumps(module))(x), module(x))


def test_named_classes_match_identifiers():
    assert Swish().actlab_activation == actlab.get("swish(beta='learnable')")
    assert Swish(0.5, learnable=False).actlab_activation == actlab.get("swish(beta=0.5)")
    with pytest.raises(ValueError, match="learnable"):
        Swish(learnable=["gamma"])
    assert not list(Swish(learnable=False).parameters())


def test_soft_exponential_learns_from_alpha_zero():
    """At alpha = 0 (the identity, the usual start) d f / d alpha = 1 + x^2 / 2, not 0."""
    module = SoftExponential().double()
    x = torch.tensor([-2.0, 0.0, 1.0, 3.0], dtype=torch.float64)
    (grad,) = torch.autograd.grad(module(x).sum(), module.alpha)
    torch.testing.assert_close(grad, (1 + x**2 / 2).sum().reshape(1))


# ----------------------------------------------------------------------------- PReLU
def test_prelu_channels_first_matches_torch():
    ours, theirs = PReLU(4), torch.nn.PReLU(4)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    ours.load_state_dict(theirs.state_dict())  # same weight name and shape
    x = _input((2, 4, 3, 3)).float()
    torch.testing.assert_close(ours(x), theirs(x))
    theirs.load_state_dict(ours.state_dict())


@pytest.mark.parametrize("channel_dim, shape", [(1, (2, C, 4, 4)), (-1, (2, 4, 4, C)), (-1, (C,)), (0, (C, 2))])
def test_prelu_forward_reference_and_gradcheck(channel_dim, shape):
    prelu = PReLU(C, init=0.25, channel_dim=channel_dim).double()
    slopes = [0.05, 0.25, 0.6]
    with torch.no_grad():
        prelu.weight.copy_(torch.tensor(slopes, dtype=torch.float64))
    x = _input(shape, seed=2)
    leaky = actlab.get_spec("leaky_relu")
    want = _numpy_reference(leaky, x.numpy(), {"negative_slope": slopes}, axis=channel_dim % len(shape))
    torch.testing.assert_close(prelu(x), torch.from_numpy(want))
    x = _input(shape, seed=4, avoid=(0.0,)).requires_grad_(True)
    w = prelu.weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, w: functional_call(prelu, {"weight": w}, (x,)), (x, w))


def test_prelu_gradient_at_zero_is_the_slope():
    prelu = PReLU(init=0.3)
    x = torch.zeros(3, requires_grad=True)
    prelu(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 0.3))


def test_prelu_channel_mismatch_names_argument_and_shapes():
    prelu = PReLU(num_parameters=64)
    with pytest.raises(ValueError) as info:
        prelu(torch.ones(2, 32, 5))
    message = str(info.value)
    for word in ("num_parameters=64", "32", "(2, 32, 5)", "channel_dim=1"):
        assert word in message
    with pytest.raises(ValueError, match="channel_dim=3 is out of range"):
        PReLU(2, channel_dim=3)(torch.ones(2, 2))


# ----------------------------------------------------------------------------- RReLU
def test_rrelu_reproducible_and_mean_in_eval():
    rrelu = RReLU(0.1, 0.3)
    x = -torch.ones(2000)
    torch.manual_seed(11)
    a = rrelu(x)
    torch.manual_seed(11)
    b = rrelu(x)
    torch.testing.assert_close(a, b)
    assert (-a).min() >= 0.1 and (-a).max() <= 0.3 and a.unique().numel() > 1000
    rrelu.eval()
    torch.testing.assert_close(rrelu(x), torch.full_like(x, -0.2))
    with pytest.raises(ValueError, match="lower.*upper"):
        RReLU(lower=0.5, upper=0.1)


# ----------------------------------------------------------------------------- PAU
def test_pau_fit_error_reported_and_forward_is_the_rational_function():
    pau = PAU("gelu").double()
    assert pau.fit.approximates == "gelu" and pau.fit.x_range == (-3.0, 3.0)
    assert 0 < pau.fit.rms_error <= pau.fit.max_abs_error < 2e-3  # a (5, 4) rational fits gelu closely
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    gelu = actlab.get("gelu")(x.numpy())
    assert np.max(np.abs(pau(x).detach().numpy() - gelu)) <= pau.fit.max_abs_error * 1.01
    want = pade_numpy(x.numpy(), pau.numerator.detach().numpy(), pau.denominator.detach().numpy())
    torch.testing.assert_close(pau(x), torch.from_numpy(want), rtol=1e-12, atol=1e-14)
    assert "fit max |error|" in repr(pau)


def test_pau_gradcheck_input_and_coefficients():
    pau = PAU("leaky_relu").double()
    with torch.no_grad():  # move off the fit so that B(x) changes sign inside the grid
        pau.denominator.copy_(torch.tensor([0.5, -0.3, 0.2, 0.1], dtype=torch.float64))
    x = _input((13,), seed=9).requires_grad_(True)
    a = pau.numerator.detach().clone().requires_grad_(True)
    b = pau.denominator.detach().clone().requires_grad_(True)
    call = lambda x, a, b: functional_call(pau, {"numerator": a, "denominator": b}, (x,))  # noqa: E731
    assert torch.autograd.gradcheck(call, (x, a, b))


def test_pau_fit_is_cached_on_disk(tmp_path, monkeypatch):
    from actlab.catalog import trainable

    monkeypatch.setenv("ACTLAB_CACHE", str(tmp_path))
    first = pade_fit("tanh", 3, 2)
    files = list((tmp_path / "pade").iterdir())
    assert len(files) == 1 and files[0].suffix == ".json"

    def refit(*args, **kwargs):
        raise AssertionError("fitted again despite the cache")

    monkeypatch.setattr(trainable, "_fit", refit)
    assert pade_fit("tanh", 3, 2) == first
    monkeypatch.setenv("ACTLAB_CACHE", "")  # off: computes (and would call _fit)
    with pytest.raises(AssertionError, match="fitted again"):
        pade_fit("tanh", 3, 2)


def test_pau_leaky_relu_default_and_degrees():
    pau = PAU()
    assert pau.numerator.shape == (6,) and pau.denominator.shape == (4,)
    assert pau.fit.max_abs_error < 0.05  # the kink at 0 is what a rational function cannot follow
    assert PAU("tanh", numerator_degree=3, denominator_degree=0).denominator.shape == (0,)


# ----------------------------------------------------------------------------- APL
def _apl_numpy(x: np.ndarray, a: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * x.ndim
    shape[axis] = a.shape[0]
    y = np.maximum(x, 0.0)
    for s in range(a.shape[1]):
        y = y + a[:, s].reshape(shape) * np.maximum(b[:, s].reshape(shape) - x, 0.0)
    return y


@pytest.mark.parametrize("channel_dim", [1, -1])
def test_apl_reference_and_gradcheck(channel_dim):
    torch.manual_seed(0)
    apl = APL(hinges=3, num_parameters=C, channel_dim=channel_dim).double()
    shape = (2, C, 5) if channel_dim == 1 else (2, 5, C)
    x = _input(shape, seed=6)
    a, b = apl.a.detach().numpy(), apl.b.detach().numpy()
    want = _apl_numpy(x.numpy(), a, b, channel_dim % 3)
    torch.testing.assert_close(apl(x), torch.from_numpy(want))
    x = _input(shape, seed=8, avoid=(0.0, *b.ravel().tolist())).requires_grad_(True)
    pa = apl.a.detach().clone().requires_grad_(True)
    pb = apl.b.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, a, b: functional_call(apl, {"a": a, "b": b}, (x,)), (x, pa, pb))


def test_apl_initialisation_is_seeded_and_in_range():
    torch.manual_seed(5)
    first = APL(hinges=4, num_parameters=8)
    torch.manual_seed(5)
    second = APL(hinges=4, num_parameters=8)
    torch.testing.assert_close(first.a, second.a)
    assert first.a.abs().max() <= 0.2 and first.a.std() > 0.01 and first.b.std() > 0.1


# ----------------------------------------------------------------------------- weight decay
def test_param_groups_exclude_activation_parameters_from_decay():
    torch.manual_seed(0)
    from actlab.nn import SwiGLU

    model = torch.nn.Sequential(
        torch.nn.Linear(4, 4),
        PReLU(4, channel_dim=-1),
        Activation("swish", beta="learnable"),
        SwiGLU(4, 8, 4),
        torch.nn.PReLU(),
    )
    act = activation_parameters(model)
    assert [tuple(p.shape) for p in act] == [(4,), (1,), (1,)]
    swiglu_weights = {id(p) for p in model[3].parameters()}
    assert not swiglu_weights & {id(p) for p in act}  # projections are ordinary weights
    groups = param_groups(model, weight_decay=0.5)
    assert [g["weight_decay"] for g in groups] == [0.5, 0.0]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    opt = torch.optim.AdamW(groups, lr=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # only the decay moves anything
    before_linear, before_prelu = model[0].weight.detach().clone(), model[1].weight.detach().clone()
    opt.step()
    assert not torch.equal(model[0].weight, before_linear)
    torch.testing.assert_close(model[1].weight, before_prelu)
    with pytest.raises(ValueError, match="weight_decay"):
        param_groups(model, weight_decay=-1.0)


# ----------------------------------------------------------------------------- CLI
def test_cli_list_trainable_and_show_prelu(capsys):
    assert main(["list", "--family", "trainable", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    want = set(actlab.list_activations(kind="layer")) | {s.name for s in LEARNABLE_SPECS}
    assert {r["name"] for r in rows} == want
    assert {"swish", "elu", "prelu", "pau", "swiglu_layer"} <= want
    assert main(["show", "prelu"]) == 0
    out = capsys.readouterr().out
    for word in ("num_parameters", "channel_dim", "weight (num_parameters,)", "1502.01852", "torch.nn.PReLU"):
        assert word in out
    assert main(["show", "swish", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["learnable"]["parameters"] == ["beta"]


def test_init_reads_the_function_a_layer_computes():
    from actlab.analysis import gain
    from actlab.init import init_

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), PReLU(6, channel_dim=-1), torch.nn.Linear(6, 6), APL())
    report = init_(model, "auto")
    assert report.by_name("0.weight").activation == "leaky_relu(negative_slope=0.25)"
    assert report.by_name("0.weight").gain == pytest.approx(gain("leaky_relu(negative_slope=0.25)").computed)
    assert report.by_name("2.weight").activation is None  # APL starts random: no catalog function
