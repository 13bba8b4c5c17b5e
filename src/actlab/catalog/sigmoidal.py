"""S-shaped functions: logistic sigmoid, hyperbolic tangent and the classic bounded sigmoids."""

import functools
import math
import struct
from decimal import Decimal, localcontext

from actlab.catalog._refs import GOODFELLOW_DL, LECUN_EFFICIENT, WIKIPEDIA_TABLE
from actlab.catalog.spec import Equivalent, Kernel, Kink, Param, Reference, Spec, Tolerance
from actlab.ops.exact import is_single


def _sech2(x, ops):
    """1 / cosh(x)^2, relative to its own size: 1 - tanh(x)^2 cancels to 0 once |tanh| rounds to 1
    (|x| > 9 in float32) while the true value, 4 e^(-2|x|), is still a normal number."""
    r = 1.0 / ops.cosh(x)
    return r * r


def _sech2(x, ops):
    """1 / cosh(x)^2, relative to its own size: 1 - tanh(x)^2 cancels to 0 once |tanh| rounds to 1
    (|x| > 9 in float32) while the true value, 4 e^(-2|x|), is still a normal number."""
    r = 1.0 / ops.cosh(x)
    return r * r


# ----------------------------------------------------------------------------- fused kernels
# The float kernel bodies share one exponential, written out: SLEEF's expf (the `exp` helper) costs
# about twice this Cody-Waite reduction and polynomial, which keeps sigmoid's and tanh's fused
# loops at PyTorch's speed. Coefficients: a minimax fit of (e^r - 1)/r on |r| <= ln(2)/2 (relative
# error 1.8e-8, 0.3 ulp); ln 2 = 0.693145751953125 + 1.4286068e-06 (the high part has 16 bits, so n * hi
# is exact for |n| < 2^8).
def _fast_exp(z: str, lo: str = "") -> str:
    """C++ statements that leave ``s`` = 2^n and ``q`` = e^r - 1 with e^(z + lo) = s (1 + q), |r| <= ln(2)/2,
    for a float ``z`` in [-87, 87] (s stays a normal number) and an optional small correction ``lo``
    (the rounding error of z, when z is not exact). e^z is ``fma(q, s, s)`` (1.1 ulp), e^z - 1 is
    ``fma(s, q, s - 1.0)``; q keeps its relative accuracy as r goes to 0."""
    add_lo = f" r = r + ({lo});" if lo else ""
    return (
        f"V z = {z}; V n = floor(fma(z, V(1.44269504f), V(0.5f)));"
        " V r = fma(n, V(-0.693145751953125f), z); r = fma(n, V(-1.4286068e-06f), r);"
        f"{add_lo}"
        " V Q = fma(r, V(1.3946497e-03f), V(8.366611e-03f)); Q = fma(Q, r, V(4.166628e-02f));"
        " Q = fma(Q, r, V(0.16666543f)); Q = fma(Q, r, V(0.5f));"
        " V q = fma(r * Q, r, r);"
        # 2^n from its bits: (n + 127) 2^23 is exact in float and is the bit pattern of 2^n
        " V s = at::vec::cast<float>(at::vec::convert_to_int_of_same_size(fma(n, V(8388608.0f), V(1065353216.0f))));"
    )


def _split_const(name: str, value: str) -> str:
    """C++ statements for the float bodies: the double ``value`` as ``{name}h + {name}l``, two floats, so a
    product with it rounds once (a float constant alone would add up to half an ulp of its own)."""
    return (
        f" const float {name}h = static_cast<float>({value});"
        f" const float {name}l = static_cast<float>(({value}) - static_cast<double>({name}h));"
    )


# tanh(u)/u = 1 - u^2/3 + 2u^4/15 - ...: the Taylor coefficients through u^12 (the next term is below
# 1e-9 of tanh for |u| <= 0.35, where the series serves)
_TANH_SERIES = (-1 / 3, 2 / 15, -17 / 315, 62 / 2835, -1382 / 155925, 21844 / 6081075)


def _tanh_series(c: float) -> str:
    """C++ statements for the float bodies leaving ``A`` = tanh(c x)/c - x = x v P(v), v = x^2, for small |c x|:
    the kernels add it to x last, so tanh(c x) is rounded about once where -m/(2 + m) would round four times."""
    coeffs = [k * c ** (2 * i + 2) for i, k in enumerate(_TANH_SERIES)]
    body = f" V v = x * x; V P = V({coeffs[-1]!r}f);"
    for k in reversed(coeffs[:-1]):
        body += f" P = fma(P, v, V({k!r}f));"
    return body + " V A = (x * v) * P;"


