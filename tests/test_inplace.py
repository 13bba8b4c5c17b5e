"""inplace=True (actlab.torch.inplace): generated over the registry. Where a spec runs in place the
output is written into the input, only it is saved, and the gradients equal the out-of-place ones
(torch autograd through actlab's ordinary path, the reference); everything else is refused with
the reason at construction (Activation) or call (functional form)."""

import math

import pytest
import torch

import actlab.torch.functional as F
from actlab.nn import Activation
from actlab.registry import all_specs
from actlab.torch.inplace import inplace_rule

ELEMENTWISE = [s for s in all_specs() if s.kind == "elementwise"]
ALLOWED = [s.name for s in ELEMENTWISE if inplace_rule(s, s.defaults)[0] is not None]
REFUSED = [s.name for s in all_specs() if s.kind != "layer" and s.name not in ALLOWED]


def _inputs(spec, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(257, generator=g, dtype=torch.float64) * 3
    kinks = torch.tensor([k for k, _ in spec.kink_points()], dtype=torch.float64)
    return torch.cat([x, kinks, torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64)]).to(dtype)


def test_issue_examples_are_classified():
    # known answers: the relu family and selu run in place; silu, mish, hardswish, gelu need the
    # input; |x| loses the sign (both slopes give y = 0... and every y > 0)
    for name in ("relu", "leaky_relu", "relu6", "hard_tanh", "threshold", "selu", "softshrink"):
        assert name in ALLOWED, name
    for name in ("silu", "mish", "hardswish", "gelu", "absolute", "softmax", "rrelu"):
        assert name in REFUSED, name
    # hard_sigmoid = clamp(x / 6 + 1/2, 0, 1): x / 6 + 1/2 rounds to 1 just below x = 3, where the
    # saturated piece (slope 0) has the same output
    spec = next(s for s in ELEMENTWISE if s.name == "hard_sigmoid")
    assert "rounds to 1" in inplace_rule(spec, spec.defaults)[1]


