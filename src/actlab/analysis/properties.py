"""Static properties computed numerically, beside the ones the spec declares."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actlab.analysis._common import f_and_df, resolve

__all__ = ["PropertyReport", "properties"]

_GRID = np.concatenate(
    [-np.geomspace(1e4, 20, 2000)[:-1], np.linspace(-20, 20, 40001), np.geomspace(20, 1e4, 2000)[1:]]
)
# Far points for limits: |f'| over a window here decides saturation.
_FAR = np.geomspace(1e7, 1e8, 64)


@dataclass(frozen=True)
class PropertyReport:
    """Numerically measured properties (at the given parameters) and the spec's declared ones.

    ``range`` is (inf, sup) of f over a grid on [-1e4, 1e4] refined at interior extrema, with the
    values at ±1e8 standing in for the limits (±inf where f still moves by more than 1e-3 between
    1e7 and 1e8, as log x does). ``saturates``: sides where max |f'| over
    [1e7, 1e8] is below 1e-6. ``zero_centered`` follows the catalog's meaning: f(0) = 0 and f takes
    both signs. ``identity_near_zero``: f(0) = 0 and f'(0) = 1 (to 1e-12).
    """

    activation: str
    range: tuple[float, float]
    monotonic: bool
    max_abs_derivative: float
    argmax_abs_derivative: float
    zero_centered: bool
    saturates: tuple[str, ...]
    identity_near_zero: bool
    f0: float
    df0: float
    declared_bounds: tuple[float, float]
    declared_monotonic: bool
    declared_zero_centered: bool
    declared_saturates: tuple[str, ...]
    mismatches: tuple[str, ...] = field(default=())

    @property
    def consistent(self) -> bool:
        """The computed properties agree with the declared ones."""
        return not self.mismatches


def _refine(fn, x0: float, h: float, sign: float) -> tuple[float, float]:
    """Refine an extremum of sign*fn near x0 (bounded Brent); returns (x, fn(x))."""
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(lambda x: -sign * fn(x), bounds=(x0 - h, x0 + h), method="bounded", options={"xatol": 1e-12})
    x = float(res.x)
    v = fn(x)
    return (x, v) if sign * v >= sign * fn(x0) else (x0, fn(x0))


def properties(identifier: Any, **params: Any) -> PropertyReport:
    """Measure range, monotonicity, max |f'|, zero-centring, saturation and f(x) ≈ x near 0."""
    act = resolve(identifier, params)
    spec = act.spec
    lo_d, hi_d = spec.domain
    xs = _GRID[(_GRID >= lo_d) & (_GRID <= hi_d)]
    ys, ds = f_and_df(act, xs)
    far_x = np.concatenate([-_FAR[::-1], _FAR])
    far_x = far_x[(far_x >= lo_d) & (far_x <= hi_d)]
    far_y, far_d = f_and_df(act, far_x)

    def f1(x: float) -> float:
        return float(f_and_df(act, np.array([x]))[0][0])

    def d1(x: float) -> float:
        return float(abs(f_and_df(act, np.array([x]))[1][0]))

    finite = np.isfinite(ys)
    lo_v, hi_v = float(np.min(ys[finite])), float(np.max(ys[finite]))
    h = float(np.max(np.diff(xs[(xs > -20) & (xs < 20)]))) if xs.size > 1 else 1.0
    imin, imax = int(np.argmin(np.where(finite, ys, np.inf))), int(np.argmax(np.where(finite, ys, -np.inf)))
    if 0 < imin < xs.size - 1:
        lo_v = min(lo_v, _refine(f1, float(xs[imin]), h, -1.0)[1])
    if 0 < imax < xs.size - 1:
        hi_v = max(hi_v, _refine(f1, float(xs[imax]), h, 1.0)[1])
    with np.errstate(invalid="ignore"):
        all_y = np.concatenate([ys, far_y])
    if np.any(all_y == -np.inf) or (far_y.size and np.nanmin(far_y) < lo_v and np.nanmin(far_y) < -1e6):
        lo_v = min(lo_v, float(np.nanmin(all_y)))
    if np.any(all_y == np.inf) or (far_y.size and np.nanmax(far_y) > hi_v and np.nanmax(far_y) > 1e6):
        hi_v = max(hi_v, float(np.nanmax(all_y)))
    lo_v = min(lo_v, float(np.nanmin(far_y))) if far_y.size else lo_v
    hi_v = max(hi_v, float(np.nanmax(far_y))) if far_y.size else hi_v
    # Slow (logarithmic) growth: still moving by more than 1e-3 between 1e7 and 1e8 -> unbounded.
    for sel in (far_x < 0, far_x > 0):
        ends = far_y[sel]
        if ends.size >= 2 and np.all(np.isfinite(ends)):
            outer, inner = (ends[0], ends[-1]) if sel[0] else (ends[-1], ends[0])
            if abs(outer - inner) > 1e-3 and np.all(np.diff(ends) > 0) | np.all(np.diff(ends) < 0):
                if outer > inner and outer >= hi_v:
                    hi_v = math.inf
                elif outer < inner and outer <= lo_v:
                    lo_v = -math.inf

    with np.errstate(invalid="ignore"):
        steps = np.diff(ys)
    ok = np.isfinite(steps)
    noise = 4 * np.spacing(np.abs(ys[1:][ok]))
    monotonic = bool(np.all(steps[ok] >= -noise) or np.all(steps[ok] <= noise))

    dfin = np.isfinite(ds)
    absd = np.where(dfin, np.abs(ds), -1.0)
    k = int(np.argmax(absd))
    amax, vmax = float(xs[k]), float(absd[k])
    if 0 < k < xs.size - 1 and abs(xs[k]) < 20:
        x_r, v_r = _refine(d1, amax, h, 1.0)
        if v_r > vmax:
            amax, vmax = x_r, v_r
    far_abs = np.abs(far_d)
    if np.any(np.isinf(far_abs)):
        vmax = math.inf

    sat = []
    for side, sel in (("left", far_x < 0), ("right", far_x > 0)):
        vals = far_abs[sel][np.argsort(np.abs(far_x[sel]))]
        if vals.size and np.all(np.isfinite(vals)) and float(np.max(vals)) < 1e-6:
            sat.append(side)
        elif vals.size > 1 and np.all(np.diff(vals) < 0) and vals[-1] < 0.5 * vals[0]:
            sat.append(side)  # f' falls like a power of x over the decade (1 / (2 sqrt x)): it tends to 0

    f0 = f1(0.0) if lo_d <= 0 <= hi_d else math.nan
    df0 = float(f_and_df(act, np.array([0.0]))[1][0]) if lo_d <= 0 <= hi_d else math.nan
    zero_centered = bool(f0 == 0 and lo_v < 0 < hi_v)
    identity = bool(abs(f0) <= 1e-12 and abs(df0 - 1) <= 1e-12)

    dlo, dhi = spec.bounds_for(act.params)
    mism = []
    tol_lo, tol_hi = (
        1e-6 * (1 + abs(dlo)) if math.isfinite(dlo) else 0,
        1e-6 * (1 + abs(dhi)) if math.isfinite(dhi) else 0,
    )
    if math.isfinite(dlo):
        if lo_v < dlo - tol_lo or lo_v > dlo + tol_lo:
            mism.append(f"lower bound: declared {dlo}, measured {lo_v}")
    elif lo_v > -1e3:
        mism.append(f"declared unbounded below, measured inf {lo_v}")
    if math.isfinite(dhi):
        if hi_v > dhi + tol_hi or hi_v < dhi - tol_hi:
            mism.append(f"upper bound: declared {dhi}, measured {hi_v}")
    elif hi_v < 1e3:
        mism.append(f"declared unbounded above, measured sup {hi_v}")
    if monotonic != spec.monotonic:
        mism.append(f"monotonic: declared {spec.monotonic}, measured {monotonic}")
    if zero_centered != spec.zero_centered:
        mism.append(f"zero-centred: declared {spec.zero_centered}, measured {zero_centered}")
    if tuple(sat) != tuple(spec.saturates):
        mism.append(f"saturates: declared {spec.saturates}, measured {tuple(sat)}")
    return PropertyReport(
        activation=repr(act),
        range=(lo_v, hi_v),
        monotonic=monotonic,
        max_abs_derivative=vmax,
        argmax_abs_derivative=amax,
        zero_centered=zero_centered,
        saturates=tuple(sat),
        identity_near_zero=identity,
        f0=f0,
        df0=df0,
        declared_bounds=(dlo, dhi),
        declared_monotonic=spec.monotonic,
        declared_zero_centered=spec.zero_centered,
        declared_saturates=tuple(spec.saturates),
        mismatches=tuple(mism),
    )
