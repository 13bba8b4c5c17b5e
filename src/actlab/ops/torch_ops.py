"""The ``ops`` namespace on torch (imported only by actlab.torch)."""

from __future__ import annotations

from typing import Any

import torch


class TorchOps:
    name = "torch"
    pi = 3.141592653589793

    exp = staticmethod(torch.exp)
    expm1 = staticmethod(torch.expm1)
    log = staticmethod(torch.log)
    log1p = staticmethod(torch.log1p)
    sqrt = staticmethod(torch.sqrt)
    tanh = staticmethod(torch.tanh)
    sinh = staticmethod(torch.sinh)
    cosh = staticmethod(torch.cosh)
    sin = staticmethod(torch.sin)
    cos = staticmethod(torch.cos)
    arctan = staticmethod(torch.atan)
    abs = staticmethod(torch.abs)
    sign = staticmethod(torch.sign)
    square = staticmethod(torch.square)
    isnan = staticmethod(torch.isnan)
    isinf = staticmethod(torch.isinf)
    isfinite = staticmethod(torch.isfinite)
    zeros_like = staticmethod(torch.zeros_like)
    ones_like = staticmethod(torch.ones_like)
    asinh = staticmethod(torch.asinh)
    copysign = staticmethod(torch.copysign)
    logaddexp = staticmethod(torch.logaddexp)
    hypot = staticmethod(torch.hypot)
    erfcx = staticmethod(torch.special.erfcx)
    floor = staticmethod(torch.floor)
    erf = staticmethod(torch.special.erf)
    erfc = staticmethod(torch.special.erfc)
    sigmoid = staticmethod(torch.sigmoid)

    @staticmethod
    def maximum(a: Any, b: Any) -> Any:
        if not isinstance(a, torch.Tensor):
            return torch.clamp_min(b, a)
        if not isinstance(b, torch.Tensor):
            return torch.clamp_min(a, b)
        return torch.maximum(a, b)

    @staticmethod
    def minimum(a: Any, b: Any) -> Any:
        if not isinstance(a, torch.Tensor):
            return torch.clamp_max(b, a)
        if not isinstance(b, torch.Tensor):
            return torch.clamp_max(a, b)
        return torch.minimum(a, b)

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> Any:
        return torch.where(cond, a, b)

    @staticmethod
    def full_like(x: Any, value: float) -> Any:
        return torch.full_like(x, value)

    @staticmethod
    def clip(x: Any, lo: float | None, hi: float | None) -> Any:
        return torch.clamp(x, lo, hi)

    @staticmethod
    def softplus(x: Any) -> Any:
        """log(1 + e^x) without overflow or threshold jump."""
        return torch.logaddexp(x, torch.zeros_like(x))

    @staticmethod
    def log_sigmoid(x: Any) -> Any:
        return -torch.logaddexp(-x, torch.zeros_like(x))

    @staticmethod
    def finfo(x: Any) -> Any:
        return torch.finfo(x.dtype)

    # --- along an axis (vector specs)
    @staticmethod
    def amax(x: Any, axis: int) -> Any:
        return torch.amax(x, dim=axis, keepdim=True)

    @staticmethod
    def sum(x: Any, axis: int) -> Any:
        return torch.sum(x, dim=axis, keepdim=True)

    @staticmethod
    def cumsum(x: Any, axis: int) -> Any:
        return torch.cumsum(x, dim=axis)

    @staticmethod
    def sort_descending(x: Any, axis: int) -> Any:
        return torch.sort(x, dim=axis, descending=True).values

    @staticmethod
    def take_along(x: Any, index: Any, axis: int) -> Any:
        return torch.gather(x, axis, index)

    @staticmethod
    def count_along(x: Any, axis: int) -> Any:
        n = x.shape[axis]
        shape = [1] * x.ndim
        shape[axis] = n
        return torch.arange(1, n + 1, dtype=x.dtype, device=x.device).reshape(shape)

    @staticmethod
    def split2(x: Any, axis: int) -> tuple[Any, Any]:
        a, b = torch.chunk(x, 2, dim=axis)
        return a, b

    @staticmethod
    def concat(xs: Any, axis: int) -> Any:
        return torch.cat(list(xs), dim=axis)

    @staticmethod
    def reshape(x: Any, shape: Any) -> Any:
        return torch.reshape(x, tuple(shape))

    @staticmethod
    def amax_dim(x: Any, axis: int) -> Any:
        return torch.amax(x, dim=axis)

    @staticmethod
    def permute(x: Any, order: Any) -> Any:
        return torch.permute(x, tuple(order))

    @staticmethod
    def numel(x: Any) -> int:
        return x.numel()

    @staticmethod
    def as_mask(where: Any, like: Any) -> Any:
        """``where`` as a boolean tensor on ``like``'s device; anything but booleans is refused."""
        mask = torch.as_tensor(where, device=like.device)
        if mask.dtype != torch.bool:
            raise TypeError(f"where= must be a boolean mask, got dtype {mask.dtype}")
        return mask


TORCH = TorchOps()
