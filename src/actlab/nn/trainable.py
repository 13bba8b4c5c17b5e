"""Activations with trainable parameters: PReLU, PAU, APL (registry layers), the learnable forms of
the catalog's parametric functions (Swish, SReLU, SoftExponential, StarReLU, PELU, Snake), RReLU,
and the helpers that keep activation parameters out of weight decay.

>>> import torch
>>> from actlab.nn import PReLU, param_groups
>>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), PReLU(8, channel_dim=-1))
>>> [(len(g["params"]), g["weight_decay"]) for g in param_groups(model, weight_decay=1e-4)]
[(2, 0.0001), (1, 0.0)]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from actlab.catalog.trainable import PadeFit, pade_fit
from actlab.nn.activation import Activation, RegisteredLayer, channel_axis, per_channel
from actlab.registry import BoundActivation, get, get_spec, learnable_params

__all__ = [
    "PReLU",
    "RReLU",
    "PAU",
    "APL",
    "Swish",
    "SReLU",
    "SoftExponential",
    "StarReLU",
    "PELU",
    "Snake",
    "activation_parameters",
    "param_groups",
]


class PReLU(RegisteredLayer):
    """Parametric ReLU (He et al., 2015): max(0, x) + a min(0, x) with learned slopes ``weight``.

    ``num_parameters``: 1 (shared) or C, one slope per channel along ``channel_dim`` (1 for
    channels-first inputs as torch.nn.PReLU, -1 for channels-last). The same ``weight`` as
    torch.nn.PReLU, so state_dicts load into each other.

    >>> import torch
    >>> prelu = PReLU(3, channel_dim=-1)  # (N, H, W, C)
    >>> prelu(-torch.ones(2, 4, 4, 3)).shape
    torch.Size([2, 4, 4, 3])
    """

    registry_name = "prelu"

    def __init__(self, num_parameters: int = 1, init: float = 0.25, channel_dim: int = 1):
        super().__init__()
        cfg = self._configure(num_parameters=num_parameters, init=init, channel_dim=channel_dim)
        self.num_parameters, self.channel_dim, self.init = cfg["num_parameters"], cfg["channel_dim"], cfg["init"]
        self.weight = torch.nn.Parameter(torch.full((self.num_parameters,), self.init))

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.fill_(self.init)

    @property
    def activation(self) -> BoundActivation:
        """leaky_relu at the mean slope (clipped at 0), as actlab.init reads torch.nn.PReLU."""
        return get("leaky_relu", negative_slope=max(0.0, float(self.weight.detach().mean())))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype)
        if self.num_parameters == 1:
            return torch.nn.functional.prelu(x, w)
        axis = channel_axis(x, self.channel_dim, self.num_parameters, "prelu")
        if x.dim() < 2:  # F.prelu has no channel axis in a 1-d input
            return torch.where(x > 0, x, w * x)
        if axis == 1:
            return torch.nn.functional.prelu(x, w)
        # PyTorch's kernel (and its f'(0) = a) with the channels moved to dim 1 and back: views only
        return torch.nn.functional.prelu(x.movedim(axis, 1), w).movedim(1, axis)


class PAU(RegisteredLayer):
    """Padé activation unit (Molina et al., 2020): P(x) / (1 + |B(x)|), degrees (5, 4) by default.

    The coefficients start at a least-squares fit to ``approximates`` on [-3, 3], computed by
    actlab and cached on disk (``ACTLAB_CACHE``; empty turns the cache off); ``fit`` holds it
    with its error. One set of coefficients per layer, as in the paper.

    >>> pau = PAU("gelu")
    >>> pau.fit.max_abs_error < 0.01
    True
    """

    registry_name = "pau"

    def __init__(self, approximates: str = "leaky_relu", numerator_degree: int = 5, denominator_degree: int = 4):
        super().__init__()
        cfg = self._configure(
            approximates=approximates, numerator_degree=numerator_degree, denominator_degree=denominator_degree
        )
        self.fit: PadeFit = pade_fit(cfg["approximates"], cfg["numerator_degree"], cfg["denominator_degree"])
        self.numerator = torch.nn.Parameter(torch.tensor(self.fit.numerator, dtype=torch.get_default_dtype()))
        self.denominator = torch.nn.Parameter(torch.tensor(self.fit.denominator, dtype=torch.get_default_dtype()))

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.numerator.copy_(torch.tensor(self.fit.numerator))
            self.denominator.copy_(torch.tensor(self.fit.denominator))

    @property
    def activation(self) -> BoundActivation:
        """The function the coefficients were fitted to (what the layer computes at initialisation)."""
        return get(self.fit.approximates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.numerator.to(x.dtype)
        b = self.denominator.to(x.dtype)
        p = a[-1] * torch.ones_like(x)
        for j in range(a.shape[0] - 2, -1, -1):  # Horner
            p = p * x + a[j]
        q = torch.zeros_like(x)
        for k in range(b.shape[0] - 1, -1, -1):
            q = (q + b[k]) * x
        return p / (1.0 + q.abs())

    def extra_repr(self) -> str:
        lo, hi = self.fit.x_range
        return f"{super().extra_repr()}, fit max |error| {self.fit.max_abs_error:.2g} on [{lo:g}, {hi:g}]".lstrip(", ")


class APL(RegisteredLayer):
    """Adaptive piecewise linear unit (Agostinelli et al., 2014):
    max(0, x) + sum_s a_s max(0, b_s - x), ``hinges`` = S per channel.

    Initialised as the authors' released configuration: a ~ U(-0.2, 0.2), b ~ N(0, 0.5^2), from
    torch's global generator (reproducible under ``torch.manual_seed``).
    """

    registry_name = "apl"

    def __init__(self, hinges: int = 2, num_parameters: int = 1, channel_dim: int = 1):
        super().__init__()
        cfg = self._configure(hinges=hinges, num_parameters=num_parameters, channel_dim=channel_dim)
        self.hinges, self.num_parameters, self.channel_dim = cfg["hinges"], cfg["num_parameters"], cfg["channel_dim"]
        self.a = torch.nn.Parameter(torch.empty(self.num_parameters, self.hinges))
        self.b = torch.nn.Parameter(torch.empty(self.num_parameters, self.hinges))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.a.uniform_(-0.2, 0.2)
            self.b.normal_(0.0, 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(x)
        for s in range(self.hinges):
            a = per_channel(self.a[:, s], x, self.channel_dim, "apl")
            b = per_channel(self.b[:, s], x, self.channel_dim, "apl")
            y = y + a * torch.relu(b - x)
        return y


# ----------------------------------------------------------------------------- learnable catalog forms
def _learnable_config(
    name: str, values: dict[str, float], learnable: bool | Iterable[str], num_parameters: int, channel_dim: int
) -> dict[str, Any]:
    """The registry config of ``name`` with the chosen parameters marked ``learnable(<init>)``."""
    allowed = learnable_params(get_spec(name))
    if learnable is True:
        chosen = set(allowed)
    elif learnable is False:
        chosen = set()
    else:
        chosen = {learnable} if isinstance(learnable, str) else set(learnable)
        unknown = sorted(chosen - set(allowed))
        if unknown:
            raise ValueError(
                f"{name}: learnable={sorted(chosen)!r} names {unknown}, not parameters of {name}; "
                f"allowed: True, False or a subset of {list(allowed)}"
            )
    cfg: dict[str, Any] = {k: (f"learnable({float(v)!r})" if k in chosen else v) for k, v in values.items()}
    if chosen:
        cfg.update(num_parameters=num_parameters, channel_dim=channel_dim)
    elif (num_parameters, channel_dim) != (1, 1):
        raise ValueError(f"{name}: num_parameters and channel_dim need a learnable parameter (learnable=False given)")
    return cfg


class Swish(Activation):
    """x * sigmoid(beta x) with a learnable ``beta`` (Ramachandran et al., 2017): one per layer, or
    one per channel with ``num_parameters=C``. ``learnable=False`` gives the fixed function."""

    def __init__(self, beta: float = 1.0, learnable: bool = True, *, num_parameters: int = 1, channel_dim: int = 1):
        super().__init__("swish", **_learnable_config("swish", {"beta": beta}, learnable, num_parameters, channel_dim))


class Snake(Activation):
    """x + sin^2(a x) / a with a learnable frequency a (Ziyin et al., 2020; BigVGAN learns one per channel)."""

    def __init__(
        self, frequency: float = 1.0, learnable: bool = True, *, num_parameters: int = 1, channel_dim: int = 1
    ):
        cfg = _learnable_config("snake", {"frequency": frequency}, learnable, num_parameters, channel_dim)
        super().__init__("snake", **cfg)


class SReLU(Activation):
    """S-shaped ReLU (Jin et al., 2016): identity between t_left and t_right, slopes a_left / a_right
    beyond; all four learnable (per channel in the paper: ``num_parameters=C``), or the subset
    named in ``learnable``."""

    def __init__(
        self,
        t_left: float = -1.0,
        a_left: float = 0.2,
        t_right: float = 1.0,
        a_right: float = 0.2,
        learnable: bool | Iterable[str] = True,
        *,
        num_parameters: int = 1,
        channel_dim: int = 1,
    ):
        values = {"t_left": t_left, "a_left": a_left, "t_right": t_right, "a_right": a_right}
        super().__init__("srelu", **_learnable_config("srelu", values, learnable, num_parameters, channel_dim))


class SoftExponential(Activation):
    """Godfrey and Gashler's soft exponential with a learnable alpha (default 0: the identity),
    continuous across alpha = 0 in value and gradient."""

    def __init__(self, alpha: float = 0.0, learnable: bool = True, *, num_parameters: int = 1, channel_dim: int = 1):
        cfg = _learnable_config("soft_exponential", {"alpha": alpha}, learnable, num_parameters, channel_dim)
        super().__init__("soft_exponential", **cfg)


class StarReLU(Activation):
    """scale * relu(x)^2 + bias (Yu et al., 2022, MetaFormer baselines) with both learnable.

    Defaults are the paper's derived constants (0.8944, -0.4472); timm's StarReLU starts at
    scale 1.0, bias 0.0 (``StarReLU(1.0, 0.0)``).
    """

    def __init__(
        self,
        scale: float = 0.8944,
        bias: float = -0.4472,
        learnable: bool | Iterable[str] = True,
        *,
        num_parameters: int = 1,
        channel_dim: int = 1,
    ):
        values = {"scale": scale, "bias": bias}
        super().__init__("star_relu", **_learnable_config("star_relu", values, learnable, num_parameters, channel_dim))


class PELU(Activation):
    """Parametric ELU (Trottier et al., 2017): (a/b) x for x >= 0, a (e^(x/b) - 1) otherwise, a and b
    learnable. They must stay positive (the paper constrains them); nothing here clips them."""

    def __init__(
        self,
        a: float = 1.0,
        b: float = 1.0,
        learnable: bool | Iterable[str] = True,
        *,
        num_parameters: int = 1,
        channel_dim: int = 1,
    ):
        super().__init__("pelu", **_learnable_config("pelu", {"a": a, "b": b}, learnable, num_parameters, channel_dim))


class RReLU(Activation):
    """Randomized leaky ReLU (Xu et al., 2015): slope ~ U(lower, upper) per element in ``train()``
    (reproducible under ``torch.manual_seed``), (lower + upper) / 2 in ``eval()``."""

    def __init__(self, lower: float = 1.0 / 8.0, upper: float = 1.0 / 3.0):
        super().__init__("rrelu", lower=lower, upper=upper)


# ----------------------------------------------------------------------------- optimiser helpers
def activation_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters of the activation modules in ``model`` (actlab's and torch.nn.PReLU), once each.

    Projection weights of gated and maxout layers are ordinary weights and are not included.
    """
    out: list[torch.nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        owned = isinstance(module, (Activation, torch.nn.PReLU)) or (
            isinstance(module, RegisteredLayer) and module.activation_weights
        )
        if not owned:
            continue
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Optimizer parameter groups: everything at ``weight_decay``, activation parameters at 0.

    He et al. (2015) do not decay PReLU slopes: decay pulls them to 0, towards ReLU.

    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), PReLU())
    >>> opt = torch.optim.AdamW(param_groups(model, weight_decay=0.05), lr=1e-3)
    >>> [g["weight_decay"] for g in opt.param_groups]
    [0.05, 0.0]
    """
    wd = float(weight_decay)
    if not wd >= 0.0 or wd == float("inf"):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    act = activation_parameters(model)
    ids = {id(p) for p in act}
    rest = [p for p in model.parameters() if id(p) not in ids]
    groups = []
    if rest:
        groups.append({"params": rest, "weight_decay": wd})
    if act:
        groups.append({"params": act, "weight_decay": 0.0})
    return groups
