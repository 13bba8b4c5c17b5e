"""``Activation(identifier, **params)``: any catalog activation as a ``torch.nn.Module``."""

from __future__ import annotations

from typing import Any

import torch

from actlab.registry import BoundActivation, get
from actlab.torch.functional import apply, autograd_function

__all__ = ["Activation"]


class Activation(torch.nn.Module):
    """An activation module; ``Activation("leaky_relu", negative_slope=0.2)``.

    Accepts every identifier :func:`actlab.get` does. Invalid parameters raise here, at
    construction. Stochastic activations (rrelu) are random in ``train()`` mode only.
    """

    def __init__(self, identifier: Any = None, **params: Any):
        super().__init__()
        act = get(identifier, **params)
        if not isinstance(act, BoundActivation):
            raise TypeError(f"Activation needs a registered activation, got the callable {identifier!r}")
        self.activation = act
        autograd_function(act.spec)  # built now, outside any torch.compile trace

    @property
    def spec(self) -> Any:
        return self.activation.spec

    @property
    def name(self) -> str:
        return self.activation.name

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.activation.params)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return apply(self.activation.spec, x, self.activation.params, training=self.training)

    def extra_repr(self) -> str:
        cfg = self.activation.config
        return ", ".join([self.name] + [f"{k}={v!r}" for k, v in cfg.items()])
