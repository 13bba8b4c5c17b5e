"""Functions that another framework's activation table defines and no other spec covers.

Hugging Face transformers' ``ACT2CLS`` names four functions that are not an existing spec at some
parameter values: ``gelu_fast`` (the tanh GELU with its own truncated constant), ``gelu_10``
(exact GELU clipped to [-10, 10]), ``xielu`` and ``sqrtsoftplus``. Their definitions follow the
formulas of transformers' ``activations.py`` (read, not copied); the differences in how the peer
evaluates them are in each spec's ``equivalents``.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Any

import numpy as np

from actlab.catalog._refs import HENDRYCKS_GELU
from actlab.catalog.self_gated import (
    _gelu_exact_der,
    _gelu_exact_fwd,
    _gelu_tanh_der,
    _gelu_tanh_fwd,
    _sympy_expm1,
)
from actlab.catalog.spec import Equivalent, Kernel, Kink, Param, ParameterError, Reference, Spec, Tolerance
from actlab.ops.exact import finite, limits, mul_const, precision, two_sum

INF = math.inf

TRANSFORMERS_ACTIVATIONS = Reference(
    "transformers/src/transformers/activations.py (ACT2CLS)",
    "Hugging Face",
    2025,
    url="https://github.com/huggingface/transformers/blob/main/src/transformers/activations.py",
)
HENDRYCKS_GELU_REPO = Reference(
    "GELUs (reference code: the fast tanh approximation)",
    "Hendrycks",
    2016,
    url="https://github.com/hendrycks/GELUs",
)
WU_QUANTIZATION = Reference(
    "Integer Quantization for Deep Learning Inference: Principles and Empirical Evaluation",
    "Wu, Judd, Zhang, Isaev, Micikevicius",
    2020,
    arxiv="2004.09602",
)
HUANG_XIELU = Reference("Deriving Activation Functions Using Integration", "Huang, Schlag", 2024, arxiv="2411.13010")


def _hi_lo(value: Fraction) -> tuple[float, float]:
    hi = float(value)
    return hi, float(value - Fraction(hi))


# ----------------------------------------------------------------------------- gelu_fast
# transformers' FastGELUActivation: 0.5 x (1 + tanh(x * 0.7978845608 * (1 + 0.044715 x^2))), i.e. the
# tanh GELU with sqrt(2/pi) truncated to 10 decimals (2.9e-12 relative below it): x sigmoid(2u).
_FAST_C = Fraction(7978845608, 10**10)
_FAST_K = Fraction(44715, 10**6)
_FAST_A = _hi_lo(2 * _FAST_C)
_FAST_B = _hi_lo(2 * _FAST_C * _FAST_K)


def _gelu_fast_definition(x: Any, sp: Any) -> Any:
    u = sp.Rational(7978845608, 10**10) * (x + sp.Rational(44715, 10**6) * x**3)
    return x / (1 + sp.exp(-2 * u))


# gelu_fast's float form: z = x (A + B x^2) as zh + zl in double-float (x^2, B x^2, A + B x^2 and
# x (A + B x^2) by error-free steps, A and B as hi + lo), and e = e^-|zh|, for f and f' alike.
_GELU_FAST_Z = """
            V p, q; two_prod(x, x, p, q);
            V mh, ml; two_prod(V(7.1354814e-02f), p, mh, ml);
            ml = ml + (V(7.1354814e-02f) * q + V(2.3985762e-09f) * p);
            V sh, se; two_sum(V(1.5957692f), mh, sh, se); se = se + (ml + V(-4.534641e-08f));
            V zh, zl; two_prod(x, sh, zh, zl); zl = zl + x * se;
            V e = exp_inline(V(0.0f) - abs(zh)); V den = 1.0 + e;