SIGMOID = Spec(
    name="sigmoid",
    aliases=("logistic",),
    family="sigmoidal",
    summary="Logistic function 1 / (1 + e^-x); output in (0, 1), f'(x) <= 1/4.",
    definition=lambda x, sp: 1 / (1 + sp.exp(-x)),
    forward=lambda x, ops: ops.sigmoid(x),
    # sigmoid(x) sigmoid(-x), from the input: the output's y (1 - y) (PyTorch's backward) is 0 once
    # y rounds to 1 (x > 17 in float32), where the true derivative e^-x is still a normal number.
    derivative=lambda x, ops: ops.sigmoid(x) * ops.sigmoid(-x),
    bounds=(0.0, 1.0),
    monotonic=True,
    saturates=("left", "right"),
    references=(GOODFELLOW_DL,),
    equivalents=(
        Equivalent("pytorch", "torch.sigmoid", names=("sigmoid", "Sigmoid")),
        Equivalent("keras", "keras.activations.sigmoid", names=("sigmoid",)),
        Equivalent("jax", "jax.nn.sigmoid", names=("sigmoid",)),
        Equivalent("transformers", "torch.nn.Sigmoid", "ACT2CLS['sigmoid']", names=("sigmoid",)),
        Equivalent("timm", "timm.layers.Sigmoid", "create_act name 'sigmoid'", names=("sigmoid",)),
    ),
    torch_native=lambda x, torch: torch.sigmoid(x),
    kernel=Kernel(
        # double: sigmoid and 1 - sigmoid from one e = exp(-|x|), f' = e / (1 + e)^2, no cancellation
        # and the limits at +-inf without a case. Float: 1 / (1 + e^-x) is as accurate (no cancellation
        # for either sign while e^-x stays finite) and needs no select.
        forward="V e = exp(-abs(x)); V d = 1.0 / (1.0 + e); return where(x >= 0.0, d, e * d);",
        derivative="V e = exp(-abs(x)); V t = 1.0 + e; return e / (t * t);",
        fast_forward=_fast_exp("V(0.0f) - x") + " return 1.0 / (1.0 + fma(q, s, s));",
        fast_derivative=_fast_exp("V(0.0f) - abs(x)") + " V e = fma(q, s, s); V t = 1.0 + e; return e / (t * t);",
        # beyond 80 e^-|x| nears float32's subnormals, where it loses relative accuracy
        fast_where="abs(x) < 80.0",
    ),
    native=False,
    notes="actlab's backward keeps the input: PyTorch's y (1 - y) is 0 wherever y rounds to 1.",
)

TANH = Spec(
    name="tanh",
    family="sigmoidal",
    summary="Hyperbolic tangent; zero-centred, output in (-1, 1), f'(0) = 1.",
    definition=lambda x, sp: sp.tanh(x),
    forward=lambda x, ops: ops.tanh(x),
    derivative=lambda x, ops: _sech2(x, ops),
    bounds=(-1.0, 1.0),
    monotonic=True,
    zero_centered=True,
    saturates=("left", "right"),
    references=(LECUN_EFFICIENT,),
    equivalents=(
        Equivalent("pytorch", "torch.tanh", names=("tanh", "Tanh")),
        Equivalent("keras", "keras.activations.tanh", names=("tanh",)),
        Equivalent("jax", "jax.numpy.tanh"),
        Equivalent("transformers", "torch.nn.Tanh", "ACT2CLS['tanh']", names=("tanh",)),
        Equivalent("timm", "timm.layers.Tanh", "create_act name 'tanh'", names=("tanh",)),
    ),
    torch_native=lambda x, torch: torch.tanh(x),
    kernel=Kernel(
        # f' = sech^2 x = 4e / (1 + e)^2 with e = exp(-2|x|), from the input (1 - tanh^2 cancels).
        # Float: tanh x = -m / (2 + m) with m = e^(-2x) - 1 (2x exact): one exponential, no cancellation
        # near 0 (where 1 - e would lose the relative accuracy) and the sign without a copysign (the
        # select keeps tanh(+0) = +0, which the quotient gives as -0).
        forward="return tanh(x);",
        derivative="V e = exp(-2.0 * abs(x)); V t = 1.0 + e; return (4.0 * e) / (t * t);",
        fast_forward=_fast_exp("-2.0 * x") + " V m = fma(s, q, s - 1.0); return where(x == 0.0, x, m / (-2.0 - m));",
        fast_derivative=_fast_exp("-2.0 * abs(x)") + " V e = fma(q, s, s); V t = 1.0 + e; return (4.0 * e) / (t * t);",
        # beyond 40 e = e^-2|x| nears float32's subnormals while f' = 4e is still normal
        fast_where="abs(x) < 40.0",
    ),
    native=False,
    notes="actlab's backward keeps the input: PyTorch's 1 - y^2 is 0 wherever |y| rounds to 1.",
)

SPECS = (SIGMOID, TANH)


