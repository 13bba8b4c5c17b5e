"""Drop-in classes under PyTorch's and timm's names (actlab.nn.torch_named), generated from the
specs' equivalents. The references are independent: PyTorch's own classes (output and
signature), actlab's recognition of the torch module (which reads its attributes), and known
formulas for the timm classes."""

import copy
import inspect
import pickle

import pytest
import torch

import actlab
import actlab.nn as anl
from actlab.nn import Activation, recognition, torch_named

CLASSES = sorted(torch_named.CLASSES)
TORCH_CLASSES = [n for n in CLASSES if torch_named.CLASSES[n].peer.startswith("torch.nn.")]


def _arguments(name, alternative=False):
    """Constructor arguments: PyTorch's required ones and dim (None is PyTorch's deprecated implicit
    axis, refused here) given; with ``alternative`` every float argument moved off its default."""
    out = {}
    for p in inspect.signature(getattr(torch.nn, name)).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in ("inplace", "min_value", "max_value"):
            continue
        if p.name == "dim":
            out["dim"] = 0 if alternative else -1
        elif p.default is p.empty:
            out[p.name] = {"threshold": 0.5, "value": -0.25}[p.name]
        elif alternative and isinstance(p.default, float):
            out[p.name] = p.default * 0.5 + 0.3
    return out


def _input(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.cat(
        [torch.linspace(-6, 6, 49, dtype=torch.float64), torch.randn(47, generator=g, dtype=torch.float64)]
    )


def test_generated_set():
    # known members (PyTorch's classes and timm's QuickGELU/GELUTanh) and exports
    for name in ("GELU", "SiLU", "Mish", "Hardswish", "ELU", "ReLU", "LeakyReLU", "Softplus", "Tanh", "Sigmoid"):
        assert name in TORCH_CLASSES
    assert {"QuickGELU", "GELUTanh", "SquaredReLU"} <= set(CLASSES)
    # vector functions' timm MLP blocks are not drop-in activations
    assert not {"GluMlp", "SwiGLUPacked"} & set(CLASSES)
    assert set(CLASSES) <= set(dir(anl)) and set(CLASSES) <= set(anl.__all__)
    # names actlab.nn already had keep their classes
    assert torch_named.KEPT.keys() >= {"GLU", "RReLU", "Swish", "StarReLU"}
    assert anl.GLU is anl.gated.GLU and anl.RReLU is anl.trainable.RReLU and anl.Swish is anl.trainable.Swish


@pytest.mark.parametrize("name", CLASSES)
def test_constructs_with_defaults(name):
    cls = getattr(anl, name)
    args = _arguments(name) if name in TORCH_CLASSES else {}
    m = cls(**args)
    assert isinstance(m, Activation) and isinstance(m, torch.nn.Module)
    assert m.name == cls.spec_name and list(m.state_dict()) == []
    y = m(torch.randn(2, 3, 4, 5))
    assert y.shape == (2, 3, 4, 5)


@pytest.mark.parametrize("alternative", [False, True])
@pytest.mark.parametrize("name", TORCH_CLASSES)
def test_matches_torch_class(name, alternative):
    args = _arguments(name, alternative)
    ours, theirs = getattr(anl, name)(**args), getattr(torch.nn, name)(**args)
    x = _input().reshape(2, 3, 4, 4)
    # float64 inside [-6, 6]: where PyTorch's documented differences (cancellation, infinities,
    # float32 rounding) do not show
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-6, atol=1e-9)
    # the same parameters as actlab reads them off the torch module: bit for bit
    found = recognition.recognise(theirs)  # (torch.nn.Identity is not an activation site there)
    if found is not None:
        assert found[0] == ours.spec_name
        assert torch.equal(ours(x), Activation(found[0], **found[1])(x))


