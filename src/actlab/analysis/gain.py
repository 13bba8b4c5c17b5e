"""Variance-preserving gains for any activation, beside ``torch.nn.init.calculate_gain``.

Convention (He et al. 2015, "Delving Deep into Rectifiers", arXiv:1502.01852, §2.2): a layer
y = W f(x) with weights W_ij ~ N(0, g²/fan_in) and independent inputs has
Var[y_i] = g² E[f(x)²] — the *second moment* of the activation's output enters, not its variance,
because the zero-mean weights average f(x) itself, not f(x) - E[f(x)]. With pre-activations
x ~ N(0, 1) the variance is preserved from layer to layer when

    g = 1 / sqrt(E[f(z)²]),  z ~ N(0, 1).

ReLU gives E[f²] = 1/2, so g = √2 exactly (He init), the identity gives 1 (LeCun/Xavier). For
functions that are not positively homogeneous the answer depends on the input scale; ``q`` sets
it (the mean-field fixed point of :mod:`actlab.analysis.meanfield` is the self-consistent
choice). PyTorch's ``calculate_gain`` values are heuristics for some functions: tanh 5/3 (chosen
to keep gradients from vanishing, larger than the 1.59 computed here) and SELU 3/4 (PyTorch's
documentation: "sacrifices the normalization effect for more stable gradient flow"; the
self-normalising setting of Klambauer et al. 2017, arXiv:1706.02515, is gain 1 = LeCun normal,
which is what is computed here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from actlab.analysis._common import resolve
from actlab.analysis.moments import scaled_moments

__all__ = ["GainReport", "gain", "gain_table", "pytorch_gain"]

_PYTORCH_FIXED = {
    "linear": 1.0,
    "identity": 1.0,
    "conv1d": 1.0,
    "conv2d": 1.0,
    "conv3d": 1.0,
    "conv_transpose1d": 1.0,
    "conv_transpose2d": 1.0,
    "conv_transpose3d": 1.0,
    "sigmoid": 1.0,
    "tanh": 5.0 / 3.0,
    "relu": math.sqrt(2.0),
    "selu": 3.0 / 4.0,
}


def pytorch_gain(identifier: Any, **params: Any) -> float | None:
    """What ``torch.nn.init.calculate_gain`` returns for this activation, or None where it has none.

    Mirrors PyTorch's table (without importing torch): linear/conv* 1, sigmoid 1, tanh 5/3,
    relu √2, leaky_relu √(2 / (1 + slope²)), selu 3/4. A ReLU with a negative slope is the leaky
    ReLU. PyTorch's ``calculate_gain`` names (``"conv2d"``) are accepted too.
    """
    if isinstance(identifier, str) and identifier.strip().lower() in _PYTORCH_FIXED and not params:
        key = identifier.strip().lower()
        if key.startswith("conv") or key == "identity":
            return _PYTORCH_FIXED[key]
    act = resolve(identifier, params)
    name, p = act.name, act.params
    if name == "leaky_relu" or (name == "relu" and p.get("negative_slope", 0.0) != 0.0):
        if name == "relu" and (p.get("max_value") is not None or p.get("threshold", 0.0) != 0.0):
            return None
        slope = p["negative_slope"]
        return math.sqrt(2.0) / math.hypot(1.0, slope)  # √(2 / (1 + slope²)) without overflow in slope²
    if name == "relu" and (p.get("max_value") is not None or p.get("threshold", 0.0) != 0.0):
        return None
    return _PYTORCH_FIXED.get(name)


@dataclass(frozen=True)
class GainReport:
    """The computed variance-preserving gain beside PyTorch's ``calculate_gain`` value."""

    activation: str
    computed: float  # 1 / sqrt(E[f(z)^2]), z ~ N(0, q)  (times sqrt(q): see gain())
    pytorch: float | None  # torch.nn.init.calculate_gain, None where PyTorch has no entry
    second_moment: float  # E[f(z)^2]
    q: float = 1.0

    @property
    def differs(self) -> bool:
        """PyTorch has a value and it is not the computed one (to 1e-9 relative)."""
        return self.pytorch is not None and abs(self.pytorch - self.computed) > 1e-9 * self.computed

    @property
    def ratio(self) -> float | None:
        """PyTorch's gain over the computed one (None where PyTorch has none)."""
        return None if self.pytorch is None else self.pytorch / self.computed


def gain(identifier: Any = "linear", q: float = 1.0, **params: Any) -> GainReport:
    """Variance-preserving gain g = sqrt(q / E[f(z)²]) with z ~ N(0, q) (q = 1: 1/sqrt(E[f(z)²])).

    With weights ~ N(0, g²/fan_in), pre-activations of variance q keep variance q in the next
    layer (see the module docstring for why the second moment, not the variance, enters).
    ReLU gives √2 and the identity 1 exactly; the report carries PyTorch's heuristic beside it.
    """
    act = resolve(identifier, params)
    slopes = _homogeneous_slopes(act)
    if slopes is not None and q > 0 and any(slopes):
        # f(z) = a z (z > 0), -b z (z < 0): E[f(z)^2] = q (a^2 + b^2) / 2 in closed form, so the
        # gains that are exact by construction (identity 1, ReLU sqrt 2) come out exact, not
        # within a quadrature rounding of them.
        norm = math.hypot(*slopes)
        computed, second = math.sqrt(2.0) / norm, q * (slopes[0] ** 2 + slopes[1] ** 2) / 2.0
    else:
        vals, f_scale, _, _, _ = scaled_moments(act, 0.0, q)
        scaled_second = float(vals[1])  # E[(f/S)²]: finite where E[f²] itself overflows
        second = scaled_second * f_scale * f_scale
        if not (scaled_second > 0 and math.isfinite(scaled_second)):
            raise ValueError(f"{act!r}: E[f(z)^2] = {second} under N(0, {q}); no finite gain")
        computed = math.sqrt(q / scaled_second) / f_scale
    return GainReport(
        activation=repr(act),
        computed=computed,
        pytorch=pytorch_gain(act),
        second_moment=second,
        q=float(q),
    )


# Probe points for positive homogeneity: scaling by a power of two is exact in floating point, so
# a piecewise-linear function through the origin reproduces f(c x) = c f(x) bit for bit.
_PROBES = np.array([1.0, 0.3, 3.7, 1e-3, 1e3, 1e-12, 1e12])
_SCALES = (0.25, 2.0, 1024.0)


def _homogeneous_slopes(act: Any) -> tuple[float, float] | None:
    """(f(1), -f(-1)) when f is positively homogeneous of degree 1 (f(c x) = c f(x), c > 0),
    i.e. two half-lines through the origin (identity, ReLU, leaky ReLU); None otherwise."""
    if any(at != 0.0 for at, _ in act.spec.kink_points(act.params)):
        return None
    xs = np.concatenate([_PROBES, -_PROBES])
    with np.errstate(all="ignore"):
        base = np.asarray(act(xs), dtype=np.float64)
        if not np.all(np.isfinite(base)):
            return None
        for c in _SCALES:
            if not np.array_equal(np.asarray(act(c * xs), dtype=np.float64), c * base):
                return None
        if not np.array_equal(base, np.where(xs > 0, base[0] * xs, -base[len(_PROBES)] * xs)):
            return None
    return float(base[0]), float(-base[len(_PROBES)])


def gain_table(identifiers: Any = None) -> list[GainReport]:
    """:func:`gain` for several activations (default: PyTorch's eight and a few common others)."""
    if identifiers is None:
        identifiers = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu", "elu", "gelu", "silu", "mish"]
    return [gain(i) for i in identifiers]