# ----------------------------------------------------------------------------- classic sigmoids
# References used only here.
GLOROT_BENGIO = Reference(
    "Understanding the difficulty of training deep feedforward neural networks",
    "Glorot, Bengio",
    2010,
    url="https://proceedings.mlr.press/v9/glorot10a.html",
)
ELLIOTT_1993 = Reference(
    "A Better Activation Function for Artificial Neural Networks (ISR Technical Report TR 93-8)",
    "Elliott",
    1993,
    url="https://drum.lib.umd.edu/bitstream/handle/1903/5355/TR_93-8.pdf",
)
CARLILE_ISRLU = Reference(
    "Improving Deep Learning by Inverse Square Root Linear Units (ISRLUs)",
    "Carlile, Delamarter, Kinney, Marti, Whitney",
    2017,
    arxiv="1710.09967",
)
XU_PENALIZED_TANH = Reference("Revise Saturated Activation Functions", "Xu, Huang, Li", 2016, arxiv="1602.05980")
EGER_SWISH = Reference(
    "Is it Time to Swish? Comparing Deep Learning Activation Functions Across NLP tasks",
    "Eger, Youssef, Gurevych",
    2018,
    arxiv="1901.02671",
)
FAUSETT_NN = Reference("Fundamentals of Neural Networks: Architectures, Algorithms, and Applications", "Fausett", 1994)
WILLIAMS_INFINITE = Reference(
    "Computing with Infinite Networks (NIPS 9)",
    "Williams",
    1997,
    url="https://papers.nips.cc/paper_files/paper/1996/hash/ae5e3ce40e0404a45ecacaaf05e5f735-Abstract.html",
)

# Beyond this magnitude x / (1 + |x|) is +-1 in every float format; clamping keeps inf / inf
# (NaN) out of softsign(+-inf) without a second branch.
_SOFTSIGN_CLAMP = 1e30


def _recip_one_plus_square(x, ops):
    """1 / (1 + x^2) without overflowing x^2: (1/x)^2 / (1 + (1/x)^2) for |x| > 1."""
    big = ops.abs(x) > 1.0
    t = 1.0 / ops.where(big, x, 1.0)  # neither side sees 1/0 or an overflowing square
    xn = ops.where(big, 0.0, x)
    t2 = t * t
    return ops.where(big, t2 / (1.0 + t2), 1.0 / (1.0 + xn * xn))


def _softsign(x, ops):
    xc = ops.clip(x, -_SOFTSIGN_CLAMP, _SOFTSIGN_CLAMP)
    return xc / (1.0 + ops.abs(xc))


def _softsign_derivative(x, ops):
    return ops.square(1.0 / (1.0 + ops.abs(x)))


def _isru_derivative(x, ops, alpha):
    """(1 + alpha x^2)^(-3/2): (1/sqrt(s)) / s near 0; (|1/x| / sqrt(alpha + 1/x^2))^3 for |x| > 1."""
    big = ops.abs(x) > 1.0
    t = 1.0 / ops.where(big, x, 1.0)
    xn = ops.where(big, 0.0, x)
    s = 1.0 + alpha * (xn * xn)
    near = (1.0 / ops.sqrt(s)) / s
    r = ops.abs(t) / ops.sqrt(alpha + t * t)
    return ops.where(big, r * r * r, near)


def _isru(x, ops, alpha):
    big = ops.abs(x) > 1.0
    t = 1.0 / ops.where(big, x, 1.0)
    xn = ops.where(big, 0.0, x)
    # x / sqrt(1 + a x^2) = sign(x) / sqrt(a + 1/x^2): finite and exact in the limit for |x| -> inf.
    far = ops.copysign(1.0 / ops.sqrt(alpha + t * t), x)
    near = xn / ops.sqrt(1.0 + alpha * (xn * xn))
    return ops.where(big, far, near)


def _elliott(x, ops):
    # 0.5 x / (1 + |x|) + 0.5 = 0.5 / (1 + |x|) for x < 0 and 1 - 0.5 / (1 + |x|) for x >= 0:
    # no cancellation in the left tail, and f(-inf) = 0, f(inf) = 1 without inf / inf.
    n = 0.5 / (1.0 + ops.abs(x))
    return ops.where(x < 0, n, 1.0 - n)


def _elliott_derivative(x, ops):
    n = 1.0 / (1.0 + ops.abs(x))
    return 0.5 * (n * n)


def _penalized_tanh_derivative(x, ops, a):
    s = _sech2(x, ops)
    return ops.where(x > 0, s, a * s)


_LECUN_SCALE = 1.7159


def _lecun_arg(x):
    # 2x/3 as (x + x) / 3: one correctly rounded division instead of rounding 2/3 first.
    return (x + x) / 3.0


