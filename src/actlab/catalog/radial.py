"""Radial and periodic functions: sine, sinc, Gaussian and the compact SQ-RBF bump."""

import math
from fractions import Fraction

from actlab.catalog._refs import WIKIPEDIA_TABLE
from actlab.catalog.sigmoidal import _fast_exp
from actlab.catalog.spec import Equivalent, Kernel, Reference, Spec, Tolerance
from actlab.ops.exact import is_single

PARASCANDOLO_SINE = Reference(
    "Taming the waves: sine as activation function in deep neural networks",
    "Parascandolo, Huttunen, Virtanen",
    2016,
    url="https://openreview.net/forum?id=Sks3zF9eg",
)
SITZMANN_SIREN = Reference(
    "Implicit Neural Representations with Periodic Activation Functions",
    "Sitzmann, Martel, Bergman, Lindell, Wetzstein",
    2020,
    arxiv="2006.09661",
)
SARATCHANDRAN_SINC = Reference(
    "A Sampling Theory Perspective on Activations for Implicit Neural Representations",
    "Saratchandran, Ramasinghe, Shevchenko, Long, Lucey",
    2024,
    arxiv="2402.05427",
)
BROOMHEAD_LOWE_RBF = Reference(
    "Multivariable Functional Interpolation and Adaptive Networks (Complex Systems 2(3), 321-355)",
    "Broomhead, Lowe",
    1988,
)
WURAOLA_SQRBF = Reference(
    "Computationally Efficient Radial Basis Function (ICONIP 2018, LNCS 11302)",
    "Wuraola, Patel",
    2018,
    url="https://link.springer.com/chapter/10.1007/978-3-030-04179-3_9",
)

# ----------------------------------------------------------------------------- sine


def _periodic_at_inf(fn, x, ops):
    """fn(x), with NaN at +-inf (no limit) produced without the invalid-operation warning."""
    inf = ops.isinf(x)
    return ops.where(inf, math.nan, fn(ops.where(inf, 0.0, x)))


# ----------------------------------------------------------------------------- sinc
# Minimum of sin(x)/x, at the first positive root of tan x = x (x = 4.4934094579...):
# -0.21723362821122165741, rounded outward.
_SINC_MIN = -0.2172336282112217

# Below this |x| the derivative (x cos x - sin x) / x^2 is taken from its Taylor series: the
# direct form loses about eps (1/|x| + 1/x^2) absolutely, which is too much for |x| < 2.
_SINC_SERIES_RADIUS = 2.0
# sinc'(x) = sum_{k>=1} (-1)^k 2k x^(2k-1) / (2k+1)!; 13 terms reach float64 rounding at |x| = 2.
_SINC_D_COEFFS = tuple(float(Fraction((-1) ** k * 2 * k, math.factorial(2 * k + 1))) for k in range(1, 14))


def _sinc(x, ops):
    special = (x == 0) | ops.isinf(x)
    xs = ops.where(special, 1.0, x)  # sin(inf) and 0/0 never happen on the unselected side
    y = ops.sin(xs) / xs
    y = ops.where(x == 0, 1.0, y)
    return ops.where(ops.isinf(x), 0.0, y)


def _sinc_derivative(x, ops):
    ax = ops.abs(x)
    near = ax <= _SINC_SERIES_RADIUS
    # Taylor series on |x| <= 2 (Horner in x^2).
    xn = ops.where(near, x, 0.0)
    z = xn * xn
    p = ops.zeros_like(x) + _SINC_D_COEFFS[-1]
    for c in reversed(_SINC_D_COEFFS[:-1]):
        p = p * z + c
    series = p * xn
    # (cos x - sin(x)/x) / x elsewhere; 0 at +-inf (the limit).
    far_ok = ~near & ~ops.isinf(x)
    xf = ops.where(far_ok, x, 4.0)
    direct = (ops.cos(xf) - ops.sin(xf) / xf) / xf
    direct = ops.where(ops.isinf(x), 0.0, direct)
    return ops.where(near, series, direct)


# ----------------------------------------------------------------------------- gaussian


