"""Shared helpers: resolving identifiers and Gaussian expectations by adaptive quadrature.

The expectation of g(z) for z ~ N(mu, q) is written in standard form,
E[g(z)] = ∫ g(mu + sqrt(q) t) φ(t) dt with φ the standard normal density, and integrated on
[-T, T] (T = 40: φ(40) ≈ 1e-348 underflows to 0) by composite Gauss–Legendre panels. The panels
are split at every kink the spec declares (mapped to t = (k - mu) / sqrt(q)) and at z = 0 (where
most piecewise definitions change branch), and a panel is halved while the rule on it and on its
two halves disagree. On each smooth piece the rule converges exponentially, so results are
accurate to ~1e-14 relative: plain Gauss–Hermite quadrature, by contrast, converges only
algebraically across a kink (ReLU's E[f] with 100 nodes is off by 1.6e-3, with 300 by 5e-4).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from actlab.registry import BoundActivation, get

_T = 40.0
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(16)
_SQRT_2PI = math.sqrt(2.0 * math.pi)


def resolve(identifier: Any, params: dict[str, Any] | None = None) -> BoundActivation:
    """Any identifier :func:`actlab.get` accepts, as an elementwise :class:`BoundActivation`."""
    act = get(identifier, **(params or {}))
    if not isinstance(act, BoundActivation):
        raise TypeError(f"analysis needs a registered activation, got the callable {identifier!r}")
    if act.spec.kind != "elementwise":
        raise TypeError(f"{act.name} is a {act.spec.kind} activation; analysis covers elementwise activations")
    return act


def f_and_df(act: BoundActivation, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(z, dtype=np.float64)
    with np.errstate(all="ignore"):
        return np.asarray(act(z), dtype=np.float64), np.asarray(act.derivative(z), dtype=np.float64)


def break_points(act: BoundActivation) -> list[float]:
    """Points in z where the integrand may not be smooth: declared kinks and 0."""
    pts = {0.0}
    for at, _ in act.spec.kink_points(act.params):
        pts.add(float(at))
    return sorted(pts)


def _panel_rule(a: np.ndarray, b: np.ndarray, integrand: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Gauss–Legendre on each panel [a_i, b_i]; returns an array (k quantities, n panels)."""
    half = 0.5 * (b - a)
    mid = 0.5 * (b + a)
    t = mid[:, None] + half[:, None] * _NODES[None, :]  # (n, 16)
    phi = np.exp(-0.5 * t * t) / _SQRT_2PI
    vals = integrand(t.ravel())  # (k, n*16)
    vals = vals.reshape(vals.shape[0], *t.shape)
    with np.errstate(invalid="ignore"):
        weighted = np.where(phi > 0, vals * phi, 0.0)
    return np.einsum("knj,j->kn", weighted, _WEIGHTS) * half[None, :]


def gaussian_expectation(
    integrand: Callable[[np.ndarray], np.ndarray],
    breaks_t: Sequence[float] = (),
    *,
    rtol: float = 1e-14,
    max_levels: int = 45,
) -> tuple[np.ndarray, float]:
    """∫ integrand(t) φ(t) dt for standard normal t; ``integrand`` maps t (1-d) -> (k, len(t)).

    Returns the k integrals and an error estimate (the sum of the last corrections).
    """
    edges = set(np.linspace(-_T, _T, 81).tolist())
    edges.update(float(b) for b in breaks_t if -_T < b < _T)
    edges = np.array(sorted(edges))
    a, b = edges[:-1], edges[1:]
    coarse = _panel_rule(a, b, integrand)
    scale = np.maximum(np.abs(coarse.sum(axis=1)), np.abs(coarse).sum(axis=1) * 1e-3)
    scale = np.where(scale > 0, scale, 1.0)
    total = np.zeros(coarse.shape[0])
    err = 0.0
    for _level in range(max_levels):
        m = 0.5 * (a + b)
        left = _panel_rule(a, m, integrand)
        right = _panel_rule(m, b, integrand)
        fine = left + right
        diff = np.abs(fine - coarse)
        # A panel is done when the halving changed nothing relative to the total (per quantity).
        ok = np.all(diff <= rtol * scale[:, None], axis=0) | ((b - a) < 1e-13)
        total += fine[:, ok].sum(axis=1)
        err += float(np.max(diff[:, ok].sum(axis=1) / scale)) if np.any(ok) else 0.0
        if np.all(ok):
            return total, err
        keep = ~ok
        a = np.concatenate([a[keep], m[keep]])
        b = np.concatenate([m[keep], b[keep]])
        coarse = np.concatenate([left[:, keep], right[:, keep]], axis=1)
    total += coarse.sum(axis=1)
    return total, math.inf