SOFTSIGN = Spec(
    name="softsign",
    aliases=("soft_sign",),
    family="sigmoidal",
    summary="x / (1 + |x|): a rational sigmoid in (-1, 1) with polynomial (not exponential) tails.",
    definition=lambda x, sp: x / (1 + sp.Abs(x)),
    forward=_softsign,
    # From the input: (1 - |y|)^2 from the output cancels once |y| is near 1.
    derivative=_softsign_derivative,
    bounds=(-1.0, 1.0),
    monotonic=True,
    smoothness=1,
    zero_centered=True,
    saturates=("left", "right"),
    references=(ELLIOTT_1993, GLOROT_BENGIO),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.softsign",
            "computes x / (1 + |x|) literally, so softsign(+-inf) = NaN (actlab: +-1)",
            names=("softsign", "Softsign"),
        ),
        Equivalent("keras", "keras.activations.softsign", names=("softsign",)),
        Equivalent("jax", "jax.nn.soft_sign", names=("soft_sign",)),
    ),
    torch_native=lambda x, torch: torch.nn.functional.softsign(x),
    kernel=Kernel(
        forward="V c = min(max(x, -1e30), 1e30); return c / (1.0 + abs(c));",
        derivative="V d = 1.0 / (1.0 + abs(x)); return d * d;",
        fast_forward="return x / (1.0 + abs(x));",
        fast_derivative="V d = 1.0 / (1.0 + abs(x)); return d * d;",
        fast_where="abs(x) < inf",  # inf / inf is NaN: +-inf (and NaN) take the double form
    ),
    native=False,
    notes=(
        "The symmetric form of Elliott's (1993) function; MATLAB's elliotsig and mlpack's "
        "ElliotFunction are this function. The (0, 1) form is actlab's 'elliott'. f' = (1 - |f|)^2, "
        "but backward keeps the input: from the output it cancels in the tails."
    ),
)

ARCTAN = Spec(
    name="arctan",
    aliases=("atan",),
    family="sigmoidal",
    summary="Inverse tangent; zero-centred sigmoid in (-pi/2, pi/2) with f'(x) = 1 / (1 + x^2).",
    definition=lambda x, sp: sp.atan(x),
    forward=lambda x, ops: ops.arctan(x),
    derivative=_recip_one_plus_square,
    bounds=(-math.pi / 2, math.pi / 2),
    monotonic=True,
    zero_centered=True,
    saturates=("left", "right"),
    references=(WIKIPEDIA_TABLE,),
    equivalents=(
        Equivalent("pytorch", "torch.atan", "a math function, not an activation module"),
        Equivalent("keras", "keras.ops.arctan", "a math op, not in keras.activations"),
        Equivalent("jax", "jax.numpy.arctan", "a math function, not in jax.nn"),
    ),
    torch_native=lambda x, torch: torch.atan(x),
    native=True,
)

ISRU = Spec(
    name="isru",
    aliases=("inverse_square_root_unit",),
    family="sigmoidal",
    summary="Inverse square root unit x / sqrt(1 + alpha x^2); output in (-1/sqrt(alpha), 1/sqrt(alpha)).",
    definition=lambda x, sp, alpha: x / sp.sqrt(1 + alpha * x**2),
    forward=lambda x, ops, alpha: _isru(x, ops, alpha),
    derivative=lambda x, ops, alpha: _isru_derivative(x, ops, alpha),
    params=(Param("alpha", 1.0, low=0.0, low_open=True, doc="alpha > 0; the output is bounded by 1/sqrt(alpha)"),),
    bounds=lambda p: (-1.0 / math.sqrt(p["alpha"]), 1.0 / math.sqrt(p["alpha"])),
    monotonic=True,
    zero_centered=True,
    saturates=("left", "right"),
    references=(CARLILE_ISRLU,),
    kernel=Kernel(
        # double: the eager form (1/x for |x| > 1, finite in the limit and for any alpha)
        forward="""
            V big = abs(x) > 1.0; V t = 1.0 / where(big, x, 1.0); V xn = where(big, 0.0, x);
            V far = copysign(1.0 / sqrt(alpha + t * t), x);
            return where(big, far, xn / sqrt(1.0 + alpha * (xn * xn)));""",
        derivative="""
            V big = abs(x) > 1.0; V t = 1.0 / where(big, x, 1.0); V xn = where(big, 0.0, x);
            V s = 1.0 + alpha * (xn * xn); V r = abs(t) / sqrt(alpha + t * t);
            return where(big, r * r * r, (1.0 / sqrt(s)) / s);""",
        fast_forward=_split_const("a", "alpha") + " V w = x * x; return x / sqrt(1.0 + fma(w, V(ah), w * V(al)));",
        fast_derivative=_split_const("a", "alpha")
        + " V w = x * x; V s = 1.0 + fma(w, V(ah), w * V(al)); return 1.0 / (s * sqrt(s));",
        # alpha x^2 finite and alpha a normal float
        fast_where="abs(x) < (alpha >= 1e-15 && alpha <= 1e15 ? 1e11 : 0.0)",
    ),
    notes="f'(x) = (1 + alpha x^2)^(-3/2). Not in PyTorch, Keras or JAX.",
)

