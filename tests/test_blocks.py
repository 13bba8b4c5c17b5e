"""actlab.nn.blocks: residual blocks and additive attention."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest
import torch
from torch.func import functional_call

import actlab
import actlab.nn as anl
from actlab.nn import AdditiveAttention, ResidualBlock
from actlab.nn.blocks import normalizer_names

F64 = torch.float64


def _randomize(module: torch.nn.Module, seed: int, scale: float = 0.5) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * scale)


def _gradcheck_module(module: torch.nn.Module, *inputs: torch.Tensor, **kwargs: object) -> None:
    names = [n for n, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in module.parameters()]

    def fn(*args: torch.Tensor) -> object:
        return functional_call(module, dict(zip(names, args[len(inputs) :])), args[: len(inputs)], kwargs)

    assert torch.autograd.gradcheck(fn, (*inputs, *params), eps=1e-6, atol=1e-6, rtol=1e-5)


def _leaky(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, 0.2 * x)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * w + b


# --------------------------------------------------------------------------- ResidualBlock
@pytest.mark.parametrize("pre_activation", [False, True], ids=["post", "pre"])
@pytest.mark.parametrize("norm", [None, "layer"])
def test_residual_mlp_matches_numpy_reference(pre_activation: bool, norm: str | None) -> None:
    torch.manual_seed(0)
    block = ResidualBlock(5, "leaky_relu(negative_slope=0.2)", pre_activation=pre_activation, norm=norm, hidden=7)
    block = block.double()
    _randomize(block, 0)
    x = torch.randn(4, 5, dtype=F64, generator=torch.Generator().manual_seed(1))
    p = {n: v.detach().numpy() for n, v in block.named_parameters()}
    xn = x.numpy()

    def lin(v: np.ndarray, k: int) -> np.ndarray:
        return v @ p[f"layer{k}.weight"].T + p.get(f"layer{k}.bias", 0.0)

    def nrm(v: np.ndarray, k: int) -> np.ndarray:
        return v if norm is None else _layer_norm(v, p[f"norm{k}.weight"], p[f"norm{k}.bias"])

    if pre_activation:
        expected = xn + lin(_leaky(nrm(lin(_leaky(nrm(xn, 1)), 1), 2)), 2)
    else:
        expected = _leaky(xn + nrm(lin(_leaky(nrm(lin(xn, 1), 1)), 2), 2))
    np.testing.assert_allclose(block(x).detach().numpy(), expected, rtol=1e-12, atol=1e-14)


def test_residual_layers_have_bias_only_where_no_norm_follows() -> None:
    post = ResidualBlock(4, norm="batch")
    assert post.layer1.bias is None and post.layer2.bias is None
    pre = ResidualBlock(4, norm="batch", pre_activation=True)
    assert pre.layer1.bias is None and pre.layer2.bias is not None
    plain = ResidualBlock(4, norm=None)
    assert plain.layer1.bias is not None and plain.layer2.bias is not None


def test_pre_activation_skip_path_is_the_identity() -> None:
    """He et al. 2016b: with the residual branch at zero, a pre-activation block passes x unchanged."""
    torch.manual_seed(1)
    for kind, x in (("mlp", torch.randn(3, 6)), ("conv", torch.randn(2, 6, 4, 4))):
        block = ResidualBlock(6, "elu", kind=kind, pre_activation=True)
        with torch.no_grad():
            block.layer2.weight.zero_()
            block.layer2.bias.zero_()
        assert torch.equal(block(x), x)
        post = ResidualBlock(6, "elu", kind=kind)
        with torch.no_grad():
            post.layer2.weight.zero_()
        post.eval()  # batch norm with its initial statistics: norm2(0) = 0
        torch.testing.assert_close(post(x), torch.nn.functional.elu(x))


@pytest.mark.parametrize("pre_activation", [False, True], ids=["post", "pre"])
def test_residual_conv_is_the_documented_composition(pre_activation: bool) -> None:
    torch.manual_seed(2)
    block = ResidualBlock(3, "gelu", kind="conv", pre_activation=pre_activation, norm="layer", hidden=4).double()
    _randomize(block, 2)
    x = torch.randn(2, 3, 5, 5, dtype=F64)
    F = torch.nn.functional
    conv = lambda v, k: F.conv2d(v, getattr(block, f"layer{k}").weight, getattr(block, f"layer{k}").bias, padding=1)  # noqa: E731
    gn = lambda v, k: F.group_norm(v, 1, getattr(block, f"norm{k}").weight, getattr(block, f"norm{k}").bias)  # noqa: E731
    act = actlab.torch.functional.gelu
    if pre_activation:
        expected = x + conv(act(gn(conv(act(gn(x, 1)), 1), 2)), 2)
    else:
        expected = act(x + gn(conv(act(gn(conv(x, 1), 1)), 2), 2))
    torch.testing.assert_close(block(x), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_residual_gradcheck(kind: str) -> None:
    torch.manual_seed(3)
    hidden = 3 if kind == "mlp" else 1  # few conv weights: gradcheck perturbs each one
    block = ResidualBlock(2, "softplus", kind=kind, pre_activation=True, norm="layer", hidden=hidden).double()
    _randomize(block, 3)
    shape = (3, 2) if kind == "mlp" else (1, 2, 2, 3)
    x = torch.randn(*shape, dtype=F64, requires_grad=True)
    _gradcheck_module(block, x)


def test_each_activation_site_is_its_own_module() -> None:
    block = ResidualBlock(4, "gelu(approximate='tanh')")
    assert block.act1 is not block.act2
    assert repr(block.act1.activation) == "gelu(approximate='tanh')"


@pytest.mark.skipif(not hasattr(anl, "create_activation"), reason="trainable activations not available")
def test_trainable_activation_sites_learn_separately() -> None:
    block = ResidualBlock(4, "prelu")
    p1, p2 = list(block.act1.parameters()), list(block.act2.parameters())
    assert p1 and p2 and p1[0] is not p2[0]


def test_residual_invalid_arguments_and_inputs() -> None:
    with pytest.raises(ValueError, match="kind"):
        ResidualBlock(4, kind="rnn")
    with pytest.raises(ValueError, match="norm"):
        ResidualBlock(4, norm="group")
    with pytest.raises(ValueError, match="features"):
        ResidualBlock(0)
    with pytest.raises(KeyError, match="relu"):
        ResidualBlock(4, "reluu")
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        ResidualBlock(4, norm=None)(torch.randn(2, 5))
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
        ResidualBlock(4, kind="conv")(torch.randn(2, 4, 5))


# --------------------------------------------------------------------------- AdditiveAttention
def _np_attention(att: AdditiveAttention, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> tuple:
    p = {n: t.detach().numpy() for n, t in att.named_parameters()}
    hidden = np.tanh((q @ p["query_proj.weight"].T)[:, :, None, :] + (k @ p["key_proj.weight"].T)[:, None, :, :])
    scores = (hidden @ p["score.weight"].T)[..., 0]
    weights = np.asarray(actlab.get(att.normalizer)(scores))  # actlab's NumPy path
    return weights @ v, weights


@pytest.mark.parametrize("normalizer", ["softmax", "sparsemax", "entmax15"])
def test_attention_matches_numpy_reference(normalizer: str) -> None:
    torch.manual_seed(4)
    att = AdditiveAttention(3, 4, 5, normalizer=normalizer).double()
    _randomize(att, 4, scale=1.0)
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(*s, dtype=F64, generator=gen) for s in ((2, 3, 3), (2, 6, 4), (2, 6, 2)))
    context, weights = att(q, k, v)
    ref_c, ref_w = _np_attention(att, q.numpy(), k.numpy(), v.numpy())
    np.testing.assert_allclose(weights.detach().numpy(), ref_w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(context.detach().numpy(), ref_c, rtol=1e-10, atol=1e-12)
    c1, w1 = att(q[:, 0], k, v)  # one query per batch row: the query axis is dropped
    assert w1.shape == (2, 6) and c1.shape == (2, 2)
    torch.testing.assert_close(w1, weights[:, 0])


@pytest.mark.parametrize("normalizer", normalizer_names())
def test_attention_weights_sum_to_one_and_masked_keys_get_zero(normalizer: str) -> None:
    torch.manual_seed(6)
    att = AdditiveAttention(3, 4, 8, normalizer=normalizer)
    q, k = torch.randn(3, 2, 3), torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 0, 1, 0], [0, 0, 0, 0, 1], [1, 1, 1, 1, 1]], dtype=torch.bool)
    _, weights = att(q, k, mask=mask)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2))
    assert torch.equal(weights.masked_select(~mask.unsqueeze(1).expand_as(weights)), torch.zeros(6 * 2))
    assert torch.equal(weights[1, :, 4], torch.ones(2))  # a single valid key takes all the weight


def test_fully_masked_query_gets_zero_weights_and_context() -> None:
    torch.manual_seed(7)
    att = AdditiveAttention(3, 4, 8)
    q, k = torch.randn(2, 3, requires_grad=True), torch.randn(2, 5, 4, requires_grad=True)
    mask = torch.tensor([[0, 0, 0, 0, 0], [1, 0, 1, 0, 1]], dtype=torch.bool)
    context, weights = att(q, k, mask=mask)
    assert torch.equal(weights[0], torch.zeros(5)) and torch.equal(context[0], torch.zeros(4))
    context.sum().backward()
    assert torch.isfinite(q.grad).all() and torch.isfinite(k.grad).all()


def test_sparsemax_attention_gives_exact_zeros() -> None:
    torch.manual_seed(8)
    att = AdditiveAttention(3, 4, 8, normalizer="sparsemax")
    with torch.no_grad():
        att.score.weight.mul_(10.0)  # spread the scores: sparsemax leaves the low ones out
    _, weights = att(torch.randn(4, 3), torch.randn(4, 7, 4))
    assert (weights == 0).sum() > 0
    torch.testing.assert_close(weights.sum(-1), torch.ones(4))
    soft = AdditiveAttention(3, 4, 8)
    soft.load_state_dict(att.state_dict())
    assert (soft(torch.randn(4, 3), torch.randn(4, 7, 4))[1] > 0).all()


@pytest.mark.parametrize("normalizer", ["softmax", "sparsemax", "entmax15"])
def test_attention_gradcheck(normalizer: str) -> None:
    torch.manual_seed(9)
    att = AdditiveAttention(2, 3, 4, normalizer=normalizer).double()
    _randomize(att, 9, scale=1.0)
    gen = torch.Generator().manual_seed(10)
    q = torch.randn(2, 2, dtype=F64, generator=gen, requires_grad=True)
    k = torch.randn(2, 4, 3, dtype=F64, generator=gen, requires_grad=True)
    v = torch.randn(2, 4, 2, dtype=F64, generator=gen, requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 1], [1, 1, 1, 1]], dtype=torch.bool)
    _gradcheck_module(att, q, k, v, mask=mask)


def test_attention_invalid_arguments_and_inputs() -> None:
    with pytest.raises(ValueError, match="probability maps.*softmax"):
        AdditiveAttention(3, 4, 5, normalizer="relu")
    with pytest.raises(ValueError, match="probability maps"):
        AdditiveAttention(3, 4, 5, normalizer="log_softmax")
    with pytest.raises(ValueError, match="axis"):
        AdditiveAttention(3, 4, 5, normalizer="softmax(axis=0)")
    with pytest.raises(ValueError, match="hidden_dim"):
        AdditiveAttention(3, 4, 0)
    att = AdditiveAttention(3, 4, 5)
    with pytest.raises(ValueError, match=r"keys must have shape \(2, keys, 4\)"):
        att(torch.randn(2, 3), torch.randn(2, 5, 3))
    with pytest.raises(ValueError, match="mask must be a bool tensor"):
        att(torch.randn(2, 3), torch.randn(2, 5, 4), mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match="values must have shape"):
        att(torch.randn(2, 3), torch.randn(2, 5, 4), torch.randn(2, 4, 4))


def test_normalizer_names_come_from_the_registry() -> None:
    names = normalizer_names()
    assert {"softmax", "sparsemax", "entmax15"} <= set(names)
    assert "log_softmax" not in names and "relu" not in names


# --------------------------------------------------------------------------- serialization
BLOCKS = {
    "residual_mlp": (lambda: ResidualBlock(4, "leaky_relu(negative_slope=0.2)", norm="layer"), (3, 4)),
    "residual_conv": (lambda: ResidualBlock(4, "silu", kind="conv", pre_activation=True, hidden=6), (2, 4, 3, 3)),
    "attention": (lambda: AdditiveAttention(4, 4, 6, normalizer="entmax15"), None),
}


@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_config_state_dict_and_pickle_round_trip(name: str) -> None:
    torch.manual_seed(11)
    make, shape = BLOCKS[name]
    block = make().eval()
    args = (torch.randn(*shape),) if shape else (torch.randn(2, 4), torch.randn(2, 5, 4))
    _randomize(block, 11)
    expected = block(*args)
    config = json.loads(json.dumps(block.get_config()))
    rebuilt = type(block).from_config(config).eval()
    assert rebuilt.get_config() == block.get_config()
    buf = io.BytesIO()
    torch.save(block.state_dict(), buf)
    buf.seek(0)
    rebuilt.load_state_dict(torch.load(buf))
    for a, b in zip(torch.utils._pytree.tree_leaves(rebuilt(*args)), torch.utils._pytree.tree_leaves(expected)):
        assert torch.equal(a, b)
    clone = pickle.loads(pickle.dumps(block))
    for a, b in zip(torch.utils._pytree.tree_leaves(clone(*args)), torch.utils._pytree.tree_leaves(expected)):
        assert torch.equal(a, b)
