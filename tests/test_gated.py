"""Gated linear units with their projections, maxout layers and channel maxout: NumPy-reference
forwards (the catalog's vector specs), gradcheck in float64 over input and weights, what backward
keeps, the LLaMA MLP, and bad configurations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import functional_call

import actlab
from actlab.nn import GLU, ChannelMaxout, Maxout, SwiGLU, create_activation
from actlab.nn.gated import _GatedLayer
from conftest import LAYERS

GATED = [s for s in LAYERS if s.module.startswith("actlab.nn.gated:") and s.name != "maxout_layer"]
gated = pytest.mark.parametrize("spec", GATED, ids=lambda s: s.name)


def _seeded(shape, seed=0, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _linear_numpy(x: np.ndarray, linear: torch.nn.Linear) -> np.ndarray:
    y = x @ linear.weight.detach().numpy().T
    return y + linear.bias.detach().numpy() if linear.bias is not None else y


def test_every_gated_variant_has_a_layer():
    variants = {cls.variant for cls in _GatedLayer.__subclasses__()}
    assert variants == {"glu", "gtu", "bilinear", "reglu", "geglu", "swiglu"}
    assert {s.name for s in GATED} == {f"{v}_layer" for v in variants}


@gated
@pytest.mark.parametrize("out_features, bias", [(None, True), (5, False)])
def test_gated_layer_matches_numpy_reference(spec, out_features, bias):
    torch.manual_seed(0)
    layer = create_activation(spec.name, in_features=4, hidden_features=6, out_features=out_features, bias=bias)
    layer = layer.double()
    x = _seeded((3, 2, 4))
    h = _linear_numpy(x.numpy(), layer.proj)
    want = actlab.get_spec(layer.variant)(h, axis=-1)  # the catalog's gating function on NumPy
    if out_features is not None:
        want = _linear_numpy(want, layer.out)
    torch.testing.assert_close(layer(x), torch.from_numpy(want), rtol=1e-12, atol=1e-13)
    assert (layer.proj.bias is None) is (not bias)
    assert layer(x).shape == (3, 2, out_features or 6)


@gated
def test_gated_layer_gradcheck_input_and_weights(spec):
    torch.manual_seed(1)
    layer = create_activation(spec.name, in_features=3, hidden_features=2, out_features=2).double()
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for _, p in layer.named_parameters()]
    x = _seeded((2, 3), seed=2).requires_grad_(True)
    if spec.name == "reglu_layer":  # keep the gate half off relu's kink at 0
        with torch.no_grad():
            params[names.index("proj.bias")][2:] += 0.5

    def f(x, *ps):
        return functional_call(layer, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params))


@gated
def test_gated_backward_saves_only_the_projection(spec):
    """The gating keeps one tensor, the projection [a, b]; a naive a * act(b) keeps more."""
    layer = create_activation(spec.name, in_features=8, hidden_features=16)
    x = _seeded((4, 8), dtype=torch.float32)
    h = layer.proj(x)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = layer.gate(h)
    assert len(saved) == 1 and saved[0].data_ptr() == h.data_ptr()
    y.sum().backward()  # and the backward works from it
    naive = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: naive.append(t) or t, lambda t: t):
        a, b = h.chunk(2, dim=-1)
        a * torch.nn.functional.silu(b)
    assert len(naive) >= 2  # the hook sees what a composition keeps: this test can fail


def test_swiglu_is_the_llama_mlp():
    torch.manual_seed(3)
    d, hidden = 8, 12
    gate_w, up_w, down_w = (_seeded(s, seed=i) for i, s in enumerate([(hidden, d), (hidden, d), (d, hidden)]))
    mlp = SwiGLU(d, hidden, d, bias=False).double()
    with torch.no_grad():
        mlp.proj.weight.copy_(torch.cat([up_w, gate_w]))  # value half first, the gate second
        mlp.out.weight.copy_(down_w)
    x = _seeded((5, d), seed=9)
    llama = (torch.nn.functional.silu(x @ gate_w.T) * (x @ up_w.T)) @ down_w.T
    torch.testing.assert_close(mlp(x), llama)
    assert [n for n, _ in mlp.named_parameters()] == ["proj.weight", "out.weight"]


def test_gated_layer_configuration_errors():
    with pytest.raises(ValueError, match="in_features"):
        GLU(None)
    with pytest.raises(ValueError, match="hidden_features"):
        SwiGLU(4, 0)
    with pytest.raises(ValueError, match=r"dimension 5 of axis 1 in shape \(2, 5\) is not divisible by 2"):
        create_activation("glu")(torch.ones(2, 5))  # the bare gating function with an odd split


def test_glu_layer_defaults_and_serialization():
    glu = GLU(6, 4)
    assert glu(torch.ones(2, 6)).shape == (2, 4) and glu.out is None
    data = actlab.serialize(glu)
    assert data == {"name": "glu_layer", "config": {"in_features": 6, "hidden_features": 4}}
    assert isinstance(create_activation(data), GLU)


# ----------------------------------------------------------------------------- maxout
def test_maxout_layer_matches_numpy_and_gradcheck():
    torch.manual_seed(4)
    layer = Maxout(5, 3, pieces=4).double()
    x = _seeded((7, 5), seed=5)
    z = _linear_numpy(x.numpy(), layer.linear)
    want = z.reshape(7, 3, 4).max(axis=-1)  # contiguous groups: output i = max of rows [4i, 4i + 4)
    torch.testing.assert_close(layer(x), torch.from_numpy(want))
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for _, p in layer.named_parameters()]
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, *ps: functional_call(layer, dict(zip(names, ps)), (x,)), (x, *params))


def test_maxout_layer_configuration_errors():
    with pytest.raises(ValueError, match="pieces"):
        Maxout(4, 2, pieces=0)
    with pytest.raises(ValueError, match="out_features is required"):
        Maxout(4, None)
    assert actlab.serialize(Maxout(4, 2, 3)) == {
        "name": "maxout_layer",
        "config": {"in_features": 4, "out_features": 2, "pieces": 3},
    }


def test_channel_maxout_on_feature_maps():
    pool = ChannelMaxout(pieces=2, dim=1).double()
    x = _seeded((2, 6, 3, 3), seed=6)
    want = x.numpy().reshape(2, 3, 2, 3, 3).max(axis=2)
    torch.testing.assert_close(pool(x), torch.from_numpy(want))
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(pool, (x,))
    with pytest.raises(ValueError, match=r"dimension 5 of axis 1 in shape \(2, 5, 3\) is not divisible by pieces=2"):
        pool(torch.ones(2, 5, 3, dtype=torch.float64))
    assert actlab.serialize(pool) == {"name": "maxout", "config": {"axis": 1}}
    channels_last = ChannelMaxout(pieces=3, dim=-1)
    assert channels_last(torch.ones(2, 4, 4, 9)).shape == (2, 4, 4, 3)
