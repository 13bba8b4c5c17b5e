"""The per-call path (issue #11 item 2): the prebuilt call of a bound activation and of each distinct
functional call, and the C++ backward node of ``actlab_kernels::apply``. What it must keep: the
routing (fused kernel, PyTorch's op, the eager Function), graph semantics (saved tensors, freeing,
double backward), the transforms, and copies of modules."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from actlab.nn import Activation
from actlab.torch import functional as F
from actlab.torch import kernels

pytestmark = pytest.mark.skipif(not kernels.available(), reason="the fused kernels did not build here")


def _x(n: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).float() * 4


def _reference_grad(name: str, x: torch.Tensor, **params) -> torch.Tensor:
    """f'(x) from the float64 eager path (no kernel serves float64), rounded to float32."""
    x64 = x.double().requires_grad_()
    (g,) = torch.autograd.grad(getattr(F, name)(x64, **params).sum(), x64)
    return g.float()


def test_module_survives_pickle_and_deepcopy():
    act = Activation("leaky_relu", negative_slope=0.25)
    x = _x()
    for twin in (pickle.loads(pickle.dumps(act)), copy.deepcopy(act)):
        assert twin.params == act.params
        torch.testing.assert_close(twin(x), act(x), rtol=0, atol=0)
        torch.testing.assert_close(twin(x), torch.where(x > 0, x, 0.25 * x), rtol=0, atol=0)


def test_fused_backward_node_frees_its_input_and_refuses_a_second_backward():
    x = _x().requires_grad_()
    y = F.silu(x)
    assert y.grad_fn.name() == "ActlabFusedBackward"
    y.sum().backward(retain_graph=True)
    first = x.grad.clone()
    y.sum().backward()  # the graph was retained: the same gradient again
    torch.testing.assert_close(x.grad, 2 * first, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="second time"):
        y.sum().backward()


def test_fused_backward_saves_only_the_input_through_saved_tensors_hooks():
    x = _x().requires_grad_()
    packed = []

    def pack(t):
        packed.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = F.silu(x)
    assert len(packed) == 1 and packed[0].data_ptr() == x.data_ptr()
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, _reference_grad("silu", x.detach()), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(("name", "params"), [("silu", {}), ("leaky_relu", {"negative_slope": 0.25})])
def test_double_backward_through_the_fused_node(name, params):
    x = _x(seed=1).requires_grad_()
    (g,) = torch.autograd.grad(getattr(F, name)(x, **params).sum(), x, create_graph=True)
    assert g.requires_grad
    (gg,) = torch.autograd.grad(g.sum(), x)
    x64 = x.detach().double().requires_grad_()
    (g64,) = torch.autograd.grad(getattr(F, name)(x64, **params).sum(), x64, create_graph=True)
    (gg64,) = torch.autograd.grad(g64.sum(), x64)
    torch.testing.assert_close(gg, gg64.float(), rtol=1e-5, atol=1e-6)


def test_each_distinct_functional_call_keeps_its_own_parameters():
    x = _x(seed=2)
    for slope in (0.5, 0.125, 0.5):
        torch.testing.assert_close(F.leaky_relu(x, slope), torch.where(x > 0, x, slope * x), rtol=0, atol=0)
        torch.testing.assert_close(
            F.leaky_relu(x, negative_slope=slope), torch.where(x > 0, x, slope * x), rtol=0, atol=0
        )
    with pytest.raises(ValueError, match="negative_slope"):
        F.leaky_relu(x, float("nan"))


@pytest.mark.parametrize("call", ["functional", "module"])
def test_routing_by_mode_and_dtype(call):
    f = F.hardswish if call == "functional" else Activation("hardswish")
    x = _x(seed=3)
    expected = x * torch.clamp(x + 3, 0, 6) / 6
    with torch.inference_mode():
        y = f(x)
    assert y.is_inference() and not y.requires_grad
    torch.testing.assert_close(y, expected)
    with torch.no_grad():
        assert not f(x.clone().requires_grad_()).requires_grad
    x64 = x.double().requires_grad_()
    y64 = f(x64)  # float64: the eager Function (no kernel), not the fused node
    assert y64.dtype == torch.float64 and y64.grad_fn.name() != "ActlabFusedBackward"
    xb = x.bfloat16().requires_grad_()
    yb = f(xb)
    assert yb.dtype == torch.bfloat16 and yb.grad_fn.name() == "ActlabFusedBackward"
    with kernels.use(False):
        y_off = f(x.clone().requires_grad_())
    assert y_off.grad_fn.name() != "ActlabFusedBackward"
    torch.testing.assert_close(y_off.detach(), expected)
    with pytest.raises(TypeError, match="floating-point"):
        f(torch.arange(4))


@pytest.mark.parametrize("call", ["functional", "module"])
def test_transforms_and_forward_ad_take_the_function(call):
    f = F.silu if call == "functional" else Activation("silu")
    x = _x(8, seed=4)
    expected = _reference_grad("silu", x)
    per_row = torch.func.vmap(torch.func.grad(lambda t: f(t).sum()))(x.reshape(2, 4)).reshape(-1)
    torch.testing.assert_close(per_row, expected, rtol=1e-5, atol=1e-7)
    _, tangent = torch.func.jvp(f, (x,), (torch.ones_like(x),))
    torch.testing.assert_close(tangent, expected, rtol=1e-5, atol=1e-7)
    with torch.autograd.forward_ad.dual_level():
        dual = torch.autograd.forward_ad.make_dual(x, torch.ones_like(x))
        tangent = torch.autograd.forward_ad.unpack_dual(f(dual)).tangent
    torch.testing.assert_close(tangent, expected, rtol=1e-5, atol=1e-7)


def test_bound_calls_are_shared_by_equal_configurations():
    """Each distinct (kernel, parameters) is bound once in C++: modules built in a loop do not grow the table."""
    bind = torch.ops.actlab_kernels.bind
    assert bind("leaky_relu", [0.25]) == bind("leaky_relu", [0.25])
    assert bind("leaky_relu", [0.25]) != bind("leaky_relu", [0.5])
    x = _x(seed=5)
    for slope in (0.25, 0.5):
        act = Activation("leaky_relu", negative_slope=slope)
        torch.testing.assert_close(act(x), torch.where(x > 0, x, slope * x), rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="no kernel named"):
        bind("not_a_kernel", [])


def test_bound_calls_with_a_none_parameter_stay_apart():
    # softplus' threshold=None is encoded as NaN: a bound call with another threshold must not be
    # taken for it (a NaN key compares unequal to everything, and once matched every key)
    x = torch.linspace(-3, 3, 7)
    linear = Activation("softplus", threshold=-1e30)  # x * beta > threshold everywhere: the identity
    plain = Activation("softplus")
    torch.testing.assert_close(linear(x), x, rtol=0, atol=0)
    with kernels.use(False):
        want = Activation("softplus")(x)
    torch.testing.assert_close(plain(x), want)
    assert not torch.equal(plain(x), x)
