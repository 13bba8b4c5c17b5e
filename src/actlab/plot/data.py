"""The numbers behind every plot (DESIGN.md §5: data first, rendering second).

NumPy only (plus :mod:`actlab.analysis`); nothing here imports matplotlib, so the data objects
are tested numerically and the renderers in :mod:`actlab.plot.render` only draw them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from actlab.analysis import gain, length_map, mean_field, moments
from actlab.analysis._common import f_and_df, resolve

__all__ = [
    "vector_curve_data",
    "Curve",
    "CurveData",
    "curve_data",
    "MomentsData",
    "moments_data",
    "MeanFieldData",
    "meanfield_data",
    "SATURATION_FRACTION",
]

SATURATION_FRACTION = 0.01  # |f'| below this fraction of the reference slope counts as saturated
MIN_SATURATION_WIDTH = 0.02  # regions narrower than this fraction of the x range are not reported


@dataclass(frozen=True)
class Curve:
    """One activation on the grid of its :class:`CurveData`.

    ``kinks``: (x, f(x), f'(x) by actlab's convention there) for the spec's kinks inside the
    range. ``saturation``: closed x-intervals on a side the spec declares saturating where
    |f'| < 1% of the largest |f'| on [-1, 1] (on the grid when the range misses [-1, 1]),
    running out to that end of the range; slivers under 2% of the range are left out.
    """

    label: str  # the identifier actlab.get parses back (``repr`` of the bound activation)
    name: str  # the spec's name
    f: np.ndarray
    df: np.ndarray | None
    kinks: tuple[tuple[float, float, float], ...]
    saturation: tuple[tuple[float, float], ...]
    max_abs_derivative: float  # over the grid (nan without derivatives)


@dataclass(frozen=True)
class CurveData:
    """Function values (and derivatives) of several activations on one grid."""

    x: np.ndarray
    curves: tuple[Curve, ...]

    @property
    def x_range(self) -> tuple[float, float]:
        return float(self.x[0]), float(self.x[-1])

    def __getitem__(self, label: str) -> Curve:
        for c in self.curves:
            if label in (c.label, c.name):
                return c
        raise KeyError(label)


def _as_list(ids: Any) -> list[Any]:
    if isinstance(ids, (str, dict)) or not isinstance(ids, Iterable):
        return [ids]
    return list(ids)


def _saturation(x: np.ndarray, df: np.ndarray, sides: Sequence[str], peak: float) -> tuple[tuple[float, float], ...]:
    if not sides or not (peak > 0 and math.isfinite(peak)):
        return ()
    flat = np.isfinite(df) & (np.abs(df) < SATURATION_FRACTION * peak)
    out = []
    if "left" in sides and flat[0]:
        stop = int(np.argmin(flat)) if not flat.all() else x.size
        out.append((float(x[0]), float(x[stop - 1])))
    if "right" in sides and flat[-1]:
        rev = flat[::-1]
        stop = int(np.argmin(rev)) if not rev.all() else x.size
        out.append((float(x[x.size - stop]), float(x[-1])))
    width = MIN_SATURATION_WIDTH * float(x[-1] - x[0])
    return tuple((a, b) for a, b in out if b - a >= width)


def _reference_slope(x: np.ndarray, df: np.ndarray) -> float:
    """max |f'| on [-1, 1] (where a normalised network's inputs live), or on the whole grid when
    the range misses that interval: an exponential's slope at x = 5 is no yardstick."""
    finite = np.isfinite(df)
    near = finite & (np.abs(x) <= 1.0)
    pick = near if near.any() else finite
    return float(np.max(np.abs(df[pick]))) if pick.any() else math.nan


