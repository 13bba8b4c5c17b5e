"""Export: under ``torch.export``, ONNX export (either exporter) and ``torch.jit.trace`` every
activation is plain ATen ops (DESIGN.md §3), never the fused ``actlab_kernels`` operators, which
ONNX and other runtimes do not know.

- :func:`exporting` says whether such a trace is running; :func:`actlab.torch.functional.apply` then
  takes :func:`plain_call`: the spec's own torch implementation (what ``kernels.use(False)`` computes
  without a gradient), with no custom autograd Function, so a graph exported with grad enabled is
  plain ops too, and autograd differentiates them.
- Under ONNX export it computes with :data:`ONNX_OPS`: the torch ops namespace with the functions
  ONNX has no operator for (``hypot``: the dynamo exporter fails on ``prims.hypot``; ``copysign``,
  ``erfc``, ``erfcx``) or that the exporters translate inaccurately (``expm1`` as Exp - 1,
  ``log1p`` as Log(1 + x), ``logaddexp`` overflowing) written in operators it has; eager calls and
  ``torch.export`` for other runtimes keep PyTorch's accurate originals.
- :func:`scriptable` is what ``torch.jit.script`` gets for an actlab module (its
  ``__prepare_scriptable__``): an elementwise module traced to plain ops in float32, in a small
  scripted dispatcher (float16/bfloat16 through float32; float64 refused).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from actlab.catalog import Spec
from actlab.ops.torch_ops import TorchOps

__all__ = ["ONNX_OPS", "ScriptError", "exporting", "plain_call", "scriptable"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def exporting() -> bool:
    """Whether torch.export (strict or not, also under ``torch.onnx.export(dynamo=True)``) or the
    TorchScript tracer (``torch.jit.trace``, ``torch.onnx.export(dynamo=False)``) records this call."""
    if torch.compiler.is_compiling():  # (Dynamo cannot trace _is_tracing; no jit trace runs under it)
        return torch.compiler.is_exporting()
    return torch._C._is_tracing()


def _jit_tracing() -> bool:
    return not torch.compiler.is_compiling() and torch._C._is_tracing()


def _where_nonzero(x: Any) -> Any:
    return torch.where(x == 0, torch.ones_like(x), x)


# erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z/2), z >= 0: relative error below 1.2e-7 everywhere
# (Press et al., Numerical Recipes, "erfcc", a Chebyshev fit); erfcx(z) = t exp(P(t)) has no z^2.
_ERFC_P = (-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806, 0.27886807, -1.13520398, 1.48851587,
           -0.82215223, 0.17087277)  # fmt: skip


def _erfc_parts(x: Any) -> tuple[Any, Any]:
    """(t, P(t)) at z = |x|."""
    z = torch.abs(x)
    t = 1.0 / (1.0 + 0.5 * z)
    p = torch.full_like(t, _ERFC_P[-1])
    for c in reversed(_ERFC_P[:-1]):
        p = p * t + c
    return t, p


class OnnxOps(TorchOps):
    """:class:`~actlab.ops.torch_ops.TorchOps` for ONNX export: the functions ONNX has no operator
    for, or that the exporters translate inaccurately, in operators it has (eager calls, and
    torch.export for other runtimes, keep PyTorch's accurate originals)."""

    @staticmethod
    def hypot(a: Any, b: Any) -> Any:
        """sqrt(a^2 + b^2) scaled by the larger magnitude (no overflow or underflow), within ~2 ulp
        of torch.hypot; inf wherever either is infinite (even with a NaN), as hypot. (The dynamo
        exporter fails on ``prims.hypot``.)"""
        a, b = torch.abs(torch.as_tensor(a)), torch.abs(torch.as_tensor(b))
        big, small = torch.maximum(a, b), torch.minimum(a, b)
        ratio = small / _where_nonzero(big)
        h = big * torch.sqrt(1.0 + ratio * ratio)
        return torch.where(torch.isinf(a) | torch.isinf(b), torch.full_like(h, math.inf), h)

    @staticmethod
    def copysign(a: Any, b: Any) -> Any:
        """|a| with b's sign (-0.0 negative) without ``prims.signbit``, which ONNX lacks (a NaN b
        counts as positive)."""
        b = torch.as_tensor(b)
        a = torch.abs(torch.as_tensor(a, dtype=b.dtype, device=b.device))
        negative = (b < 0) | ((b == 0) & (1.0 / b < 0))
        return torch.where(negative, -a, a)

    @staticmethod
    def expm1(x: Any) -> Any:
        """e^x - 1 by Kahan's (u - 1) x / log u, u = e^x (the exporters write Exp(x) - 1, which
        cancels near 0)."""
        u = torch.exp(x)
        um1 = u - 1.0
        # |x| >= 1/2: e^x - 1 loses at most ~2 ulp; below, Kahan's ratio (u in [0.6, 1.65])
        near = (torch.abs(x) < 0.5) & (um1 != 0)
        ratio = um1 * x / torch.log(torch.where(near, u, torch.full_like(u, 2.0)))
        return torch.where(near, ratio, torch.where(um1 == 0, x, um1))

    @staticmethod
    def log1p(x: Any) -> Any:
        """log(1 + x) by Kahan's log(u) x / (u - 1), u = 1 + x (the exporters write Log(1 + x))."""
        u = 1.0 + x
        um1 = u - 1.0
        out = torch.log(u) * (x / _where_nonzero(um1))
        return torch.where(um1 == 0, x, torch.where(u == math.inf, u, out))

    @staticmethod
    def logaddexp(a: Any, b: Any) -> Any:
        """max + log1p(e^-|a - b|) (the exporters write Log(Exp(a) + Exp(b)), which overflows)."""
        a, b = torch.as_tensor(a), torch.as_tensor(b)
        m = torch.maximum(a, b)
        d = torch.abs(a - b)
        out = m + OnnxOps.log1p(torch.exp(-torch.where(torch.isnan(d), torch.zeros_like(d), d)))
        # equal infinities (inf - inf is NaN): the infinity itself; a NaN stays NaN through m
        return torch.where(torch.isinf(m) & (a == b), m, torch.where(torch.isnan(d) & ~torch.isinf(m), d, out))

    @staticmethod
    def softplus(x: Any) -> Any:
        return OnnxOps.logaddexp(x, torch.zeros_like(x))

    @staticmethod
    def log_sigmoid(x: Any) -> Any:
        return -OnnxOps.logaddexp(-x, torch.zeros_like(x))

    @staticmethod
    def erfcx(x: Any) -> Any:
        """e^(x^2) erfc(x) (the dynamo exporter writes Exp(x^2) (1 - Erf(x)): inf * 0 in the tail;
        the TorchScript exporter has none): relative error ~1.2e-7."""
        t, p = _erfc_parts(x)
        pos = t * torch.exp(p)
        xn = torch.clamp(x, max=0.0)
        return torch.where(x >= 0, pos, 2.0 * torch.exp(xn * xn) - pos)

    @staticmethod
    def erfc(x: Any) -> Any:
        """erfc to ~1.2e-7 relative in float32 (the exporters write 1 - Erf(x): no digits left in
        the right tail); float64 keeps torch's (1 - Erf, absolute accuracy) except under the
        TorchScript exporter, which has no erfc."""
        if x.dtype == torch.float64 and not _jit_tracing():
            return torch.special.erfc(x)
        t, p = _erfc_parts(x)
        z = torch.abs(x)
        # e^(-z^2) with z^2 never rounded as a whole: h (8 fraction bits) has an exact square
        h = torch.floor(z * 256.0) * (1.0 / 256.0)
        pos = t * torch.exp(-(h * h)) * torch.exp(p - (z - h) * (z + h))
        return torch.where(x >= 0, pos, 2.0 - pos)


ONNX_OPS = OnnxOps()
TORCH_OPS = TorchOps()
_ONNX_SYMBOLICS = False


def _register_symbolics() -> None:
    """aten::asinh for the TorchScript exporter: ONNX has Asinh (opset 9), torch's tables lack it."""
    global _ONNX_SYMBOLICS
    if not _ONNX_SYMBOLICS:
        torch.onnx.register_custom_op_symbolic("aten::asinh", lambda g, x: g.op("Asinh", x), 9)
        _ONNX_SYMBOLICS = True


def plain_call(spec: Any) -> Callable[..., torch.Tensor]:
    """``call(x, *values)``: the spec's forward in plain torch ops (:data:`ONNX_OPS` under ONNX
    export); float16 and bfloat16 in float32, rounded once, as the eager path computes them."""
    forward, names = spec.forward, spec.param_names
    ops = TORCH_OPS
    if torch.onnx.is_in_onnx_export():
        ops = ONNX_OPS
        if _jit_tracing():
            _register_symbolics()

    def call(x: torch.Tensor, *values: Any) -> torch.Tensor:
        params = dict(zip(names, values))
        if x.dtype in _LOW_PRECISION:
            return forward(x.float(), ops, **params).to(x.dtype)
        out = forward(x, ops, **params)
        return out.clone() if out is x else out  # an output that is not the input (linear)

    return call


# ----------------------------------------------------------------------------- torch.jit.script
class ScriptError(TypeError):
    """torch.jit.script cannot compile this actlab module (see :func:`scriptable`)."""


class _Dispatch(torch.nn.Module):
    """What torch.jit.script compiles for an elementwise actlab activation: the module traced to
    plain ATen ops in float32 (float16/bfloat16 computed in float32 and rounded once, as the eager
    path does). float64 is refused: TorchScript's interpreter ran float64 traces of actlab's
    double-word code ~1e-8..1e-6 relative off the same code run eagerly (some constants came out
    rounded to float32; the cause is not found), which is float32's accuracy, not float64's."""

    def __init__(self, f32: torch.nn.Module, name: str, stochastic: bool):
        super().__init__()
        self.f32 = f32
        self.name = name
        self.stochastic = stochastic

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stochastic and self.training:
            raise RuntimeError(self.name + ": the scripted module computes the eval() form only; call .eval()")
        if x.dtype == torch.float32:
            return self.f32(x)
        if x.dtype == torch.float16 or x.dtype == torch.bfloat16:
            return self.f32(x.float()).to(x.dtype)
        raise RuntimeError(
            self.name + ": the scripted module takes float32, float16 or bfloat16 (float64: use the eager "
            "module or torch.export)"
        )


class _Eval(torch.nn.Module):
    """The module in eval() form, whatever its mode when traced later (rrelu is random in training)."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        training = self.module.training
        self.module.training = False
        try:
            return self.module(x)
        finally:
            self.module.training = training


def scriptable(module: Any) -> torch.nn.Module:
    """What ``torch.jit.script`` compiles for an actlab module (its ``__prepare_scriptable__``).

    An elementwise activation (with at most one value per learnable parameter) is traced to plain
    ATen ops in float32; elementwise functions read no shapes, so the trace serves every input
    shape (float16/bfloat16 through float32; float64 refused, see :class:`_Dispatch`). Vector
    functions and layers read their input's shape in Python (axes, groups, channels), which a
    trace would freeze: they raise :class:`ScriptError`, naming ``torch.jit.trace`` with an example
    input (plain ATen ops, that shape's layout) and ``torch.export`` (dynamic shapes) instead."""
    spec = getattr(module, "spec", None)
    learnable = [p for p in module.parameters()] if spec is not None else []
    if spec is None or spec.kind != "elementwise" or any(p.numel() != 1 for p in learnable):
        what = (
            f"{spec.name} works along an axis" if spec is not None and spec.kind != "elementwise" else
            "per-channel learnable values depend on the input's channel axis" if spec is not None else
            f"{type(module).__name__} is a layer whose forward TorchScript cannot compile (Python checks "
            "and shape logic)"
        )  # fmt: skip
        label = f"Activation({spec.name})" if isinstance(spec, Spec) and spec.kind != "layer" else type(module).__name__
        raise ScriptError(
            f"torch.jit.script cannot compile {label}: {what}. Use torch.jit.trace(module, example_input) "
            "(plain ATen ops, for that input's layout) or torch.export.export(module, (example_input,)) "
            "(dynamic shapes with dynamic_shapes=...)"
        )
    wrapped = _Eval(module)
    example = torch.linspace(-4.0, 4.0, 16)
    with torch.no_grad():
        f32 = torch.jit.trace(wrapped, example, check_trace=False)
    out = _Dispatch(f32, spec.name, spec.train_forward is not None)
    return out.train(module.training)
