"""torch.nn modules for activations: :class:`Activation` wraps any identifier."""

from actlab.ops._lazy import require

require("torch", "actlab.nn")

from actlab.nn.activation import Activation  # noqa: E402

__all__ = ["Activation"]
