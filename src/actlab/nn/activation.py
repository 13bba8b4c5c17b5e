"""``Activation(identifier, **params)``: any catalog activation as a ``torch.nn.Module``, with
learnable parameters where the catalog marks them trainable; ``create_activation`` builds the
module of any registry identifier (functions and layers)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import torch

from actlab.ops.torch_ops import TORCH
from actlab.registry import BoundActivation, get, get_spec
from actlab.torch import inplace as inplace_mod
from actlab.torch import rows
from actlab.torch.export import scriptable
from actlab.torch.functional import apply, autograd_function, bound_call

__all__ = ["Activation", "create_activation"]


class Activation(torch.nn.Module):
    """An activation module; ``Activation("leaky_relu", negative_slope=0.2)``.

    Accepts every identifier :func:`actlab.get` does. Invalid parameters raise here, at
    construction. Stochastic activations (rrelu) are random in ``train()`` mode only.

    A parameter the catalog marks trainable may be ``"learnable"`` (or ``"learnable(0.5)"`` to
    start at 0.5): it becomes an ``nn.Parameter`` of the same name, one value per channel with
    ``num_parameters=C`` (along ``channel_dim``, default 1):

    ``inplace=True`` (keyword-only): the output is written into the input and only it is kept for
    backward, for the functions whose derivative the output determines (:mod:`actlab.torch.inplace`:
    relu family, selu, ...); a ValueError with the reason for the others, at construction.

    >>> act = Activation("swish", beta="learnable")
    >>> act
    Activation(swish, beta='learnable')
    >>> [(name, tuple(p.shape)) for name, p in act.named_parameters()]
    [('beta', (1,))]
    """

    def __init__(
        self,
        identifier: Any = None,
        *,
        inplace: bool = False,
        memory: str = "exact",
        bits: int | None = None,
        **params: Any,
    ):
        super().__init__()
        act = get(identifier, **params)
        if not isinstance(act, BoundActivation):
            raise TypeError(f"Activation needs a registered activation, got the callable {identifier!r}")
        # options an identifier carries ("gelu(memory='fewbit', bits=3)"); the keywords win
        act, carried = act.split_module_options()
        inplace = carried.get("inplace", False) if inplace is False else inplace
        memory = carried.get("memory", "exact") if memory == "exact" else memory
        bits = carried.get("bits") if bits is None else bits
        if act.spec.kind == "layer":
            raise TypeError(
                f"{act.name} is a layer with trained weights: build it with "
                f"actlab.nn.create_activation({repr(act)!r}) (or {act.spec.module.replace(':', '.')})"
            )
        self.activation = act
        # memory="mask"/"fewbit" (actlab.torch.memory): validated here; None for "exact"
        self.memory, self.bits, self._memory_call = memory, bits, None
        if memory != "exact" or bits is not None:
            if inplace is not False:
                raise ValueError(f"{act.name}: inplace=True keeps the output and memory={memory!r} a code: choose one")
            if act.learnable:
                raise ValueError(
                    f"{act.name}: memory={memory!r} needs fixed parameters; {', '.join(sorted(act.learnable))} "
                    f"learnable (use memory='exact')"
                )
            from actlab.torch.memory import memory_function

            self._memory_call = memory_function(act.spec, act.params, memory, bits)
        if act.learnable:
            if act.name not in LEARNABLE_FORMS:  # a user spec marked trainable without a torch form
                raise ValueError(f"{act.name} has no learnable form in actlab.nn (parameters {sorted(act.learnable)})")
            for name in act.spec.param_names:
                if name in act.learnable:
                    value = torch.full((act.num_parameters,), float(act.params[name]))
                    self.register_parameter(name, torch.nn.Parameter(value))
        else:
            autograd_function(act.spec)  # built now, outside any torch.compile trace
        # inplace=True: the output overwrites the input and backward keeps only it (actlab.torch.inplace)
        self.inplace = inplace_mod.validate_flag(inplace, f"Activation({act.name})")
        self._inplace_rule = None
        if inplace:
            if act.learnable:
                raise ValueError(f"{act.name}: inplace=True is not possible with learnable parameters; use False")
            self._inplace_rule = inplace_mod.check_inplace(act.spec, act.params, act.name)
        self._fast_call = self._plain_call()

    def _plain_call(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        # the prebuilt call serves the plain form only (not inplace=, not a memory mode)
        if getattr(self, "_inplace_rule", None) is not None or getattr(self, "_memory_call", None) is not None:
            return None
        return _fast_call(self.activation)

    # The prebuilt calls are closures (not picklable): rebuilt on unpickling and copying.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_memory_call"] = None  # rebuilt from memory and bits
        state.pop("_fast_call", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        memory, bits = state.get("memory", "exact"), state.get("bits")
        if memory != "exact" or bits is not None:
            from actlab.torch.memory import memory_function

            self._memory_call = memory_function(self.activation.spec, self.activation.params, memory, bits)
        self._fast_call = self._plain_call()

    @property
    def spec(self) -> Any:
        return self.activation.spec

    @property
    def name(self) -> str:
        return self.activation.name

    @property
    def params(self) -> dict[str, Any]:
        """The parameters as configured (a learnable one: its initial value; see ``named_parameters``)."""
        return dict(self.activation.params)

    @property
    def actlab_activation(self) -> BoundActivation:
        """What :func:`actlab.serialize` writes for this module (learned values live in the state_dict)."""
        return self.activation

    def forward(self, x: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
        """``where``: a boolean mask, for the normalisers only (softmax family, sparsemax, entmax)."""
        if where is None and self._fast_call is not None:
            return self._fast_call(x)
        act = self.activation
        memory_call = getattr(self, "_memory_call", None)  # (absent from modules pickled before memory=)
        if memory_call is not None and where is None:
            return memory_call(x)
        rule = getattr(self, "_inplace_rule", None)  # (absent from modules pickled before inplace=)
        if rule is not None and where is None:
            return inplace_mod.apply_inplace(act.spec, x, act.params, rule)
        if not act.learnable:
            return apply(act.spec, x, act.params, training=self.training, where=where)
        if where is not None:
            raise TypeError(f"{act.name}: where= is accepted by the normalisers only")
        if not (isinstance(x, torch.Tensor) and x.is_floating_point()):
            raise TypeError(f"{act.name}: needs a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        # float16/bfloat16 in float32, rounded once (as the functional path); autograd rounds the
        # input gradient once on its way back through the cast.
        low = x.dtype in (torch.float16, torch.bfloat16)
        work = x.float() if low else x
        values = dict(act.params)
        for name in act.learnable:
            values[name] = per_channel(getattr(self, name), work, act.channel_dim, act.name)
        y = LEARNABLE_FORMS[act.name](work, **values)
        return y.to(x.dtype) if low else y

    def __prepare_scriptable__(self) -> torch.nn.Module:
        """torch.jit.script compiles a trace in plain ATen ops (actlab.torch.export.scriptable)."""
        return scriptable(self)

    def extra_repr(self) -> str:
        cfg = self.activation.config
        flags = ["inplace=True"] if getattr(self, "inplace", False) else []
        if getattr(self, "_memory_call", None) is not None:
            flags += [f"memory={self.memory!r}"] + ([f"bits={self.bits!r}"] if self.bits is not None else [])
        return ", ".join([self.name] + [f"{k}={v!r}" for k, v in cfg.items()] + flags)


def _fast_call(act: BoundActivation) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The prebuilt per-tensor call of a fixed deterministic elementwise activation (validated and
    encoded once, here), or None where ``forward`` takes the general path."""
    spec = act.spec
    if not act.learnable and rows.has_kernel(spec.name):  # the row kernels: bound once (rows.bound_call)
        return bound_call(spec, act.params)
    if act.learnable or spec.kind != "elementwise" or spec.train_forward is not None or spec.masked is not None:
        return None
    return bound_call(spec, act.params)