ELLIOTT = Spec(
    name="elliott",
    aliases=("elliott_sigmoid", "elliot"),
    family="sigmoidal",
    summary="Elliott's rational sigmoid 0.5 x / (1 + |x|) + 0.5: a cheap logistic substitute in (0, 1).",
    definition=lambda x, sp: sp.Piecewise(
        (1 / (2 * (1 - x)), x < 0),
        (1 - 1 / (2 * (1 + x)), True),
    ),
    forward=_elliott,
    derivative=_elliott_derivative,
    bounds=(0.0, 1.0),
    monotonic=True,
    smoothness=1,
    saturates=("left", "right"),
    references=(ELLIOTT_1993,),
    kernel=Kernel(
        forward="V n = 0.5 / (1.0 + abs(x)); return where(x < 0.0, n, 1.0 - n);",
        derivative="V n = 1.0 / (1.0 + abs(x)); return 0.5 * (n * n);",
        fast_forward="V n = 0.5 / (1.0 + abs(x)); return where(x < 0.0, n, 1.0 - n);",
        fast_derivative="V n = 1.0 / (1.0 + abs(x)); return 0.5 * (n * n);",
        fast_where="",  # exact limits at +-inf, NaN stays NaN
    ),
    notes=(
        "Elliott (1993) introduced x / (1 + |x|) as a cheap squashing function; the name 'Elliott' "
        "is used for two forms. actlab's 'elliott' is the (0, 1) logistic-like form "
        "0.5 x / (1 + |x|) + 0.5 (Encog's ActivationElliott at slope 1; FANN's FANN_ELLIOTT is the "
        "(0, 1) variant); the symmetric (-1, 1) form (FANN_ELLIOTT_SYMMETRIC, MATLAB elliotsig, "
        "mlpack ElliotFunction) "
        "is actlab's 'softsign'. Defined piecewise as 1/(2(1-x)) for x < 0 and 1 - 1/(2(1+x)) "
        "for x >= 0, which is the same function without the cancellation in the left tail. "
        "f' = 0.5 / (1 + |x|)^2 = 2 min(f, 1-f)^2; backward keeps the input (1 - f cancels)."
    ),
)

LECUN_TANH = Spec(
    name="lecun_tanh",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' = 1.7159 (2/3) sech^2(2x/3): 2x/3 is rounded before cosh, so the relative error grows as (4/3)|x|"
            " = |x f''/f'| in the tails; that condition number is the derivative's allowance (issue #10)"
        ),
    ),
    aliases=("scaled_tanh",),
    family="sigmoidal",
    summary="LeCun's scaled tanh 1.7159 tanh(2x/3): f(+-1) ~ +-1 and maximal curvature at +-1.",
    definition=lambda x, sp: sp.Rational(17159, 10000) * sp.tanh(2 * x / 3),
    forward=lambda x, ops: _LECUN_SCALE * ops.tanh(_lecun_arg(x)),
    derivative=lambda x, ops: (_LECUN_SCALE * 2.0 / 3.0) * _sech2(_lecun_arg(x), ops),
    bounds=(-_LECUN_SCALE, _LECUN_SCALE),
    monotonic=True,
    zero_centered=True,
    saturates=("left", "right"),
    references=(LECUN_EFFICIENT,),
    kernel=Kernel(
        forward="return 1.7159 * tanh((x + x) / 3.0);",
        derivative="V e = exp(-4.0 * abs(x) / 3.0); V t = 1.0 + e; return (1.7159 * 2.0 / 3.0) * ((4.0 * e) / (t * t));",
        # float: -4x/3 carried as z + lo (its rounding error), 1.7159 and 1.7159 (2/3) as two floats
        fast_forward=_split_const("c", "-4.0 / 3.0")
        + _split_const("k", "1.7159")
        + _split_const("d", "1.7159 * 2.0 / 3.0")
        + _fast_exp("x * V(ch)", lo="fma(x, V(ch), V(0.0f) - z) + x * V(cl)")
        + " V m = fma(s, q, s - 1.0); V t = where(x == 0.0, x, m / (-2.0 - m));"
        # near 0 the series: 1.7159 (2/3) (x + A) rounded once (+-0 keep their sign through t)
        + _tanh_series(2.0 / 3.0)
        + " return where((abs(x) < 0.25) & (x != 0.0), fma(x, V(dh), fma(A, V(dh), x * V(dl))), fma(t, V(kh), t * V(kl)));",
        fast_derivative=_split_const("c", "-4.0 / 3.0")
        + _split_const("k", "1.7159 * 2.0 / 3.0")
        + " V ax = abs(x);"
        + _fast_exp("ax * V(ch)", lo="fma(ax, V(ch), V(0.0f) - z) + ax * V(cl)")
        + " V e = fma(q, s, s); V t = 1.0 + e; V g = (4.0 * e) / (t * t); return fma(g, V(kh), g * V(kl));",
        fast_where="abs(x) < 60.0",  # e^(-4|x|/3) stays a normal float
    ),
    notes="The constant 1.7159 is LeCun et al.'s rounded value (it makes f(1) ~ 1); used as given.",
)