def curve_data(
    ids: Any,
    x_range: tuple[float, float] = (-5.0, 5.0),
    n: int = 1001,
    derivative: bool = True,
) -> CurveData:
    """f (and f') of each activation on ``n`` evenly spaced points of ``x_range``.

    ``ids``: one identifier or a list of them (anything :func:`actlab.get` accepts; elementwise
    activations only). Kinks come from the spec, so the marked points and the derivative value at
    them are the ones actlab uses (PyTorch's convention where PyTorch has the function).
    Saturation regions are reported only on the sides the spec declares saturating (and verified
    by the property tests), so a flat *interior* (hardshrink's dead zone) is not called saturation.

    >>> d = curve_data("relu", (-1, 1), n=5)
    >>> d.curves[0].df.tolist(), d.curves[0].kinks
    ([0.0, 0.0, 0.0, 1.0, 1.0], ((0.0, 0.0, 0.0),))
    """
    lo, hi = (float(v) for v in x_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"x_range must be two finite numbers A < B, got {x_range!r}")
    if n < 2:
        raise ValueError(f"need n >= 2 grid points, got {n}")
    x = np.linspace(lo, hi, int(n))
    curves = []
    for ident in _as_list(ids):
        act = resolve(ident)
        f, df = f_and_df(act, x)
        f = np.where(np.isfinite(f), f, np.nan)
        kinks = []
        for at, g in act.spec.kink_points(act.params):
            if lo <= at <= hi:
                fk = float(f_and_df(act, np.array([float(at)]))[0][0])
                kinks.append((float(at), fk, float(g)))
        if derivative:
            df = np.where(np.isfinite(df), df, np.nan)
            peak = float(np.nanmax(np.abs(df))) if np.any(np.isfinite(df)) else math.nan
            sat = _saturation(x, df, act.spec.saturates, _reference_slope(x, df))
        else:
            df, peak, sat = None, math.nan, ()
        curves.append(Curve(repr(act), act.name, f, df, tuple(kinks), sat, peak))
    return CurveData(x, tuple(curves))


def vector_curve_data(identifier: Any, x_range: tuple[float, float] = (-5.0, 5.0), n: int = 801) -> CurveData:
    """A vector activation drawn as curves: every output component on the rows (1, x), and its
    derivative in x from the spec's vjp (one-hot cotangent per component).

    >>> d = vector_curve_data("glu", (-1, 1), n=3)  # glu((1, x)) = 1 * sigmoid(x)
    >>> [round(float(v), 6) for v in d.curves[0].f], [round(float(v), 6) for v in d.curves[0].df]
    ([0.268941, 0.5, 0.731059], [0.196612, 0.25, 0.196612])
    """
    from actlab.ops.numpy_ops import NUMPY
    from actlab.registry import BoundActivation, get

    act = get(identifier)
    if not isinstance(act, BoundActivation) or act.spec.kind != "vector":
        raise ValueError(f"{identifier!r} is not a vector activation: use curve_data")
    lo, hi = (float(v) for v in x_range)
    x = np.linspace(lo, hi, int(n))
    rows = np.stack([np.ones_like(x), x], axis=-1)
    params = {**act.params, "axis": -1}
    y = np.asarray(act.spec(rows, **params))
    curves = []
    for j in range(y.shape[-1]):
        cotangent = np.zeros_like(y)
        cotangent[:, j] = 1.0
        with np.errstate(all="ignore"):
            grad = np.asarray(act.spec.vjp(rows, y, cotangent, NUMPY, **params))
        df = grad[:, 1]
        peak = float(np.nanmax(np.abs(df))) if np.any(np.isfinite(df)) else math.nan
        curves.append(Curve(f"{act!r}(1, x)[{j}]", act.name, y[:, j], df, (), (), peak))
    return CurveData(x, tuple(curves))


# ----------------------------------------------------------------------------- moments and gain
@dataclass(frozen=True)
class MomentsData:
    """Gaussian moments of f and the variance-preserving gain as functions of the input variance q."""

    label: str
    q: np.ndarray
    mean: np.ndarray  # E[f(z)], z ~ N(0, q)
    variance: np.ndarray  # Var[f(z)]
    second_moment: np.ndarray  # E[f(z)^2]
    derivative_second_moment: np.ndarray  # E[f'(z)^2]
    gain: np.ndarray  # sqrt(q / E[f(z)^2]) (actlab.analysis.gain at each q)
    pytorch_gain: float | None  # torch.nn.init.calculate_gain, None where PyTorch has none