# ----------------------------------------------------------------------------- per-channel values
def channel_axis(x: torch.Tensor, channel_dim: int, num_parameters: int, owner: str) -> int:
    """The axis of ``x`` that holds the channels; a ValueError naming both arguments and the shape
    when it does not exist or its size is not ``num_parameters``."""
    ndim = x.dim()
    if not -ndim <= channel_dim < ndim:
        raise ValueError(
            f"{owner}: channel_dim={channel_dim} is out of range for an input of shape {tuple(x.shape)} "
            f"(num_parameters={num_parameters} needs a channel axis)"
        )
    axis = channel_dim % ndim
    if x.shape[axis] != num_parameters:
        raise ValueError(
            f"{owner}: num_parameters={num_parameters} does not match the input's {x.shape[axis]} channels "
            f"along channel_dim={channel_dim} (input shape {tuple(x.shape)}); use num_parameters=1 "
            f"(shared) or {x.shape[axis]}, or set channel_dim to the channel axis"
        )
    return axis


def per_channel(value: torch.Tensor, x: torch.Tensor, channel_dim: int, owner: str) -> torch.Tensor:
    """A parameter of shape (n,) cast to x's dtype and shaped to broadcast along the channel axis."""
    value = value.to(x.dtype)
    n = value.shape[0]
    if n == 1:
        return value.reshape(())
    axis = channel_axis(x, channel_dim, n, owner)
    shape = [1] * x.dim()
    shape[axis] = n
    return value.reshape(shape)