def _gaussian_split(x, ops):
    """(xc, |xc|, hi, lo): x clamped where e^-x^2 is 0, and |xc| = hi + lo exactly, hi^2 exact.

    hi is |xc| rounded down to a multiple of 2^-k with few enough significant bits that hi*hi is
    exact (float32: 11 * 2^8 < 2^12; float64: 40 * 2^20 < 2^26), so e^-x^2 = e^-hi^2 e^-r with
    r = lo (hi + |xc|) small and accurate: x^2 is never rounded as a whole, whose error 2 x^2 * u
    would be amplified into the result.
    """
    if is_single(x, ops):  # float32 (half and bfloat16 are computed in float32)
        limit, scale = 11.0, 256.0  # e^-121 is below the smallest float32 subnormal
    else:
        limit, scale = 40.0, 1048576.0  # e^-1600 is below the smallest float64 subnormal
    xc = ops.clip(x, -limit, limit)
    a = ops.abs(xc)
    hi = ops.floor(a * scale) * (1.0 / scale)
    lo = a - hi
    return xc, a, hi, lo


def _gaussian_from_split(ops, a, hi, lo):
    e = ops.exp(-(hi * hi))
    r = lo * (hi + a)  # = 2 hi lo + lo^2 = a^2 - hi^2, in [0, 2 a 2^-k)
    return e + e * ops.expm1(-r)


def _gaussian(x, ops):
    _, a, hi, lo = _gaussian_split(x, ops)
    return _gaussian_from_split(ops, a, hi, lo)


def _gaussian_derivative(x, ops):
    xc, a, hi, lo = _gaussian_split(x, ops)
    return -2.0 * xc * _gaussian_from_split(ops, a, hi, lo)


# ----------------------------------------------------------------------------- SQ-RBF


def _sq_rbf(x, ops):
    a = ops.abs(x)
    inner = ops.where(a <= 1.0, 1.0 - 0.5 * (x * x), 0.5 * ops.square(2.0 - a))
    return ops.where(a >= 2.0, 0.0, inner)  # NaN fails every comparison and stays NaN


def _sq_rbf_derivative(x, ops):
    a = ops.abs(x)
    inner = ops.where(a <= 1.0, -x, -ops.copysign(2.0 - a, x))
    return ops.where(a >= 2.0, 0.0, inner)


def _sinc_series_cpp(coeffs) -> str:
    """C++ for the kernels: sum c_k z^(k-1) in Horner form (z = x^2), from the series' coefficients."""
    body = f"V p = V(static_cast<S>({coeffs[-1]!r}));"
    for c in reversed(coeffs[:-1]):
        body += f" p = fma(p, z, V(static_cast<S>({c!r})));"
    return body


# ----------------------------------------------------------------------------- specs

SINUSOID = Spec(
    name="sinusoid",
    aliases=("sin", "sine"),
    family="radial_periodic",
    summary="sin(x): periodic, zero-centred, bounded in [-1, 1]; the SIREN nonlinearity (with w0 x).",
    definition=lambda x, sp: sp.sin(x),
    forward=lambda x, ops: _periodic_at_inf(ops.sin, x, ops),
    derivative=lambda x, ops: _periodic_at_inf(ops.cos, x, ops),
    bounds=(-1.0, 1.0),
    zero_centered=True,
    references=(PARASCANDOLO_SINE, SITZMANN_SIREN),
    equivalents=(
        Equivalent("pytorch", "torch.sin", "a math function, not an activation module"),
        Equivalent("keras", "keras.ops.sin", "a math op, not in keras.activations"),
        Equivalent("jax", "jax.numpy.sin", "a math function, not in jax.nn"),
    ),
    torch_native=lambda x, torch: torch.sin(x),
    native=True,
    notes=(
        "sin has no limit at +-inf, so f(+-inf) = f'(+-inf) = NaN (IEEE sin(inf)). SIREN layers "
        "compute sin(w0 (W x + b)) with w0 = 30 in the first layer; the scale belongs to the "
        "layer, not to this function."
    ),
)