def moments_data(identifier: Any, q_values: Sequence[float] | None = None, **params: Any) -> MomentsData:
    """:func:`actlab.analysis.moments` and :func:`actlab.analysis.gain` over ``q_values``
    (default: 41 values log-spaced on [0.01, 10])."""
    act = resolve(identifier, params)
    q = np.geomspace(0.01, 10.0, 41) if q_values is None else np.asarray(q_values, dtype=np.float64).ravel()
    if q.size == 0 or np.any(~np.isfinite(q)) or np.any(q <= 0):
        raise ValueError("q_values must be finite and > 0")
    ms = [moments(act, 0.0, float(v)) for v in q]
    gains = []
    for v, m in zip(q, ms):
        gains.append(gain(act, q=float(v)).computed if m.second_moment > 0 else math.nan)
    return MomentsData(
        label=repr(act),
        q=q,
        mean=np.array([m.mean for m in ms]),
        variance=np.array([m.variance for m in ms]),
        second_moment=np.array([m.second_moment for m in ms]),
        derivative_second_moment=np.array([m.derivative_second_moment for m in ms]),
        gain=np.array(gains),
        pytorch_gain=gain(act).pytorch,
    )


# ----------------------------------------------------------------------------- mean field
@dataclass(frozen=True)
class MeanFieldData:
    """The length map on a grid of q, its fixed point, and χ^l over depth."""

    label: str
    sigma_w2: float
    sigma_b2: float
    q: np.ndarray  # q_l grid
    q_next: np.ndarray  # q_{l+1} = σ_w² E[f(√q z)²] + σ_b²
    q_star: float  # fixed point reached from q0 (inf: the length diverges)
    chi: float  # σ_w² E[f'(√q* z)²]
    phase: str  # "ordered" | "critical" | "chaotic"
    depth: np.ndarray  # 0, 1, ..., L
    gradient_factor: np.ndarray  # χ^l: predicted ratio of squared gradient norms l layers apart
    trajectory: np.ndarray  # q_0, q_1, ..., q_L from q0


def meanfield_data(
    identifier: Any,
    sigma_w2: float | None = None,
    sigma_b2: float = 0.0,
    depth: int = 50,
    q0: float = 1.0,
    n: int = 81,
    **params: Any,
) -> MeanFieldData:
    """:func:`actlab.analysis.mean_field` and :func:`~actlab.analysis.length_map` on a grid.

    ``sigma_w2`` defaults to the squared computed gain (variance-preserving at q = 1). The q grid
    runs from 0 to max(2 q*, 2 q0, 2) (to 2 max(q0, 1) when q* is infinite).
    """
    act = resolve(identifier, params)
    if sigma_w2 is None:
        sigma_w2 = gain(act).computed ** 2
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    mf = mean_field(act, sigma_w2, sigma_b2, q0=q0, layers=int(depth))
    top = 2.0 * max(mf.q_star if math.isfinite(mf.q_star) else 0.0, q0, 1.0)
    q = np.linspace(0.0, top, int(n))
    q_next = np.array([length_map(act, float(v), sigma_w2, sigma_b2) for v in q])
    ls = np.arange(int(depth) + 1)
    with np.errstate(over="ignore"):
        factor = np.float64(mf.chi) ** ls
    return MeanFieldData(
        label=repr(act),
        sigma_w2=float(sigma_w2),
        sigma_b2=float(sigma_b2),
        q=q,
        q_next=q_next,
        q_star=float(mf.q_star),
        chi=float(mf.chi),
        phase=mf.phase,
        depth=ls,
        gradient_factor=factor,
        trajectory=np.array(mf.trajectory, dtype=np.float64),
    )
