"""Activation recognition (actlab.nn.recognition.recognise): torch, timm and transformers modules,
by what they compute; swap and watch see them as the right function."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

import actlab  # noqa: E402
from actlab.nn.recognition import find_module_sites, recognise, recognize  # noqa: E402


def _grid() -> torch.Tensor:
    return torch.linspace(-6, 6, 241, dtype=torch.float64)


# ----------------------------------------------------------------------------- torch's classes
# What actlab.init's own table said for torch's 23 classes, written out by hand (non-default
# parameters where the class has them, so that reading them is tested too).
TORCH_CASES = [
    (nn.ReLU(), "relu", {}),
    (nn.ReLU6(), "relu6", {}),
    (nn.LeakyReLU(0.2), "leaky_relu", {"negative_slope": 0.2}),
    (nn.RReLU(0.1, 0.3), "rrelu", {"lower": 0.1, "upper": 0.3}),
    (nn.ELU(alpha=0.5), "elu", {"alpha": 0.5}),
    (nn.CELU(alpha=2.0), "celu", {"alpha": 2.0}),
    (nn.SELU(), "selu", {}),
    (nn.GELU(approximate="tanh"), "gelu", {"approximate": "tanh"}),
    (nn.SiLU(), "silu", {}),
    (nn.Mish(), "mish", {}),
    (nn.Sigmoid(), "sigmoid", {}),
    (nn.Tanh(), "tanh", {}),
    (nn.Hardtanh(-2.0, 3.0), "hard_tanh", {"min_val": -2.0, "max_val": 3.0}),
    (nn.Hardsigmoid(), "hard_sigmoid", {}),
    (nn.Hardswish(), "hardswish", {}),
    (nn.Softplus(beta=2.0, threshold=10.0), "softplus", {"beta": 2.0, "threshold": 10.0}),
    (nn.Softsign(), "softsign", {}),
    (nn.Tanhshrink(), "tanhshrink", {}),
    (nn.Softshrink(0.3), "softshrink", {"lambd": 0.3}),
    (nn.Hardshrink(0.4), "hardshrink", {"lambd": 0.4}),
    (nn.LogSigmoid(), "log_sigmoid", {}),
    (nn.Threshold(0.1, -1.0), "threshold", {"threshold": 0.1, "value": -1.0}),
]


@pytest.mark.parametrize("module, name, params", TORCH_CASES, ids=[type(c[0]).__name__ for c in TORCH_CASES])
def test_torch_classes_with_their_parameters(module, name, params):
    found = recognise(module)
    assert found is not None and found[0] == name
    for key, value in params.items():
        assert found[1][key] == pytest.approx(value)
    if name != "rrelu":  # random in training; its eval form is checked by its own tests
        x = _grid()
        torch.testing.assert_close(_eval(found, x), module(x))


def _eval(found: tuple[str, dict], x: torch.Tensor) -> torch.Tensor:
    from actlab.torch import functional

    return getattr(functional, found[0])(x, **found[1])


def test_prelu_is_leaky_relu_at_its_mean_slope_and_layers_are_not_activations():
    prelu = nn.PReLU(3, init=0.1)
    with torch.no_grad():
        prelu.weight.copy_(torch.tensor([0.1, 0.2, 0.6]))
    name, params = recognise(prelu)
    assert name == "leaky_relu" and params["negative_slope"] == pytest.approx(0.3)
    for module in (nn.Linear(3, 3), nn.Identity(), nn.Dropout(), nn.Sequential(nn.ReLU()), nn.LayerNorm(3)):
        assert recognise(module) is None
    assert recognize is recognise


# ----------------------------------------------------------------------------- by what they compute
class NewGELUActivation(nn.Module):  # transformers' formula, written out here
    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class QuickGELUActivation(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class FakeGELUActivation(nn.Module):
    pass


FakeGELUActivation.__name__ = "GELUActivation"  # named like transformers' class, computes relu
FakeGELUActivation.forward = lambda self, x: torch.relu(x)


class SiLUActivation(nn.Module):  # named silu, computes x * sigmoid(2x)
    def forward(self, x):
        return x * torch.sigmoid(2 * x)


def test_a_class_is_recognised_by_what_it_computes_not_its_name_alone():
    assert recognise(NewGELUActivation()) == ("gelu", {"approximate": "tanh"})
    assert recognise(QuickGELUActivation()) == ("quick_gelu", {})
    assert recognise(FakeGELUActivation()) is None
    assert recognise(SiLUActivation()) is None
    model = nn.Sequential(nn.Linear(2, 2), FakeGELUActivation(), nn.Linear(2, 2), NewGELUActivation())
    assert [s.name for s in find_module_sites(model)] == ["3"]


# ----------------------------------------------------------------------------- transformers
# Hand-written: what each entry of transformers' ACT2CLS computes (from its source), in catalog terms.
TRANSFORMERS_EXPECTED = {
    "gelu": ("gelu", {"approximate": "none"}),
    "gelu_python": ("gelu", {"approximate": "none"}),
    "gelu_new": ("gelu", {"approximate": "tanh"}),
    "gelu_pytorch_tanh": ("gelu", {"approximate": "tanh"}),
    "gelu_python_tanh": ("gelu", {"approximate": "tanh"}),
    "gelu_accurate": ("gelu", {"approximate": "tanh"}),
    "gelu_fast": ("gelu_fast", {}),
    "gelu_10": ("clipped_gelu", {"min_val": -10.0, "max_val": 10.0}),
    "quick_gelu": ("quick_gelu", {}),
    "silu": ("silu", {}),
    "swish": ("silu", {}),
    "mish": ("mish", {}),
    "linear": ("linear", {}),
    "laplace": ("laplace", {"mu": 0.707107, "sigma": 0.282095}),
    "relu2": ("squared_relu", {}),
    "sqrtsoftplus": ("sqrtsoftplus", {}),
    "relu": ("relu", {}),
    "relu6": ("relu6", {}),
    "leaky_relu": ("leaky_relu", {"negative_slope": 0.01}),
    "hardswish": ("hardswish", {}),
    "sigmoid": ("sigmoid", {}),
    "tanh": ("tanh", {}),
    "prelu": ("leaky_relu", {"negative_slope": 0.25}),
}


def test_every_transformers_activation_class():
    activations = pytest.importorskip("transformers.activations")
    for key, (name, params) in TRANSFORMERS_EXPECTED.items():
        module = activations.ACT2FN[key]
        found = recognise(module)
        assert found is not None, key
        assert found[0] == name, key
        for p, value in params.items():
            assert found[1][p] == value, (key, p)
        x = _grid().float()
        with torch.no_grad():
            torch.testing.assert_close(_eval(found, x.double()).float(), module(x), atol=2e-5, rtol=1e-4)
    clipped = recognise(activations.ClippedGELUActivation(-2.0, 1.5))
    assert clipped == ("clipped_gelu", {"min_val": -2.0, "max_val": 1.5})


def _tiny(kind: str):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    common = {"vocab_size": 64, "max_position_embeddings": 32}
    if kind == "bert":
        config = transformers.BertConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, **common
        )
        return transformers.BertModel(config)
    if kind == "gpt2":
        config = transformers.GPT2Config(
            n_embd=32, n_layer=2, n_head=2, vocab_size=64, n_positions=32, bos_token_id=0, eos_token_id=0
        )
        return transformers.GPT2LMHeadModel(config)
    config = transformers.LlamaConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=64,
        **common,
    )
    return transformers.LlamaForCausalLM(config)


def _ids() -> torch.Tensor:
    return torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(1))


def test_swap_replaces_transformers_activations():
    bert = _tiny("bert")
    report = actlab.swap(bert, {"gelu": "silu"}).report
    assert [(r.name, r.old, r.new) for r in report.replaced] == [
        (f"encoder.layer.{i}.intermediate.intermediate_act_fn", "gelu", "silu") for i in range(2)
    ]
    # what the swapped layer computes now: silu of the dense layer's output
    inner = bert.encoder.layer[0].intermediate
    h = torch.randn(2, 3, 32, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(inner(h), F.silu(inner.dense(h)))

    gpt2 = _tiny("gpt2")
    report = actlab.swap(gpt2, "relu").report
    assert [(r.name, r.old) for r in report.replaced] == [
        (f"transformer.h.{i}.mlp.act", "gelu(approximate='tanh')") for i in range(2)
    ]
    llama = _tiny("llama")
    report = actlab.swap(llama, {"silu": "gelu"}).report
    assert [(r.name, r.old, r.new) for r in report.replaced] == [
        (f"model.layers.{i}.mlp.act_fn", "silu", "gelu") for i in range(2)
    ]
    llama(_ids())  # still runs


def test_watch_sees_gpt2_gelu_as_one_site_per_layer():
    gpt2 = _tiny("gpt2")
    with actlab.watch(gpt2) as w:
        gpt2(_ids())
    sites = w.report().sites
    assert [(s.name, s.activation) for s in sites] == [
        (f"transformer.h.{i}.mlp.act", "gelu(approximate='tanh')") for i in range(2)
    ]
