"""Building blocks whose activation or normaliser is a catalog identifier.

- :class:`ResidualBlock`: two linear (MLP) or 3x3 convolution (conv) layers around a skip
  connection, post-activation as in the original ResNet (He et al. 2016, arXiv:1512.03385) or
  pre-activation, the identity-mapping form of He et al. 2016b (arXiv:1603.05027).
- :class:`AdditiveAttention`: Bahdanau et al.'s additive attention (2015, arXiv:1409.0473)
  with the normaliser chosen from the catalog's probability maps (softmax, sparsemax, entmax15,
  ...), returning the attention weights along with the context.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from actlab.registry import BoundActivation, all_specs, get, serialize
from actlab.torch.functional import apply

__all__ = ["ResidualBlock", "AdditiveAttention"]


def _activation_module(identifier: Any) -> nn.Module:
    """A fresh activation module for ``identifier`` (trainable ones too)."""
    from actlab.nn.activation import create_activation

    return create_activation(identifier)


def _identifier_config(identifier: Any) -> Any:
    """A JSON-serialisable form of an activation identifier (strings are kept as given)."""
    if identifier is None or isinstance(identifier, (str, dict)):
        return identifier
    return serialize(get(identifier))


# --------------------------------------------------------------------------- residual block
_KINDS = ("mlp", "conv")
_NORMS = ("batch", "layer", None)


class ResidualBlock(nn.Module):
    """A residual block with the activation as a parameter.

    Post-activation (``pre_activation=False``, the original ResNet)::

        y = act(x + norm2(W2 act(norm1(W1 x))))

    Pre-activation (He et al. 2016b, "Identity Mappings in Deep Residual Networks"), whose skip
    path is a clean identity::

        y = x + W2 act(norm2(W1 act(norm1(x))))

    ``kind="mlp"`` uses Linear layers on (..., features) inputs; ``kind="conv"`` uses 3x3
    convolutions (padding 1) on (N, features, H, W) maps. ``norm`` is ``"batch"`` (BatchNorm1d /
    BatchNorm2d), ``"layer"`` (LayerNorm / GroupNorm with one group, which normalises over C, H, W)
    or None; layers followed by a norm have no bias (the norm's shift replaces it). ``hidden`` is
    the inner width (default ``features``). Each activation site gets its own module, so
    trainable activations (``"prelu"``) learn separate parameters.

    Example::

        >>> block = ResidualBlock(16, "gelu", pre_activation=True, norm="layer")
        >>> block(torch.randn(4, 16)).shape
        torch.Size([4, 16])
    """

    def __init__(
        self,
        features: int,
        activation: Any = "relu",
        *,
        kind: str = "mlp",
        pre_activation: bool = False,
        norm: str | None = "batch",
        hidden: int | None = None,
    ):
        super().__init__()
        if isinstance(features, bool) or not isinstance(features, int) or features <= 0:
            raise ValueError(f"features must be a positive int, got {features!r}")
        if hidden is not None and (isinstance(hidden, bool) or not isinstance(hidden, int) or hidden <= 0):
            raise ValueError(f"hidden must be a positive int or None, got {hidden!r}")
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}")
        self.features, self.kind, self.norm = features, kind, norm
        self.hidden = features if hidden is None else hidden
        self.pre_activation = bool(pre_activation)
        self._activation_id = _identifier_config(activation)
        self.act1 = _activation_module(activation)
        self.act2 = _activation_module(activation)
        width = self.hidden
        # Pre-activation normalises the block input (features) and the inner width; post-activation
        # normalises the outputs of the two layers (hidden, then features).
        norm_sizes = (features, width) if self.pre_activation else (width, features)
        self.norm1 = self._norm(norm_sizes[0])
        self.norm2 = self._norm(norm_sizes[1])
        # A layer followed by a norm needs no bias (the norm's shift replaces it); in pre-activation
        # the second layer's output meets the skip connection directly, so it keeps its bias.
        bias1 = norm is None
        bias2 = norm is None or self.pre_activation
        if kind == "mlp":
            self.layer1 = nn.Linear(features, width, bias=bias1)
            self.layer2 = nn.Linear(width, features, bias=bias2)
        else:
            self.layer1 = nn.Conv2d(features, width, 3, padding=1, bias=bias1)
            self.layer2 = nn.Conv2d(width, features, 3, padding=1, bias=bias2)

    def _norm(self, size: int) -> nn.Module:
        if self.norm is None:
            return nn.Identity()
        if self.kind == "mlp":
            return nn.BatchNorm1d(size) if self.norm == "batch" else nn.LayerNorm(size)
        return nn.BatchNorm2d(size) if self.norm == "batch" else nn.GroupNorm(1, size)

    def _check(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"ResidualBlock: input must be a torch.Tensor, got {type(x).__name__}")
        if self.kind == "mlp":
            if x.dim() < 1 or x.shape[-1] != self.features:
                raise ValueError(
                    f"ResidualBlock(kind='mlp'): input must have shape (..., {self.features}), got {tuple(x.shape)}"
                )
            if self.norm == "batch" and x.dim() != 2:
                raise ValueError(
                    f"ResidualBlock(kind='mlp', norm='batch'): input must have shape (batch, {self.features}), "
                    f"got {tuple(x.shape)}"
                )
        elif x.dim() != 4 or x.shape[1] != self.features:
            raise ValueError(
                f"ResidualBlock(kind='conv'): input must have shape (N, {self.features}, H, W), got {tuple(x.shape)}"
            )

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        if self.pre_activation:
            r = self.layer1(self.act1(self.norm1(x)))
            return x + self.layer2(self.act2(self.norm2(r)))
        r = self.act1(self.norm1(self.layer1(x)))
        return self.act2(x + self.norm2(self.layer2(r)))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable: ``ResidualBlock.from_config(block.get_config())``."""
        return {
            "features": self.features,
            "activation": self._activation_id,
            "kind": self.kind,
            "pre_activation": self.pre_activation,
            "norm": self.norm,
            "hidden": self.hidden,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ResidualBlock:
        return cls(**dict(config))

    def extra_repr(self) -> str:
        return (
            f"{self.features}, activation={self._activation_id!r}, kind={self.kind!r}, "
            f"pre_activation={self.pre_activation}, norm={self.norm!r}, hidden={self.hidden}"
        )


# --------------------------------------------------------------------------- additive attention
def normalizer_names() -> list[str]:
    """Catalog activations usable as attention normalisers: vector maps onto [0, 1] (probabilities)."""
    return [s.name for s in all_specs() if s.kind == "vector" and tuple(s.bounds or ()) == (0.0, 1.0)]


# Masked scores are moved this far past the valid ones: far enough that softmax underflows to an
# exact 0 (exp(-1e4) = 0 in every float type) and sparse maps (support threshold within 1 of the
# top score) leave them out of the support.
_MASK_GAP = 1e4


def _mask_direction(act: BoundActivation) -> float:
    """-1 if the normaliser drops very low scores (softmax), +1 if very high ones (softmin)."""
    for sign in (-1.0, 1.0):
        weights = np.asarray(act(np.array([0.0, sign * _MASK_GAP])))
        if weights[1] == 0.0 and abs(weights[0] - 1.0) < 1e-12:
            return sign
    raise ValueError(f"normalizer {act!r} does not give a masked score exactly zero weight; it cannot take a mask")


class AdditiveAttention(nn.Module):
    """Additive (Bahdanau) attention with a catalog normaliser; returns ``(context, weights)``.

    ``score(q, k_j) = vᵀ tanh(W_q q + W_k k_j)`` (Bahdanau et al. 2015, eq. 6 and appendix A.1.2),
    ``weights = normalizer(scores)`` along the key axis, ``context = Σ_j weights_j · value_j``.

    ``forward(query, keys, values=None, mask=None)``: ``query`` (batch, query_dim) or (batch,
    queries, query_dim); ``keys`` (batch, keys, key_dim); ``values`` (batch, keys, value_dim),
    default ``keys``; ``mask`` bool (batch, keys) or (batch, queries, keys), True where a key may
    be attended (the convention of ``torch.nn.functional.scaled_dot_product_attention`` and Keras).
    Masked keys get exactly zero weight; a query with no valid key gets all-zero weights and a
    zero context. ``normalizer`` is any catalog probability map (see :func:`normalizer_names`:
    softmax, sparsemax, entmax15, ...); sparsemax and entmax15 give exact zeros.

    Example::

        >>> att = AdditiveAttention(8, 6, 16, normalizer="sparsemax")
        >>> context, weights = att(torch.randn(2, 8), torch.randn(2, 5, 6))
        >>> context.shape, weights.shape
        (torch.Size([2, 6]), torch.Size([2, 5]))
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int, normalizer: Any = "softmax"):
        super().__init__()
        for name, value in (("query_dim", query_dim), ("key_dim", key_dim), ("hidden_dim", hidden_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        act = get(normalizer)
        allowed = normalizer_names()
        if not isinstance(act, BoundActivation) or act.name not in allowed:
            raise ValueError(f"normalizer must be one of the catalog's probability maps {allowed}, got {normalizer!r}")
        if act.params.get("axis", -1) != -1:
            raise ValueError(
                f"normalizer {normalizer!r}: attention normalises along the key axis; leave out 'axis' "
                f"(got axis={act.params['axis']})"
            )
        self.query_dim, self.key_dim, self.hidden_dim = query_dim, key_dim, hidden_dim
        self.normalizer = act
        self._mask_sign = _mask_direction(act)
        self.query_proj = nn.Linear(query_dim, hidden_dim, bias=False)
        self.key_proj = nn.Linear(key_dim, hidden_dim, bias=False)
        self.score = nn.Linear(hidden_dim, 1, bias=False)

    def forward(
        self, query: Tensor, keys: Tensor, values: Tensor | None = None, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        single = self._check(query, keys, values, mask)
        q = query.unsqueeze(1) if single else query  # (B, Q, Dq)
        values = keys if values is None else values
        hidden = torch.tanh(self.query_proj(q).unsqueeze(2) + self.key_proj(keys).unsqueeze(1))  # (B, Q, K, Hd)
        scores = self.score(hidden).squeeze(-1)  # (B, Q, K)
        if mask is not None:
            keep = (mask.unsqueeze(1) if mask.dim() == 2 else mask).expand_as(scores)
            scores = self._masked(scores, keep)
        weights = apply(self.normalizer.spec, scores, {**self.normalizer.params, "axis": -1})
        if mask is not None:
            weights = weights * keep.to(weights.dtype)
        context = weights @ values  # (B, Q, Dv)
        if single:
            return context.squeeze(1), weights.squeeze(1)
        return context, weights

    def _masked(self, scores: Tensor, keep: Tensor) -> Tensor:
        """Scores with masked keys moved ``_MASK_GAP`` beyond the valid ones (no gradient through them)."""
        sign = self._mask_sign
        with torch.no_grad():
            valid = scores.masked_fill(~keep, -sign * torch.inf)
            edge = valid.amax(-1, keepdim=True) if sign < 0 else valid.amin(-1, keepdim=True)
            edge = torch.where(torch.isfinite(edge), edge, torch.zeros_like(edge))  # rows with no valid key
            fill = edge + sign * _MASK_GAP
        return torch.where(keep, scores, fill.expand_as(scores))

    def _check(self, query: Tensor, keys: Tensor, values: Tensor | None, mask: Tensor | None) -> bool:
        name = "AdditiveAttention"
        for arg, t in (("query", query), ("keys", keys), ("values", values), ("mask", mask)):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"{name}: {arg} must be a torch.Tensor, got {type(t).__name__}")
        if query.dim() not in (2, 3) or query.shape[-1] != self.query_dim:
            raise ValueError(
                f"{name}: query must have shape (batch, {self.query_dim}) or (batch, queries, {self.query_dim}), "
                f"got {tuple(query.shape)}"
            )
        batch = query.shape[0]
        if keys.dim() != 3 or keys.shape[0] != batch or keys.shape[-1] != self.key_dim:
            raise ValueError(f"{name}: keys must have shape ({batch}, keys, {self.key_dim}), got {tuple(keys.shape)}")
        n_keys = keys.shape[1]
        if values is not None and (values.dim() != 3 or values.shape[:2] != keys.shape[:2]):
            raise ValueError(
                f"{name}: values must have shape ({batch}, {n_keys}, value_dim), got {tuple(values.shape)}"
            )
        if mask is not None:
            shapes = [(batch, n_keys)] + ([(batch, query.shape[1], n_keys)] if query.dim() == 3 else [])
            if mask.dtype != torch.bool or tuple(mask.shape) not in shapes:
                raise ValueError(
                    f"{name}: mask must be a bool tensor of shape {' or '.join(map(str, shapes))}, "
                    f"got {mask.dtype} {tuple(mask.shape)}"
                )
        return query.dim() == 2

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable: ``AdditiveAttention.from_config(att.get_config())``."""
        return {
            "query_dim": self.query_dim,
            "key_dim": self.key_dim,
            "hidden_dim": self.hidden_dim,
            "normalizer": serialize(self.normalizer),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AdditiveAttention:
        return cls(**dict(config))

    def extra_repr(self) -> str:
        return f"{self.query_dim}, {self.key_dim}, {self.hidden_dim}, normalizer={self.normalizer!r}"