BIPOLAR_SIGMOID = Spec(
    name="bipolar_sigmoid",
    aliases=("bipolar_logistic",),
    family="sigmoidal",
    summary="2 sigmoid(x) - 1 = (1 - e^-x) / (1 + e^-x) = tanh(x/2); a logistic rescaled to (-1, 1).",
    definition=lambda x, sp: sp.tanh(x / 2),
    forward=lambda x, ops: ops.tanh(0.5 * x),
    derivative=lambda x, ops: 0.5 * _sech2(0.5 * x, ops),
    bounds=(-1.0, 1.0),
    monotonic=True,
    zero_centered=True,
    saturates=("left", "right"),
    references=(FAUSETT_NN,),
    kernel=Kernel(
        forward="return tanh(0.5 * x);",
        derivative="V e = exp(-abs(x)); V t = 1.0 + e; return (2.0 * e) / (t * t);",
        # float: tanh(x/2) = -m / (2 + m), m = e^-x - 1, as tanh's
        fast_forward=_fast_exp("V(0.0f) - x") + " V m = fma(s, q, s - 1.0); return where(x == 0.0, x, m / (-2.0 - m));",
        fast_derivative=_fast_exp("V(0.0f) - abs(x)")
        + " V e = fma(q, s, s); V t = 1.0 + e; return (2.0 * e) / (t * t);",
        fast_where="abs(x) < 80.0",
    ),
    notes=(
        "Computed as tanh(x/2): 2 sigmoid(x) - 1 loses all relative accuracy near 0 (it returns 0 "
        "for |x| below about eps/2) and costs an ulp of 1 elsewhere."
    ),
)

PENALIZED_TANH = Spec(
    name="penalized_tanh",
    aliases=("leaky_tanh",),
    family="sigmoidal",
    summary="tanh(x) for x > 0 and a tanh(x) otherwise (a = 0.25): tanh with a penalised negative side.",
    definition=lambda x, sp, a: sp.Piecewise((sp.tanh(x), x > 0), (a * sp.tanh(x), True)),
    forward=lambda x, ops, a: ops.where(x > 0, ops.tanh(x), a * ops.tanh(x)),
    derivative=lambda x, ops, a: _penalized_tanh_derivative(x, ops, a),
    params=(Param("a", 0.25, low=0.0, high=1.0, doc="slope factor of the negative side, in [0, 1]"),),
    kinks=(
        Kink(
            at=lambda p: None if p["a"] == 1.0 else 0.0,
            grad=lambda p: p["a"],
            note="f'(0-) = a, f'(0+) = 1; the negative side's slope is used at 0, as leaky_relu does",
        ),
    ),
    bounds=lambda p: (-p["a"], 1.0),
    monotonic=True,
    smoothness=0,
    zero_centered=True,
    saturates=("left", "right"),
    references=(XU_PENALIZED_TANH, EGER_SWISH),
    kernel=Kernel(
        forward="V t = tanh(x); return where(x > 0.0, t, a * t);",
        derivative="V e = exp(-2.0 * abs(x)); V t = 1.0 + e; V g = (4.0 * e) / (t * t); return where(x > 0.0, g, a * g);",
        fast_forward=_split_const("a", "a")
        + _fast_exp("-2.0 * x")
        + " V m = fma(s, q, s - 1.0); V t = where(x == 0.0, x, m / (-2.0 - m));"
        # a tanh x for x near 0 from the series, rounded once: the quotient's error, scaled by a, nears 4 ulp
        + _tanh_series(1.0)
        + " V at = where((abs(x) < 0.35) & (x != 0.0), fma(x, V(ah), fma(A, V(ah), x * V(al))), fma(t, V(ah), t * V(al)));"
        + " return where(x > 0.0, t, at);",
        fast_derivative=_split_const("a", "a")
        + _fast_exp("-2.0 * abs(x)")
        + " V e = fma(q, s, s); V t = 1.0 + e; V g = (4.0 * e) / (t * t);"
        + " return where(x > 0.0, g, fma(g, V(ah), g * V(al)));",
        fast_where="abs(x) < 40.0",
    ),
    notes=(
        "Called 'leaky tanh' in Xu et al.'s abstract and 'penalized tanh' in the paper and in Eger "
        "et al. (2018), who found it the most stable activation across NLP tasks. a = 1 is tanh."
    ),
)

ERF = Spec(
    name="erf",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' = 2/sqrt(pi) e^(-x^2): x^2 is rounded before exp, so the relative error grows as 2x^2 = |x "
            "f''/f'| in the tail; that condition number is the derivative's allowance (issue #10)"
        ),
    ),
    aliases=("erf_act", "error_function"),
    family="sigmoidal",
    summary="The error function erf(x) as an activation: a sigmoid in (-1, 1), f'(x) = 2/sqrt(pi) e^-x^2.",
    definition=lambda x, sp: sp.erf(x),
    forward=lambda x, ops: ops.erf(x),
    # Clamped so that x^2 never overflows; e^-1600 is 0 in every float format.
    derivative=lambda x, ops: (2.0 / math.sqrt(math.pi)) * ops.exp(-ops.square(ops.clip(x, -40.0, 40.0))),
    bounds=(-1.0, 1.0),
    monotonic=True,
    zero_centered=True,
    saturates=("left", "right"),
    references=(WILLIAMS_INFINITE,),
    equivalents=(
        Equivalent("pytorch", "torch.erf", "a math function (torch.special.erf), not an activation module"),
        Equivalent("keras", "keras.ops.erf", "a math op, not in keras.activations"),
        Equivalent("jax", "jax.lax.erf", "also jax.scipy.special.erf; not in jax.nn"),
    ),
    torch_native=lambda x, torch: torch.erf(x),
    native=True,
    notes=(
        "Used as the activation of infinite-width networks because its arc-sine kernel has a "
        "closed form (Williams 1997). Not to be confused with GELU's x Phi(x)."
    ),
)