"""

GELU_FAST = Spec(
    name="gelu_fast",
    family="self_gated",
    summary="0.5 x (1 + tanh(0.7978845608 x (1 + 0.044715 x^2))): the tanh GELU with a 10-digit constant.",
    definition=_gelu_fast_definition,
    forward=lambda x, ops: _gelu_tanh_fwd(ops, x, _FAST_A, _FAST_B),
    derivative=lambda x, ops: _gelu_tanh_der(ops, x, _FAST_A, _FAST_B),
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' has a root at x ~ -0.7518 (the minimum of f, as for gelu(approximate='tanh')); near it f' is a "
            "difference of terms of size ~1 and keeps only their absolute accuracy, so the derivative's allowance "
            "is its condition number |x f''/f'| (measured: 35 ulp float32 / 71 ulp float64 at x = -0.7449 where "
            "the condition number is 99; at most 4 ulp away from the root) (issue #10)"
        ),
    ),
    bounds=(-0.17004075057125406, INF),
    zero_centered=True,
    saturates=("left",),
    approximates="gelu",
    approximation_error=4.8e-4,
    references=(HENDRYCKS_GELU, HENDRYCKS_GELU_REPO, TRANSFORMERS_ACTIVATIONS),
    equivalents=(
        Equivalent(
            "transformers",
            "transformers.activations.FastGELUActivation",
            "the same function; evaluated as 0.5 x (1 + tanh(.)), which cancels for x << 0 (0 from about "
            "x = -5.5 in float32, true values down to 1e-37). Differs from gelu(approximate='tanh') by "
            "2.9e-12 relative in the constant: invisible in float32, a few ulp in float64.",
            names=("gelu_fast",),
        ),
    ),
    torch_native=lambda x, torch: 0.5 * x * (1.0 + torch.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x))),
    notes="Computed as x sigmoid(2u) with 2u carried in double-word arithmetic, like gelu(approximate='tanh').",
    kernel=Kernel(
        # x sigmoid(z), z = x (A + B x^2), A = 2 * 0.7978845608, B = 0.044715 A; sigmoid and 1 - sigmoid from
        # one e = exp(-|z|). Double: z's rounding, amplified by |z| < 110 where f is not 0, is below 2^-45.
        forward="""
            V z = x * (1.5957691216 + 0.071354816272344 * (x * x));
            V e = exp(-abs(z)); V d = 1.0 / (1.0 + e);
            return where(x == -inf, 0.0, x * where(z >= 0.0, d, e * d));""",
        derivative="""
            V z = x * (1.5957691216 + 0.071354816272344 * (x * x));
            V e = exp(-abs(z)); V d = 1.0 / (1.0 + e);
            V s = where(z >= 0.0, d, e * d); V q = where(z >= 0.0, e * d, d);
            V r = s + x * s * q * (1.5957691216 + 0.214064448817032 * (x * x));
            return where(abs(x) == inf, where(x > 0.0, 1.0, 0.0), r);""",
        # float: z = zh + zl in double-float (x^2, B x^2, A + B x^2 and x (A + B x^2) by error-free
        # steps, A and B as hi + lo), sigmoid(zh + zl) = sigmoid(zh) (1 + (1 - sigmoid(zh)) zl): the
        # rounding of z, amplified by |z| (up to 66 here), would otherwise cost up to 66 ulp.
        fast_forward=_GELU_FAST_Z
        + """
            V r = 1.0 / den; V er = e * r; V pos = zh >= 0.0;  // one division
            V y = x * where(pos, r, er);
            V om = where(pos, er, r);
            return y + y * (om * zl);""",
        fast_derivative=_GELU_FAST_Z
        + """
            V r = 1.0 / den; V er = e * r; V pos = zh >= 0.0;
            V s = where(pos, r, er);
            V om = where(pos, er, r);
            s = s + s * (om * zl);
            V w = x * (1.5957691216 + 0.214064448817032 * p);
            return s * (1.0 + w * om);""",
        fast_where="abs(x) < 9.0",  # e^-|z| normal (|z| < 67)
    ),
)


# ----------------------------------------------------------------------------- clipped_gelu
_GELU_MIN_X = -0.7517915241311818  # argmin of x Phi(x)
_GELU_MIN = -0.16997120747990367


_INV_SQRT2 = Fraction("0.70710678118654752440084436210484903928483593768847")


def _gelu64(x: float) -> float:
    """x Phi(x) in float64 to about an ulp: the clip masks are decided on its sign against a bound, and
    -x / sqrt(2) rounded moves erfc by 2 t^2 ulp (and by an ulp near a clip root where gelu is ~ x / 2)."""
    t = Fraction(-x) * _INV_SQRT2
    hi = float(t)
    lo = float(t - Fraction(hi))
    return 0.5 * x * (math.erfc(hi) - 1.1283791670955126 * math.exp(-hi * hi) * lo)


def _root(f: Any, lo: float, hi: float) -> float:
    """Bisection for the double where f changes sign in [lo, hi] (f(lo) and f(hi) of opposite signs)."""
    if f(lo) == 0:
        return lo
    flo = f(lo) < 0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if (f(mid) < 0) == flo:
            lo = mid
        else:
            hi = mid
    return hi


@functools.lru_cache(maxsize=256)
def _clip_roots(lo: float, hi: float) -> tuple[tuple[float, float] | None, float]:
    """((a, b) with gelu < lo exactly on [a, b), or None; c with gelu > hi exactly above c). Decided
    on x, not on gelu(x) rounded to the working dtype, so float32 clips where the function does."""
    low = None
    if _GELU_MIN < lo < 0.0:  # gelu < lo between two roots around the minimum
        low = (_root(lambda t: _gelu64(t) - lo, -40.0, _GELU_MIN_X), _root(lambda t: _gelu64(t) - lo, _GELU_MIN_X, 0.0))
    elif lo == 0.0:
        low = (-INF, 0.0)
    return low, _root(lambda t: _gelu64(t) - hi, hi, hi + 1.0)


def _clip_points(p: dict) -> list[tuple[float, float]]:
    """(x, gradient) where gelu(x) reaches a clip bound, in increasing x."""
    low, high = _clip_roots(p["min_val"], p["max_val"])
    xs = [t for t in (low or ()) if math.isfinite(t)] + [high]
    # torch.clamp passes the gradient where min <= gelu(x) <= max, bounds included
    return [(t, _gelu64_der(t)) for t in xs]


def _gelu64_der(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0)) + x * math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _clipped_gelu_def(x: Any, sp: Any, min_val: Any, max_val: Any) -> Any:
    g = x * sp.erfc(-x / sp.sqrt(2), evaluate=False) / 2
    return sp.Piecewise((min_val, g < min_val), (max_val, g > max_val), (g, True))


def _clip_masks(ops: Any, x: Any, min_val: float, max_val: float) -> tuple[Any, Any]:
    """(below, above): where gelu(x) < min_val and where gelu(x) > max_val, exactly in x."""
    low, high = _clip_roots(min_val, max_val)
    c, exact = _ceil_to_dtype(ops, x, high)
    above = (x > c) if exact else (x >= c)
    if low is None:
        return x < -INF, above  # all False, NaN included
    a, b = low
    below = x < _ceil_to_dtype(ops, x, b)[0]
    if math.isfinite(a):  # a is the first double with gelu < lo (_root returns the far side of the sign change)
        below = below & (x >= _ceil_to_dtype(ops, x, a)[0])
    return below, above


def _clipped_gelu_fwd(x: Any, ops: Any, min_val: float, max_val: float) -> Any:
    below, above = _clip_masks(ops, x, min_val, max_val)
    # no clip of the rounded value: it stays within the bounds where the masks are False, and NaN stays NaN
    return ops.where(above, max_val, ops.where(below, min_val, _gelu_exact_fwd(ops, x)))


def _clipped_gelu_der(x: Any, ops: Any, min_val: float, max_val: float) -> Any:
    below, above = _clip_masks(ops, x, min_val, max_val)
    return ops.where(below | above, 0.0, _gelu_exact_der(ops, x))


def _clip_kink(i: int) -> Kink:
    def at(p: dict) -> float | None:
        pts = _clip_points(p)
        return pts[i][0] if i < len(pts) else None

    def grad(p: dict) -> float:
        return _clip_points(p)[i][1]

    return Kink(at=at, grad=grad, note="torch.clip: the gradient passes where the bound is reached")


CLIPPED_GELU = Spec(
    name="clipped_gelu",
    aliases=("gelu_clipped",),
    family="self_gated",
    summary="Exact GELU clipped to [min_val, max_val] (transformers' gelu_10: [-10, 10]), for quantization.",
    params=(
        Param("min_val", -10.0, high=0.0, aliases=("min",), doc="lower clip (<= 0; below -0.17 it never acts)"),
        Param("max_val", 10.0, low=0.0, low_open=True, aliases=("max",), doc="upper clip (> 0)"),
    ),
    # no cross-constraint: the ranges already give min_val <= 0 < max_val, so transformers' check
    # (min > max raises) can never fire here, and a constraint that refuses nothing is not one
    definition=_clipped_gelu_def,
    forward=_clipped_gelu_fwd,
    derivative=_clipped_gelu_der,
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' has a root at x ~ -0.7518 (the minimum of gelu; no clip acts there unless -0.17 < min_val <= 0, "
            "where f' is 0); near it f' is a difference of terms of size ~1 and keeps only their absolute "
            "accuracy, so the derivative's allowance is its condition number |x f''/f'| (measured: 50 ulp "
            "float32 at x = -0.7449 where the condition number is 109, 15 ulp float64 at x = -0.6998 where it "
            "is 14; at most 5 ulp away from the root, torch and NumPy) (issue #10)"
        ),
    ),
    kinks=(_clip_kink(0), _clip_kink(1), _clip_kink(2)),
    bounds=lambda p: (max(p["min_val"], _GELU_MIN), p["max_val"]),
    smoothness=0,
    zero_centered=True,
    saturates=("left", "right"),
    references=(WU_QUANTIZATION, HENDRYCKS_GELU, TRANSFORMERS_ACTIVATIONS),
    equivalents=(
        Equivalent(
            "transformers",
            "transformers.activations.ClippedGELUActivation(-10, 10)",
            "ACT2CLS['gelu_10']: torch.clip(F.gelu(x), min, max) (min and max required there; min > max raises); "
            "F.gelu's exact kernel cancels for x << 0 (see gelu)",
            names=("gelu_10",),
        ),
    ),
    torch_native=lambda x, torch, min_val, max_val: torch.clip(torch.nn.functional.gelu(x), min_val, max_val),
    notes="Properties are for the defaults, where only the upper clip acts (at x = 10 + 7.6e-23).",
    kernel=Kernel(
        # exact GELU x erfc(-x / sqrt 2) / 2 in double (the rounded argument moves erfc by 2 t^2 2^-53), clipped
        # on its double value: the same decision as the eager path's roots but within 2^-50 of them
        forward="""
            V g = where(x == -inf, 0.0, 0.5 * x * erfc(-0.70710678118654752440 * x));
            return where(g > max_val, max_val, where(g < min_val, min_val, g));""",
        derivative="""
            V g = where(x == -inf, 0.0, 0.5 * x * erfc(-0.70710678118654752440 * x));
            V d = 0.5 * erfc(-0.70710678118654752440 * x) + 0.39894228040143267794 * x * exp(-0.5 * (x * x));
            d = where(abs(x) == inf, where(x > 0.0, 1.0, 0.0), d);
            return where((g > max_val) | (g < min_val), 0.0, d);""",
        # float: gelu's float form (gelu_phi: one exp, no SLEEF erfc), where no clip acts: min_val below
        # gelu's minimum -0.16997 and x < 0.999 max_val (gelu(x) < x there); gelu's own range above -12
        fast_forward="""
            V phi, gc; gelu_phi(x, phi, gc);
            return x * phi;""",
        fast_derivative="""
            V phi, gc; gelu_phi(x, phi, gc);
            return phi + (0.3989422804014327 * x) * gc;""",
        fast_where="min_val < -0.17 ? ((x > -12.0) & (x < 1e18) & (x < 0.999 * max_val)) : (V(0.0f) != 0.0)",
    ),
)


# ----------------------------------------------------------------------------- xielu
def _xielu_def(x: Any, sp: Any, alpha_p: Any, alpha_n: Any, beta: Any, eps: Any) -> Any:
    return sp.Piecewise(
        (alpha_p * x**2 + beta * x, x > 0),
        (alpha_n * (_sympy_expm1(eps) - x) + beta * x, x >= eps),
        (alpha_n * (_sympy_expm1(x) - x) + beta * x, True),
    )


def _expm1_minus_x(ops: Any, x: Any, scale: Any = 1.0) -> tuple[Any, Any]:
    """e^x - 1 - x for x <= 0 as hi + lo, without cancellation: x^2 (1/2 + x/6 + ...) for x > -1
    (times ``scale``^2 there: the caller's way around a subnormal x^2); below, e^x - (1 + x) with
    1 + x exact (x <= -1) and the subtraction's error kept."""
    xs = ops.clip(x, -1.0, 0.0)
    t = ops.full_like(xs, 1.0 / math.factorial(_Q_TERMS + 1))
    for k in range(_Q_TERMS, 1, -1):
        t = t * xs + 1.0 / math.factorial(k)
    far_h, far_l = two_sum(ops.exp(x), -(1.0 + x))
    near = x > -1.0
    xs = xs * scale
    return ops.where(near, (xs * xs) * t, far_h), ops.where(near, 0.0, far_l)


# (|x| below which x is scaled up, by what, and the product with alpha_n scaled down twice by what):
# x^2 is subnormal from |x| = 1e-19 (float32) / 1.5e-154 (float64) on, while alpha_n x^2 / 2 (up to
# 1e4 x^2) is still normal, and with beta = 0 it is the whole result
_XIELU_SCALE = {4: (2.0**-40, 2.0**64, 2.0**-64), 8: (2.0**-300, 2.0**600, 2.0**-600)}


_Q_TERMS = 19  # 1/20! ~ 4e-19: the series' truncation is below float64's rounding on [-1, 0]


def _xielu_fwd(x: Any, ops: Any, alpha_p: float, alpha_n: float, beta: float, eps: float) -> Any:
    xin, x = x, finite(x, ops)
    P = precision(x, ops)
    pos = (alpha_p * x + beta) * x
    # alpha_n (expm1(m) - x) + beta x, m = min(x, eps): below eps, expm1(x) - x is formed without
    # cancelling and the products and the sum are carried in double-word arithmetic, so what is left
    # is the rounding of e^x, amplified only at the function's own root (x = -2.44 at the defaults)
    m = ops.minimum(x, eps)
    c, _ = _ceil_to_dtype(ops, x, eps)
    flat = x >= c
    thr, up, down = _XIELU_SCALE[P.dtype.itemsize]
    small = (ops.abs(m) < thr) & ~flat
    qh, ql = _expm1_minus_x(ops, m, ops.where(small, ops.full_like(x, up), 1.0))
    qh = ops.where(flat, ops.expm1(ops.full_like(x, eps)) - x, qh)
    ql = ops.where(flat, 0.0, ql)
    ph, pl = mul_const(qh, ops, alpha_n, 0.0, P)
    un = ops.where(small, ops.full_like(x, down), 1.0)  # powers of two: exact down to float's smallest normal number
    ph, pl = (ph * un) * un, (pl * un) * un
    bh, bl = mul_const(x, ops, beta, 0.0, P)
    sh, se = two_sum(ph, bh)
    neg = sh + ((se + bl) + (pl + alpha_n * ql))
    y = ops.where(x > 0.0, pos, neg)
    return limits(xin, ops, y, -INF if beta > alpha_n else (INF if beta < alpha_n else -alpha_n), INF)


def _ceil_to_dtype(ops: Any, x: Any, c: float) -> tuple[float, bool]:
    """(the smallest value of x's working dtype >= c, whether c is exactly representable): x < c
    exactly (c a float64 parameter) is x < that value, and x == c is possible only if exact."""
    t = precision(x, ops).dtype.type
    r = t(c)
    if float(r) < c:
        r = np.nextafter(r, t(np.inf))
    return float(r), float(t(c)) == c


def _xielu_der(x: Any, ops: Any, alpha_p: float, alpha_n: float, beta: float, eps: float) -> Any:
    pos = alpha_p * (2.0 * x) + beta  # not (2 alpha_p) x: 2 alpha_p overflows float32 at alpha_p near its max
    # alpha_n expm1(x) + beta cancels near f's minimum, log(1 - beta / alpha_n) (-15.9 at alpha_n = beta + 1
    # float32 ulp): expm1(x) = (e^x - 1 - x) + x and the product and the sum are carried in double-word
    # arithmetic, so what is left is the rounding of e^x, relative to f' its condition number over |x|
    P = precision(x, ops)
    m = ops.minimum(finite(x, ops), 0.0)  # f'(-inf) = beta - alpha_n is set below
    qh, _ = _expm1_minus_x(ops, m)  # its low part is 0 above -1
    nh, nl = two_sum(qh, m)
    fh, fl = two_sum(ops.exp(m), ops.full_like(x, -1.0))  # exact for x <= -1 (1 + x is not beyond 2^24 in float32)
    near = m > -1.0
    eh, el = ops.where(near, nh, fh), ops.where(near, nl, fl)
    ph, pl = mul_const(eh, ops, alpha_n, 0.0, P)
    sh, se = two_sum(ph, ops.full_like(x, beta))
    below = limits(x, ops, sh + (se + (pl + alpha_n * el)), beta - alpha_n, 0.0)
    flat = ops.full_like(x, beta - alpha_n)
    # at x == eps torch.minimum splits the gradient between its two equal arguments
    tie = ops.full_like(x, (0.5 * math.exp(eps) - 1.0) * alpha_n + beta)
    c, exact = _ceil_to_dtype(ops, x, eps)  # eps = -1e-6 is not a float32 number
    neg = ops.where(x < c, below, ops.where(x == c, tie, flat) if exact else flat)
    return ops.where(x > 0.0, pos, ops.where(ops.isnan(x), x, neg))


def _xielu_min(p: dict) -> float:
    # the minimum of the x < eps branch: f' = alpha_n expm1(x) + beta = 0 at x = log(1 - beta / alpha_n)
    a, b = p["alpha_n"], p["beta"]
    return -b + (b - a) * math.log1p(-b / a)


def _xielu_check(p: dict) -> None:
    if not p["alpha_n"] > p["beta"]:
        raise ParameterError(
            f"parameters must satisfy alpha_n > beta (transformers sets alpha_n = beta + softplus(.)); "
            f"got alpha_n={p['alpha_n']!r}, beta={p['beta']!r}"
        )


def _xielu_torch(x: Any, torch: Any, alpha_p: float, alpha_n: float, beta: float, eps: float) -> Any:
    # transformers' Python path, with the parameters as given (no softplus re-parametrisation)
    e = torch.tensor(eps, dtype=x.dtype)
    return torch.where(x > 0, alpha_p * x * x + beta * x, (torch.expm1(torch.min(x, e)) - x) * alpha_n + beta * x)


XIELU = Spec(
    name="xielu",
    aliases=("x_ielu", "expanded_integral_elu"),
    family="exponential",
    summary="xIELU: alpha_p x^2 + beta x for x > 0, alpha_n (expm1(min(x, eps)) - x) + beta x otherwise.",
    params=(
        Param("alpha_p", 0.8, low=0.0, low_open=True, trainable=True, doc="curvature of the positive side (> 0)"),
        Param(
            "alpha_n",
            0.8,
            low=0.0,
            low_open=True,
            high=1e4,
            trainable=True,
            doc="scale of the negative side (beta < alpha_n <= 1e4; transformers starts it at 0.8 = beta + "
            "softplus(.), trained values are of order 1). f ~ (alpha_n - beta) |x| on the left is formed from "
            "alpha_n |x| and beta |x| as double-word products, which give NaN once alpha_n |x| passes float32's "
            "largest value (at float32's largest alpha_n the splitting of alpha_n itself overflows: NaN for every "
            "x < 0); 1e4 keeps them finite for |x| up to 3.4e34",
        ),
        Param("beta", 0.5, low=0.0, doc="slope at 0 (the linear term)"),
        Param("eps", -1e-6, high=0.0, doc="the negative side uses expm1(min(x, eps)): flat derivative on (eps, 0]"),
    ),
    constraints=_xielu_check,
    definition=_xielu_def,
    forward=_xielu_fwd,
    derivative=_xielu_der,
    kinks=(
        Kink(
            at=lambda p: p["eps"] if p["eps"] < 0 else None,
            grad=lambda p: (0.5 * math.exp(p["eps"]) - 1.0) * p["alpha_n"] + p["beta"],
            note="torch.minimum splits the gradient at x == eps",
        ),
        Kink(
            at=0.0,
            grad=lambda p: p["beta"] - (p["alpha_n"] if p["eps"] < 0 else 0.5 * p["alpha_n"]),
            note="torch.where(x > 0, ...) takes the negative side at 0",
        ),
    ),
    bounds=lambda p: (min(_xielu_min(p), p["alpha_n"] * math.expm1(p["eps"])), INF),
    smoothness=-1,
    tolerance=Tolerance(
        condition_allowance=True,
        derivative_condition_allowance=True,
        reason="f has a root near x = -2.44 (defaults) where alpha_n (e^x - 1 - x) and beta x cancel; f' has one "
        "at x = log(1 - beta / alpha_n) (-0.98 at the defaults), the minimum of f, where alpha_n expm1(x) and "
        "beta cancel: near it f' keeps only their absolute accuracy, so its allowance is its condition number "
        "|x f''/f'| (f' is carried in double-word arithmetic, so what is left is the rounding of e^x: measured at "
        "the defaults 21 ulp float32 at x = -0.9707 where that number is 96, 19 ulp float64 at x = -1.000001 "
        "where it is 52; at most 1.1 times it on the grid) (issue #10)",
    ),
    references=(HUANG_XIELU, TRANSFORMERS_ACTIVATIONS),
    equivalents=(
        Equivalent(
            "transformers",
            "transformers.activations.XIELUActivation",
            "ACT2CLS['xielu']: the same formula with trainable alpha_p = softplus(a), alpha_n = beta + softplus(b) "
            "initialised to 0.8, 0.8 and beta = 0.5, eps = -1e-6 stored in bfloat16 by default (dtype=torch."
            "bfloat16), so the effective values are 0.80078125 and -9.98e-7 there; actlab uses the exact values. "
            "Its optional CUDA kernel is not compared.",
            names=("xielu",),
        ),
    ),
    torch_native=_xielu_torch,
    notes="f(0) = alpha_n expm1(eps) (about -8e-7), not 0: the function jumps by that at 0 unless eps = 0. "
    "Minimum -0.2058 at x = log(1 - beta / alpha_n) = -0.98 at the defaults; f -> +inf on both sides "
    "(alpha_n > beta).",
    kernel=Kernel(
        # x < eps: alpha_n q + beta x, q = e^x - 1 - x from a series where |x| < 2^-10 (expm1(x) - x
        # cancels there); eps <= x <= 0: alpha_n (expm1(eps) - x) + beta x. Double carries the cancellations
        # at f's root and (alpha_n near beta) in the far left tail to 2^-45 relative.
        forward="""
            const double lim = beta > alpha_n ? -inf : (beta < alpha_n ? inf : -alpha_n);
            V m = min(x, eps);
            V series = (m * m) * (0.5 + m * (1.0 / 6.0 + m * (1.0 / 24.0 + m * (1.0 / 120.0))));
            V q = where(abs(m) < 0x1p-10, series, expm1(m) - m);
            V neg = alpha_n * where(x < eps, q, std::expm1(eps) - x) + beta * x;
            return where(x > 0.0, (alpha_p * x + beta) * x, where(x == -inf, lim, neg));""",
        # x == eps only where eps is a float: there torch.minimum splits the gradient
        derivative="""
            V flat = where(x == eps, (0.5 * std::exp(eps) - 1.0) * alpha_n + beta, beta - alpha_n);
            V neg = where(x < eps, alpha_n * expm1(x) + beta, flat);
            return where(x > 0.0, alpha_p * (2.0 * x) + beta, where(x != x, x, neg));""",
    ),
)


# ----------------------------------------------------------------------------- sqrtsoftplus
_SSP_TAIL = -40.0  # below it softplus(x) = e^x (1 - e^x / 2 ...) to 1e-18: sqrt is e^(x/2)


def _sqrtsoftplus_fwd(x: Any, ops: Any) -> Any:
    # sqrt(softplus(x)) underflows with softplus below x = -745 (float64) while e^(x/2) does not
    return ops.where(x < _SSP_TAIL, ops.exp(0.5 * ops.minimum(x, _SSP_TAIL)), ops.sqrt(ops.softplus(x)))


def _sqrtsoftplus_der(x: Any, ops: Any) -> Any:
    # sigmoid(x) / (2 sqrt(softplus(x)))
    y = ops.sqrt(ops.softplus(ops.maximum(x, _SSP_TAIL)))
    mid = ops.sigmoid(x) / (2.0 * y)
    return ops.where(x < _SSP_TAIL, 0.5 * ops.exp(0.5 * ops.minimum(x, _SSP_TAIL)), mid)


def _sqrtsoftplus_def(x: Any, sp: Any) -> Any:
    from actlab.catalog.self_gated import _sympy_log1p

    return sp.sqrt(_sympy_log1p(sp.exp(x)))


SQRTSOFTPLUS = Spec(
    name="sqrtsoftplus",
    aliases=("sqrt_softplus",),
    family="exponential",
    summary="sqrt(log(1 + e^x)): the square root of softplus (DeepSeek-V4's MoE router score).",
    definition=_sqrtsoftplus_def,
    forward=_sqrtsoftplus_fwd,
    derivative=_sqrtsoftplus_der,
    bounds=(0.0, INF),
    monotonic=True,
    saturates=("left", "right"),
    references=(TRANSFORMERS_ACTIVATIONS,),
    equivalents=(
        Equivalent(
            "transformers",
            "transformers.activations.SqrtSoftplusActivation",
            "ACT2CLS['sqrtsoftplus']: torch.sqrt(F.softplus(x)), so sqrt(x) above x = 20 (PyTorch's softplus "
            "threshold, 1e-10 relative) and 0 below about x = -104 (float32) / -745 (float64) where the true "
            "value e^(x/2) is still representable",
            names=("sqrtsoftplus",),
        ),
    ),
    torch_native=lambda x, torch: torch.sqrt(torch.nn.functional.softplus(x)),
    notes="Grows like sqrt(x), so its derivative 1 / (2 sqrt x) -> 0 on the right as well as on the left.",
    kernel=Kernel(
        # double: softplus(x) = max(x, 0) + log1p(e^-|x|) stays normal wherever sqrt of it is not 0 in float
        forward="return sqrt(max(x, 0.0) + log1p(exp(-abs(x))));",
        derivative="""
            V e = exp(-abs(x)); V d = 1.0 / (1.0 + e);
            V s = where(x >= 0.0, d, e * d);
            return where(x < -40.0, 0.5 * exp(0.5 * x), s / (2.0 * sqrt(max(x, 0.0) + log1p(e))));""",
        fast_forward="return sqrt(max(x, 0.0) + log1p_unit(exp_inline(-abs(x))));",
        fast_derivative="""
            V e = exp_inline(-abs(x));  // sigmoid(x) / (2 sqrt(softplus x)) with one division
            return where(x >= 0.0, 1.0, e) / ((2.0 + 2.0 * e) * sqrt(max(x, 0.0) + log1p_unit(e)));""",
        fast_where="x > -40.0",
    ),
)

SPECS = (GELU_FAST, CLIPPED_GELU, XIELU, SQRTSOFTPLUS)
