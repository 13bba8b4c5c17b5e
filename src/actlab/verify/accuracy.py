"""Accuracy in ulps against the mpmath oracle, for actlab and for PyTorch's native functions.

Data first: :func:`measure` returns :class:`AccuracyRow` records; the CLI renders them.

Targets (issue #2):
- forward: float32 within 4 ulp, float64 within 8 ulp of the correctly rounded value; results
  below the smallest normal number may flush to zero; specs declaring ``condition_allowance``
  get ``limit * max(1, |x f'(x) / f(x)|)`` near their non-trivial roots (those points are counted);
- derivative through torch autograd (issue #10): within 8 ulp of its own true value wherever that
  value is a normal number of the dtype, however small (a derivative of 1e-42 is checked as
  closely as one of 1); only where the true derivative is subnormal or zero is the error measured
  against a floor, 4 ulp of the largest |f'| on the grid (a result that flushes to zero, or rounding
  noise of that size where the true value is 0, passes there). A spec may widen the limit with
  ``Tolerance(derivative_ulps=..., reason=...)``; specs declaring ``derivative_condition_allowance``
  get ``limit * max(1, |x f''(x) / f'(x)|)`` near the non-trivial roots of f' (the condition number
  of f': rounding at the scale of x moves f' by eps |x f''|, which no fixed number of ulps of a
  vanishing f' bounds; those points are counted in ``conditioned``);
- no NaN or inf where the true value is finite.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from actlab.verify.oracle import oracle

FORWARD_LIMIT = {"float32": 4.0, "float64": 8.0}
DERIVATIVE_LIMIT = 8.0  # ulps of the true derivative; where it is subnormal or 0: 4 ulps of max |f'|
RANGE = 1e4


@dataclass
class AccuracyRow:
    name: str
    dtype: str
    points: int
    forward_ulps: float  # max error in ulps (condition-scaled where the spec allows it)
    derivative_ulps: float  # max error in ulps of f' (of max|f'|/2 where f' is subnormal or 0)
    nonfinite: int  # points where the true value is finite but the result is not
    conditioned: int  # points whose allowance was raised by the condition number
    torch_forward_ulps: float | None = None
    torch_derivative_ulps: float | None = None
    torch_nonfinite: int | None = None
    torch_name: str | None = None
    forward_limit: float = 4.0
    derivative_limit: float = DERIVATIVE_LIMIT
    worst_forward_x: float | None = None
    worst_derivative_x: float | None = None
    # Other implementations measured on the same grid against the same oracle values (the module
    # path, the learnable form): name -> {"forward_ulps", "derivative_ulps", "nonfinite", ...}.
    paths: dict[str, dict[str, Any]] | None = None

    @property
    def passed(self) -> bool:
        return (
            self.forward_ulps <= self.forward_limit
            and self.derivative_ulps <= self.derivative_limit
            and self.nonfinite == 0
            and all(self.path_passed(name) for name in self.paths or {})
        )

    def path_passed(self, name: str) -> bool:
        p = (self.paths or {})[name]
        d = p["derivative_ulps"]
        return (
            p["forward_ulps"] <= self.forward_limit
            and (d <= self.derivative_limit or math.isnan(d))
            and p["nonfinite"] == 0
        )

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        return d


def accuracy_grid(
    spec: Any, params: dict[str, Any] | None = None, dtype: str = "float32", size: int = 20000
) -> np.ndarray:
    """At least ``size`` distinct points of ``dtype`` in [-1e4, 1e4], as float64.

    Log-spaced from the smallest normal number up (dense near 0), linear on [-10, 10] and on the
    whole range, and log-spaced on both sides of every kink. The float64 grid contains the
    float32 one (so the oracle's cache serves both) plus points only float64 can hold.
    """
    params = spec.resolve_params(**(params or {}))
    n = max(size // 18, 50)
    parts = [_grid_part(spec, params, "float32", n)]
    if dtype == "float64":
        parts.append(_grid_part(spec, params, "float64", max(n // 6, 20)))
    pts = np.unique(np.concatenate(parts))
    lo, hi = spec.domain
    return pts[(pts >= lo) & (pts <= hi) & (np.abs(pts) <= RANGE)]


def _grid_part(spec: Any, params: dict[str, Any], dtype: str, n: int) -> np.ndarray:
    np_dtype = np.dtype(dtype)
    tiny = np.finfo(np_dtype).tiny
    eps = float(np.finfo(np_dtype).eps)
    pos = np.logspace(math.log10(tiny), math.log10(RANGE), 7 * n)
    parts = [np.zeros(1), pos, -pos, np.linspace(-10, 10, 4 * n), np.linspace(-RANGE, RANGE, 2 * n)]
    for at, _ in spec.kink_points(params):
        offsets = np.logspace(math.log10(eps), 0, n // 2) * max(1.0, abs(at))
        parts += [np.array([at]), at + offsets, at - offsets]
    with np.errstate(over="ignore"):  # offsets around a kink near float32's max: cut to RANGE anyway
        return np.concatenate(parts).astype(np_dtype).astype(np.float64)


def ulp(values: np.ndarray, dtype: str) -> np.ndarray:
    """Spacing of ``dtype`` at |values| (at least the spacing at the smallest normal number)."""
    np_dtype = np.dtype(dtype)
    tiny = np.finfo(np_dtype).tiny
    mag = np.maximum(np.abs(values), tiny)
    with np.errstate(over="ignore", invalid="ignore"):
        mag = np.minimum(np.where(np.isnan(mag), np.inf, mag), np.finfo(np_dtype).max).astype(np_dtype)
        return np.spacing(mag).astype(np.float64)


def ulp_errors(got: np.ndarray, true: np.ndarray, dtype: str, floor: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(error in ulps of the rounded true value, mask of results non-finite where truth is finite)."""
    np_dtype = np.dtype(dtype)
    tiny = np.finfo(np_dtype).tiny
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = true.astype(np_dtype).astype(np.float64)
        unit = np.maximum(ulp(rounded, dtype), floor)
        err = np.abs(got - rounded) / unit
    both_tiny = (np.abs(rounded) < tiny) & (np.abs(got) < tiny)
    same = (got == rounded) | both_tiny
    err = np.where(same, 0.0, err)
    bad = np.isfinite(rounded) & ~np.isfinite(got)
    err = np.where(np.isnan(true), 0.0, err)  # undefined points are not measured
    err = np.where(bad | (np.isinf(rounded) & (got != rounded)), np.inf, err)
    return err, bad


@dataclass
class _Measured:
    forward: np.ndarray
    derivative: np.ndarray | None


def _torch_eval(fn: Callable[[Any], Any], xs: np.ndarray, dtype: str) -> _Measured:
    import torch

    x = torch.tensor(xs, dtype=getattr(torch, dtype), requires_grad=True)
    y = fn(x)
    fwd = y.detach().to(torch.float64).numpy()
    try:
        (g,) = torch.autograd.grad(y, x, torch.ones_like(y))
        der = g.to(torch.float64).numpy()
    except RuntimeError:
        der = None  # e.g. a native function with no derivative
    return _Measured(fwd, der)


def measure(
    spec: Any,
    dtype: str = "float32",
    params: dict[str, Any] | None = None,
    size: int = 20000,
    with_torch: bool = True,
    backend: str = "torch",
    paths: dict[str, Callable[[Any], Any]] | None = None,
    absolute_paths: tuple[str, ...] = (),
) -> AccuracyRow:
    """Measure ``spec`` (and PyTorch's native function, if any) against the oracle.

    ``paths``: other torch callables of the same function at the same parameters (the module,
    a learnable form), scored on the same grid against the same oracle values (``row.paths``).
    Those named in ``absolute_paths`` are judged within the limits in ulps of the true value or
    of the largest |f| (|f'|) on the grid, whichever is larger: the learnable forms are plain
    formulas written for tensor parameters (x sigmoid(beta x)), accurate to the scale of the
    function, not in its far tails.
    """
    params = spec.resolve_params(**(params or {}))
    xs = accuracy_grid(spec, params, dtype, size)
    true = oracle(spec, xs, params)
    true_d = oracle(spec, xs, params, order=1)
    kinks = {at for at, _ in spec.kink_points(params)}
    at_kink = np.isin(xs, list(kinks)) if kinks else np.zeros(xs.shape, bool)
    finite_d = np.isfinite(true_d) & ~at_kink & ~np.isnan(true)  # f' is not measured where f is undefined
    representable = finite_d & (np.abs(true_d) <= np.finfo(np.dtype(dtype)).max)
    max_d = float(np.max(np.abs(true_d[representable]))) if representable.any() else 0.0
    # Relative wherever f' is a normal number; the floor only where it is subnormal or zero.
    tiny = np.finfo(np.dtype(dtype)).tiny
    with np.errstate(over="ignore", invalid="ignore"):
        small_d = np.abs(true_d.astype(dtype)) < tiny
    d_floor = np.where(small_d, float(ulp(np.array([max_d]), dtype)[0]) / 2.0, 0.0)

    cond = np.ones_like(xs)
    if spec.tolerance.condition_allowance:
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.abs(xs) * np.abs(true_d / true)  # xs * true_d alone overflows
        cond = np.where(np.isfinite(k), np.maximum(k, 1.0), 1.0)
    d_cond = np.ones_like(xs)
    if spec.tolerance.derivative_condition_allowance:
        true_d2 = oracle(spec, xs, params, order=2, strict=False)  # an estimate: NaN gives no allowance
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            k = np.abs(xs) * np.abs(true_d2 / true_d)
        d_cond = np.where(np.isfinite(k), np.maximum(k, 1.0), 1.0)
    conditioned = int(np.sum((cond > 1.0) | (d_cond > 1.0)))
    f_limit = spec.tolerance.forward_ulps or FORWARD_LIMIT[dtype]
    d_limit = spec.tolerance.derivative_ulps or DERIVATIVE_LIMIT

    finite_f = np.isfinite(true) & (np.abs(true) <= np.finfo(np.dtype(dtype)).max)
    max_f = float(np.max(np.abs(true[finite_f]))) if finite_f.any() else 0.0

    def score(m: _Measured, absolute: bool = False) -> tuple[float, float, int, float | None, float | None]:
        f_floor = float(ulp(np.array([max_f]), dtype)[0]) if absolute else 0.0
        f_err, f_bad = ulp_errors(m.forward, true, dtype, floor=f_floor)
        f_err = f_err / cond
        nonfinite = int(np.sum(f_bad))
        if m.derivative is None:
            d_max, d_x = math.nan, None
        else:
            floor = float(ulp(np.array([max_d]), dtype)[0]) if absolute else d_floor
            d_err, d_bad = ulp_errors(m.derivative, true_d, dtype, floor=floor)
            d_err = np.where(finite_d, d_err / d_cond, 0.0)
            nonfinite += int(np.sum(d_bad & finite_d))
            i = int(np.argmax(d_err))
            d_max, d_x = float(d_err[i]), float(xs[i])
        i = int(np.argmax(f_err))
        return float(f_err[i]), d_max, nonfinite, float(xs[i]), d_x

    if backend == "numpy":
        from actlab.ops import numpy_ops

        arr = xs.astype(dtype)
        fwd = numpy_ops.apply(spec, arr, params).astype(np.float64)
        der = numpy_ops.apply_derivative(spec, arr, params).astype(np.float64)
        ours = _Measured(fwd, der)
    else:
        from actlab.torch.functional import apply

        ours = _torch_eval(lambda t: apply(spec, t, params), xs, dtype)
    f_ulps, d_ulps, nonfinite, fx, dx = score(ours)
    row = AccuracyRow(
        name=spec.name,
        dtype=dtype,
        points=int(xs.size),
        forward_ulps=f_ulps,
        derivative_ulps=d_ulps,
        nonfinite=nonfinite,
        conditioned=conditioned,
        forward_limit=f_limit,
        derivative_limit=d_limit,
        worst_forward_x=fx,
        worst_derivative_x=dx,
    )
    if paths:
        row.paths = {}
        for name, fn in paths.items():
            pf, pd, pn, pfx, pdx = score(_torch_eval(fn, xs, dtype), absolute=name in absolute_paths)
            row.paths[name] = {
                "forward_ulps": pf,
                "derivative_ulps": pd,
                "nonfinite": pn,
                "worst_forward_x": pfx,
                "worst_derivative_x": pdx,
            }
    if with_torch and spec.torch_native is not None:
        import torch

        theirs = _torch_eval(lambda t: spec.torch_native(t, torch, **params), xs, dtype)
        tf, td, tn, _, _ = score(theirs)
        row.torch_forward_ulps, row.torch_derivative_ulps, row.torch_nonfinite = tf, td, tn
        eq = [e for e in spec.equivalents if e.framework == "pytorch"]
        row.torch_name = eq[0].symbol if eq else "torch"
    return row