SPECS = SPECS + (SOFTSIGN, ARCTAN, ISRU, ELLIOTT, LECUN_TANH, BIPOLAR_SIGMOID, PENALIZED_TANH, ERF)


# ----------------------------------------------------------------------------- MEGA's "Laplace"
MA_MEGA = Reference(
    "Mega: Moving Average Equipped Gated Attention",
    "Ma, Zhou, Kong, He, Gui, Neubig, May, Zettlemoyer",
    2022,
    arxiv="2209.10655",
)

_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)


def _round_to_float32(v):
    return struct.unpack("f", struct.pack("f", v))[0]


def _high_bits(v, bits):
    """``v`` rounded to ``bits`` significant bits (the high part of a Dekker split)."""
    if v == 0.0:
        return 0.0
    m, e = math.frexp(v)
    return math.ldexp(round(m * 2.0**bits), e - bits)


@functools.lru_cache(maxsize=64)
def _laplace_constants(mu, sigma, single):
    """mu = mu_hi + mu_lo and k = 1/(sigma sqrt 2) = k_hi + k_lo in the working format, k_hi = kh1 + kh2
    split in halves, the Veltkamp constant, and the x range beyond which f is 0 or 1 (|u| >= 40)."""
    with localcontext() as ctx:
        ctx.prec = 60
        k = 1 / (Decimal(sigma) * Decimal(2).sqrt())
        rnd = _round_to_float32 if single else float
        mu_hi = rnd(mu)
        mu_lo = rnd(mu - mu_hi)
        k_hi = rnd(float(k))
        k_lo = rnd(float(k - Decimal(k_hi)))
    kh1 = _high_bits(k_hi, 12 if single else 26)
    reach = 40.0 / float(k)
    return mu_hi, mu_lo, k_hi, k_lo, kh1, k_hi - kh1, (4097.0 if single else 134217729.0), mu - reach, mu + reach


def _laplace_u(x, ops, mu, sigma):
    """u = (x - mu) / (sigma sqrt 2) as an unevaluated sum u_hi + u_lo, good to about twice the
    working precision. The left tail erfc(|u|) ~ e^-u^2 turns a relative error d in u into 2 u^2 d
    (u reaches 9 in float32 and 27 in float64), so u itself must be better than one rounding."""
    single = is_single(x, ops)  # half and bfloat16 are computed in float32
    mu_hi, mu_lo, k_hi, k_lo, kh1, kh2, veltkamp, lo, hi = _laplace_constants(mu, sigma, single)
    xc = ops.clip(x, lo, hi)
    # x - mu_hi exactly as s + e (Knuth's TwoSum), then less mu's tail.
    s = xc - mu_hi
    bb = s - xc
    e = ((xc - (s - bb)) + (-mu_hi - bb)) - mu_lo
    # s * k_hi exactly as p + perr (Dekker's TwoProduct, Veltkamp split of s).
    t = s * veltkamp
    s1 = t - (t - s)
    s2 = s - s1
    p = s * k_hi
    perr = (((s1 * kh1 - p) + s1 * kh2) + s2 * kh1) + s2 * kh2
    tail = perr + (s * k_lo + e * k_hi)
    u_hi = p + tail
    return u_hi, tail - (u_hi - p)


def _erfc_tail(t_hi, t_lo, ops):
    """erfc(t_hi + t_lo), t_hi >= 0.5, float64, as e^-t^2 erfcx(t) with t^2 never rounded as a whole
    (SciPy's float64 erfc rounds it: up to ~480 ulp off near t = 22)."""
    tc = ops.minimum(t_hi, 40.0)
    h = ops.floor(tc * 1048576.0) * (1.0 / 1048576.0)  # h*h exact: 40 * 2^20 < 2^26
    r = (tc - h) * (h + tc) + 2.0 * tc * t_lo  # t^2 - h^2, to first order in t_lo
    g = ops.exp(-(h * h))
    g = g + g * ops.expm1(-r)
    X = ops.erfcx(tc)
    return g * (X + t_lo * (2.0 * tc * X - 2.0 * _INV_SQRT_PI))  # erfcx' = 2t erfcx - 2/sqrt(pi)


def _laplace(x, ops, mu, sigma):
    u_hi, u_lo = _laplace_u(x, ops, mu, sigma)
    # erfc(-(u_hi + u_lo)) / 2 to first order in u_lo: the correction carries the tail's relative
    # accuracy (up to ~2 u^2 eps of the result); its own rounding is negligible.
    y = 0.5 * ops.erfc(-u_hi) + _INV_SQRT_PI * ops.exp(-(u_hi * u_hi)) * u_lo
    if ops.name == "numpy" and not is_single(x, ops):
        # SciPy's float64 erfc loses up to ~480 ulp in the tail (torch's does not): rebuild the
        # left tail from erfcx there.
        far = u_hi < -0.5
        t_hi = ops.where(far, -u_hi, 0.5)
        t_lo = ops.where(far, -u_lo, 0.0)
        y = ops.where(far, 0.5 * _erfc_tail(t_hi, t_lo, ops), y)
    return y


