"""actlab.nn.Activation and the functional namespace: modules behave like torch.nn's."""

from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch

import actlab
from actlab.nn import Activation
from actlab.torch import functional as F


def test_repr_shows_name_and_non_default_params():
    assert repr(Activation("gelu")) == "Activation(gelu)"
    assert repr(Activation("leaky_relu", negative_slope=0.2)) == "Activation(leaky_relu, negative_slope=0.2)"
    assert repr(Activation("leaky_relu(negative_slope=0.2)")) == "Activation(leaky_relu, negative_slope=0.2)"


def test_invalid_parameters_raise_at_construction():
    with pytest.raises(ValueError, match="alpha"):
        Activation("celu", alpha=0.0)


def test_state_dict_deepcopy_pickle():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), Activation("gelu", approximate="tanh"))
    x = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))
    want = model(x)
    clone = copy.deepcopy(model)
    torch.testing.assert_close(clone(x), want)
    restored = pickle.loads(pickle.dumps(model))
    torch.testing.assert_close(restored(x), want)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 3), Activation("gelu", approximate="tanh"))
    fresh.load_state_dict(torch.load(buf))
    torch.testing.assert_close(fresh(x), want)


@pytest.mark.parametrize(
    "name, backend", [("gelu", "aot_eager"), ("mish", "aot_eager"), ("leaky_relu", "aot_eager"), ("gelu", "inductor")]
)
def test_torch_compile(name, backend):
    torch._dynamo.reset()
    act = Activation(name)
    x = torch.linspace(-4, 4, 33, dtype=torch.float32, requires_grad=True)
    eager = act(x)
    (g_eager,) = torch.autograd.grad(eager.sum(), x)
    compiled = torch.compile(act, backend=backend, fullgraph=True)
    out = compiled(x)
    (g_compiled,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(out, eager)
    torch.testing.assert_close(g_compiled, g_eager)


def test_functional_namespace_and_aliases():
    x = torch.tensor([-1.0, 0.5])
    torch.testing.assert_close(F.logistic(x), torch.sigmoid(x))
    torch.testing.assert_close(F.leaky_relu(x, 0.2), torch.tensor([-0.2, 0.5]))
    with pytest.raises(AttributeError, match="did you mean"):
        F.gleu  # noqa: B018
    assert "gelu" in dir(F)


def test_bound_activation_dispatches_on_tensors():
    act = actlab.get("tanh")
    x = torch.tensor([0.25], dtype=torch.float64)
    assert isinstance(act(x), torch.Tensor)
    torch.testing.assert_close(act(x), torch.tanh(x))


def test_rrelu_is_random_in_training_only():
    act = Activation("rrelu")
    x = -torch.ones(1000)
    act.eval()
    slope = (1 / 8 + 1 / 3) / 2
    torch.testing.assert_close(act(x), torch.full_like(x, -slope))
    act.train()
    torch.manual_seed(0)
    a = act(x)
    torch.manual_seed(0)
    b = act(x)
    torch.testing.assert_close(a, b)  # reproducible under torch.manual_seed
    assert a.unique().numel() > 100 and (-a).min() >= 1 / 8 and (-a).max() <= 1 / 3


def test_backward_saves_only_what_it_needs():
    """Backward keeps one tensor: the fused kernels (float32) the input; the eager path (float64) the
    output when f' is a function of it, else the input."""
    from actlab.torch import kernels

    for name in actlab.list_activations(kind="elementwise"):
        spec = actlab.get_spec(name)
        if spec.native:
            continue
        for dtype in (torch.float32, torch.float64):
            x = torch.randn(8, generator=torch.Generator().manual_seed(0), dtype=dtype).requires_grad_(True)
            saved = []
            with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
                y = F.__getattr__(name)(x)
            assert len(saved) == 1, (name, dtype)
            fused = kernels.enabled() and kernels.has_kernel(spec, dtype=dtype)
            want = x if fused or spec.derivative_from_output is None else y
            assert saved[0].data_ptr() == want.data_ptr(), (name, dtype)