def test_timm_classes_known_formulas():
    x = _input()
    torch.testing.assert_close(anl.QuickGELU()(x), x * torch.sigmoid(1.702 * x), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(anl.SquaredReLU()(x), torch.relu(x) ** 2, rtol=1e-12, atol=0)
    torch.testing.assert_close(anl.GELUTanh()(x), torch.nn.functional.gelu(x, approximate="tanh"), rtol=1e-6, atol=0)
    assert str(inspect.signature(anl.QuickGELU)) == "(inplace: bool = False)"


@pytest.mark.parametrize("name", TORCH_CLASSES)
def test_signature_is_torchs(name):
    theirs = getattr(torch.nn, name)
    expected = (
        [] if theirs.__init__ is torch.nn.Module.__init__ else list(inspect.signature(theirs).parameters.values())
    )
    ours = list(inspect.signature(getattr(anl, name)).parameters.values())
    extra = ours[len(expected) :]
    # PyTorch's parameters in its order with its defaults, then inplace (timm passes it) if absent
    assert [(p.name, p.kind, p.default) for p in ours[: len(expected)]] == [
        (p.name, p.kind, p.default) for p in expected
    ]
    assert [(p.name, p.kind, p.default) for p in extra] in (
        [],
        [("inplace", inspect.Parameter.KEYWORD_ONLY, False)],
    )
    assert "inplace" in [p.name for p in ours] or any(p.kind == p.VAR_KEYWORD for p in ours)


def test_positional_arguments_and_repr():
    m = anl.LeakyReLU(0.2, True)
    assert repr(m) == "LeakyReLU(negative_slope=0.2, inplace=True)"
    assert m.params == {"negative_slope": 0.2}
    assert repr(anl.GELU("tanh")) == "GELU(approximate='tanh')" and repr(anl.GELU()) == "GELU()"
    assert anl.Softplus(2.0, 10.0).params == {"beta": 2.0, "threshold": 10.0}
    assert anl.Softmax2d().params == {"axis": -3}


def test_clear_errors():
    with pytest.raises(TypeError, match="min_value=-2.0 has no counterpart in actlab's hard_tanh"):
        anl.Hardtanh(min_value=-2.0)
    with pytest.raises(ValueError, match="Softmax: .*'axis'.*dim is actlab's axis"):
        anl.Softmax()  # PyTorch's deprecated implicit dim
    with pytest.raises(ValueError, match="GELU: .*approximate"):
        anl.GELU(approximate="fast")
    with pytest.raises(TypeError, match=r"Threshold\(threshold: float, value: float.*missing"):
        anl.Threshold()
    with pytest.raises(TypeError, match="too many positional"):
        anl.Tanh(1)
    with pytest.raises(TypeError, match="inplace must be True or False"):
        anl.ReLU(inplace="yes")


def test_inplace_where_possible_and_out_of_place_otherwise():
    x = torch.tensor([-1.0, 2.0])
    assert anl.ReLU(inplace=True)(x) is x and x.tolist() == [0.0, 2.0]
    assert anl.ReLU(inplace=True).inplace_effective
    # SiLU cannot run in place: accepted (drop-in), computed out of place, the input untouched
    x = torch.tensor([-1.0, 2.0])
    m = anl.SiLU(inplace=True)
    y = m(x)
    assert not m.inplace_effective and y is not x and x.tolist() == [-1.0, 2.0]
    assert torch.equal(y, torch.nn.functional.silu(x))


def test_sequential_trains_like_torch():
    def train(act):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 16), act, torch.nn.Linear(16, 1)).double()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(64, 3, generator=g, dtype=torch.float64)
        target = (x**2).sum(1, keepdim=True)
        losses = []
        for _ in range(40):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), target)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return model, losses

    ours, ours_losses = train(anl.ReLU(inplace=True))
    ref, ref_losses = train(torch.nn.ReLU(inplace=True))
    assert ours_losses[-1] < 0.5 * ours_losses[0]
    assert ours_losses == pytest.approx(ref_losses, rel=1e-9)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_pickle_deepcopy_recognition_and_diagnose():
    m = torch.nn.Sequential(torch.nn.Linear(2, 4), anl.GELU(approximate="tanh"), anl.LeakyReLU(0.1, inplace=True))
    x = torch.randn(3, 2)
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert repr(clone) == repr(m) and torch.equal(clone(x.clone()), m(x.clone()))
        assert type(clone[1]) is anl.GELU
    assert recognition.recognise(m[1]) == ("gelu", {"approximate": "tanh"})
    assert [s.name for s in recognition.find_module_sites(m)] == ["1", "2"]


def test_swap_maps_torch_modules_to_drop_in_classes():
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.LeakyReLU(0.2, inplace=True), torch.nn.Linear(8, 8), torch.nn.ReLU(inplace=True)
    )
    x = torch.randn(5, 4)
    expected = torch.nn.functional.gelu(model[2](model[1](model[0](x).clone())))
    ref = model(x)
    swapped, report = actlab.swap(model, {"leaky_relu": anl.LeakyReLU, "relu": anl.GELU}, inplace=False)
    # the class of the same name takes the torch module's arguments; another one takes inplace
    assert type(swapped[1]) is anl.LeakyReLU and swapped[1].params == {"negative_slope": 0.2} and swapped[1].inplace
    assert type(swapped[3]) is anl.GELU and swapped[3].inplace and not swapped[3].inplace_effective
    torch.testing.assert_close(swapped[:2](x), model[:2](x.clone()))
    torch.testing.assert_close(swapped(x), expected)
    assert not torch.equal(swapped(x), ref)
    assert len(report.replaced) == 2


def test_swap_every_torch_module_to_its_counterpart():
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8),
        torch.nn.LeakyReLU(0.2, inplace=True),
        torch.nn.GELU("tanh"),
        torch.nn.PReLU(),
        torch.nn.Softplus(2.0, 5.0),
    ).double()
    x = torch.randn(5, 4, dtype=torch.float64)
    swapped, report = actlab.swap(model, anl.TorchNamed, inplace=False)
    assert [type(m).__name__ for m in swapped] == ["Linear", "LeakyReLU", "GELU", "PReLU", "Softplus"]
    assert type(swapped[1]) is anl.LeakyReLU and type(swapped[3]) is torch.nn.PReLU
    assert swapped[4].params == {"beta": 2.0, "threshold": 5.0}
    torch.testing.assert_close(swapped(x), model(x), rtol=1e-12, atol=1e-12)
    assert [n.name for n in report.not_replaced] == ["3"]  # PReLU: no class of that name here
    with pytest.raises(ValueError, match="calls have none"):
        actlab.swap(model, anl.TorchNamed, functional=True)


@pytest.mark.parametrize("model_name", ["resnet18", "vit_tiny_patch16_224"])
def test_timm_act_layer(model_name):
    timm = pytest.importorskip("timm", reason="timm is not installed (it needs torchvision)")
    torch.manual_seed(0)
    model = timm.create_model(model_name, act_layer=anl.GELU, pretrained=False, num_classes=3)
    assert any(type(m) is anl.GELU for m in model.modules())
    x = torch.randn(2, 3, 224, 224)
    out = model(x)
    out.sum().backward()
    assert out.shape == (2, 3) and all(p.grad is not None for p in model.parameters() if p.requires_grad)
