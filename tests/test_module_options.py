"""Identifiers that carry how a module runs the function: "gelu(memory='fewbit', bits=3)",
"relu(inplace=True)" (registry.MODULE_OPTIONS), so an arena entry or a swap target can name them."""

import pickle

import pytest
import torch

import actlab
from actlab.catalog import ParameterError
from actlab.nn import Activation, create_activation


def test_the_call_string_round_trips_and_compares():
    act = actlab.get("gelu(memory='fewbit', bits=3)")
    assert repr(act) == "gelu(memory='fewbit', bits=3)"
    assert act == actlab.get("gelu(bits=3, memory='fewbit')") == actlab.get("gelu", memory="fewbit", bits=3)
    assert act != actlab.get("gelu") and act != actlab.get("gelu(memory='fewbit', bits=2)")
    assert len({act, actlab.get("gelu(memory='fewbit', bits=3)"), actlab.get("gelu")}) == 2
    assert actlab.deserialize(actlab.serialize(act)) == act
    assert pickle.loads(pickle.dumps(act)) == act
    # the defaults leave the plain identifier as it was
    assert repr(actlab.get("gelu(memory='exact', inplace=False, bits=None)")) == "gelu"


def test_modules_built_from_the_identifier_take_the_options():
    m = create_activation("gelu(memory='fewbit', bits=3)")
    assert isinstance(m, Activation) and (m.memory, m.bits) == ("fewbit", 3)
    assert repr(m.activation) == "gelu"  # the function itself, the options on the module
    x = torch.randn(64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        m(x)
    assert sum(t.numel() * t.element_size() for t in saved) <= 64 * 3 / 8  # the 3-bit code only
    relu = create_activation("leaky_relu(negative_slope=0.1, inplace=True)")
    assert relu.inplace and relu.activation.params["negative_slope"] == 0.1
    h = torch.tensor([-2.0, 3.0], requires_grad=True) * 1
    assert relu(h) is h
    # a keyword given to the module wins over the identifier's
    assert Activation("gelu(memory='fewbit', bits=3)", bits=2).bits == 2


def test_a_bound_activation_called_on_a_tensor_uses_the_options():
    act = actlab.get("gelu(memory='fewbit', bits=3)")
    x = torch.randn(16, generator=torch.Generator().manual_seed(1), requires_grad=True)
    y = act(x)
    torch.testing.assert_close(y, actlab.get("gelu")(x), rtol=0, atol=0)  # the same forward
    assert "Memory" in type(y.grad_fn).__name__


@pytest.mark.parametrize(
    "text, error, words",
    [
        ("gelu(memory='fast')", ParameterError, "'exact', 'mask', 'fewbit'"),
        ("gelu(bits=9)", ParameterError, "[1, 4]"),
        ("gelu(inplace='yes')", ParameterError, "inplace"),
        ("relu(memory='fewbit', bits=3)", ValueError, "memory='mask'"),
        ("gelu(inplace=True)", ValueError, "inplace=True is not possible"),
        ("prelu(memory='mask')", TypeError, "unexpected parameter"),
    ],
)
def test_bad_options_are_refused_clearly(text, error, words):
    with pytest.raises(error, match=None) as info:
        create_activation(text)
    assert words in str(info.value)
