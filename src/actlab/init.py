"""Initialise a model's weights for the activations that follow its layers: ``init_(model)``.

Schemes (weights ~ N(0, std²) unless orthogonal; biases are set to 0):

- ``"auto"``: std = g / sqrt(fan_in), with g the variance-preserving gain of the activation that
  follows the layer, computed by :func:`actlab.analysis.gain` (g = 1/sqrt(E[f(z)²]), z ~ N(0, 1);
  He et al. 2015, arXiv:1502.01852). ReLU gives He init, the identity LeCun init, and every
  other catalog activation its own value. The activation is found from the model's structure
  (the next activation module after the layer in an ``nn.Sequential``), or given.
- ``"he"``: std = sqrt(2 / fan_in) (He et al. 2015, for ReLU).
- ``"lecun"``: std = 1 / sqrt(fan_in) (LeCun et al. 1998; Klambauer et al. 2017 for SELU).
- ``"xavier"``: std = sqrt(2 / (fan_in + fan_out)) (Glorot & Bengio 2010).
- ``"orthogonal"``: a (semi-)orthogonal matrix times the computed gain (Saxe et al. 2013,
  arXiv:1312.6120); convolution kernels are flattened to (out, in·k...) first.
- ``"gaussian"``: std = ``std`` (default 0.01), the fixed-scale init of early papers.

Recurrent layers (RNN, LSTM, GRU): the hidden-to-hidden weights are always orthogonal, one
orthogonal block per gate; the input-to-hidden weights follow the scheme (``"auto"`` uses the
RNN's tanh/relu gain, gain 1 for the gated LSTM/GRU).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from actlab.registry import BoundActivation, get

__all__ = ["LayerInit", "InitReport", "init_", "activation_of", "SCHEMES"]

SCHEMES = ("auto", "he", "xavier", "lecun", "orthogonal", "gaussian")

_LINEAR_LIKE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_RECURRENT = (nn.RNN, nn.LSTM, nn.GRU)
# Modules between a layer and its activation that do not change which activation follows.
_TRANSPARENT = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
)


def activation_of(module: nn.Module) -> BoundActivation | None:
    """The catalog activation a torch module computes (with its parameters), or None."""
    inner = getattr(module, "activation", None)
    if isinstance(inner, BoundActivation):  # actlab.nn.Activation
        return inner
    table = {
        nn.ReLU: lambda m: ("relu", {}),
        nn.ReLU6: lambda m: ("relu6", {}),
        nn.LeakyReLU: lambda m: ("leaky_relu", {"negative_slope": m.negative_slope}),
        nn.PReLU: lambda m: ("leaky_relu", {"negative_slope": float(m.weight.detach().mean())}),
        nn.RReLU: lambda m: ("rrelu", {"lower": m.lower, "upper": m.upper}),
        nn.ELU: lambda m: ("elu", {"alpha": m.alpha}),
        nn.CELU: lambda m: ("celu", {"alpha": m.alpha}),
        nn.SELU: lambda m: ("selu", {}),
        nn.GELU: lambda m: ("gelu", {"approximate": m.approximate}),
        nn.SiLU: lambda m: ("silu", {}),
        nn.Mish: lambda m: ("mish", {}),
        nn.Sigmoid: lambda m: ("sigmoid", {}),
        nn.Tanh: lambda m: ("tanh", {}),
        nn.Hardtanh: lambda m: ("hard_tanh", {"min_val": m.min_val, "max_val": m.max_val}),
        nn.Hardsigmoid: lambda m: ("hard_sigmoid", {}),
        nn.Hardswish: lambda m: ("hardswish", {}),
        nn.Softplus: lambda m: ("softplus", {"beta": m.beta, "threshold": m.threshold}),
        nn.Softsign: lambda m: ("softsign", {}),
        nn.Tanhshrink: lambda m: ("tanhshrink", {}),
        nn.Softshrink: lambda m: ("softshrink", {"lambd": m.lambd}),
        nn.Hardshrink: lambda m: ("hardshrink", {"lambd": m.lambd}),
        nn.LogSigmoid: lambda m: ("log_sigmoid", {}),
        nn.Threshold: lambda m: ("threshold", {"threshold": m.threshold, "value": m.value}),
    }
    for cls, make in table.items():
        if type(module) is cls:  # subclasses may compute something else
            name, params = make(module)
            return get(name, **params)
    return None


@dataclass(frozen=True)
class LayerInit:
    """What was done to one parameter tensor."""

    name: str  # qualified parameter name, e.g. "0.weight" or "rnn.weight_hh_l0"
    layer: str  # module class name
    scheme: str
    activation: str | None  # the activation the gain is for (None: not used by the scheme)
    gain: float
    std: float  # the standard deviation of the entries (orthogonal: gain / sqrt(fan_in) for square)
    fan_in: int
    fan_out: int
    note: str = ""


@dataclass(frozen=True)
class InitReport:
    scheme: str
    layers: tuple[LayerInit, ...] = field(default=())

    def __iter__(self):
        return iter(self.layers)

    def by_name(self, name: str) -> LayerInit:
        for entry in self.layers:
            if entry.name == name:
                return entry
        raise KeyError(name)


_GAIN_CACHE: dict[BoundActivation, float] = {}


def _gain(act: BoundActivation) -> float:
    if act not in _GAIN_CACHE:
        from actlab.analysis import gain

        _GAIN_CACHE[act] = gain(act).computed
    return _GAIN_CACHE[act]


def _fans(weight: torch.Tensor) -> tuple[int, int]:
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def _following_activations(model: nn.Module) -> dict[str, tuple[BoundActivation | None, str]]:
    """For each Linear/Conv inside an nn.Sequential: the activation that follows it and a note."""
    found: dict[str, tuple[BoundActivation | None, str]] = {}
    for seq_name, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        children = list(seq.named_children())
        for i, (child_name, child) in enumerate(children):
            if not isinstance(child, _LINEAR_LIKE):
                continue
            full = f"{seq_name}.{child_name}" if seq_name else child_name
            act, note = None, "last layer of its nn.Sequential: no activation follows, gain 1"
            for _, nxt in children[i + 1 :]:
                if isinstance(nxt, _TRANSPARENT):
                    continue
                act = activation_of(nxt)
                note = "" if act is not None else f"followed by {type(nxt).__name__}, not an activation: gain 1"
                break
            found[full] = (act, note)
    return found


def _orthogonal_(w: torch.Tensor, gain: float, blocks: int, generator: torch.Generator | None) -> None:
    """Fill ``w`` (rows split into ``blocks`` equal blocks) with (semi-)orthogonal blocks times gain."""
    rows = w.shape[0] // blocks
    flat = w.detach().reshape(w.shape[0], -1)
    cols = flat.shape[1]
    with torch.no_grad():
        for b in range(blocks):
            big, small = max(rows, cols), min(rows, cols)
            a = torch.randn(big, small, generator=generator, dtype=torch.float64)
            qm, r = torch.linalg.qr(a)
            qm = qm * torch.sign(torch.diagonal(r)).unsqueeze(0)  # uniform (Haar) distribution
            block = qm if rows >= cols else qm.T
            flat[b * rows : (b + 1) * rows].copy_(gain * block.to(w.dtype))


def init_(
    model: nn.Module,
    scheme: str = "auto",
    activation: Any = None,
    *,
    std: float = 0.01,
    generator: torch.Generator | None = None,
) -> InitReport:
    """Initialise every Linear, Conv1d/2d/3d, RNN, LSTM and GRU weight of ``model`` in place.

    ``activation``: one identifier for every layer, or a mapping from layer (module) name to
    identifier; when None the activation is found from the model's structure (a layer in an
    ``nn.Sequential`` followed, after any dropout/normalisation/pooling, by a torch.nn activation
    or an ``actlab.nn.Activation``). Where none is found the gain is 1 and the report says why.
    Biases are set to 0. Returns an :class:`InitReport` with one row per weight tensor.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    structural = _following_activations(model) if activation is None else {}
    rows: list[LayerInit] = []

    def act_for(name: str) -> tuple[BoundActivation | None, str]:
        if isinstance(activation, Mapping):
            if name in activation:
                return get(activation[name]), ""
            return None, "not in the given activation mapping: gain 1"
        if activation is not None:
            return get(activation), ""
        if name in structural:
            return structural[name]
        return None, "activation unknown (layer not in an nn.Sequential; pass activation=): gain 1"

    def fill(name: str, layer: str, w: torch.Tensor, act: BoundActivation | None, note: str) -> None:
        fan_in, fan_out = _fans(w)
        g = _gain(act) if act is not None else 1.0
        used_act = repr(act) if act is not None else None
        if scheme == "he":
            g, used_act = math.sqrt(2.0), "relu"
            s = g / math.sqrt(fan_in)
        elif scheme == "lecun":
            g, used_act = 1.0, None
            s = 1.0 / math.sqrt(fan_in)
        elif scheme == "xavier":
            g, used_act = 1.0, None
            s = math.sqrt(2.0 / (fan_in + fan_out))
        elif scheme == "gaussian":
            g, used_act = 1.0, None
            s = std
        else:  # auto, orthogonal
            s = g / math.sqrt(fan_in)
        with torch.no_grad():
            if scheme == "orthogonal":
                _orthogonal_(w, g, 1, generator)
                s = float(w.detach().std()) if w.numel() > 1 else s
            else:
                w.copy_(torch.randn(w.shape, generator=generator, dtype=torch.float64).to(w.dtype) * s)
        rows.append(
            LayerInit(
                name, layer, scheme, used_act, g, s, fan_in, fan_out, note if scheme in ("auto", "orthogonal") else ""
            )
        )

    for mod_name, module in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        if isinstance(module, _LINEAR_LIKE):
            if isinstance(module.weight, nn.parameter.UninitializedParameter):
                continue
            act, note = act_for(mod_name)
            fill(prefix + "weight", type(module).__name__, module.weight, act, note)
            if module.bias is not None:
                with torch.no_grad():
                    module.bias.zero_()
        elif isinstance(module, _RECURRENT):
            gates = 4 if isinstance(module, nn.LSTM) else 3 if isinstance(module, nn.GRU) else 1
            if isinstance(module, nn.RNN):
                cell_act: BoundActivation | None = get(module.nonlinearity)
                cell_note = ""
            else:
                cell_act, cell_note = None, "gated cell: input weights use gain 1"
            for pname, p in module.named_parameters(recurse=False):
                if pname.startswith("bias"):
                    with torch.no_grad():
                        p.zero_()
                elif pname.startswith("weight_hh"):
                    with torch.no_grad():
                        _orthogonal_(p, 1.0, gates, generator)
                    fan_in, fan_out = _fans(p)
                    rows.append(
                        LayerInit(
                            prefix + pname,
                            type(module).__name__,
                            "orthogonal",
                            None,
                            1.0,
                            1.0 / math.sqrt(fan_in),
                            fan_in,
                            fan_out,
                            "recurrent: orthogonal per gate",
                        )
                    )
                elif pname.startswith("weight_ih"):
                    fill(prefix + pname, type(module).__name__, p, cell_act, cell_note)
                # weight_hr (LSTM projections) keep PyTorch's init
    return InitReport(scheme, tuple(rows))