# ----------------------------------------------------------------------------- learnable forms
# torch forms of the catalog functions with tensor parameters, valid over the whole range a trained
# parameter may reach; autograd gives the gradients for input and parameters. Where the catalog's
# own forward is already written for tensor parameters (no branching on their values) it is used
# as it is; the others branch on parameter values to reach their accuracy at a fixed value
# (double-word products, exact roots), which a tensor parameter cannot do, so they have a plain form
# here, tested against the catalog's NumPy forward at the same values.
def _catalog_form(name: str) -> Callable[..., torch.Tensor]:
    def form(x: torch.Tensor, **params: Any) -> torch.Tensor:
        return get_spec(name).forward(x, TORCH, **params)

    form.__name__ = f"{name}_form"
    return form


def _leaky_relu(x: torch.Tensor, negative_slope: Any) -> torch.Tensor:
    return torch.where(x > 0, x, negative_slope * x)  # f'(0) = negative_slope, as the catalog


def _swish(x: torch.Tensor, beta: Any) -> torch.Tensor:
    # x / (1 + e^-z): autograd's derivative e^-z / (1 + e^-z)^2 has no 1 - sigmoid cancellation
    # (torch.sigmoid's backward y (1 - y) loses d/dbeta for z > 17 in float32). Below -lim, where
    # (1 + e^-z)^2 would overflow (inf / inf), sigmoid(z) = e^z to within e^-lim relative: x e^z.
    z = beta * x
    lim = 340.0 if x.dtype == torch.float64 else 42.0
    tail = x * torch.exp(torch.clamp(z, max=-lim))
    return torch.where(z < -lim, tail, x / (1.0 + torch.exp(-torch.clamp(z, min=-lim))))


def _snake(x: torch.Tensor, frequency: Any) -> torch.Tensor:
    return x + torch.sin(frequency * x) ** 2 / frequency


def _xielu(x: torch.Tensor, alpha_p: Any, alpha_n: Any, beta: float, eps: float) -> torch.Tensor:
    # transformers' formula; alpha_n (e^m - 1 - x) + beta x, m = min(x, eps)
    neg = alpha_n * (torch.expm1(torch.clamp(x, max=eps)) - x) + beta * x
    xp = torch.clamp(x, min=0.0)  # alpha_p x^2 overflows at x << 0 for a huge alpha_p: inf * 0 in the gradient
    return torch.where(x > 0, alpha_p * xp * xp + beta * xp, neg)


def _srelu(x: torch.Tensor, t_left: Any, a_left: Any, t_right: Any, a_right: Any) -> torch.Tensor:
    # >= / <= : the outer slope at the thresholds, as the catalog's kinks
    left = t_left + a_left * (x - t_left)
    right = t_right + a_right * (x - t_right)
    return torch.where(x >= t_right, right, torch.where(x <= t_left, left, x))


def _star_relu(x: torch.Tensor, scale: Any, bias: Any) -> torch.Tensor:
    return scale * torch.relu(x) ** 2 + bias


def _soft_exponential(x: torch.Tensor, alpha: Any) -> torch.Tensor:
    """The three branches of Godfrey and Gashler's function, each on inputs where it is finite
    (double where: the unused lanes cannot produce inf/NaN gradients). At alpha = 0 exactly the
    value is x with d/dalpha = 1 + x^2/2, the limit from both sides, so that a parameter
    initialised at 0 still learns."""
    alpha = torch.as_tensor(alpha, dtype=x.dtype, device=x.device)
    pos, neg = alpha > 0, alpha < 0
    one = torch.ones_like(alpha)
    ap = torch.where(pos, alpha, one)
    an = torch.where(neg, alpha, -one)
    xp = torch.where(pos, x, torch.zeros_like(x))
    xn = torch.where(neg, x, torch.ones_like(x))  # log1p(-an (xn + an)) = log1p(0) in unused lanes
    x0 = torch.where(pos | neg, torch.zeros_like(x), x)
    exp_like = torch.expm1(ap * xp) / ap + ap
    # log1p(u) near the root (|u| small); log of w = 1 + u = (1 - an^2) - an xn near the domain's edge
    # w -> 0, where 1 + u would lose xn (alpha = -1: w = x exactly)
    u = -an * (xn + an)
    w = (1.0 - an * an) - an * xn
    near = u.abs() < 0.5
    log_like = -torch.where(near, torch.log1p(torch.where(near, u, 0.0)), torch.log(torch.where(near, 1.0, w))) / an
    at_zero = x0 + alpha * (1.0 + 0.5 * x0 * x0)
    return torch.where(pos, exp_like, torch.where(neg, log_like, at_zero))