SINC = Spec(
    name="sinc",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' = (x cos x - sin x) / x^2 has roots where tan x = x (x ~ +-4.4934, +-7.7253, ...): near them "
            "the derivative's allowance is its condition number |x f''/f'| (issue #10)"
        ),
    ),
    aliases=("sinc_unnormalized", "cardinal_sine"),
    family="radial_periodic",
    summary="Unnormalised sinc sin(x)/x with sinc(0) = 1: even, decaying oscillation, range [-0.2172, 1].",
    # sin(x)/x as the hypergeometric 0F1(; 3/2; -x^2/4): the same function, entire, and its SymPy
    # derivative -x/3 0F1(; 5/2; -x^2/4) does not cancel near 0 as (x cos x - sin x)/x^2 does, so
    # the oracle stays right for tiny x. The documented formula is given in ``formula``.
    definition=lambda x, sp: sp.hyper([], [sp.Rational(3, 2)], -(x**2) / 4),
    formula=r"\operatorname{sinc}(x) = \begin{cases} \dfrac{\sin x}{x} & x \neq 0 \\ 1 & x = 0 \end{cases}",
    forward=_sinc,
    derivative=_sinc_derivative,
    bounds=(_SINC_MIN, 1.0),
    saturates=("left", "right"),
    references=(SARATCHANDRAN_SINC, WIKIPEDIA_TABLE),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.sinc",
            "torch.sinc is the NORMALISED sinc sin(pi x)/(pi x); actlab's sinc(x) = torch.sinc(x / pi), "
            "which rounds x/pi and so loses accuracy for large |x| and near the roots",
        ),
        Equivalent("jax", "jax.numpy.sinc", "normalised, like numpy.sinc: sin(pi x)/(pi x)"),
    ),
    torch_native=lambda x, torch: torch.sinc(x / math.pi),
    native=False,
    kernel=Kernel(
        # the eager forms: sin(x)/x with 1 at 0 and 0 at +-inf; f' from its series on |x| <= 2
        forward="""
            V inf_ = abs(x) == inf; V xs = where((x == 0.0) | inf_, 1.0, x);
            return where(inf_, 0.0, where(x == 0.0, 1.0, sin(xs) / xs));""",
        derivative="""
            V near = abs(x) <= 2.0; V inf_ = abs(x) == inf; V xn = where(near, x, 0.0); V z = xn * xn;
            """
        + _sinc_series_cpp(_SINC_D_COEFFS)
        + """
            V xf = where(near | inf_, 4.0, x);
            V direct = (cos(xf) - sin(xf) / xf) / xf;
            return where(near, p * xn, where(inf_, 0.0, direct));""",
        # float: 8 terms of the series reach float32 rounding at |x| = 2 (the 9th is 1e-9 of f')
        fast_forward="V xs = where(x == 0.0, 1.0, x); return where(x == 0.0, 1.0, sin(xs) / xs);",
        fast_derivative="""
            V near = abs(x) <= 2.0; V xn = where(near, x, 0.0); V z = xn * xn;
            """
        + _sinc_series_cpp(_SINC_D_COEFFS[:8])
        + """
            V xf = where(near, 4.0, x);
            return where(near, p * xn, (cos(xf) - sin(xf) / xf) / xf);""",
        # float sin/x drifts from 2.6 ulp (|x| < 100) to 3.1 ulp near |x| = 1e4: larger |x| take the double form
        fast_where="abs(x) < 100.0",
    ),
    notes=(
        "Unnormalised: sinc(x) = sin(x)/x, roots at k pi. numpy.sinc, torch.sinc and jax.numpy.sinc "
        "are the normalised sin(pi x)/(pi x). sinc(+-inf) = 0 and sinc'(+-inf) = 0 (the limits). "
        "The derivative (x cos x - sin x)/x^2 cancels near 0 and uses its Taylor series for |x| <= 2."
    ),
)

