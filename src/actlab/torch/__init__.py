"""actlab on PyTorch: ``actlab.torch.functional.<name>(x, **params)``."""

from actlab.ops._lazy import require

require("torch", "actlab.torch")

from actlab.torch import functional  # noqa: E402

__all__ = ["functional"]