LEARNABLE_FORMS: dict[str, Callable[..., torch.Tensor]] = {
    "leaky_relu": _leaky_relu,
    "elu": _catalog_form("elu"),
    "celu": _catalog_form("celu"),
    "pelu": _catalog_form("pelu"),
    "swish": _swish,
    "snake": _snake,
    "xielu": _xielu,
    "srelu": _srelu,
    "star_relu": _star_relu,
    "soft_exponential": _soft_exponential,
}


# ----------------------------------------------------------------------------- layers and the factory
class RegisteredLayer(torch.nn.Module):
    """Base of the layer entries of the registry (PReLU, PAU, APL, Maxout, the gated layers): the
    configuration is validated by the registry and kept as ``layer_config`` (what
    :func:`actlab.serialize` writes). ``activation`` is the catalog function the layer computes
    now, where it is one (PReLU with a shared slope: leaky_relu), else None: what
    ``actlab.init`` and the diagnostics read from any activation module."""

    registry_name = ""
    # True: the layer's own parameters are activation parameters (no weight decay in param_groups).
    activation_weights = True

    def _configure(self, **config: Any) -> dict[str, Any]:
        self.layer_config = get(self.registry_name, **config)
        return dict(self.layer_config.params)

    @property
    def actlab_activation(self) -> BoundActivation:
        return self.layer_config

    @property
    def activation(self) -> BoundActivation | None:
        return None

    def __prepare_scriptable__(self) -> torch.nn.Module:
        return scriptable(self)  # a clear error: use torch.jit.trace or torch.export

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.layer_config.config.items())


class _FunctionModule(torch.nn.Module):
    """A plain callable as a module (what ``create_activation`` returns for one)."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))


def layer_class(spec: Any) -> type:
    """The ``actlab.nn`` class of a layer entry (from its ``module`` path)."""
    module, _, name = spec.module.partition(":")
    return getattr(importlib.import_module(module), name)


def create_activation(
    identifier: Any = None, *, inplace: bool = False, memory: str = "exact", bits: int | None = None, **params: Any
) -> torch.nn.Module:
    """A fresh module for any identifier :func:`actlab.get` accepts.

    Catalog functions give an :class:`Activation` (with ``nn.Parameter``s for ``'learnable'``
    parameters), layer entries their class (``"prelu(num_parameters=64)"`` -> :class:`PReLU`);
    a module is returned as it is, a plain callable wrapped in a module. ``inplace=True``: a catalog
    function's :class:`Activation` runs in place (``"relu(inplace=True)"`` as a swap target).

    >>> create_activation("prelu(num_parameters=3)")
    PReLU(num_parameters=3)
    >>> create_activation("elu(alpha='learnable')")
    Activation(elu, alpha='learnable')

    ``memory``/``bits``: the memory mode of a catalog function (:mod:`actlab.torch.memory`).
    """
    if memory != "exact" or bits is not None:
        act = identifier if isinstance(identifier, torch.nn.Module) else get(identifier, **params)
        if not isinstance(act, BoundActivation) or act.spec.kind == "layer":
            raise ValueError(
                f"memory={memory!r} applies to catalog functions (actlab.nn.Activation); "
                f"{getattr(act, 'name', type(act).__name__)} is a layer, module or callable (use memory='exact')"
            )
        return Activation(act, inplace=inplace, memory=memory, bits=bits)
    if isinstance(identifier, torch.nn.Module):
        if params or inplace is not False:
            raise TypeError("parameters cannot be applied to a module instance; pass an identifier instead")
        return identifier
    act = get(identifier, **params)
    if inplace is not False and (not isinstance(act, BoundActivation) or act.spec.kind == "layer"):
        raise ValueError(f"inplace=True is for catalog functions, not {act!r}; use inplace=False")
    if not isinstance(act, BoundActivation):
        return _FunctionModule(act)
    if act.spec.kind == "layer":
        return layer_class(act.spec)(**act.params)
    return Activation(act, inplace=inplace)
