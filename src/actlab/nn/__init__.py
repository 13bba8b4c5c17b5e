"""torch.nn modules: :class:`Activation` for any catalog identifier, trainable and gated
activations, recurrent cells (LSTM/GRU variants) and the blocks built around them."""

from actlab.ops._lazy import require

require("torch", "actlab.nn")

from actlab.nn import activation, blocks, gated, recurrent, trainable  # noqa: E402

_SUBMODULES = (activation, trainable, gated, recurrent, blocks)
for _module in _SUBMODULES:
    globals().update({_name: getattr(_module, _name) for _name in _module.__all__})
__all__ = [_name for _module in _SUBMODULES for _name in _module.__all__]
