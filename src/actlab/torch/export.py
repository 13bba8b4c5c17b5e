"""Export: under ``torch.export``, ONNX export (either exporter) and ``torch.jit.trace`` every
activation is plain ATen ops (DESIGN.md §3), never the fused ``actlab_kernels`` operators, which
ONNX and other runtimes do not know.

- :func:`exporting` says whether such a trace is running; :func:`actlab.torch.functional.apply` then
  takes :func:`plain_call`: the spec's own torch implementation (what ``kernels.use(False)`` computes
  without a gradient), with no custom autograd Function, so a graph exported with grad enabled is
  plain ops too, and autograd differentiates them.
- :data:`EXPORT_OPS` is the torch ops namespace with the few functions ONNX has no operator for
  written in ones it has (``hypot``: the dynamo exporter fails on ``prims.hypot``); eager calls keep
  the accurate originals.
- :func:`scriptable` is what ``torch.jit.script`` gets for an actlab module (its
  ``__prepare_scriptable__``): the module traced to plain ops, once per float dtype, in a small
  scripted dispatcher.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from actlab.ops.torch_ops import TorchOps

__all__ = ["EXPORT_OPS", "exporting", "plain_call", "scriptable"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def exporting() -> bool:
    """Whether torch.export (strict or not, also under ``torch.onnx.export(dynamo=True)``) or the
    TorchScript tracer (``torch.jit.trace``, ``torch.onnx.export(dynamo=False)``) records this call."""
    return torch.compiler.is_exporting() or torch._C._is_tracing()


class ExportOps(TorchOps):
    """:class:`~actlab.ops.torch_ops.TorchOps` with ONNX-expressible stand-ins."""

    @staticmethod
    def hypot(a: Any, b: Any) -> Any:
        """sqrt(a^2 + b^2) scaled by the larger magnitude (no overflow or underflow): within ~2 ulp
        of torch.hypot; inf wherever either is infinite (even with a NaN), as hypot."""
        a, b = torch.abs(torch.as_tensor(a)), torch.abs(torch.as_tensor(b))
        big, small = torch.maximum(a, b), torch.minimum(a, b)
        ratio = small / torch.where(big == 0, torch.ones_like(big), big)
        h = big * torch.sqrt(1.0 + ratio * ratio)
        return torch.where(torch.isinf(a) | torch.isinf(b), torch.full_like(h, float("inf")), h)

    @staticmethod
    def copysign(a: Any, b: Any) -> Any:
        """|a| with b's sign (-0.0 negative) without ``prims.signbit``, which ONNX lacks (a NaN b
        counts as positive)."""
        b = torch.as_tensor(b)
        a = torch.abs(torch.as_tensor(a, dtype=b.dtype, device=b.device))
        negative = (b < 0) | ((b == 0) & (1.0 / b < 0))
        return torch.where(negative, -a, a)


EXPORT_OPS = ExportOps()


def plain_call(spec: Any) -> Callable[..., torch.Tensor]:
    """``call(x, *values)``: the spec's forward in plain torch ops (:data:`EXPORT_OPS`); float16 and
    bfloat16 in float32, rounded once, as the eager path computes them."""
    forward, names = spec.forward, spec.param_names

    def call(x: torch.Tensor, *values: Any) -> torch.Tensor:
        params = dict(zip(names, values))
        if x.dtype in _LOW_PRECISION:
            return forward(x.float(), EXPORT_OPS, **params).to(x.dtype)
        out = forward(x, EXPORT_OPS, **params)
        return out.clone() if out is x else out  # an output that is not the input (linear)

    return call