GAUSSIAN = Spec(
    name="gaussian",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' = -2x e^(-x^2): x^2 is rounded before exp, so the relative error grows as 2x^2 ~ |x f''/f'| in "
            "the tail; that condition number is the derivative's allowance (issue #10)"
        ),
    ),
    aliases=("gaussian_rbf", "gauss"),
    family="radial_periodic",
    summary="exp(-x^2): the Gaussian radial basis function, a smooth bump in (0, 1] with f(0) = 1.",
    definition=lambda x, sp: sp.exp(-(x**2)),
    forward=_gaussian,
    derivative=_gaussian_derivative,
    bounds=(0.0, 1.0),
    saturates=("left", "right"),
    references=(BROOMHEAD_LOWE_RBF, WIKIPEDIA_TABLE),
    kernel=Kernel(
        # double: x^2 rounded in double costs float32 nothing (e^-x^2 amplifies it by x^2 < 104)
        forward="return exp(-(x * x));",
        derivative="V c = min(max(x, -40.0), 40.0); return (-2.0 * c) * exp(-(c * c));",
        # float: x^2 = p + pe exactly (two_prod), and e^-(p + pe) with pe folded into the reduced argument
        fast_forward="V p, pe; two_prod(x, x, p, pe);"
        + _fast_exp("V(0.0f) - p", lo="V(0.0f) - pe")
        + " return fma(q, s, s);",
        fast_derivative="V p, pe; two_prod(x, x, p, pe);"
        + _fast_exp("V(0.0f) - p", lo="V(0.0f) - pe")
        + " return (-2.0 * x) * fma(q, s, s);",
        fast_where="abs(x) < 9.0",  # e^-81 is still a normal float
    ),
    notes=(
        "exp(-x*x) computed naively is off by up to ~x^2/2 ulp: the rounding of x^2 is amplified by "
        "the exponent (on the accuracy grid: 60 ulp in float32 near x = 9, 78 ulp in float64 near "
        "x = 22). actlab "
        "splits |x| = hi + lo with hi^2 exact and computes e^-hi^2 (1 + expm1(-lo (hi + |x|))). "
        "Some papers use exp(-x^2/2) or exp(-x^2 / (2 sigma^2)); this is the unscaled form."
    ),
)

SQ_RBF = Spec(
    name="sq_rbf",
    aliases=("sqrbf", "square_rbf"),
    family="radial_periodic",
    summary="SQ-RBF: 1 - x^2/2 for |x| <= 1, (2 - |x|)^2/2 for 1 < |x| < 2, 0 beyond; a C^1 Gaussian-like bump.",
    definition=lambda x, sp: sp.Piecewise(
        (0, x <= -2),
        ((2 + x) ** 2 / 2, x < -1),
        (1 - x**2 / 2, x <= 1),
        ((2 - x) ** 2 / 2, x < 2),
        (0, True),
    ),
    forward=_sq_rbf,
    derivative=_sq_rbf_derivative,
    bounds=(0.0, 1.0),
    smoothness=1,
    saturates=("left", "right"),
    references=(WURAOLA_SQRBF,),
    kernel=Kernel(
        forward="""
            V a = abs(x); V inner = where(a <= 1.0, 1.0 - 0.5 * (x * x), 0.5 * square(2.0 - a));
            return where(a >= 2.0, 0.0, inner);""",
        derivative="V a = abs(x); return where(a >= 2.0, 0.0, where(a <= 1.0, -x, -copysign(2.0 - a, x)));",
        fast_forward="""
            V a = abs(x); V inner = where(a <= 1.0, 1.0 - 0.5 * (x * x), 0.5 * square(2.0 - a));
            return where(a >= 2.0, 0.0, inner);""",
        fast_derivative="V a = abs(x); return where(a >= 2.0, 0.0, where(a <= 1.0, -x, -copysign(2.0 - a, x)));",
        fast_where="",  # exact (2 - |x| is exact on [1, 2]); NaN fails every comparison and stays NaN
    ),
    notes=(
        "Continuously differentiable (f' = -x on |x| <= 1, -sign(x)(2 - |x|) on 1 < |x| < 2, 0 beyond); "
        "f'' jumps at |x| = 1 and 2. Compact support: exactly 0 for |x| >= 2."
    ),
)

SPECS = (SINUSOID, SINC, GAUSSIAN, SQ_RBF)
