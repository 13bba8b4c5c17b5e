"""Gated linear units with their projections (GLU, GTU, Bilinear, ReGLU, GEGLU, SwiGLU) and maxout
layers.

Each gated layer is one fused projection ``proj``: in_features -> 2 * hidden_features = [a, b],
the catalog's gating function (a * act(b), b the gate), and an optional output projection
``out``. The gating runs through the catalog spec's autograd Function, whose backward keeps only
its input, the projection (the two halves), and recomputes the activation from it.

>>> import torch
>>> mlp = SwiGLU(64, 172, 64, bias=False)  # LLaMA-style: in -> 2 x hidden -> out
>>> mlp(torch.randn(2, 10, 64)).shape
torch.Size([2, 10, 64])
"""

from __future__ import annotations

import torch

from actlab.nn.activation import Activation, RegisteredLayer

__all__ = ["GLU", "GTU", "Bilinear", "ReGLU", "GEGLU", "SwiGLU", "Maxout", "ChannelMaxout"]


class _GatedLayer(RegisteredLayer):
    variant = ""
    activation_weights = False  # projections: ordinary weights, decayed as usual

    def __init__(
        self,
        in_features: int | None,
        hidden_features: int | None = None,
        out_features: int | None = None,
        bias: bool = True,
    ):
        super().__init__()
        cfg = self._configure(
            in_features=in_features, hidden_features=hidden_features, out_features=out_features, bias=bias
        )
        if cfg["in_features"] is None:
            raise ValueError(f"{self.registry_name}: in_features is required (an integer >= 1), got None")
        self.in_features = cfg["in_features"]
        self.hidden_features = cfg["hidden_features"] or self.in_features
        self.out_features = cfg["out_features"]
        self.proj = torch.nn.Linear(self.in_features, 2 * self.hidden_features, bias=cfg["bias"])
        self.gate = Activation(self.variant)  # along the last axis
        self.out = (
            torch.nn.Linear(self.hidden_features, self.out_features, bias=cfg["bias"])
            if self.out_features is not None
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.gate(self.proj(x))
        return self.out(h) if self.out is not None else h


class GLU(_GatedLayer):
    """Gated linear unit (Dauphin et al., 2016): a * sigmoid(b) over a fused projection.

    ``GLU(in_features, hidden_features)`` is the paper's layer; ``out_features`` adds an output
    projection (an MLP block, as timm's GluMlp).
    """

    registry_name, variant = "glu_layer", "glu"


class GTU(_GatedLayer):
    """Gated tanh unit tanh(a) * sigmoid(b) (van den Oord et al., 2016) over a fused projection."""

    registry_name, variant = "gtu_layer", "gtu"


class Bilinear(_GatedLayer):
    """Bilinear unit a * b (Shazeer, 2020) over a fused projection."""

    registry_name, variant = "bilinear_layer", "bilinear"


class ReGLU(_GatedLayer):
    """ReLU-gated unit a * relu(b) (Shazeer, 2020) over a fused projection."""

    registry_name, variant = "reglu_layer", "reglu"


class GEGLU(_GatedLayer):
    """GELU-gated unit a * gelu(b) (Shazeer, 2020; exact erf GELU) over a fused projection."""

    registry_name, variant = "geglu_layer", "geglu"


class SwiGLU(_GatedLayer):
    """SiLU-gated unit a * silu(b) (Shazeer, 2020): ``SwiGLU(d, h, d, bias=False)`` is the LLaMA MLP.

    To load LLaMA's ``gate_proj``/``up_proj``/``down_proj``: ``proj.weight = cat([up, gate])``,
    ``out.weight = down`` (the second half of ``proj`` is the gate).
    """

    registry_name, variant = "swiglu_layer", "swiglu"


class Maxout(RegisteredLayer):
    """Maxout unit (Goodfellow et al., 2013): ``pieces`` affine maps per output, their maximum.

    ``linear`` maps in_features to out_features * pieces; rows [i k, (i+1) k) are output i's pieces
    (the catalog's maxout groups). The backward keeps only the affine output.
    """

    registry_name = "maxout_layer"
    activation_weights = False

    def __init__(self, in_features: int | None, out_features: int | None, pieces: int = 2, bias: bool = True):
        super().__init__()
        cfg = self._configure(in_features=in_features, out_features=out_features, pieces=pieces, bias=bias)
        for key in ("in_features", "out_features"):
            if cfg[key] is None:
                raise ValueError(f"maxout_layer: {key} is required (an integer >= 1), got None")
        self.in_features, self.out_features, self.pieces = cfg["in_features"], cfg["out_features"], cfg["pieces"]
        self.linear = torch.nn.Linear(self.in_features, self.out_features * self.pieces, bias=cfg["bias"])
        self.maxout = Activation("maxout", pieces=self.pieces)  # along the last axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxout(self.linear(x))


class ChannelMaxout(Activation):
    """Channel-group maxout of feature maps: the maximum over groups of ``pieces`` consecutive
    channels along ``dim`` (C -> C / pieces; a ValueError naming the shape if C is not divisible).
    It has no weights: the catalog's ``maxout(axis=dim, pieces=pieces)``.
    """

    def __init__(self, pieces: int = 2, dim: int = 1):
        super().__init__("maxout", pieces=pieces, axis=dim)