def _around_kinks(spec, dtype, count=64):
    """The float32 inputs nearest each kink (``count`` on each side), in ``dtype``."""
    out = []
    for at, _ in spec.kink_points():
        for direction in (-math.inf, math.inf):
            v = torch.tensor([at], dtype=torch.float32)
            for _ in range(count):
                v = torch.nextafter(v, torch.tensor([direction]))
                out.append(float(v))
        out.append(at)
    return torch.unique(torch.tensor(out, dtype=torch.float64).to(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("name", ALLOWED)
def test_slope_from_the_rounded_output_next_to_every_kink(name, dtype):
    # where a sloped piece's output rounds onto another piece's value, the in-place backward would
    # take the wrong slope: such functions are refused, the allowed ones must agree here
    spec = next(s for s in ELEMENTWISE if s.name == name)
    if inplace_rule(spec, spec.defaults)[0].formula or not spec.kink_points():
        pytest.skip("f' from derivative_from_output, or no kink")
    x0 = _around_kinks(spec, dtype)
    a = x0.clone().requires_grad_()
    (want,) = torch.autograd.grad(getattr(F, name)(a), a, torch.ones_like(a))
    b = x0.clone().requires_grad_()
    c = b * 1
    (got,) = torch.autograd.grad(getattr(F, name)(c, inplace=True), b, torch.ones_like(b))
    bad = (got != want).nonzero().flatten()
    assert bad.numel() == 0, (x0[bad[:3]].tolist(), want[bad[:3]].tolist(), got[bad[:3]].tolist())


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", ALLOWED)
def test_inplace_matches_out_of_place(name, dtype):
    spec = next(s for s in ELEMENTWISE if s.name == name)
    x0 = _inputs(spec, dtype)
    a = x0.clone().requires_grad_()
    ref = getattr(F, name)(a)
    grad = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype)
    ref.backward(grad)

    b = x0.clone().requires_grad_()
    c = b * 1  # a non-leaf: in place on a leaf that requires grad is PyTorch's error
    version = c._version
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        out = getattr(F, name)(c, inplace=True)
    assert out is c and c._version > version
    assert torch.equal(c.detach(), ref.detach())
    # only the output is kept: one tensor, the input's own storage (now holding the output)
    assert len(saved) == 1 and saved[0].data_ptr() == c.data_ptr()
    out.backward(grad)
    if inplace_rule(spec, spec.defaults)[0].formula:
        # f'(y) by derivative_from_output against the reference's own backward (torch's for a
        # native spec, or f'(x)): the same value, rounded differently (selu's lambda (y + alpha)
        # for x << 0 keeps f' to an absolute ulp of lambda alpha)
        tol = dict(rtol=1e-10, atol=1e-15) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(b.grad, a.grad, **tol)
    else:  # piecewise linear: the slope itself, exactly (kinks included)
        assert torch.equal(b.grad, a.grad)


@pytest.mark.parametrize("name", REFUSED)
def test_refused_with_reason(name):
    with pytest.raises(ValueError, match=f"inplace=True is not possible for {name}: .*; use inplace=False"):
        Activation(name, inplace=True)
    spec = next(s for s in all_specs() if s.name == name)
    x = torch.randn(4, 6) if spec.kind == "elementwise" else torch.randn(4, 6).abs()
    with pytest.raises(ValueError, match=f"inplace=True is not possible for {name}"):
        getattr(F, name)(x, inplace=True)


def test_refusal_depends_on_parameters():
    Activation("threshold", threshold=0.5, value=0.0, inplace=True)
    # value 2 > threshold 0.5: y = 2 comes from x <= 0.5 (slope 0) and from x = 2 (slope 1)
    with pytest.raises(ValueError, match="slopes 0 and 1"):
        Activation("threshold", threshold=0.5, value=2.0, inplace=True)


def test_module_inplace_writes_into_input_and_reprs():
    act = Activation("leaky_relu", negative_slope=0.2, inplace=True)
    assert repr(act) == "Activation(leaky_relu, negative_slope=0.2, inplace=True)"
    x = torch.tensor([-2.0, 0.0, 3.0])
    assert act(x) is x and x.tolist() == pytest.approx([-0.4, 0.0, 3.0])


def test_flag_validated():
    with pytest.raises(TypeError, match="inplace must be True or False, got 1"):
        Activation("relu", inplace=1)
    with pytest.raises(TypeError, match="inplace must be True or False"):
        F.relu(torch.randn(3), inplace="yes")
    with pytest.raises(ValueError, match="learnable"):
        Activation("leaky_relu", negative_slope="learnable", inplace=True)


def test_leaf_view_and_no_grad():
    leaf = torch.randn(5, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        F.relu(leaf, inplace=True)
    with pytest.raises(RuntimeError, match="view of a leaf Variable"):
        F.relu(leaf[:2], inplace=True)
    # a strided view of a non-leaf: only the view changes, gradients flow through both parts
    b = torch.tensor([[-1.0, 2.0, -3.0, 4.0], [5.0, -6.0, 7.0, -8.0]], requires_grad=True)
    c = b * 2
    F.relu(c[:, ::2], inplace=True)
    assert c.tolist() == [[0.0, 4.0, 0.0, 8.0], [10.0, -12.0, 14.0, -16.0]]
    c.sum().backward()
    assert b.grad.tolist() == [[0.0, 2.0, 0.0, 2.0], [2.0, 2.0, 2.0, 2.0]]
    # no_grad: written in place, nothing recorded (PyTorch allows this on a leaf, too)
    with torch.no_grad():
        assert F.relu(leaf, inplace=True) is leaf
    assert (leaf >= 0).all() and leaf.grad_fn is None


def test_half_precision_piecewise_gradient_exact():
    x0 = torch.randn(64, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    a = x0.clone().requires_grad_()
    F.hard_tanh(a).sum().backward()
    b = x0.clone().requires_grad_()
    F.hard_tanh(b * 1, inplace=True).sum().backward()
    assert torch.equal(a.grad, b.grad)


def test_torch_compile():
    act = Activation("leaky_relu", negative_slope=0.1, inplace=True)

    def step(x):
        return act(x * 2).sum()

    # aot_eager: AOTAutograd functionalises the in-place Function (mark_dirty) into the graph
    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    x = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    compiled(x).backward()
    assert x.grad.tolist() == pytest.approx([0.2, 2.0, 2.0])


def test_where_refused_and_old_pickles():
    with pytest.raises(TypeError, match="where= is accepted by the normalisers only"):
        F.relu(torch.randn(3), inplace=True, where=torch.ones(3, dtype=torch.bool))
    act = Activation("relu")
    del act.inplace, act._inplace_rule  # a module pickled before inplace= existed
    assert repr(act) == "Activation(relu)" and act(torch.tensor([-1.0])).tolist() == [0.0]


def test_create_activation_and_swap_target():
    import actlab
    from actlab.nn import create_activation

    assert create_activation("relu", inplace=True).inplace
    with pytest.raises(ValueError, match="inplace=True is for catalog functions"):
        create_activation("prelu", inplace=True)
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh())
    model, _ = actlab.swap(model, "leaky_relu(negative_slope=0.1, inplace=True)")
    assert repr(model[1]) == "Activation(leaky_relu, negative_slope=0.1, inplace=True)"
    h = torch.tensor([[-1.0, 2.0, -3.0]])
    assert model[1](h) is h and h[0].tolist() == pytest.approx([-0.1, 2.0, -0.3])
