"""actlab.init.init_: schemes, structural activation lookup, orthogonal recurrent weights."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import actlab  # noqa: E402
import actlab.analysis as aa  # noqa: E402
from actlab.init import init_  # noqa: E402


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_he_variance_for_relu():
    model = nn.Sequential(nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
    report = init_(model, "he", generator=_gen())
    for layer in (model[0], model[2]):
        fan_in = layer.weight.shape[1]
        assert layer.weight.var().item() == pytest.approx(2 / fan_in, rel=0.03)
        assert torch.all(layer.bias == 0)
    assert report.by_name("0.weight").std == pytest.approx(math.sqrt(2 / 512), rel=1e-15)
    auto = init_(model, "auto", generator=_gen())
    assert auto.by_name("0.weight").activation == "relu"
    assert auto.by_name("0.weight").std == pytest.approx(math.sqrt(2 / 512), rel=1e-14)


def test_other_schemes_std():
    model = nn.Sequential(nn.Linear(300, 200), nn.Tanh())
    w = model[0].weight
    init_(model, "xavier", generator=_gen())
    assert w.var().item() == pytest.approx(2 / 500, rel=0.03)
    init_(model, "lecun", generator=_gen())
    assert w.var().item() == pytest.approx(1 / 300, rel=0.03)
    init_(model, "gaussian", std=0.05, generator=_gen())
    assert w.std().item() == pytest.approx(0.05, rel=0.03)
    r = init_(model, "orthogonal", generator=_gen())
    g = aa.gain("tanh").computed
    assert r.by_name("0.weight").gain == pytest.approx(g, rel=1e-14)
    assert torch.allclose(w @ w.T, g * g * torch.eye(200), atol=1e-4)  # rows orthonormal times g
    with pytest.raises(ValueError, match="scheme"):
        init_(model, "kaiming")


def test_structure_maps_torch_modules_to_catalog_gains():
    model = nn.Sequential(
        nn.Linear(8, 8),
        nn.LeakyReLU(0.2),
        nn.Linear(8, 8),
        nn.Dropout(0.1),
        nn.GELU(approximate="tanh"),
        nn.Conv1d(8, 8, 3),
        actlab.nn.Activation("mish"),
        nn.Linear(8, 8),
        nn.Softmax(dim=-1),
        nn.Linear(8, 4),
    )
    r = init_(model, generator=_gen())
    assert r.by_name("0.weight").gain == pytest.approx(math.sqrt(2 / 1.04), rel=1e-13)
    assert r.by_name("2.weight").activation == "gelu(approximate='tanh')"
    assert r.by_name("2.weight").gain == pytest.approx(aa.gain("gelu", approximate="tanh").computed, rel=1e-15)
    conv = r.by_name("5.weight")
    assert conv.activation == "mish" and conv.fan_in == 24
    assert r.by_name("7.weight").gain == 1.0 and "Softmax" in r.by_name("7.weight").note
    assert r.by_name("9.weight").gain == 1.0 and "last layer" in r.by_name("9.weight").note


def test_conv_variance():
    model = nn.Sequential(nn.Conv2d(16, 32, 3), nn.ReLU())
    init_(model, generator=_gen())
    assert model[0].weight.var().item() == pytest.approx(2 / (16 * 9), rel=0.05)


def test_unknown_structure_says_so_and_explicit_activation_wins():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(10, 10)

        def forward(self, x):
            return torch.relu(self.fc(x))

    net = Net()
    r = init_(net, generator=_gen())
    assert r.by_name("fc.weight").gain == 1.0 and "unknown" in r.by_name("fc.weight").note
    r = init_(net, activation="relu", generator=_gen())
    assert r.by_name("fc.weight").gain == pytest.approx(math.sqrt(2), rel=1e-15)
    r = init_(net, activation={"fc": "selu"}, generator=_gen())
    assert r.by_name("fc.weight").activation == "selu"


def test_auto_keeps_tanh_variance_across_20_layers():
    """The auto gain makes q = 1 the mean-field fixed point of the tanh length map; a seeded
    20-layer, 256-wide net fed tanh(z), z ~ N(0, 1) (a previous layer at q = 1), keeps every
    pre-activation's variance near 1: within a factor of 2 across depth and 15% of q* = 1."""
    torch.manual_seed(0)
    layers = []
    for _ in range(20):
        layers += [nn.Linear(256, 256), nn.Tanh()]
    model = nn.Sequential(*layers).double()
    init_(model, generator=_gen(3))
    g2 = aa.gain("tanh").computed ** 2
    mf = aa.mean_field("tanh", g2, 0.0, q0=1.0, layers=20)
    assert mf.q_star == pytest.approx(1.0, abs=1e-12)
    h = torch.tanh(torch.randn(512, 256, generator=_gen(4), dtype=torch.float64))
    variances = []
    with torch.no_grad():
        for i in range(0, 40, 2):
            pre = model[i](h)
            variances.append(pre.pow(2).mean().item())
            h = model[i + 1](pre)
    assert max(variances) / min(variances) < 2
    assert variances[-1] == pytest.approx(mf.q_star, rel=0.15)
    for layer, v in enumerate(variances, start=1):
        assert v == pytest.approx(mf.trajectory[layer], rel=0.15)


@pytest.mark.parametrize("cls,gates", [(nn.RNN, 1), (nn.LSTM, 4), (nn.GRU, 3)])
def test_recurrent_weights_orthogonal(cls, gates):
    hidden = 16
    rnn = cls(8, hidden, num_layers=2)
    r = init_(rnn, generator=_gen())
    for name, p in rnn.named_parameters():
        if name.startswith("weight_hh"):
            for block in p.detach().split(hidden, dim=0):
                assert torch.allclose(block @ block.T, torch.eye(hidden), atol=1e-5)
            assert r.by_name(name).scheme == "orthogonal"
        elif name.startswith("bias"):
            assert torch.all(p == 0)
    assert sum(1 for e in r if e.name.startswith("weight_hh")) == 2
    if cls is nn.RNN:  # input weights get the tanh gain
        assert r.by_name("weight_ih_l0").gain == pytest.approx(aa.gain("tanh").computed, rel=1e-15)
