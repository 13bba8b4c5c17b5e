"""``inplace=True``: the output written into the input, and only the output kept for backward.

Allowed where the derivative is a function of the output, derived from the spec:

- ``spec.derivative_from_output`` is set (selu, log_sigmoid, exponential, ...): backward is
  ``g * f'(y)`` by that formula;
- the function is piecewise linear with a derivative the output determines: between the spec's
  kinks the derivative is constant and the function linear (checked on the spec's own NumPy forward
  and derivative at the parameters given), and no output value comes from two pieces with different
  slopes, also once rounded to each dtype next to every kink (relu, leaky_relu, hard_tanh, relu6,
  softshrink, threshold at its default, ...; not hard_sigmoid, whose x / 6 + 1/2 rounds to 1 just
  below x = 3). Backward looks the slope up from the output's piece; at a kink, the kink's derivative (the
  catalog's convention, PyTorch's where PyTorch has the function).

Everything else is refused at construction with the reason: f' needs the input (silu, gelu, mish,
hardswish: PyTorch's ``silu_``/``mish_``/``hardswish_`` silently keep a clone of the input, so
they save no memory), the catalog has no accurate output form of f' (sigmoid's y (1 - y) loses
digits as y -> 1), two inputs with different slopes give the same output (abs, threshold with
``value`` above ``threshold``), or the function is random in training (rrelu).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from actlab.catalog import Spec
from actlab.ops.numpy_ops import NUMPY
from actlab.ops.torch_ops import TORCH

__all__ = ["InplaceRule", "inplace_rule", "check_inplace", "apply_inplace", "validate_flag"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class InplaceRule:
    """How backward gets f' from the output: ``formula`` (spec.derivative_from_output) or
    ``pieces``: (low, high, slope) output ranges, a point where low == high, open intervals
    otherwise (closed at an infinite end: relu(inf) = inf has slope 1)."""

    spec_name: str
    formula: bool
    pieces: tuple[tuple[float, float, float], ...] = ()


def validate_flag(value: Any, owner: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{owner}: inplace must be True or False, got {value!r}")
    return value


# Rules by (id(spec), parameters); the spec itself is kept to check identity (a re-registered name).
_RULES: dict[tuple, tuple[Spec, InplaceRule | None, str]] = {}


def inplace_rule(spec: Spec, params: dict[str, Any]) -> tuple[InplaceRule | None, str]:
    """(rule, "") where ``spec`` at ``params`` can run in place, else (None, the reason)."""
    key = (id(spec), tuple(sorted((k, repr(v)) for k, v in params.items())))
    known = _RULES.get(key)
    if known is not None and known[0] is spec:
        return known[1], known[2]
    rule, reason = _derive(spec, params)
    _RULES[key] = (spec, rule, reason)
    return rule, reason


def check_inplace(spec: Spec, params: dict[str, Any], owner: str) -> InplaceRule:
    """The rule, or a ValueError naming why ``spec`` cannot run in place and what to use instead."""
    rule, reason = inplace_rule(spec, params)
    if rule is None:
        raise ValueError(
            f"{owner}: inplace=True is not possible for {spec.name}: {reason}; use inplace=False "
            "(the default: a new output tensor, the input kept for backward)"
        )
    return rule


def _derive(spec: Spec, params: dict[str, Any]) -> tuple[InplaceRule | None, str]:
    if spec.kind != "elementwise":
        return None, f"it is a {spec.kind} function (in place is for elementwise functions)"
    if spec.train_forward is not None:
        return None, "its training-mode outputs are random, and backward needs the random slopes"
    if spec.derivative_from_output is not None:
        return InplaceRule(spec.name, True), ""
    pieces, why = _linear_pieces(spec, params)
    if pieces is None:
        return None, why
    return InplaceRule(spec.name, False, pieces), ""


def _f(spec: Spec, fn: Any, x: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.asarray(fn(x, NUMPY, **params), dtype=np.float64)


def _samples(a: float, b: float) -> np.ndarray:
    if math.isinf(a) and math.isinf(b):
        return np.array([-1e6, -7.0, -1.0, -0.3, 0.0, 0.4, 1.0, 7.0, 1e6])
    if math.isinf(a):
        scale = max(1.0, abs(b))
        return b - scale * np.array([1e6, 7.0, 1.0, 0.3, 1e-3])
    if math.isinf(b):
        scale = max(1.0, abs(a))
        return a + scale * np.array([1e-3, 0.3, 1.0, 7.0, 1e6])
    return a + (b - a) * np.array([0.01, 0.2, 0.5, 0.8, 0.99])


def _linear_pieces(spec: Spec, params: dict[str, Any]) -> tuple[tuple | None, str]:
    """Output pieces of a piecewise-linear spec, or (None, why not)."""
    needs_input = (
        "backward would need the input: the spec has no derivative from the output "
        "(derivative_from_output) and is not piecewise linear"
    )
    if spec.derivative is None or spec.domain != (-math.inf, math.inf):
        return None, needs_input
    kinks = sorted(spec.kink_points(params))
    edges = [-math.inf] + [k for k, _ in kinks] + [math.inf]
    pieces: list[tuple[float, float, float]] = []
    for a, b in zip(edges[:-1], edges[1:]):
        if a == b:
            continue
        xs = _samples(a, b)
        slopes = _f(spec, spec.derivative, xs, params)
        s = float(slopes[0])
        if not (math.isfinite(s) and np.allclose(slopes, s, rtol=1e-12, atol=0.0)):
            return None, needs_input
        m = float(xs[len(xs) // 2])
        ys = _f(spec, spec.forward, xs, params)
        fm = float(_f(spec, spec.forward, np.array([m]), params)[0])
        line = fm + s * (xs - m)
        if not np.allclose(ys, line, rtol=1e-9, atol=1e-12):
            return None, needs_input
        if s == 0.0:
            pieces.append((fm, fm, 0.0))
        else:
            ya = -math.inf * math.copysign(1.0, s) if math.isinf(a) else fm + s * (a - m)
            yb = math.inf * math.copysign(1.0, s) if math.isinf(b) else fm + s * (b - m)
            pieces.append((min(ya, yb), max(ya, yb), s))
    for loc, grad in kinks:
        y = float(_f(spec, spec.forward, np.array([loc]), params)[0])
        pieces.append((y, y, float(grad)))
    for i, p in enumerate(pieces):
        for q in pieces[i + 1 :]:
            if p[2] != q[2] and _overlap(p, q):
                at = p[0] if p[0] == p[1] else q[0] if q[0] == q[1] else max(p[0], q[0])
                return None, (
                    f"outputs at y = {at:g} come from inputs with slopes {p[2]:g} and {q[2]:g}, "
                    "so the output does not determine f'"
                )
    result = tuple(sorted(set(pieces)))
    rounded = _rounding_clash(spec, params, kinks, result)
    if rounded:
        return None, rounded
    return result, ""


def _near(at: float, dtype: torch.dtype) -> torch.Tensor:
    """Inputs of ``dtype`` next to ``at`` on either side (and ``at``)."""
    info = torch.finfo(dtype)
    steps = np.arange(1, 65, dtype=np.float64)
    if at == 0.0:
        mags = np.concatenate([steps * info.smallest_normal * 2.0 ** -(info.bits // 2), steps * info.smallest_normal])
        cands = np.concatenate([[0.0], mags, -mags])
    else:
        rel = steps * info.eps / 2.0
        cands = np.concatenate([[at], at * (1.0 + rel), at * (1.0 - rel)])
    return torch.unique(torch.tensor(cands, dtype=torch.float64).to(dtype))


def _rounding_clash(spec: Spec, params: dict[str, Any], kinks: list, pieces: tuple) -> str:
    """Why the rounded output does not determine f' ("" where it does): just inside a kink the
    rounded output of a sloped piece can equal another piece's value (hard_sigmoid just below x = 3
    rounds to 1, where the slope is 0). Probed in every dtype the kernels take."""
    from actlab.torch.functional import apply

    for loc, grad in kinks:
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            if not abs(loc) <= torch.finfo(dtype).max:
                continue
            x = _near(loc, dtype)
            with torch.no_grad():
                y = apply(spec, x, params)
            xs = x.double().numpy()
            want = np.where(xs == loc, grad, _f(spec, spec.derivative, xs, params))
            got = _slopes_from_output(y.double(), pieces).numpy()
            wrong = np.flatnonzero(got != want)
            if wrong.size:
                i = wrong[0]
                return (
                    f"in {str(dtype).removeprefix('torch.')} the output at x = {xs[i]:.9g} rounds to "
                    f"{float(y[i]):g}, another piece's value (slope {got[i]:g}, not {want[i]:g}), "
                    "so the rounded output does not determine f'"
                )
    return ""


def _contains(piece: tuple, y: float) -> bool:
    lo, hi, _ = piece
    if lo == hi:
        return y == lo
    return (lo < y or (math.isinf(lo) and y == lo)) and (y < hi or (math.isinf(hi) and y == hi))


def _overlap(p: tuple, q: tuple) -> bool:
    """Some output value belongs to both pieces."""
    if p[0] == p[1]:
        return _contains(q, p[0])
    if q[0] == q[1]:
        return _contains(p, q[0])
    lo, hi = max(p[0], q[0]), min(p[1], q[1])
    return lo < hi or (lo == hi and math.isinf(lo))


def _slopes_from_output(y: torch.Tensor, pieces: tuple) -> torch.Tensor:
    d = torch.full_like(y, math.nan)
    for lo, hi, s in pieces:
        if lo == hi:
            inside = y == lo
        else:
            inside = (y >= lo if math.isinf(lo) else y > lo) & (y <= hi if math.isinf(hi) else y < hi)
        d = torch.where(inside, s, d)
    return d


class InplaceFunction(torch.autograd.Function):
    """f(x) written into x (``mark_dirty``); backward from the output alone."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, spec: Any, params: dict[str, Any], rule: InplaceRule) -> torch.Tensor:
        from actlab.torch.functional import apply

        x.copy_(apply(spec, x, params))
        ctx.mark_dirty(x)
        ctx.save_for_backward(x)
        ctx.spec, ctx.params, ctx.rule = spec, params, rule
        return x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        (y,) = ctx.saved_tensors
        rule = ctx.rule
        if not rule.formula:
            return grad * _slopes_from_output(y, rule.pieces), None, None, None
        if y.dtype in _LOW_PRECISION:
            d = ctx.spec.derivative_from_output(y.float(), TORCH, **ctx.params)
            return (grad.float() * d).to(y.dtype), None, None, None
        return grad * ctx.spec.derivative_from_output(y, TORCH, **ctx.params), None, None, None


def apply_inplace(spec: Spec, x: torch.Tensor, params: dict[str, Any], rule: InplaceRule) -> torch.Tensor:
    """``spec`` at ``params`` on ``x`` in place (``rule`` from :func:`check_inplace`); returns ``x``."""
    from actlab.torch.functional import _check_input, apply

    _check_input(spec, x)
    if torch.is_grad_enabled() and x.requires_grad:
        return InplaceFunction.apply(x, spec, params, rule)
    with torch.no_grad():
        return x.copy_(apply(spec, x, params))
