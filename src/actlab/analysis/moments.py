"""Moments of an activation under a Gaussian input: E[f], E[f²], Var[f], E[f'], E[f'²]."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actlab.analysis._common import (
    break_points,
    f_and_df,
    gaussian_expectation,
    power_of_two_scale,
    probe_points,
    resolve,
)

__all__ = ["Moments", "moments", "expectation", "hermite_moments"]


@dataclass(frozen=True)
class Moments:
    """Moments of f(z) and f'(z) for z ~ N(mu, q) (``q`` is the variance).

    ``error`` is the quadrature's estimate of its own relative error.
    """

    activation: str
    params: dict[str, Any] = field(repr=False)
    mu: float
    q: float
    mean: float  # E[f(z)]
    second_moment: float  # E[f(z)^2]
    variance: float  # Var[f(z)], computed about f(mu) to avoid cancellation
    mean_derivative: float  # E[f'(z)]
    derivative_second_moment: float  # E[f'(z)^2]
    error: float = 0.0

    @property
    def std(self) -> float:
        return math.sqrt(max(self.variance, 0.0))


def expectation(identifier: Any, fn, mu: float = 0.0, q: float = 1.0, **params: Any) -> np.ndarray:
    """E[fn(f(z), f'(z), z)] for z ~ N(mu, q); ``fn`` returns an array (or a stack of arrays).

    The integration is split at the spec's kinks, so piecewise functions are as accurate as
    smooth ones (see :mod:`actlab.analysis._common`).
    """
    act = resolve(identifier, params)
    mu, q = float(mu), float(q)
    if q < 0 or not math.isfinite(q) or not math.isfinite(mu):
        raise ValueError(f"need a finite mean and a variance q >= 0, got mu={mu}, q={q}")
    if q == 0.0:
        z = np.array([mu])
        f, df = f_and_df(act, z)
        return np.atleast_1d(np.asarray(fn(f, df, z), dtype=np.float64).reshape(-1))
    s = math.sqrt(q)

    def integrand(t: np.ndarray) -> np.ndarray:
        z = mu + s * t
        f, df = f_and_df(act, z)
        return np.atleast_2d(np.asarray(fn(f, df, z), dtype=np.float64))

    breaks = [(k - mu) / s for k in break_points(act)]
    values, _err = gaussian_expectation(integrand, breaks)
    return values


def moments(identifier: Any, mu: float = 0.0, q: float = 1.0, **params: Any) -> Moments:
    """E[f], E[f²], Var[f], E[f'], E[f'²] for z ~ N(mu, q), accurate to ~1e-13 relative.

    Bounded work for every accepted identifier (see :func:`gaussian_expectation`); a moment
    beyond float64's range is inf (E[f²] of elu with alpha = 1e300), with the others exact.

    >>> m = moments("relu", q=2.0)
    >>> round(m.second_moment, 12)  # q / 2
    1.0
    """
    act = resolve(identifier, params)
    vals, f_scale, df_scale, center, err = scaled_moments(act, mu, q)
    m1, m2, shifted, d1, d2 = (float(v) for v in vals)
    # Python floats: a product beyond float64's range is inf, not an error.
    variance = (shifted - (m1 - center / f_scale) ** 2) * f_scale * f_scale if q > 0 else 0.0
    return Moments(
        activation=repr(act),
        params=dict(act.params),
        mu=float(mu),
        q=float(q),
        mean=m1 * f_scale,
        second_moment=m2 * f_scale * f_scale,
        variance=max(variance, 0.0),
        mean_derivative=d1 * df_scale,
        derivative_second_moment=d2 * df_scale * df_scale,
        error=err,
    )


def scaled_moments(act: Any, mu: float, q: float) -> tuple[np.ndarray, float, float, float, float]:
    """The five moments of f / S and f' / D (S, D powers of two that keep f² and f'² finite).

    Returns (E[f/S], E[(f/S)²], E[(f/S - c/S)²], E[f'/D], E[(f'/D)²]), S, D, c (the centre, f(mu)
    where finite) and the quadrature's error estimate. S = D = 1 unless |f| or |f'| exceeds 2^400
    somewhere in the integration range, so ordinary results are unchanged bit for bit.
    """
    mu, q = float(mu), float(q)
    if q < 0 or not math.isfinite(q) or not math.isfinite(mu):
        raise ValueError(f"need a finite mean and a variance q >= 0, got mu={mu}, q={q}")
    center = float(f_and_df(act, np.array([mu]))[0][0])
    if not math.isfinite(center):
        center = 0.0
    if q == 0.0:
        f, df = f_and_df(act, np.array([mu]))
        fs, ds = power_of_two_scale(f), power_of_two_scale(df)
        f, df = f / fs, df / ds
        return np.array([f[0], f[0] ** 2, 0.0, df[0], df[0] ** 2]), fs, ds, center, 0.0
    s = math.sqrt(q)
    probe_f, probe_df = f_and_df(act, probe_points(mu, s, break_points(act)))
    fs, ds = power_of_two_scale(probe_f), power_of_two_scale(probe_df)
    c = center / fs

    def integrand(t: np.ndarray) -> np.ndarray:
        f, df = f_and_df(act, mu + s * t)
        if fs != 1.0 or ds != 1.0:
            f, df = f / fs, df / ds
        return np.stack([f, f * f, (f - c) ** 2, df, df * df])

    with np.errstate(all="ignore"):
        vals, err = gaussian_expectation(integrand, [(k - mu) / s for k in break_points(act)])
    return vals, fs, ds, center, err


def hermite_moments(identifier: Any, mu: float = 0.0, q: float = 1.0, n: int = 100, **params: Any) -> Moments:
    """The same moments by plain n-point Gauss–Hermite quadrature (for comparison).

    Exact for polynomials of degree < 2n and fast for entire functions, but across a kink
    (ReLU at 0) it converges only algebraically in n; :func:`moments` splits at kinks instead.
    """
    from numpy.polynomial.hermite_e import hermegauss

    act = resolve(identifier, params)
    t, w = hermegauss(n)
    w = w / math.sqrt(2 * math.pi)
    f, df = f_and_df(act, mu + math.sqrt(q) * t)
    mean = float(w @ f)
    return Moments(
        activation=repr(act),
        params=dict(act.params),
        mu=float(mu),
        q=float(q),
        mean=mean,
        second_moment=float(w @ (f * f)),
        variance=float(w @ ((f - mean) ** 2)),
        mean_derivative=float(w @ df),
        derivative_second_moment=float(w @ (df * df)),
        error=math.nan,
    )
