"""Arena models: every one takes the activation as an identifier and builds its activation
modules with :func:`actlab.nn.create_activation`, so trainable activations work too.

- ``mlp``: Linear -> [norm] -> activation -> [norm] -> [dropout], ``depth`` hidden layers of
  ``width`` units; ``norm`` "none" | "batch" | "layer"; ``norm_placement`` "before" (the norm
  sits between the linear layer and the activation, as in Ioffe & Szegedy 2015) or "after".
  Images and sequences are flattened.
- ``residual_mlp``: a linear stem, ``blocks`` residual blocks of two linear layers each
  (pre-activation norm -> act -> linear, He et al. 2016, arXiv:1603.05027; or post-activation
  with ``pre_activation=False``), a final norm -> act, then the head.
- ``cnn``: ``depth`` stages of conv3x3 -> [norm] -> activation -> [norm] -> max-pool 2,
  channels ``width``, 2 ``width``, ...; a linear head. Layer norm on feature maps is
  GroupNorm(1, C), i.e. normalisation over (C, H, W).
- ``lstm`` / ``gru``: :class:`actlab.nn.LSTM` / :class:`actlab.nn.GRU` with the activation as
  the LSTM's input and output (cell) activation / the GRU's candidate activation; the gates stay
  sigmoid. A linear head reads the last step (or the last ``k`` steps for copy memory).
- ``attention``: a per-step encoder (linear -> act -> linear -> act) plus a learned position
  embedding, :class:`actlab.nn.AdditiveAttention` pooling with one learned query per output
  step, and a head (linear -> act -> linear).

The last layer of every model is a plain linear map to the task's output (logits or values).
``build_model`` returns the module; ``model.arena_gains`` maps layer names to the activation that
follows each (what ``actlab.init.init_(..., "auto")`` needs), and ``model.arena_init_roots``
names the submodules that the initialisation scheme applies to (recurrent cores keep their own
initialisation).

    >>> from actlab.arena.models import build_model
    >>> net = build_model("mlp", "gelu", input_shape=(2,), output_shape=(2,), params={"depth": 2})
    >>> net(torch.zeros(5, 2)).shape  # doctest: +SKIP
    torch.Size([5, 2])
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from actlab.arena._train_params import Param, check_params, close_matches
from actlab.nn import GRU, LSTM, AdditiveAttention

__all__ = ["ModelSpec", "model_names", "model_spec", "build_model", "check_model_params", "make_activation"]

_NORMS = ("none", "batch", "layer")
_WIDTH = Param("width", 64, "int", "hidden units (channels for cnn)", 1, 8192)
_NORM = Param("norm", "none", "str", "normalisation layer", choices=_NORMS)
_PLACEMENT = Param(
    "norm_placement",
    "before",
    "str",
    "norm before the activation (linear -> norm -> act) or after it (linear -> act -> norm)",
    choices=("before", "after"),
)
_DROPOUT = Param("dropout", 0.0, "float", "dropout probability after each activation", 0, 1, open_high=True)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    summary: str
    inputs: tuple[str, ...]  # the TaskData.input_kind values it accepts
    params: tuple[Param, ...]


_MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        ModelSpec(
            "mlp",
            "multi-layer perceptron (inputs flattened)",
            ("vector", "image", "sequence"),
            (
                _WIDTH,
                Param("depth", 2, "int", "hidden layers (0: a linear model)", 0, 200),
                _NORM,
                _PLACEMENT,
                _DROPOUT,
            ),
        ),
        ModelSpec(
            "residual_mlp",
            "MLP of residual blocks (two linear layers each)",
            ("vector", "image", "sequence"),
            (
                _WIDTH,
                Param("blocks", 2, "int", "residual blocks", 1, 100),
                _NORM,
                Param("pre_activation", True, "bool", "norm -> act -> linear inside the block (He et al. 2016)"),
                _DROPOUT,
            ),
        ),
        ModelSpec(
            "cnn",
            "small convolutional network: conv3x3 -> act -> max-pool stages",
            ("image",),
            (
                Param("width", 16, "int", "channels of the first stage (doubled per stage)", 1, 1024),
                Param("depth", 2, "int", "convolution stages", 1, 8),
                _NORM,
                _PLACEMENT,
                _DROPOUT,
            ),
        ),
        ModelSpec(
            "lstm",
            "actlab.nn.LSTM; the activation is the input and cell-output activation, gates stay sigmoid",
            ("sequence",),
            (Param("hidden", 64, "int", "hidden units", 1, 4096), Param("layers", 1, "int", "stacked layers", 1, 8)),
        ),
        ModelSpec(
            "gru",
            "actlab.nn.GRU; the activation is the candidate activation, gates stay sigmoid",
            ("sequence",),
            (Param("hidden", 64, "int", "hidden units", 1, 4096), Param("layers", 1, "int", "stacked layers", 1, 8)),
        ),
        ModelSpec(
            "attention",
            "per-step encoder + position embedding + actlab.nn.AdditiveAttention pooling",
            ("sequence",),
            (_WIDTH,),
        ),
    )
}

# A user task's own model factory (valid only for user tasks).
TASK_MODEL = "task"


def model_names() -> list[str]:
    """The built-in model names."""
    return list(_MODELS)


def model_spec(name: str) -> ModelSpec:
    if name not in _MODELS:
        close = close_matches(name, _MODELS)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"unknown model {name!r}{hint} (choose from {', '.join(_MODELS)})")
    return _MODELS[name]


def check_model_params(name: str, params: Any) -> tuple[dict[str, Any], list[str]]:
    """Canonical ``model_params`` (defaults filled) and the problems with them."""
    return check_params(params, model_spec(name).params, "model_params")


def make_activation(identifier: Any) -> nn.Module:
    """A fresh activation module for any identifier (``actlab.nn.create_activation``)."""
    from actlab.nn import create_activation

    return create_activation(identifier)


class _Tagged:
    """Creates activation modules and remembers them, to find the layer that feeds each."""

    def __init__(self, identifier: Any):
        self.identifier = identifier
        self.made: set[int] = set()

    def __call__(self) -> nn.Module:
        module = make_activation(self.identifier)
        self.made.add(id(module))
        return module


_TRANSPARENT = (nn.Dropout, nn.Identity, nn.Flatten, nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)
_LAYERS = (nn.Linear, nn.Conv2d)


def _gains_from_sequentials(model: nn.Module, acts: _Tagged) -> dict[str, Any]:
    """Layer name -> activation identifier, for each layer followed (past norm/dropout) by an activation."""
    gains: dict[str, Any] = {}
    for seq_name, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        children = list(seq.named_children())
        for i, (child_name, child) in enumerate(children):
            if not isinstance(child, _LAYERS):
                continue
            for _, nxt in children[i + 1 :]:
                if isinstance(nxt, _TRANSPARENT):
                    continue
                if id(nxt) in acts.made:
                    gains[f"{seq_name}.{child_name}" if seq_name else child_name] = acts.identifier
                break
    return gains


def _norm(kind: str, features: int, image: bool = False) -> nn.Module | None:
    if kind == "batch":
        return nn.BatchNorm2d(features) if image else nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.GroupNorm(1, features) if image else nn.LayerNorm(features)
    return None


def _stage(layer: nn.Module, features: int, acts: _Tagged, p: Mapping[str, Any], image: bool = False) -> list:
    """layer, then norm/activation in the configured order, then dropout."""
    norm = _norm(p["norm"], features, image)
    parts = [layer]
    if norm is not None and p["norm_placement"] == "before":
        parts.append(norm)
    parts.append(acts())
    if norm is not None and p["norm_placement"] == "after":
        parts.append(norm)
    if p["dropout"] > 0:
        parts.append(nn.Dropout(p["dropout"]))
    return parts


class _Reshape(nn.Module):
    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


def _mlp(acts: _Tagged, input_shape: tuple, output_shape: tuple, p: Mapping[str, Any]) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    features = math.prod(input_shape)
    for _ in range(p["depth"]):
        layers += _stage(nn.Linear(features, p["width"]), p["width"], acts, p)
        features = p["width"]
    layers += [nn.Linear(features, math.prod(output_shape)), _Reshape(output_shape)]
    return nn.Sequential(*layers)


class ResidualMLP(nn.Module):
    def __init__(self, acts: _Tagged, input_shape: tuple, output_shape: tuple, p: Mapping[str, Any]):
        super().__init__()
        width = p["width"]
        self.pre_activation = p["pre_activation"]
        stem = [nn.Flatten(), nn.Linear(math.prod(input_shape), width)]
        if not self.pre_activation:  # post-activation blocks start from an activated stem
            stem += [_norm(p["norm"], width), acts()]
        self.stem = nn.Sequential(*[m for m in stem if m is not None])
        self.blocks = nn.ModuleList()
        self.post = nn.ModuleList()  # post-activation: act(x + branch(x))
        for _ in range(p["blocks"]):
            if self.pre_activation:
                branch = [_norm(p["norm"], width), acts(), nn.Linear(width, width), _norm(p["norm"], width), acts()]
                branch += [nn.Dropout(p["dropout"]) if p["dropout"] > 0 else None, nn.Linear(width, width)]
                self.post.append(nn.Identity())
            else:
                branch = [nn.Linear(width, width), _norm(p["norm"], width), acts()]
                branch += [nn.Dropout(p["dropout"]) if p["dropout"] > 0 else None, nn.Linear(width, width)]
                branch += [_norm(p["norm"], width)]
                self.post.append(acts())
            self.blocks.append(nn.Sequential(*[m for m in branch if m is not None]))
        tail = [_norm(p["norm"], width), acts()] if self.pre_activation else []
        tail += [nn.Linear(width, math.prod(output_shape)), _Reshape(output_shape)]
        self.head = nn.Sequential(*[m for m in tail if m is not None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block, post in zip(self.blocks, self.post):
            h = post(h + block(h))
        return self.head(h)


def _residual_mlp(acts: _Tagged, input_shape: tuple, output_shape: tuple, p: Mapping[str, Any]) -> nn.Module:
    model = ResidualMLP(acts, input_shape, output_shape, p)
    # Pre-activation: the stem feeds the first block's norm -> activation.
    model.arena_extra_gains = {"stem.1": acts.identifier}
    return model


def _cnn(acts: _Tagged, input_shape: tuple, output_shape: tuple, p: Mapping[str, Any]) -> nn.Module:
    channels, height, width = input_shape
    layers: list[nn.Module] = []
    for stage in range(p["depth"]):
        out = p["width"] * 2**stage
        layers += _stage(nn.Conv2d(channels, out, 3, padding=1), out, acts, p, image=True)
        if min(height, width) >= 2:
            layers.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        channels = out
    layers += [nn.Flatten(), nn.Linear(channels * height * width, math.prod(output_shape)), _Reshape(output_shape)]
    return nn.Sequential(*layers)


class RecurrentModel(nn.Module):
    """actlab.nn.LSTM / GRU (batch first) and a linear head on the last step(s)."""

    def __init__(self, kind: str, identifier: Any, input_shape: tuple, output_shape: tuple, p: Mapping[str, Any]):
        super().__init__()
        steps, features = input_shape
        if kind == "lstm":
            self.rnn = LSTM(
                features,
                p["hidden"],
                p["layers"],
                batch_first=True,
                input_activation=identifier,
                output_activation=identifier,
            )
        else:
            self.rnn = GRU(features, p["hidden"], p["layers"], batch_first=True, candidate_activation=identifier)
        # (k, classes): the last k steps are scored, one output per step; otherwise the last step.
        self.per_step = len(output_shape) == 2
        self.output_shape = tuple(output_shape)
        self.head = nn.Linear(p["hidden"], output_shape[-1] if self.per_step else math.prod(output_shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.rnn(x)[0]
        if self.per_step:
            return self.head(out[:, -self.output_shape[0] :])
        return self.head(out[:, -1]).reshape(x.shape[0], *self.output_shape)


class AttentionModel(nn.Module):
    """Encoder + position embedding, additive-attention pooling (one learned query per output step)."""

    def __init__(self, acts: _Tagged, input_shape: tuple, output_shape: tuple, p: Mapping[str, Any]):
        super().__init__()
        steps, features = input_shape
        width = p["width"]
        self.encoder = nn.Sequential(nn.Linear(features, width), acts(), nn.Linear(width, width), acts())
        self.position = nn.Parameter(0.1 * torch.randn(steps, width))
        self.per_step = len(output_shape) == 2
        self.output_shape = tuple(output_shape)
        queries = output_shape[0] if self.per_step else 1
        self.queries = nn.Parameter(0.1 * torch.randn(queries, width))
        self.attention = AdditiveAttention(width, width, width)
        out = output_shape[-1] if self.per_step else math.prod(output_shape)
        self.head = nn.Sequential(nn.Linear(width, width), acts(), nn.Linear(width, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keys = self.encoder(x) + self.position
        context, _ = self.attention(self.queries.expand(x.shape[0], -1, -1), keys)  # (batch, queries, width)
        out = self.head(context)
        return out if self.per_step else out[:, 0].reshape(x.shape[0], *self.output_shape)


def build_model(
    name: str, activation: Any, input_shape: tuple, output_shape: tuple, params: Mapping[str, Any] | None = None
) -> nn.Module:
    """Build model ``name`` for one activation identifier.

    ``input_shape`` is one sample's shape ((D,), (C, H, W) or (T, D)); ``output_shape`` is
    (classes,), (k,) or (steps, classes). ``params`` are checked and defaults filled.
    """
    spec = model_spec(name)
    p, problems = check_model_params(name, params)
    if problems:
        raise ValueError("; ".join(problems))
    input_shape, output_shape = tuple(input_shape), tuple(output_shape)
    kind = {2: "sequence", 3: "image"}.get(len(input_shape), "vector")
    if kind not in spec.inputs:
        raise ValueError(f"model {name!r} takes {' or '.join(spec.inputs)} inputs, got {kind} input {input_shape}")
    acts = _Tagged(activation)
    if name == "mlp":
        model = _mlp(acts, input_shape, output_shape, p)
    elif name == "residual_mlp":
        model = _residual_mlp(acts, input_shape, output_shape, p)
    elif name == "cnn":
        model = _cnn(acts, input_shape, output_shape, p)
    elif name in ("lstm", "gru"):
        model = RecurrentModel(name, activation, input_shape, output_shape, p)
        model.arena_init_roots = ("head",)
    else:
        model = AttentionModel(acts, input_shape, output_shape, p)
    model.arena_gains = {**_gains_from_sequentials(model, acts), **getattr(model, "arena_extra_gains", {})}
    if not hasattr(model, "arena_init_roots"):
        model.arena_init_roots = ("",)
    return model
