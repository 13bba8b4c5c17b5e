"""torch.nn modules: :class:`Activation` for any catalog identifier, trainable and gated
activations, recurrent cells (LSTM/GRU variants) and the blocks built around them, and drop-in
classes under PyTorch's and timm's names (``GELU``, ``ReLU(inplace=True)``, ``QuickGELU``:
:mod:`actlab.nn.torch_named`)."""

from actlab.ops._lazy import require

require("torch", "actlab.nn")

from actlab.nn import activation, blocks, gated, recurrent, torch_named, trainable  # noqa: E402

_SUBMODULES = (activation, trainable, gated, recurrent, blocks, torch_named)
for _module in _SUBMODULES:
    globals().update({_name: getattr(_module, _name) for _name in _module.__all__})
__all__ = [_name for _module in _SUBMODULES for _name in _module.__all__]
