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

from typing import Any

import torch

from actlab.nn.activation import Activation, RegisteredLayer
from actlab.registry import BoundActivation, all_specs, get

__all__ = [
    "GLU",
    "GTU",
    "Bilinear",
    "ReGLU",
    "GEGLU",
    "SwiGLU",
    "GatedMLP",
    "gated_variants",
    "Maxout",
    "ChannelMaxout",
]


class _GatedLayer(RegisteredLayer):
    variant = ""
    activation_weights = False  # projections: ordinary weights, decayed as usual

    def __init__(
        self,
        in_features: int | None,
        hidden_features: int | None = None,
        out_features: int | None = None,
        bias: bool = True,
        *,
        recompute: str | None = None,
    ):
        super().__init__()
        cfg = self._configure(
            in_features=in_features,
            hidden_features=hidden_features,
            out_features=out_features,
            bias=bias,
            recompute=recompute,
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

        self.recompute = cfg["recompute"]
        self._fused = None
        if self.recompute is not None:
            variants = gated_variants()
            if self.variant not in variants or self.out is None:
                raise ValueError(
                    f"{self.registry_name}: recompute={self.recompute!r} needs a gate a * act(b) (one of "
                    f"{', '.join(sorted(variants))}) and out_features (the down projection); got {self.variant} "
                    f"with out_features={self.out_features!r}"
                )
            from actlab.torch.gated_mlp import gated_mlp_function

            act = get(variants[self.variant])
            self._fused = gated_mlp_function(act.spec, act.params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fused is not None:  # proj's rows: [a (up); b (gate)]
            h, w, b = self.hidden_features, self.proj.weight, self.proj.bias
            return self._fused.apply(
                x,
                w[h:],
                w[:h],
                self.out.weight,
                None if b is None else b[h:],
                None if b is None else b[:h],
                self.out.bias,
                self.recompute,
                None,
                None,
                0,
            )
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


def gated_variants() -> dict[str, str]:
    """The catalog's gated units of the form a * act(b) with act an elementwise activation, as
    {variant: act}: read from the aliases ``{act}_glu`` of the vector specs (swiglu: silu_glu, ...),
    so a gated unit added to the catalog with such an alias is found here."""
    elementwise = {s.name for s in all_specs() if s.kind == "elementwise"}
    out = {}
    for spec in all_specs():
        if spec.kind != "vector":
            continue
        for alias in spec.aliases:
            act = alias.removesuffix("_glu")
            if alias.endswith("_glu") and act in elementwise:
                out[spec.name] = act
                break
    return out


class GatedMLP(torch.nn.Module):
    """A LLaMA-style gated MLP ``down_proj(act(gate_proj(x)) * up_proj(x))`` whose backward keeps
    less than the composition (:mod:`actlab.torch.gated_mlp`).

    ``activation``: an elementwise catalog activation (any identifier, ``"gelu(approximate='tanh')"``
    included) or a gated unit's name: ``"silu"``/``"swiglu"`` is SwiGLU, ``"gelu"``/``"geglu"`` GEGLU
    (exact erf GELU), ``"relu"``/``"reglu"`` ReGLU, ``"sigmoid"``/``"glu"`` GLU.
    ``recompute``: ``"elementwise"`` (default) keeps x, gate_proj(x) and up_proj(x) and recomputes the
    activation and the product in backward (same matmuls as the composition); ``"projections"`` keeps
    only x and recomputes the two projections too (two more matmuls). ``fewbit=k`` (1-4, with
    ``"elementwise"``) keeps act(g) and a k-bit code of g instead of g (see the module's docs: it
    saves nothing over ``"elementwise"``; an approximate gradient).

    The parameters are ``gate_proj``, ``up_proj``, ``down_proj`` as in transformers' ``LlamaMLP``, so
    its state_dict loads as it is; ``out_features`` defaults to ``in_features``.

    >>> import torch
    >>> mlp = GatedMLP(64, 172)  # SwiGLU, no biases
    >>> mlp(torch.randn(2, 10, 64)).shape
    torch.Size([2, 10, 64])
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        out_features: int | None = None,
        activation: Any = "silu",
        *,
        bias: bool = False,
        recompute: str = "elementwise",
        fewbit: int | None = None,
    ):
        super().__init__()
        for key, value in (("in_features", in_features), ("hidden_features", hidden_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GatedMLP: {key} must be an integer >= 1, got {value!r}")
        if out_features is not None and (
            isinstance(out_features, bool) or not isinstance(out_features, int) or out_features < 1
        ):
            raise ValueError(f"GatedMLP: out_features must be None or an integer >= 1, got {out_features!r}")
        from actlab.torch.gated_mlp import RECOMPUTE, gated_mlp_function

        if recompute not in RECOMPUTE:
            raise ValueError(f"GatedMLP: recompute must be one of {', '.join(map(repr, RECOMPUTE))}, got {recompute!r}")
        self.act = self._resolve(activation)
        self.in_features, self.hidden_features = in_features, hidden_features
        self.out_features = in_features if out_features is None else out_features
        self.recompute = recompute
        self.gate_proj = torch.nn.Linear(in_features, hidden_features, bias=bias)
        self.up_proj = torch.nn.Linear(in_features, hidden_features, bias=bias)
        self.down_proj = torch.nn.Linear(hidden_features, self.out_features, bias=bias)
        self.fewbit = self._fewbit(fewbit, recompute)
        self._function = gated_mlp_function(self.act.spec, self.act.params)

    @staticmethod
    def _resolve(activation: Any) -> BoundActivation:
        if isinstance(activation, str) and activation in gated_variants():
            return get(gated_variants()[activation])
        try:
            act = get(activation)
        except (KeyError, ValueError, TypeError) as err:
            raise ValueError(f"GatedMLP: activation {activation!r}: {err}") from None
        if not isinstance(act, BoundActivation) or act.spec.kind != "elementwise":
            variants = ", ".join(f"{v} ({a})" for v, a in gated_variants().items())
            raise ValueError(
                f"GatedMLP: activation must be an elementwise catalog activation or one of {variants}, "
                f"got {activation!r}"
            )
        if act.learnable:
            raise ValueError(f"GatedMLP: learnable activation parameters are not supported, got {activation!r}")
        return act

    def _fewbit(self, bits: int | None, recompute: str) -> int:
        if bits is None:
            self.register_buffer("fewbit_breakpoints", None, persistent=False)
            self.register_buffer("fewbit_levels", None, persistent=False)
            return 0
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 4:
            raise ValueError(f"GatedMLP: fewbit must be None or an integer 1..4, got {bits!r}")
        if recompute != "elementwise":
            raise ValueError(
                f"GatedMLP: fewbit needs recompute='elementwise' (with recompute={recompute!r} the gate is "
                "recomputed exactly: there is nothing for a code to replace)"
            )
        try:
            from actlab.torch.fewbit import fewbit_table
        except ImportError as err:
            raise ImportError(f"GatedMLP: fewbit= needs actlab.torch.fewbit (the few-bit tables): {err}") from None

        table = fewbit_table(self.act.spec, dict(self.act.params), bits)
        dtype = self.gate_proj.weight.dtype
        self.register_buffer(
            "fewbit_breakpoints", torch.tensor(list(map(float, table.breakpoints)), dtype=dtype), persistent=False
        )
        self.register_buffer(
            "fewbit_levels", torch.tensor(list(map(float, table.levels)), dtype=dtype), persistent=False
        )
        return bits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._function.apply(
            x,
            self.gate_proj.weight,
            self.up_proj.weight,
            self.down_proj.weight,
            self.gate_proj.bias,
            self.up_proj.bias,
            self.down_proj.bias,
            self.recompute,
            self.fewbit_breakpoints,
            self.fewbit_levels,
            self.fewbit,
        )

    def extra_repr(self) -> str:
        extra = f", fewbit={self.fewbit}" if self.fewbit else ""
        return f"activation={self.act!r}, recompute={self.recompute!r}{extra}"


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
