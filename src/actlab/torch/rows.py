"""The row-fused fast path of the softmax family (``csrc/rows.cpp``): one C++ pass per row forward
and one backward, at the accuracy of actlab's eager code (sums and the final division in double,
the maximum's own log_softmax output kept, the dominant entry's vjp without cancellation).

:func:`actlab.torch.functional.apply` takes it for CPU float32/bfloat16/float16 tensors (the fused
kernels switched on and loaded: :func:`actlab.torch.kernels.eligible`) along one int axis without a
``where=`` mask. Everything else (float64, masks, tuple axes, 0-d and empty inputs, forward-mode AD,
functorch transforms) keeps the eager path, and so does a backward that records a graph (double
backward): it runs the spec's vjp, whose torch ops autograd can differentiate.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd import forward_ad

from actlab.torch import kernels

__all__ = ["ROW_KERNELS", "takes", "fused"]

# The specs with a row kernel, by name: (log, negate) of actlab_kernels::softmax_forward/backward.
ROW_KERNELS: dict[str, tuple[bool, bool]] = {
    "softmax": (False, False),
    "log_softmax": (True, False),
    "softmin": (False, True),  # softmax(-x); its vjp is minus softmax's
}
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def takes(name: str, x: torch.Tensor, axis: Any, where: Any) -> bool:
    """Whether the call ``name(x, axis, where)`` runs the row kernel."""
    if name not in ROW_KERNELS or where is not None or not isinstance(axis, int):
        return False
    if not isinstance(x, torch.Tensor) or x.numel() == 0 or not -x.dim() <= axis < x.dim():
        return False  # 0-d, empty, or an axis out of range (the eager path says so)
    if not torch.compiler.is_compiling():
        if torch._C._are_functorch_transforms_active() or forward_ad._current_level >= 0:
            return False  # vmap/jvp/forward-mode AD: the eager Function (it has the jvp)
        kernels.build()
    return kernels.eligible(x)


def _vjp_eager(name: str, y: torch.Tensor, grad: torch.Tensor, dim: int) -> torch.Tensor:
    """The spec's own vjp from the output, in torch ops (differentiable: double backward)."""
    from actlab.ops.torch_ops import TORCH
    from actlab.registry import get_spec

    return get_spec(name).vjp(None, y, grad, TORCH, dim)


class RowFunction(torch.autograd.Function):
    """softmax/log_softmax/softmin through the row kernel; saves the output (float32) or the input
    (half and bfloat16, whose rounded output has lost the digits the vjp needs: the backward
    recomputes the float32 output from it, as the eager path does)."""

    @staticmethod
    def forward(x: torch.Tensor, dim: int, log: bool, negate: bool, name: str) -> torch.Tensor:
        return torch.ops.actlab_kernels.softmax_forward(x, dim, log, negate)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, ctx.dim, ctx.log, ctx.negate, ctx.name = inputs
        ctx.low = x.dtype in _LOW_PRECISION
        ctx.save_for_backward(x if ctx.low else output)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        (saved,) = ctx.saved_tensors
        dim, log, negate = ctx.dim, ctx.log, ctx.negate
        if torch.is_grad_enabled():  # create_graph=True: the eager vjp records the graph
            if ctx.low:
                y = RowFunction.apply(saved.float(), dim, log, negate, ctx.name)
                gx = _vjp_eager(ctx.name, y, grad.float(), dim).to(saved.dtype)
            else:
                gx = _vjp_eager(ctx.name, saved, grad, dim)
        elif ctx.low:
            y = torch.ops.actlab_kernels.softmax_forward(saved.float(), dim, log, negate)
            gx = torch.ops.actlab_kernels.softmax_backward(y, grad.float(), dim, log, negate).to(saved.dtype)
        else:
            gx = torch.ops.actlab_kernels.softmax_backward(saved, grad, dim, log, negate)
        return gx, None, None, None, None


def fused(name: str, x: torch.Tensor, axis: int) -> torch.Tensor:
    """``name`` (a key of ROW_KERNELS) of ``x`` along ``axis`` by the row kernel (see :func:`takes`)."""
    log, negate = ROW_KERNELS[name]
    dim = axis % x.dim()
    if x.requires_grad and torch.is_grad_enabled():
        return RowFunction.apply(x, dim, log, negate, name)
    # nothing to record: the kernel alone (Dynamo also mis-traces a Function whose input needs no grad)
    return torch.ops.actlab_kernels.softmax_forward(x, dim, log, negate)