def _laplace_derivative(x, ops, mu, sigma):
    k = 1.0 / (sigma * math.sqrt(2.0))
    lo, hi = _laplace_constants(mu, sigma, is_single(x, ops))[-2:]
    u = (ops.clip(x, lo, hi) - mu) * k
    return (k * _INV_SQRT_PI) * ops.exp(-(u * u))


def _laplace_definition(x, sp, mu, sigma):
    # Phi((x - mu)/sigma) in erfc form: 1 + erf(.) cancels completely in the left tail at any fixed
    # precision. evaluate=False: SymPy otherwise rewrites erfc(-z) as 2 - erfc(z) whenever z has an
    # extractable minus sign (e.g. mu = 0), which brings the cancellation back.
    return sp.erfc(-(x - mu) / (sigma * sp.sqrt(2)), evaluate=False) / 2


LAPLACE = Spec(
    name="laplace",
    tolerance=Tolerance(
        derivative_ulps=16,
        derivative_condition_allowance=True,
        reason=(
            "f' is a Gaussian density in (x - mu)/sigma, rounded before exp: the relative error grows as |x "
            "f''/f'| in the tails (the allowance, issue #10), and within 16 ulp elsewhere ((x - mu)/(sigma sqrt "
            "2) is rounded twice)"
        ),
    ),
    aliases=("laplace_activation", "mega_laplace"),
    family="sigmoidal",
    summary="MEGA's 'Laplace' function: the Gaussian CDF 0.5 (1 + erf((x - mu) / (sigma sqrt 2))), a bounded stand-in for squared ReLU.",
    definition=lambda x, sp, mu, sigma: _laplace_definition(x, sp, mu, sigma),
    forward=lambda x, ops, mu, sigma: _laplace(x, ops, mu, sigma),
    derivative=lambda x, ops, mu, sigma: _laplace_derivative(x, ops, mu, sigma),
    params=(
        Param(
            "mu",
            0.707107,
            low=-1e4,
            high=1e4,
            doc="centre (the paper's sqrt(1/2), as the reference code rounds it); |mu| <= 1e4: x is clipped "
            "to mu +- 40 sigma sqrt(2), where f is 0 or 1, and for a far larger |mu| that reach is below "
            "mu's rounding unit (the clip would pin x to mu)",
        ),
        Param(
            "sigma",
            0.282095,
            low=1e-3,
            high=1e4,
            doc="width (the paper's sqrt(1/(4 pi)), rounded); in [1e-3, 1e4]: 1/(sigma sqrt 2) is carried as a "
            "two-term product (overflows near float32's extremes), and the clip reach 40 sigma sqrt 2 must "
            "exceed mu's rounding unit",
        ),
    ),
    bounds=(0.0, 1.0),
    monotonic=True,
    saturates=("left", "right"),
    references=(MA_MEGA,),
    kernel=Kernel(
        # double only: u = (x - mu) / (sigma sqrt 2) rounded in double costs float32 nothing (erfc(|u|)
        # amplifies its error by 2 u^2 < 200); +-inf give erfc(-+inf) = 2, 0 and exp(-inf) = 0.
        forward="V u = (x - mu) * (1.0 / (sigma * 1.4142135623730951)); return 0.5 * erfc(-u);",
        derivative="""
            const double k = 1.0 / (sigma * 1.4142135623730951);
            V u = (x - mu) * k; return (k * 0.56418958354775628) * exp(-(u * u));""",
    ),
    notes=(
        "Not a Laplace distribution: MEGA's name for the normal CDF Phi((x - mu)/sigma) with "
        "mu = sqrt(1/2) and sigma = sqrt(1/(4 pi)), fitted to relu(x)^2 near [0, sqrt 2] and used "
        "as an attention function. Defaults are those of the reference implementations "
        "(Hugging Face transformers' LaplaceActivation / ACT2FN['laplace']: mu=0.707107, "
        "sigma=0.282095), which compute 0.5 (1 + erf(u)): that returns 0 for x below -0.86 "
        "(float32) / -1.66 (float64) where the true value is ~1e-8 / ~2e-17. Even written as "
        "0.5 erfc(-u) it is up to 162 ulp (float32) / 1127 ulp (float64) off in the left tail, "
        "because erfc(|u|) ~ e^-u^2 multiplies the rounding of u by 2 u^2; actlab evaluates "
        "u = (x - mu)/(sigma sqrt 2) in double-length arithmetic (1 ulp)."
    ),
    equivalents=(
        Equivalent(
            "transformers",
            "transformers.activations.LaplaceActivation",
            "mu=0.707107, sigma=0.282095 as here; 0.5 (1 + erf(u)) returns 0 in the left tail (see notes)",
            names=("laplace",),
        ),
    ),
)

SPECS = SPECS + (LAPLACE,)
