"""Mean-field signal propagation through deep random networks.

Fully connected net, weights W_ij ~ N(0, σ_w²/N), biases ~ N(0, σ_b²), width N -> ∞
(Poole et al. 2016, "Exponential expressivity in deep neural networks through transient chaos",
arXiv:1606.05340; Schoenholz et al. 2017, "Deep Information Propagation", arXiv:1611.01232):

- length map: q_{l+1} = σ_w² E[f(√q_l z)²] + σ_b², z ~ N(0, 1); its fixed point q*;
- χ = σ_w² E[f'(√q* z)²]: the factor by which a gradient's squared norm changes per layer
  (backward), and the slope of the correlation map at c = 1. χ < 1: ordered phase (inputs
  become correlated, gradients vanish), χ > 1: chaotic (decorrelate, gradients explode),
  χ = 1: the edge of chaos;
- depth scales: ξ = -1/ln χ for gradients and for correlations near c* = 1 (Schoenholz eq. 9:
  ξ_c = -1/ln χ), and ξ_q = -1/ln(dq_{l+1}/dq_l at q*) for the length (Schoenholz eq. 7);
- over L layers a gradient's squared norm changes by χ^L (so its norm by χ^(L/2)).

Self-normalising networks (Klambauer et al. 2017, "Self-Normalizing Neural Networks",
arXiv:1706.02515, §2): with input mean μ and variance ν, weight sum ω = Σ w_i and τ = Σ w_i²,
the pre-activation is N(μω, ντ) and the map is (μ, ν) -> (E[f], Var[f]) under it. With ω = 0,
τ = 1 SELU's fixed point is (0, 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actlab.analysis._common import resolve
from actlab.analysis.moments import expectation, moments

__all__ = [
    "length_map",
    "length_map_slope",
    "fixed_point",
    "MeanField",
    "mean_field",
    "critical_sigma_w2",
    "SelfNormalizing",
    "self_normalizing_map",
    "self_normalizing",
]


def length_map(identifier: Any, q: float, sigma_w2: float = 1.0, sigma_b2: float = 0.0, **params: Any) -> float:
    """q_{l+1} = σ_w² E[f(√q z)²] + σ_b² (Poole et al. 2016, eq. 3)."""
    return sigma_w2 * moments(identifier, 0.0, q, **params).second_moment + sigma_b2


def length_map_slope(identifier: Any, q: float, sigma_w2: float = 1.0, **params: Any) -> float:
    """d q_{l+1} / d q_l = σ_w² E[f(x) f'(x) x] / q for x ~ N(0, q) (differentiating under the integral)."""
    if q <= 0:
        act = resolve(identifier, params)
        d0 = float(act.derivative(np.array([0.0]))[0])
        return sigma_w2 * d0 * d0  # limit q -> 0 for f(0) = 0
    val = expectation(identifier, lambda f, df, x: f * df * x, 0.0, q, **params)[0]
    return sigma_w2 * float(val) / q


def fixed_point(
    identifier: Any,
    sigma_w2: float = 1.0,
    sigma_b2: float = 0.0,
    q0: float = 1.0,
    *,
    max_iter: int = 200,
    tol: float = 1e-15,
    **params: Any,
) -> tuple[float, bool, int]:
    """The fixed point q* of the length map reached from q0: (q*, converged, iterations).

    Plain iteration to enter the basin, then safeguarded Newton steps on q - map(q) using the
    exact slope; q* = inf when the length grows without bound (ReLU with σ_w² > 2).
    """
    act = resolve(identifier, params)
    q = float(q0)
    if q < 0 or not math.isfinite(q):
        raise ValueError(f"q0 must be finite and >= 0, got {q0}")
    # With σ_b² = 0 and f(0) = 0, q = 0 is a fixed point; a length that collapses geometrically
    # towards it converges there (a relative tolerance alone would never be met).
    zero_fixed = sigma_b2 == 0 and float(act(np.array([0.0]))[0]) == 0.0
    for it in range(1, max_iter + 1):
        new = length_map(act, q, sigma_w2, sigma_b2)
        if not math.isfinite(new) or new > 1e12 * max(1.0, q0):
            return math.inf, True, it
        h = new - q
        if abs(h) <= tol * max(q, new) or new < 1e-300 or (zero_fixed and new < 1e-30 * max(1.0, q0)):
            return (new if new >= 1e-300 and not (zero_fixed and new < 1e-30 * max(1.0, q0)) else 0.0), True, it
        if it > 3 and q > 0:
            # Newton on q - map(q), accepted only towards a *stable* fixed point (slope < 1):
            # iteration from q0 never reaches an unstable one (ReLU's q* = 0 for σ_w² > 2).
            slope = length_map_slope(act, q, sigma_w2)
            if math.isfinite(slope) and slope < 1.0 - 1e-9:
                cand = q - h / (slope - 1.0)
                if cand > 0 and math.isfinite(cand):
                    cand_h = length_map(act, cand, sigma_w2, sigma_b2) - cand
                    if abs(cand_h) < abs(h) and length_map_slope(act, cand, sigma_w2) < 1.0:
                        q = cand
                        continue
        q = new
    return q, False, max_iter


@dataclass(frozen=True)
class MeanField:
    """Mean-field analysis of a deep fully-connected net at (σ_w², σ_b²)."""

    activation: str
    sigma_w2: float
    sigma_b2: float
    q_star: float  # fixed point of the length map (inf: the signal's length diverges)
    converged: bool
    chi: float  # σ_w² E[f'(√q* z)²]
    length_slope: float  # d q_{l+1} / d q_l at q*
    trajectory: tuple[float, ...] = field(default=(), repr=False)  # q_0, q_1, ... from q0

    @property
    def phase(self) -> str:
        """ "ordered" (χ < 1), "chaotic" (χ > 1) or "critical" (|χ - 1| <= 1e-9)."""
        if not math.isfinite(self.chi) or self.chi > 1 + 1e-9:
            return "chaotic"
        return "ordered" if self.chi < 1 - 1e-9 else "critical"

    @property
    def depth_scale(self) -> float:
        """ξ = -1/ln χ: layers over which gradients (and correlations near 1) change by e.

        Infinite at criticality; for χ > 1 the scale of growth 1/ln χ is returned (positive).
        """
        if not math.isfinite(self.chi) or self.chi <= 0:
            return 0.0
        lc = math.log(self.chi)
        return math.inf if abs(lc) < 1e-12 else 1.0 / abs(lc)

    @property
    def length_depth_scale(self) -> float:
        """ξ_q = -1/ln(dq_{l+1}/dq_l) at q*: layers over which the length relaxes to q*."""
        if not (0 < self.length_slope < 1):
            return math.inf
        return -1.0 / math.log(self.length_slope)

    def gradient_ratio(self, layers: int) -> float:
        """Predicted ratio of squared gradient norms L layers apart, χ^L."""
        return self.chi**layers


def mean_field(
    identifier: Any,
    sigma_w2: float = 1.0,
    sigma_b2: float = 0.0,
    q0: float = 1.0,
    layers: int = 0,
    **params: Any,
) -> MeanField:
    """Fixed point, χ, phase and depth scales of the length map; ``layers`` > 0 also records
    the trajectory q_0 = q0, q_1, ..., q_layers."""
    act = resolve(identifier, params)
    q_star, converged, _ = fixed_point(act, sigma_w2, sigma_b2, q0)
    traj = [float(q0)]
    for _ in range(layers):
        traj.append(length_map(act, traj[-1], sigma_w2, sigma_b2) if math.isfinite(traj[-1]) else math.inf)
    if math.isfinite(q_star):
        chi = sigma_w2 * moments(act, 0.0, q_star).derivative_second_moment
        slope = length_map_slope(act, q_star, sigma_w2)
    else:
        chi = slope = math.inf
    return MeanField(repr(act), float(sigma_w2), float(sigma_b2), q_star, converged, chi, slope, tuple(traj))


def critical_sigma_w2(
    identifier: Any, sigma_b2: float = 0.0, lo: float = 1e-3, hi: float = 100.0, **params: Any
) -> float:
    """σ_w² on the edge of chaos (χ = 1) for the given σ_b², by bracketing χ(σ_w²) - 1."""
    from scipy.optimize import brentq

    act = resolve(identifier, params)

    def g(sw2: float) -> float:
        return mean_field(act, sw2, sigma_b2).chi - 1.0

    return float(brentq(g, lo, hi, xtol=1e-13, rtol=1e-12))


# ----------------------------------------------------------------------------- self-normalising
def self_normalizing_map(
    identifier: Any, mu: float, nu: float, omega: float = 0.0, tau: float = 1.0, **params: Any
) -> tuple[float, float]:
    """(μ, ν) -> (E[f(x)], Var[f(x)]) with x ~ N(μω, ντ) (Klambauer et al. 2017, eq. 3-4)."""
    m = moments(identifier, mu * omega, nu * tau, **params)
    return m.mean, m.variance


@dataclass(frozen=True)
class SelfNormalizing:
    """Iterates of the self-normalising map and the fixed point they reach."""

    activation: str
    mu: tuple[float, ...]
    nu: tuple[float, ...]
    omega: float
    tau: float

    @property
    def fixed_point(self) -> tuple[float, float]:
        return self.mu[-1], self.nu[-1]

    def layers_to_reach(self, target: tuple[float, float] = (0.0, 1.0), tol: float = 1e-6) -> int | None:
        """First layer whose (μ, ν) lies within ``tol`` of ``target``, or None."""
        for i, (m, v) in enumerate(zip(self.mu, self.nu)):
            if abs(m - target[0]) <= tol and abs(v - target[1]) <= tol:
                return i
        return None


def self_normalizing(
    identifier: Any = "selu",
    mu0: float = 0.5,
    nu0: float = 2.0,
    layers: int = 50,
    omega: float = 0.0,
    tau: float = 1.0,
    **params: Any,
) -> SelfNormalizing:
    """Iterate :func:`self_normalizing_map` ``layers`` times from (mu0, nu0)."""
    act = resolve(identifier, params)
    mus, nus = [float(mu0)], [float(nu0)]
    for _ in range(layers):
        m, v = self_normalizing_map(act, mus[-1], nus[-1], omega, tau)
        mus.append(m)
        nus.append(v)
    return SelfNormalizing(repr(act), tuple(mus), tuple(nus), float(omega), float(tau))
