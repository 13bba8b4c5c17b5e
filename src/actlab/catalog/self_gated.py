"""Self-gated functions x * gate(x) and their relatives: swish/SiLU, Mish, GELU, ...

Numerical conventions shared by every spec in this family (the accuracy targets are 4 ulp in
float32 and 8 ulp in float64 over [-1e4, 1e4], see actlab.verify.accuracy):

- Far left tail. Most of these functions behave like x * e^x for x -> -inf. In float32 the gate
  e^x (or sigmoid(x), tanh(e^x), ...) becomes subnormal below x = -87.3 while x * e^x is still a
  normal number down to x = -92 (float64: -708 and -715), so evaluating the gate first loses up to
  all of its bits there. Below x = -64 (where the gate equals e^x to working precision) the tail is
  computed as (m * e^(x + 64)) * e^-64; x + 64 is exact for x <= -64.
- Rounded arguments. Where the gate's argument is a product (beta * x, 1.702 * x, -x / sqrt(2),
  sqrt(2/pi) (x + 0.044715 x^3)) its rounding error is multiplied by the argument's size in the
  tail (a relative error of |z| ulp for sigmoid(z), 2 z^2 ulp for erfc(z)). The argument is then
  carried as an unevaluated sum hi + lo (Dekker's exact product with Veltkamp splitting, using
  + - * only, so the same code runs on NumPy and torch) and the gate corrected to first order:
  sigmoid(hi + lo) = sigmoid(hi) (1 + sigmoid(-hi) lo), erfc(hi + lo) = erfc(hi) - 2/sqrt(pi)
  e^(-hi^2) lo. Decimal constants (1.702, 0.044715) are their exact decimal values, not the
  nearest binary numbers.
- Split exponentials. Where a formula needs e^x for x < 0 and e^-x for x >= 0, both are computed
  from clamped arguments (double where), so no lane overflows and no NaN reaches a gradient.
- Limits. f(+-inf) and f'(+-inf) are set to the mathematical limits explicitly (x * 0 is NaN);
  NaN in gives NaN out.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from actlab.catalog._refs import HENDRYCKS_GELU, RAMACHANDRAN_SWISH
from actlab.catalog.spec import Equivalent, Kernel, Kink, Param, ParameterError, Reference, Spec, Tolerance
from actlab.ops.exact import (
    F32,
    Precision,
    at_infinity,
    finite,
    is_power_of_two,
    limits,
    mul_const,
    precision,
    two_prod,
    two_sum,
)

INF = math.inf

# ----------------------------------------------------------------------------- references
ELFWING_SILU = Reference(
    "Sigmoid-Weighted Linear Units for Neural Network Function Approximation in Reinforcement Learning",
    "Elfwing, Uchibe, Doya",
    2017,
    arxiv="1702.03118",
)
MISRA_MISH = Reference("Mish: A Self Regularized Non-Monotonic Activation Function", "Misra", 2019, arxiv="1908.08681")
RADFORD_CLIP = Reference(
    "Learning Transferable Visual Models From Natural Language Supervision",
    "Radford, Kim, Hallacy, Ramesh, Goh, Agarwal, Sastry, Askell, Mishkin, Clark, Krueger, Sutskever",
    2021,
    arxiv="2103.00020",
)
ROY_LISHT = Reference(
    "LiSHT: Non-Parametric Linearly Scaled Hyperbolic Tangent Activation Function for Neural Networks",
    "Roy, Manna, Dubey, Chaudhuri",
    2019,
    arxiv="1901.05894",
)
LIU_TANHEXP = Reference(
    "TanhExp: A Smooth Activation Function with High Convergence Speed for Lightweight Neural Networks",
    "Liu, Di",
    2020,
    arxiv="2003.09855",
)
NAG_SERF = Reference(
    "SERF: Towards better training of deep neural networks using log-Softplus ERror activation Function",
    "Nag, Bhattacharyya",
    2021,
    arxiv="2108.09598",
)
WANG_SMISH = Reference(
    "Smish: A Novel Activation Function for Deep Learning Methods (Electronics 11(4), 540)",
    "Wang et al.",
    2022,
    url="https://doi.org/10.3390/electronics11040540",
)
ZHU_LOGISH = Reference(
    "Logish: A new nonlinear nonmonotonic activation function for convolutional neural network (Neurocomputing 458)",
    "Zhu, Zeng, Liu, Zhang",
    2021,
    url="https://doi.org/10.1016/j.neucom.2021.06.067",
)
BASIRAT_ELISH = Reference("The Quest for the Golden Activation Function", "Basirat, Roth", 2018, arxiv="1808.00783")
NOEL_GCU = Reference(
    "Growing Cosine Unit: A Novel Oscillatory Activation Function That Can Speedup Training and Reduce "
    "Parameters in Convolutional Neural Networks",
    "Noel, L, Trivedi, Dutta",
    2021,
    arxiv="2108.12943",
)
ZIYIN_SNAKE = Reference(
    "Neural Networks Fail to Learn Periodic Functions and How to Fix It",
    "Ziyin, Hartwig, Ueda",
    2020,
    arxiv="2006.08195",
)
ACTLAB_NOTES = Reference("actlab study notes: activation functions", "actlab", 2026)
TORCH_TANHSHRINK = Reference(
    "torch.nn.Tanhshrink (no paper; inherited from Lua Torch's nn package)",
    "PyTorch contributors",
    2017,
    url="https://pytorch.org/docs/stable/generated/torch.nn.Tanhshrink.html",
)


# ----------------------------------------------------------------------------- numerics
_T = 64.0  # below z = -64, sigmoid(z) = e^z to working precision in float32 and float64
_Z_MAX = 2.0**20  # |z| beyond which sigmoid(z) is 0 or 1 and z * sigmoid(-z) is 0 (no inf * 0)
_E_M64 = 1.603810890548638e-28  # e^-64, correctly rounded
_TWO_OVER_SQRT_PI = 1.1283791670955126
_INV_SQRT_2PI = 0.3989422804014327
_LN2 = 0.6931471805599453


def _tail_exp(ops: Any, m: Any, z: Any, scale: float = 1.0, zl: Any = None) -> Any:
    """m * scale * e^(z + zl) for z < -64 without subnormal intermediates (other lanes: finite junk)."""
    zt = ops.minimum(z, -_T)
    t = m * ops.exp(zt + _T)
    if zl is not None:
        t = t + t * zl
    return t * (scale * _E_M64)


def _sigmoid_times(ops: Any, m: Any, zh: Any, zl: Any = None, m_tail: Any = None) -> Any:
    """m * sigmoid(zh + zl), accurate where sigmoid underflows to subnormal numbers (``m_tail``:
    the multiplier to use there, if it differs)."""
    y = m * ops.sigmoid(zh)
    if zl is not None:
        y = y + y * (ops.sigmoid(-zh) * zl)
    tail = _tail_exp(ops, m if m_tail is None else m_tail, zh, 1.0, zl)
    return ops.where(zh < -_T, tail, y)


def _split_exp(ops: Any, x: Any) -> tuple[Any, Any, Any]:
    """(x < 0, v = e^min(x, 0), w = e^-max(x, 0)): e^x on the left, e^-x on the right, no overflow."""
    return x < 0, ops.exp(ops.minimum(x, 0.0)), ops.exp(-ops.maximum(x, 0.0))


def _sympy_log1p(a: Any) -> Any:
    from sympy.codegen.cfunctions import log1p

    return log1p(a)


def _sympy_expm1(a: Any) -> Any:
    from sympy.codegen.cfunctions import expm1

    return expm1(a)


# ----------------------------------------------------------------------------- swish / silu
_SILU_MIN = -0.2784645427610739  # min of u * sigmoid(u), at u = -1.27846...


def _swish_z(ops: Any, x: Any, beta: float) -> tuple[Any, Any]:
    if beta == 1.0:
        return x, None
    if is_power_of_two(beta):
        return x * beta, None
    return mul_const(x, ops, beta, 0.0, precision(x, ops))


def _swish_fwd(x: Any, ops: Any, beta: float = 1.0) -> Any:
    if beta == 0.0:
        return x * 0.5
    xin, x = x, finite(x, ops)
    zh, zl = _swish_z(ops, x, beta)
    return limits(xin, ops, _sigmoid_times(ops, x, zh, zl), 0.0, INF)


def _swish_der(x: Any, ops: Any, beta: float = 1.0) -> Any:
    # f' = sigmoid(z) (1 + z sigmoid(-z)), z = beta x; the left tail is e^z (1 + z).
    if beta == 0.0:
        return ops.where(ops.isnan(x), x, ops.full_like(x, 0.5))
    xin, x = x, finite(x, ops)
    zh, zl = _swish_z(ops, x, beta)
    zh = ops.clip(zh, -_Z_MAX, _Z_MAX)  # beta * x may overflow; sigmoid saturates long before
    m_tail = (1.0 + zh) if zl is None else (1.0 + zh) + zl
    y = _sigmoid_times(ops, 1.0 + zh * ops.sigmoid(-zh), zh, zl, m_tail)
    return limits(xin, ops, y, 0.0, 1.0)


def _swish_bounds(p: dict) -> tuple[float, float]:
    beta = p["beta"]
    return (-INF, INF) if beta == 0.0 else (_SILU_MIN / beta, INF)


def _swish_native(x: Any, torch: Any, beta: float = 1.0) -> Any:
    if beta == 1.0:
        return torch.nn.functional.silu(x)
    return x * torch.sigmoid(beta * x)


def _sigmoid_gate_kernel(beta: str) -> Kernel:
    """The fused kernel of x * sigmoid(b x) (swish, quick_gelu) for the C++ expression ``beta``.

    sigmoid and 1 - sigmoid come from one e = exp(-|z|), as in silu's kernel. The float form (|z| < 80,
    where e = exp(-z) is finite and x e^z normal) carries z = b x as zh + zl (an exact product with
    b's float rounding plus b's tail) and corrects e to first order, e^(-zh - zl) = e (1 - zl): e
    amplifies an argument error by |z|."""
    z_double = f"const double b = {beta}; V z = b * x; V e = exp(-abs(z)); V d = 1.0 / (1.0 + e);"
    z_float = (
        f"const double b = {beta}; const S bh = static_cast<S>(b); const S bl = static_cast<S>(b - bh);"
        " V z, zl; two_prod(x, V(bh), z, zl); zl = zl + x * V(bl);"
        " V e = exp_inline(V(0.0f) - z); e = e - e * zl; V s = 1.0 / (1.0 + e);"
    )
    der = "V s = where(z >= 0.0, d, e * d); V q = where(z >= 0.0, e * d, d);"  # double: two-sided
    return Kernel(
        # b = 0 is x / 2 everywhere, also at -inf (where the mathematical limit is otherwise 0)
        forward=f"""
            if ({beta} == 0.0) return 0.5 * x;
            {z_double}
            return where(x == -inf, 0.0, where(z >= 0.0, x, x * e) / (1.0 + e));""",
        derivative=f"""
            if ({beta} == 0.0) return where(x == x, 0.5, x);
            {z_double} {der}
            return where(abs(x) == inf, where(x > 0.0, 1.0, 0.0), s * (1.0 + z * q));""",
        # b = 1 (swish's default) is silu: no split of b x, no correction of e
        fast_forward=f"""
            if ({beta} == 1.0) return x / (1.0 + exp_inline(V(0.0f) - x));
            {z_float}
            return x / (1.0 + e);""",
        fast_derivative=f"""
            if ({beta} == 1.0) {{ V e = exp_inline(V(0.0f) - x); V s = 1.0 / (1.0 + e); return s * (1.0 + x * (e * s)); }}
            {z_float}
            return s * (1.0 + z * (e * s));""",
        # below z = -80, x * e^z nears float32's subnormal range, where e alone would lose bits
        fast_where=f"abs({beta} * x) < 80.0",
    )


SWISH = Spec(
    name="swish",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' has a root at x ~ -1.2785 at beta = 1 (-1.2785/beta) (the minimum of f); near it f' is a "
            "difference of terms of size ~1 and keeps only their absolute accuracy, so the derivative's allowance"
            " is its condition number |x f''/f'| (issue #10)"
        ),
    ),
    aliases=("swish_beta",),
    family="self_gated",
    summary="x * sigmoid(beta * x): SiLU at beta = 1, x / 2 at beta = 0, ReLU as beta -> inf.",
    params=(
        Param(
            "beta",
            1.0,
            low=0.0,
            high=1e4,
            trainable=True,
            doc="gate sharpness; 0 <= beta <= 1e4 (beta = 0 is the linear x/2, beta -> inf approaches ReLU; "
            "beta x is formed as an exact two-term product whose splitting overflows float32 for beta "
            "near 1e34, and beyond 1e4 |beta x| nears float32's largest value for |x| in the float32 range "
            "that actlab's tests cover). "
            "Negative beta gives x - swish_|beta|(x), which decreases to -inf on the left and is not "
            "an activation in Ramachandran et al.'s family, so it is refused; keep a trainable beta non-negative.",
        ),
    ),
    definition=lambda x, sp, beta: x / (1 + sp.exp(-beta * x)),
    forward=_swish_fwd,
    derivative=_swish_der,
    bounds=_swish_bounds,
    monotonic=False,
    zero_centered=True,
    saturates=("left",),
    references=(RAMACHANDRAN_SWISH,),
    equivalents=(
        Equivalent(
            "pytorch", "torch.nn.functional.silu", "no beta: only beta = 1 (actlab swish with beta = 1 is silu)"
        ),
        Equivalent("keras", "keras.activations.swish", "Keras 3: alias of keras.activations.silu, no beta (beta = 1)"),
        Equivalent("jax", "jax.nn.swish", "alias of jax.nn.silu, no beta (beta = 1)"),
        Equivalent("timm", "timm.layers.Swish", "x * sigmoid(x), no beta; create_act maps 'swish' to nn.SiLU"),
    ),
    torch_native=_swish_native,
    kernel=_sigmoid_gate_kernel("beta"),
    native=False,
    notes="beta = 1.0 and powers of two multiply exactly; other values carry beta * x as a double-word "
    "sum so that sigmoid keeps its accuracy in the far left tail.",
)


def _silu_fwd(x: Any, ops: Any) -> Any:
    return _swish_fwd(x, ops, 1.0)


def _silu_der(x: Any, ops: Any) -> Any:
    return _swish_der(x, ops, 1.0)


SILU = Spec(
    name="silu",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' has a root at x ~ -1.2785 (the minimum of f); near it f' is a difference of terms of size ~1 and "
            "keeps only their absolute accuracy, so the derivative's allowance is its condition number |x f''/f'|"
            " (issue #10)"
        ),
    ),
    aliases=("sigmoid_linear_unit",),
    family="self_gated",
    summary="x * sigmoid(x): the sigmoid-weighted linear unit (swish with beta = 1).",
    definition=lambda x, sp: x / (1 + sp.exp(-x)),
    forward=_silu_fwd,
    derivative=_silu_der,
    bounds=(_SILU_MIN, INF),
    monotonic=False,
    zero_centered=True,
    saturates=("left",),
    references=(ELFWING_SILU, HENDRYCKS_GELU, RAMACHANDRAN_SWISH),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.silu",
            "x * sigmoid(x) evaluated directly: in float32 sigmoid(x) is subnormal for x < -87.3 while x * sigmoid(x) "
            "is still normal down to -92, and the result is lost there (float64: -708 to -715); NaN at x = -inf, "
            "NaN gradient at +-inf; derivative error 17 (limit 8) in float64",
            names=("silu", "SiLU"),
        ),
        Equivalent("keras", "keras.activations.silu", "alias keras.activations.swish", names=("silu", "swish")),
        Equivalent("jax", "jax.nn.silu", "alias jax.nn.swish", names=("silu", "swish")),
        Equivalent(
            "timm",
            "timm.layers.create_act_layer('silu')",
            "nn.SiLU (timm's 'swish' is the same function)",
            names=("silu", "swish"),
        ),
        Equivalent(
            "transformers",
            "transformers.activations.SiLUActivation",
            "ACT2CLS['silu'] and 'swish' (nn.SiLU): F.silu",
            names=("silu", "swish"),
        ),
    ),
    torch_native=lambda x, torch: torch.nn.functional.silu(x),
    kernel=Kernel(
        # sigmoid and 1 - sigmoid from one e = exp(-|x|), each without cancellation
        forward="""
            V e = exp(-abs(x)); V d = 1.0 / (1.0 + e);
            return where(x == -inf, 0.0, where(x >= 0.0, x * d, (x * e) * d));""",
        derivative="""
            V e = exp(-abs(x)); V d = 1.0 / (1.0 + e);
            V s = where(x >= 0.0, d, e * d); V q = where(x >= 0.0, e * d, d);
            return where(abs(x) == inf, where(x > 0.0, 1.0, 0.0), s * (1.0 + x * q));""",
        # float, |x| < 80 (e^-x finite, x e^x normal): s = 1 / (1 + e^-x) and 1 - s = e^-x s, without
        # the cancellation of 1 - s for large x; fewer operations than the two-sided form.
        fast_forward="return x / (1.0 + exp_inline(-x));",
        fast_derivative="""
            V e = exp_inline(-x); V s = 1.0 / (1.0 + e);
            return s * (1.0 + x * (e * s));""",
        fast_where="abs(x) < 80.0",
    ),
    native=False,
)


# ----------------------------------------------------------------------------- quick_gelu
_QG = (1.702, float(Fraction(851, 500) - Fraction(1.702)))  # 1.702 as hi + lo


def _quick_gelu_z(ops: Any, x: Any) -> tuple[Any, Any]:
    return mul_const(x, ops, _QG[0], _QG[1], precision(x, ops))


@at_infinity(0.0, INF)
def _quick_gelu_fwd(x: Any, ops: Any) -> Any:
    zh, zl = _quick_gelu_z(ops, x)
    return _sigmoid_times(ops, x, zh, zl)


@at_infinity(0.0, 1.0)
def _quick_gelu_der(x: Any, ops: Any) -> Any:
    zh, zl = _quick_gelu_z(ops, x)
    zh = ops.clip(zh, -_Z_MAX, _Z_MAX)
    y = _sigmoid_times(ops, 1.0 + zh * ops.sigmoid(-zh), zh, zl, (1.0 + zh) + zl)
    return y


QUICK_GELU = Spec(
    name="quick_gelu",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' has a root at x ~ -0.7512 (the minimum of f); near it f' is a difference of terms of size ~1 and "
            "keeps only their absolute accuracy, so the derivative's allowance is its condition number |x f''/f'|"
            " (issue #10)"
        ),
    ),
    aliases=("quickgelu",),
    family="self_gated",
    summary="x * sigmoid(1.702 x): the sigmoid approximation of GELU used by CLIP (swish with beta = 1.702).",
    definition=lambda x, sp: x / (1 + sp.exp(-sp.Rational(851, 500) * x)),
    forward=_quick_gelu_fwd,
    derivative=_quick_gelu_der,
    bounds=(-0.16361018963635359, INF),
    monotonic=False,
    zero_centered=True,
    saturates=("left",),
    approximates="gelu",
    approximation_error=0.0204,  # max |f - gelu| = 0.020335 at x = +-2.2704
    references=(HENDRYCKS_GELU, RADFORD_CLIP),
    equivalents=(
        Equivalent(
            "timm",
            "timm.layers.QuickGELU",
            "x * torch.sigmoid(1.702 * x) (also OpenAI CLIP, open_clip, HF QuickGELUActivation): 1.702 rounded to the "
            "tensor's dtype, the product rounded before sigmoid, 0 where sigmoid is subnormal, NaN at x = -inf",
            names=("quick_gelu",),
        ),
        Equivalent(
            "transformers",
            "transformers.activations.QuickGELUActivation",
            "x * sigmoid(1.702 x) as here",
            names=("quick_gelu",),
        ),
    ),
    torch_native=lambda x, torch: x * torch.sigmoid(1.702 * x),
    kernel=_sigmoid_gate_kernel("1.702"),
    native=False,
    notes="1.702 is the exact decimal constant (the definition uses 851/500); the product 1.702 * x is "
    "carried as a double-word sum.",
)


# ----------------------------------------------------------------------------- mish
@at_infinity(0.0, INF)
def _mish_fwd(x: Any, ops: Any) -> Any:
    # tanh(softplus(x)) = n / (n + 2), n = e^x (e^x + 2)  [x < 0]
    #                   = (1 + 2w) / (1 + 2w + 2w^2), w = e^-x  [x >= 0]
    neg, v, w = _split_exp(ops, x)
    n = v * (v + 2.0)
    g = ops.where(neg, n / (n + 2.0), (1.0 + 2.0 * w) / (1.0 + 2.0 * w * (1.0 + w)))
    y = ops.where(x < -_T, _tail_exp(ops, x, x), x * g)
    return y


@at_infinity(0.0, 1.0)
def _mish_der(x: Any, ops: Any) -> Any:
    # f' = g + x sigmoid(x) (1 - g^2)
    #   x < 0:  1 - g^2 = 4 (n + 1) / (n + 2)^2,   sigmoid = v / (1 + v)
    #   x >= 0: 1 - g^2 = 4 w^2 (1 + w)^2 / D^2,  sigmoid = 1 / (1 + w),  D = 1 + 2w + 2w^2
    neg, v, w = _split_exp(ops, x)
    n = v * (v + 2.0)
    n2 = n + 2.0
    d_neg = n / n2 + x * (v / (1.0 + v)) * (4.0 * (n + 1.0) / (n2 * n2))
    D = 1.0 + 2.0 * w * (1.0 + w)
    d_pos = (1.0 + 2.0 * w) / D + x * (4.0 * w * w * (1.0 + w)) / (D * D)
    y = ops.where(neg, d_neg, d_pos)
    y = ops.where(x < -_T, _tail_exp(ops, 1.0 + x, x), y)
    return y


MISH = Spec(
    name="mish",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' has a root at x ~ -1.1924 (the minimum of f); near it f' is a difference of terms of size ~1 and "
            "keeps only their absolute accuracy, so the derivative's allowance is its condition number |x f''/f'|"
            " (issue #10)"
        ),
    ),
    family="self_gated",
    summary="x * tanh(softplus(x)), computed with one exp as an algebraic function of e^(-|x|).",
    definition=lambda x, sp: x * sp.tanh(_sympy_log1p(sp.exp(x))),
    forward=_mish_fwd,
    derivative=_mish_der,
    bounds=(-0.30884341301725045, INF),
    monotonic=False,
    zero_centered=True,
    saturates=("left",),
    references=(MISRA_MISH,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.mish",
            "x * tanh(softplus(x)) composed directly: NaN at x = -inf and NaN gradient at +-inf; 66 ulp in float32 "
            "(subnormal softplus below x = -87), 12 ulp derivative error in float64",
            names=("mish", "Mish"),
        ),
        Equivalent("keras", "keras.activations.mish", names=("mish",)),
        Equivalent("jax", "jax.nn.mish", names=("mish",)),
        Equivalent("tfa", "tfa.activations.mish", names=("mish",)),
        Equivalent("timm", "timm.layers.Mish", "create_act maps 'mish' to nn.Mish (F.mish)", names=("mish",)),
        Equivalent("transformers", "transformers.activations.MishActivation", "calls F.mish", names=("mish",)),
    ),
    torch_native=lambda x, torch: torch.nn.functional.mish(x),
    kernel=Kernel(
        # tanh(softplus(x)) = N / D from e = exp(-|x|): x >= 0: (1 + 2e) / (1 + 2e + 2e^2);
        # x < 0: (e^2 + 2e) / (e^2 + 2e + 2). f' = t + x (1 - t^2) sigmoid(x) = t + 4 x e^2 (1 + e) / D^2
        # (x >= 0) or t + 4 x e (1 + e) / D^2 (x < 0): no cancellation but at f's minimum.
        forward="""
            V e = exp(-abs(x)); V pos = x >= 0.0;
            V n = where(pos, 1.0 + 2.0 * e, e * (e + 2.0)); V dd = where(pos, n + 2.0 * (e * e), n + 2.0);
            return where(x == -inf, 0.0, x * (n / dd));""",
        derivative="""
            V e = exp(-abs(x)); V pos = x >= 0.0;
            V n = where(pos, 1.0 + 2.0 * e, e * (e + 2.0)); V dd = where(pos, n + 2.0 * (e * e), n + 2.0);
            V r = n / dd + 4.0 * x * (where(pos, e * e, e) * (1.0 + e)) / (dd * dd);
            return where(abs(x) == inf, where(x > 0.0, 1.0, 0.0), r);""",
        # float, x < 0: n = e^2 + 2e in one rounding and x n / D (5 ulp on a dense grid as x (n / D)
        # with n = e (e + 2); 3 now)
        fast_forward="""
            V e = exp(-abs(x)); V pos = x >= 0.0;
            V n = where(pos, 1.0 + 2.0 * e, fma(e, e, e + e)); V dd = where(pos, n + 2.0 * (e * e), n + 2.0);
            return where(pos, x * (n / dd), (x * n) / dd);""",
        # float f', x < 0: t and x (1 - t^2) sigmoid(x) cancel (to 1/4 near x = -2), so the two
        # terms are summed before any division, as e (e^3 + 4e^2 + 6e + 4 + 4x + 4x e) / D^2 with
        # fused multiply-adds (10 ulp near x = -2 on a dense grid as n / D + 4 x e (1 + e) / D^2; 6 now)
        fast_derivative="""
            V e = exp(-abs(x)); V pos = x >= 0.0;
            V n = where(pos, 1.0 + 2.0 * e, fma(e, e, e + e)); V dd = where(pos, n + 2.0 * (e * e), n + 2.0);
            V x4 = 4.0 * x; V pe = fma(fma(e + 4.0, e, V(S(6.0))), e, V(S(4.0)));
            V left = (e * fma(x4, e, x4 + pe)) / (dd * dd);
            return where(pos, n / dd + x4 * ((e * e) * (1.0 + e)) / (dd * dd), left);""",
        fast_where="abs(x) < 80.0",
    ),
    native=False,
)


# ----------------------------------------------------------------------------- gelu
# exact: x Phi(x) = x erfc(-x / sqrt 2) / 2
_INV_SQRT2 = (0.7071067811865476, -4.833646656726457e-17)
# tanh form: x sigmoid(z), z = 2 sqrt(2/pi) (x + 0.044715 x^3) = x (A + B x^2)
_GT_A = (1.5957691216057308, -9.96930880911092e-17)
_GT_B = (0.07135481627260025, -6.175149918155315e-19)
_GT_R = 1024.0  # |x| beyond which z is not carried in double-word (sigmoid is 0 or 1 there)
# exact-GELU far tail in float32 (erfc(-x / sqrt 2) is subnormal below x = -13.0 while x Phi(x) is
# normal down to -13.1): x Phi(x) = -phi(x) S(1/x^2), S(u) = sum_k (-1)^k (2k-1)!! u^k, 7 terms
# (truncation error < 2e-9 at x = -10)
_GELU_F32_TAIL = (-10.0, 7)


def _half_square(ops: Any, x: Any, P: Precision) -> tuple[Any, Any]:
    """x^2 / 2 as hi + lo (x clamped so that nothing overflows; exact halving)."""
    xs = ops.clip(x, -(2.0**60), 2.0**60)  # e^(-x^2/2) = 0 long before; x^2 stays finite
    qh, ql = two_prod(xs, xs, P.split)
    return 0.5 * qh, 0.5 * ql


def _gelu_parts(ops: Any, x: Any) -> tuple[Any, Any, Any, Any]:
    """(t_hi, t_lo, E, P): t = -x / sqrt 2 as hi + lo and E = e^(-x^2/2)."""
    P = precision(x, ops)
    th, tl = mul_const(x, ops, -_INV_SQRT2[0], -_INV_SQRT2[1], P)
    hh, hl = _half_square(ops, x, P)
    E = ops.exp(-hh)
    E = E - E * hl
    return th, tl, E, P


def _gelu_tail_S(ops: Any, xt: Any, terms: int) -> Any:
    u = 1.0 / (xt * xt)
    s = ops.ones_like(xt)
    for k in range(terms, 0, -1):
        s = 1.0 - ((2 * k - 1) * u) * s
    return s


def _gelu_erfc(ops: Any, x: Any) -> tuple[Any, Any, Precision]:
    """(erfc(-x / sqrt 2) = 2 Phi(x), E = e^(-x^2/2), precision)."""
    th, tl, E, P = _gelu_parts(ops, x)
    near = ops.erfc(th) - (_TWO_OVER_SQRT_PI * E) * tl
    if P is F32:
        return near, E, P
    # float64, t > 0.75: SciPy's erfc loses 8 ulp near t = 1 (1 - erf), 31 at t = 7.6 and 121 at
    # t = 16 (it rounds -t^2 before exponentiating); erfcx (Faddeeva, <= 6 ulp) times the
    # double-word e^(-t^2) keeps x Phi(x) within 5 ulp on both backends and also covers the far
    # tail (erfc(t) subnormal while x Phi(x) is not).
    far = ops.erfcx(ops.maximum(th, 0.75)) * E
    return ops.where(th > 0.75, far, near), E, P


@at_infinity(0.0, INF, ops_first=True)
def _gelu_exact_fwd(ops: Any, x: Any) -> Any:
    c, E, P = _gelu_erfc(ops, x)
    y = (0.5 * x) * c
    if P is F32:  # far tail: x Phi(x) = -phi(x) S(1/x^2)
        x0, terms = _GELU_F32_TAIL
        xt = ops.minimum(x, x0)
        tail = -(_INV_SQRT_2PI * E) * _gelu_tail_S(ops, xt, terms)
        y = ops.where(x < x0, tail, y)
    return y


@at_infinity(0.0, 1.0, ops_first=True)
def _gelu_exact_der(ops: Any, x: Any) -> Any:
    # Phi(x) + x phi(x); far tail (float32): phi(x) (x - S / x)
    c, E, P = _gelu_erfc(ops, x)
    phi = _INV_SQRT_2PI * E
    y = 0.5 * c + x * phi
    if P is F32:
        x0, terms = _GELU_F32_TAIL
        xt = ops.minimum(x, x0)
        tail = phi * (xt - _gelu_tail_S(ops, xt, terms) / xt)
        y = ops.where(x < x0, tail, y)
    return y


def _gelu_tanh_z(
    ops: Any, x: Any, A: tuple[float, float] = _GT_A, B: tuple[float, float] = _GT_B
) -> tuple[Any, Any, Any]:
    """z = x (A + B x^2) as hi + lo, and z' = A + 3 B x^2 (A, B as hi + lo; gelu_fast has its own)."""
    P = precision(x, ops)
    xs = ops.clip(x, -_GT_R, _GT_R)
    qh, ql = two_prod(xs, xs, P.split)  # x^2
    a, _, _, a_tail = P.const(*A)  # A and B rounded to the working dtype, plus their tails
    b = P.const(*B)[0]
    mh, ml = mul_const(qh, ops, B[0], B[1], P)  # B x^2
    ml = ml + b * ql
    sh, se = two_sum(a, mh)  # A + B x^2
    sl = (se + ml) + a_tail
    zh, zl = two_prod(xs, sh, P.split)
    zl = zl + xs * sl
    plain = x * (A[0] + B[0] * (x * x))
    inside = ops.abs(x) <= _GT_R
    zh = ops.where(inside, zh, plain)
    zl = ops.where(inside, zl, 0.0)
    dz = A[0] + (3.0 * B[0]) * (xs * xs)
    return zh, zl, dz


@at_infinity(0.0, INF, ops_first=True)
def _gelu_tanh_fwd(ops: Any, x: Any, A: tuple[float, float] = _GT_A, B: tuple[float, float] = _GT_B) -> Any:
    zh, zl, _ = _gelu_tanh_z(ops, x, A, B)
    return _sigmoid_times(ops, x, zh, zl)


@at_infinity(0.0, 1.0, ops_first=True)
def _gelu_tanh_der(ops: Any, x: Any, A: tuple[float, float] = _GT_A, B: tuple[float, float] = _GT_B) -> Any:
    # sigmoid(z) (1 + x z' sigmoid(-z)); far left tail: e^z (1 + x z')
    zh, zl, dz = _gelu_tanh_z(ops, x, A, B)
    zh = ops.clip(zh, -_Z_MAX, _Z_MAX)
    w = ops.clip(x, -_GT_R, _GT_R) * dz  # beyond |x| = 1024 sigmoid(-z) or e^z is 0 anyway
    y = _sigmoid_times(ops, 1.0 + w * ops.sigmoid(-zh), zh, zl, 1.0 + w)
    return y


def _gelu_fwd(x: Any, ops: Any, approximate: str = "none") -> Any:
    return _gelu_exact_fwd(ops, x) if approximate == "none" else _gelu_tanh_fwd(ops, x)


def _gelu_der(x: Any, ops: Any, approximate: str = "none") -> Any:
    return _gelu_exact_der(ops, x) if approximate == "none" else _gelu_tanh_der(ops, x)


def _gelu_definition(x: Any, sp: Any, approximate: str) -> Any:
    if approximate == "none":
        # evaluate=False: SymPy would otherwise rewrite erfc(-z) as 2 - erfc(z), which cancels
        # completely for x << 0 at every fixed precision (the oracle would return 0)
        return x * sp.erfc(-x / sp.sqrt(2), evaluate=False) / 2
    # 0.5 x (1 + tanh(u)) = x sigmoid(2u): the same function without 1 + tanh(u) cancelling for x << 0
    u = sp.sqrt(2 / sp.pi) * (x + sp.Rational(44715, 1000000) * x**3)
    return x / (1 + sp.exp(-2 * u))


# float: z = x (A + B x^2), A = 2 sqrt(2/pi), B = 0.044715 A, as zh + zl; then e = e^(-z) (C++ for gelu's kernel)
_GELU_TANH_Z_CXX = (
    "const double A = 1.5957691216057307117, B = 0.044715 * A;"
    " const S a_h = static_cast<S>(A), a_l = static_cast<S>(A - a_h);"
    " const S b_h = static_cast<S>(B), b_l = static_cast<S>(B - b_h);"
    " V u, ul; two_prod(x, x, u, ul);"
    " V bh, bl; two_prod(V(b_h), u, bh, bl); bl = bl + (V(b_l) * u + V(b_h) * ul);"
    " V sh, sl; two_sum(V(a_h), bh, sh, sl); sl = sl + (bl + V(a_l));"
    " V z, zl; two_prod(x, sh, z, zl); zl = zl + x * sl;"
    " V e = exp(V(0.0f) - z); e = e - e * zl;"
)

GELU = Spec(
    name="gelu",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' has a root at x ~ -0.7518 (both forms) (the minimum of f); near it f' is a difference of terms of"
            " size ~1 and keeps only their absolute accuracy, so the derivative's allowance is its condition "
            "number |x f''/f'| (issue #10)"
        ),
    ),
    aliases=("gaussian_error_linear_unit",),
    family="self_gated",
    summary="x * Phi(x) (Gaussian CDF gate); approximate='tanh' gives 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).",
    params=(
        Param(
            "approximate",
            "none",
            choices=("none", "tanh"),
            kind=str,
            spellings=((True, "tanh"), (False, "none")),  # Keras / JAX / TF Addons: a bool
            doc="'none': exact x * Phi(x) (erfc form, accurate in the far negative tail); "
            "'tanh': the tanh approximation (max |difference| 4.7e-4, at x = +-2.70), computed as x * sigmoid(2u)",
        ),
    ),
    definition=_gelu_definition,
    forward=_gelu_fwd,
    derivative=_gelu_der,
    bounds=lambda p: (-0.16997120747990367 if p["approximate"] == "none" else -0.17004075057125406, INF),
    monotonic=False,
    zero_centered=True,
    saturates=("left",),
    references=(HENDRYCKS_GELU,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.gelu",
            "same parameter and default (approximate='none'); the exact kernel evaluates 0.5 x (1 + erf(x / sqrt 2)), "
            "which cancels for x << 0: in float32 4 % (one element) to 17 % (vectorised kernel) off at x = -5, 57 % at -5.5 and 0 from about -5.7 (true "
            "values down to 1e-37); in float64 2 % off at -8, 7 % at -8.3 and 0 from -9 (true values down to "
            "1e-307). The tanh kernel is 0 from about x = -5.5 (float32) / -8 (float64) and its derivative is "
            "17 (float32) / 44 (float64) units off. NaN at x = -inf and NaN gradient at +-inf",
            names=("gelu", "GELU"),
        ),
        Equivalent(
            "keras",
            "keras.activations.gelu",
            "approximate is a bool; keras.activations.gelu defaults to approximate=False (exact) but keras.ops.gelu "
            "defaults to approximate=True (tanh form)",
            names=("gelu",),
        ),
        Equivalent(
            "jax",
            "jax.nn.gelu",
            "approximate is a bool and defaults to True: the tanh form, not the exact GELU",
            names=("gelu",),
            params={"approximate": "tanh"},
        ),
        Equivalent(
            "tfa",
            "tfa.activations.gelu",
            "approximate is a bool and defaults to True (tanh form)",
            names=("gelu",),
            params={"approximate": "tanh"},
        ),
        Equivalent("timm", "timm.layers.GELU", "exact; timm.layers.GELUTanh is approximate='tanh'", names=("gelu",)),
        Equivalent(
            "transformers",
            "transformers.activations.GELUActivation",
            "ACT2CLS['gelu'] calls F.gelu (exact; cancels for x << 0, see pytorch); 'gelu_python' evaluates x * 0.5 * (1 + erf(x / sqrt 2)) in Python, which cancels the same way",
            names=("gelu", "gelu_python"),
        ),
        Equivalent(
            "transformers",
            "transformers.activations.NewGELUActivation",
            "0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) written out (BERT / GPT-2): the tanh form, 0 for x below about -5.5 (float32)",
            names=("gelu_new",),
            params={"approximate": "tanh"},
        ),
        Equivalent(
            "transformers",
            "transformers.activations.GELUTanh",
            "'gelu_pytorch_tanh' calls F.gelu(approximate='tanh'); 'gelu_python_tanh' writes the same formula out in Python",
            names=("gelu_pytorch_tanh", "gelu_python_tanh"),
            params={"approximate": "tanh"},
        ),
        Equivalent(
            "transformers",
            "transformers.activations.AccurateGELUActivation",
            "MEGA's 'accurate' GELU: the same tanh formula as gelu_new, sqrt(2/pi) precomputed",
            names=("gelu_accurate",),
            params={"approximate": "tanh"},
        ),
        Equivalent(
            "timm",
            "timm.layers.GELUTanh",
            "create_act name 'gelu_tanh': F.gelu(approximate='tanh')",
            names=("gelu_tanh",),
            params={"approximate": "tanh"},
        ),
    ),
    torch_native=lambda x, torch, approximate: torch.nn.functional.gelu(x, approximate=approximate),
    kernel=Kernel(
        # exact: x Phi(x) = x erfc(-x / sqrt 2) / 2; tanh form: x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3).
        # In double the rounded arguments cost nothing float32 can see (2 t^2 2^-53 for erfc(t)).
        forward="""
            if (approximate == approximate_tanh) {
              V z = 1.5957691216057307117 * (x + 0.044715 * (x * x * x));
              V e = exp(-abs(z)); V d = 1.0 / (1.0 + e);
              return where(x == -inf, 0.0, x * where(z >= 0.0, d, e * d));
            }
            return where(x == -inf, 0.0, 0.5 * x * erfc(-0.70710678118654752440 * x));""",
        derivative="""
            V r;
            if (approximate == approximate_tanh) {
              V z = 1.5957691216057307117 * (x + 0.044715 * (x * x * x));
              V e = exp(-abs(z)); V d = 1.0 / (1.0 + e);
              V s = where(z >= 0.0, d, e * d); V q = where(z >= 0.0, e * d, d);
              r = s + x * s * q * (1.5957691216057307117 * (1.0 + 0.134145 * (x * x)));
            } else {
              r = 0.5 * erfc(-0.70710678118654752440 * x) + 0.39894228040143267794 * x * exp(-0.5 * (x * x));
            }
            return where(abs(x) == inf, where(x > 0.0, 1.0, 0.0), r);""",
        # float, exact form: Phi(x) and gc = e^(-x^2/2) from gelu_phi (csrc/actlab_kernels.h: one exp,
        # one polynomial in (|x| - 2.75) / (|x| + 2.75), ~2 ulp relative, Phi(x) = 1 - Phi(-x) for x >= 0);
        # f' = Phi + x e^(-x^2/2) / sqrt(2 pi) reuses the exp.
        # float, tanh form: x sigmoid(z), z = x (A + B x^2) carried as zh + zl (exact products and sum
        # with A and B as two floats each), e = e^(-z) corrected to first order in zl, as in swish.
        fast_forward=f"""
            if (approximate == approximate_tanh) {{
              {_GELU_TANH_Z_CXX}
              return x / (1.0 + e);
            }}
            V phi, gc; gelu_phi(x, phi, gc);
            return x * phi;""",
        fast_derivative=f"""
            if (approximate == approximate_tanh) {{
              {_GELU_TANH_Z_CXX}
              V s = 1.0 / (1.0 + e);
              V dz = sh + (2.0 * bh + sl);  // z' = A + 3 B x^2 = (A + B x^2) + 2 B x^2
              return s * (1.0 + (x * dz) * (e * s));
            }}
            V phi, gc; gelu_phi(x, phi, gc);
            return phi + (0.3989422804014327 * x) * gc;""",
        # exact form: down to -12 (erfc(th) and the result stay normal floats) and up to 1e18 (th^2
        # finite); typical inputs (|x| of a few units, and x ~ N(0, 3^2) as in actlab bench) never
        # take double's erfc, which costs ~10x the float form
        fast_where="approximate == approximate_tanh ? ((x > -8.0) & (x < 8.0)) : ((x > -12.0) & (x < 1e18))",
    ),
    native=False,
)


# ----------------------------------------------------------------------------- float tanh for kernels
# The float kernels below compute tanh(a), a >= 0, without SLEEF's tanh (the slowest call they would
# make): below a = 1.5 from the rational function of u = a^2 that Lambert's continued fraction gives
# at six levels (as _tanhshrink_fwd; relative error 4e-10, positive coefficients: nothing cancels),
# above it as (1 - w) / (1 + w) with w = e^(-2a), which the derivatives reuse for sech^2 = 4w / (1 + w)^2.
_TANH_E = (135135.0, 62370.0, 3150.0, 28.0)  # a - tanh a = a u N(u) / E(u)
_TANH_N = (45045.0, 2772.0, 27.0)


def _horner(u: str, coefs: tuple[float, ...]) -> str:
    """C++ for sum(c_k u^k) by Horner's rule with fused multiply-adds (one rounding a step)."""
    expr = f"V(S({coefs[-1]!r}))"
    for c in reversed(coefs[:-1]):
        expr = f"fma({u}, {expr}, V(S({c!r})))"
    return expr


def _tanh_cxx(a: str, w: str, out: str) -> str:
    """C++ statements defining ``out`` = tanh(a) (a >= 0, w = e^(-2a)), ``out_u`` = a^2 and, for
    a < 1.5, ``out_c`` = a - tanh(a); tanh(a) = a - out_c there: out_c's few-ulp error shrinks with
    out_c / tanh(a) (~a^2/3 near 0, 2/3 at 1.5), where a D(u) / E(u) would carry it at full size."""
    u, c = f"{out}_u", f"{out}_c"
    return (
        f"V {u} = {a} * {a}; V {c} = ({a} * {u}) * ({_horner(u, _TANH_N)} / {_horner(u, _TANH_E)});"
        f" V {out} = where({a} < 1.5, {a} - {c}, (1.0 - {w}) / (1.0 + {w}));"
    )


# ----------------------------------------------------------------------------- lisht
def _lisht_fwd(x: Any, ops: Any) -> Any:
    return x * ops.tanh(x)


@at_infinity(-1.0, 1.0)
def _lisht_der(x: Any, ops: Any) -> Any:
    # tanh(x) + x sech^2(x), sech^2(x) = 4w / (1 + w)^2, w = e^(-2|x|) (1 - tanh^2 would cancel)
    w = ops.exp(-2.0 * ops.abs(x))
    y = ops.tanh(x) + x * (4.0 * w / ((1.0 + w) * (1.0 + w)))
    return y


LISHT = Spec(
    name="lisht",
    aliases=("linearly_scaled_tanh",),
    family="self_gated",
    summary="x * tanh(x): linearly scaled hyperbolic tangent; even, non-negative, f'(0) = 0.",
    definition=lambda x, sp: x * sp.tanh(x),
    forward=_lisht_fwd,
    derivative=_lisht_der,
    bounds=(0.0, INF),
    monotonic=False,
    zero_centered=False,
    references=(ROY_LISHT,),
    kernel=Kernel(
        # f' = tanh x + x sech^2 x, sech^2 x = 4w / (1 + w)^2 with w = e^(-2|x|) (1 - tanh^2 x would cancel);
        # both terms have the sign of x, so nothing cancels
        forward="return x * tanh(x);",
        derivative="""
            V w = exp(-2.0 * abs(x));
            V r = tanh(x) + x * (4.0 * w / ((1.0 + w) * (1.0 + w)));
            return where(abs(x) == inf, where(x > 0.0, 1.0, -1.0), r);""",
        # float: |x| tanh|x| and sign(x) (tanh|x| + |x| sech^2 x) from one w = e^(-2|x|)
        fast_forward=f"""
            V a = abs(x); V w = exp_inline(-2.0 * a); {_tanh_cxx("a", "w", "t")}
            return a * t;""",
        fast_derivative=f"""
            V a = abs(x); V w = exp_inline(-2.0 * a); {_tanh_cxx("a", "w", "t")}
            return copysign(t + a * (4.0 * w / ((1.0 + w) * (1.0 + w))), x);""",
        fast_where="abs(x) < 40.0",  # exp_inline(-2|x|) is clamped at e^-87: x e^-2|x| must be negligible
    ),
    equivalents=(Equivalent("tfa", "tfa.activations.lisht", names=("lisht",)),),
)


# ----------------------------------------------------------------------------- tanhexp
_TANHEXP_SAT = 30.0  # tanh(e^30) = 1 in float64; e^x is never evaluated above it


@at_infinity(0.0, INF)
def _tanhexp_fwd(x: Any, ops: Any) -> Any:
    v = ops.exp(ops.minimum(x, _TANHEXP_SAT))
    y = ops.where(x < -_T, _tail_exp(ops, x, x), x * ops.tanh(v))
    return y


@at_infinity(0.0, 1.0)
def _tanhexp_der(x: Any, ops: Any) -> Any:
    # tanh(v) + x v sech^2(v), v = e^x; v sech^2(v) = 4 e^(x - 2v) / (1 + e^(-2v))^2
    xc = ops.minimum(x, _TANHEXP_SAT)
    v = ops.exp(xc)
    w = ops.exp(-2.0 * v)
    term = x * (4.0 * ops.exp(xc - 2.0 * v) / ((1.0 + w) * (1.0 + w)))
    y = ops.tanh(v) + ops.where(x < _TANHEXP_SAT, term, 0.0)
    y = ops.where(x < -_T, _tail_exp(ops, 1.0 + x, x), y)
    return y


TANHEXP = Spec(
    name="tanhexp",
    tolerance=Tolerance(
        derivative_ulps=16,
        derivative_condition_allowance=True,
        reason=(
            "f' has a root at x ~ -1.0789 (the minimum of f); near it f' is a difference of terms of size ~1 and "
            "keeps only their absolute accuracy, so the derivative's allowance is its condition number |x f''/f'|"
            " (issue #10); elsewhere within 16 ulp: tanh(e^x) rounds e^x first"
        ),
    ),
    aliases=("tanh_exp",),
    family="self_gated",
    summary="x * tanh(e^x): the tanh exponential activation.",
    definition=lambda x, sp: x * sp.tanh(sp.exp(x)),
    forward=_tanhexp_fwd,
    derivative=_tanhexp_der,
    bounds=(-0.35328577784821128, INF),
    monotonic=False,
    zero_centered=True,
    saturates=("left",),
    references=(LIU_TANHEXP,),
    kernel=Kernel(
        # f' = tanh(v) + x v sech^2(v), v = e^x, sech^2(v) = 4w / (1 + w)^2 with w = e^(-2v); e^x is
        # clamped where tanh(e^x) = 1 already (e^30 in double, e^10 in float)
        forward="""
            V v = exp(min(x, 30.0));
            return where(x == -inf, 0.0, x * tanh(v));""",
        derivative="""
            V v = exp(min(x, 30.0)); V w = exp(-2.0 * v);
            V r = tanh(v) + x * (4.0 * v * w / ((1.0 + w) * (1.0 + w)));
            return where(abs(x) == inf, where(x > 0.0, 1.0, 0.0), r);""",
        fast_forward=f"""
            V v = exp(min(x, 10.0)); V w = exp(-2.0 * v); {_tanh_cxx("v", "w", "t")}
            return x * t;""",
        fast_derivative=f"""
            V v = exp(min(x, 10.0)); V w = exp(-2.0 * v); {_tanh_cxx("v", "w", "t")}
            return t + x * (4.0 * v * w / ((1.0 + w) * (1.0 + w)));""",
        # below -80, x e^x nears float32's subnormal range
        fast_where="(x > -80.0) & (x < inf)",
    ),
)


# ----------------------------------------------------------------------------- serf
@at_infinity(0.0, INF)
def _serf_fwd(x: Any, ops: Any) -> Any:
    y = x * ops.erf(ops.softplus(x))
    y = ops.where(x < -_T, _tail_exp(ops, x, x, _TWO_OVER_SQRT_PI), y)
    return y


@at_infinity(0.0, 1.0)
def _serf_der(x: Any, ops: Any) -> Any:
    # erf(sp) + x (2/sqrt pi) e^(-sp^2) sigmoid(x); far left tail: (2/sqrt pi) e^x (1 + x)
    sp = ops.softplus(x)
    y = ops.erf(sp) + x * (_TWO_OVER_SQRT_PI * ops.exp(-sp * sp) * ops.sigmoid(x))
    y = ops.where(x < -_T, _tail_exp(ops, 1.0 + x, x, _TWO_OVER_SQRT_PI), y)
    return y


# erf(sp), sp >= 0, in float (C++ for serf's kernel): 2/sqrt(pi) sum_n (-1)^n u^n / (n! (2n + 1)), u = sp^2
_ERF_TAYLOR = tuple(_TWO_OVER_SQRT_PI * (-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(12))
_ERF_CXX = f"V u = sp * sp; V er = where(sp < 1.0, sp * {_horner('u', _ERF_TAYLOR)}, 1.0 - erfc(sp));"

SERF = Spec(
    name="serf",
    tolerance=Tolerance(
        derivative_ulps=16,
        derivative_condition_allowance=True,
        reason=(
            "f' has a root at x ~ -1.1931 (the minimum of f); near it f' is a difference of terms of size ~1 and "
            "keeps only their absolute accuracy, so the derivative's allowance is its condition number |x f''/f'|"
            " (issue #10); elsewhere within 16 ulp (9 in float32 on the 20,000-point grid: erf of a rounded softplus)"
        ),
    ),
    aliases=("log_softplus_erf",),
    family="self_gated",
    summary="x * erf(softplus(x)): the log-softplus error activation.",
    definition=lambda x, sp: x * sp.erf(_sympy_log1p(sp.exp(x))),
    forward=_serf_fwd,
    derivative=_serf_der,
    bounds=(-0.34843745875960643, INF),
    monotonic=False,
    zero_centered=True,
    saturates=("left",),
    references=(NAG_SERF,),
    kernel=Kernel(
        # softplus and sigmoid from one e = e^(-|x|). The float form does not use ATen's float erf (a
        # 1e-7 absolute approximation, Abramowitz-Stegun): erf(s) = s P(s^2), P the Taylor series to
        # u^11 below s = 1 (truncation 1e-9 relative), 1 - erfc(s) above (erfc(s) < 0.16: no cancellation).
        forward="""
            V sp = max(x, 0.0) + log1p(exp(-abs(x)));
            return where(x == -inf, 0.0, x * erf(sp));""",
        derivative="""
            V e = exp(-abs(x)); V sp = max(x, 0.0) + log1p(e);
            V s = where(x >= 0.0, 1.0, e) / (1.0 + e);
            V r = erf(sp) + x * (1.1283791670955126 * exp(-(sp * sp)) * s);
            return where(abs(x) == inf, where(x > 0.0, 1.0, 0.0), r);""",
        fast_forward=f"""
            V e = exp(-abs(x)); V sp = max(x, 0.0) + log1p_unit(e); {_ERF_CXX}
            return x * er;""",
        fast_derivative=f"""
            V e = exp(-abs(x)); V sp = max(x, 0.0) + log1p_unit(e); {_ERF_CXX}
            V s = where(x >= 0.0, 1.0, e) / (1.0 + e);
            return er + x * (1.1283791670955126 * exp(V(0.0f) - u) * s);""",
        # below -80, x e^x nears float32's subnormal range
        fast_where="abs(x) < 80.0",
    ),
)


# ----------------------------------------------------------------------------- smish
@at_infinity(0.0, INF)
def _smish_fwd(x: Any, ops: Any) -> Any:
    # tanh(log(1 + s)) = s (s + 2) / (s^2 + 2s + 2), s = sigmoid(x); in terms of v = e^x (x < 0)
    # v (3v + 2) / (5v^2 + 6v + 2), and of w = e^-x (x >= 0) (3 + 2w) / (5 + 6w + 2w^2)
    neg, v, w = _split_exp(ops, x)
    g_neg = v * (3.0 * v + 2.0) / ((5.0 * v + 6.0) * v + 2.0)
    g_pos = (3.0 + 2.0 * w) / (5.0 + (6.0 + 2.0 * w) * w)
    y = ops.where(x < -_T, _tail_exp(ops, x, x), x * ops.where(neg, g_neg, g_pos))
    return y


@at_infinity(0.0, 0.6)
def _smish_der(x: Any, ops: Any) -> Any:
    # g' = 4 v (1 + v)(1 + 2v) / (5v^2 + 6v + 2)^2 = 4 w (1 + w)(2 + w) / (5 + 6w + 2w^2)^2
    neg, v, w = _split_exp(ops, x)
    dn = (5.0 * v + 6.0) * v + 2.0
    dp = 5.0 + (6.0 + 2.0 * w) * w
    d_neg = v * (3.0 * v + 2.0) / dn + x * (4.0 * v * (1.0 + v) * (1.0 + 2.0 * v)) / (dn * dn)
    d_pos = (3.0 + 2.0 * w) / dp + x * (4.0 * w * (1.0 + w) * (2.0 + w)) / (dp * dp)
    y = ops.where(neg, d_neg, d_pos)
    y = ops.where(x < -_T, _tail_exp(ops, 1.0 + x, x), y)
    return y


# smish's gate g = n / dd as a rational function of e = e^(-|x|) (x >= 0: e^-x; x < 0: e^x), in C++
_SMISH_G = (
    "V e = exp(-abs(x)); V pos = x >= 0.0;"
    " V n = where(pos, fma(V(S(2.0)), e, V(S(3.0))), e * fma(V(S(3.0)), e, V(S(2.0))));"
    " V dd = where(pos, fma(fma(V(S(2.0)), e, V(S(6.0))), e, V(S(5.0))),"
    " fma(fma(V(S(5.0)), e, V(S(6.0))), e, V(S(2.0))));"
)

SMISH = Spec(
    name="smish",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' has a root at x ~ -1.3945 (the minimum of f); near it f' is a difference of terms of size ~1 and "
            "keeps only their absolute accuracy, so the derivative's allowance is its condition number |x f''/f'|"
            " (issue #10)"
        ),
    ),
    family="self_gated",
    summary="x * tanh(log(1 + sigmoid(x))), computed as a rational function of e^(-|x|); slope 3/5 for x -> inf.",
    definition=lambda x, sp: x * sp.tanh(_sympy_log1p(1 / (1 + sp.exp(-x)))),
    forward=_smish_fwd,
    derivative=_smish_der,
    bounds=(-0.24999366366012950, INF),
    monotonic=False,
    zero_centered=True,
    saturates=("left",),
    references=(WANG_SMISH,),
    kernel=Kernel(
        # g = tanh(log(1 + sigmoid x)) = n / dd, rational in e = e^(-|x|) (as the eager code);
        # f' = g + x g', g' = 4e (1 + e)(2 + e) / dd^2 (x >= 0) or 4e (1 + e)(1 + 2e) / dd^2 (x < 0)
        forward=f"""
            {_SMISH_G}
            return where(x == -inf, 0.0, x * (n / dd));""",
        derivative=f"""
            {_SMISH_G}
            V gp = 4.0 * e * (1.0 + e) * where(pos, 2.0 + e, 1.0 + 2.0 * e) / (dd * dd);
            return where(abs(x) == inf, where(x > 0.0, 0.6, 0.0), n / dd + x * gp);""",
        fast_forward=f"""
            {_SMISH_G.replace("exp(", "exp_inline(")}
            return x * (n / dd);""",
        fast_derivative=f"""
            {_SMISH_G.replace("exp(", "exp_inline(")}
            V r = 1.0 / dd; V gp = (4.0 * e * (1.0 + e) * where(pos, 2.0 + e, 1.0 + 2.0 * e)) * (r * r);
            return n * r + x * gp;""",
        fast_where="abs(x) < 80.0",
    ),
)


# ----------------------------------------------------------------------------- logish
def _logish_sigmoid(ops: Any, x: Any) -> tuple[Any, Any, Any, Any]:
    neg, v, w = _split_exp(ops, x)
    s = ops.where(neg, v / (1.0 + v), 1.0 / (1.0 + w))
    return neg, v, w, s


@at_infinity(0.0, INF)
def _logish_fwd(x: Any, ops: Any) -> Any:
    _, _, _, s = _logish_sigmoid(ops, x)
    y = ops.where(x < -_T, _tail_exp(ops, x, x), x * ops.log1p(s))
    return y


@at_infinity(0.0, _LN2)
def _logish_der(x: Any, ops: Any) -> Any:
    # log1p(s) + x s (1 - s) / (1 + s); s(1-s)/(1+s) = v / ((1+v)(1+2v)) = w / ((1+w)(2+w))
    neg, v, w, s = _logish_sigmoid(ops, x)
    r = ops.where(neg, v / ((1.0 + v) * (1.0 + 2.0 * v)), w / ((1.0 + w) * (2.0 + w)))
    y = ops.log1p(s) + x * r
    y = ops.where(x < -_T, _tail_exp(ops, 1.0 + x, x), y)
    return y


LOGISH = Spec(
    name="logish",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' has a root at x ~ -1.3725 (the minimum of f); near it f' is a difference of terms of size ~1 and "
            "keeps only their absolute accuracy, so the derivative's allowance is its condition number |x f''/f'|"
            " (issue #10)"
        ),
    ),
    family="self_gated",
    summary="x * log(1 + sigmoid(x)); slope ln 2 for x -> inf.",
    definition=lambda x, sp: x * _sympy_log1p(1 / (1 + sp.exp(-x))),
    forward=_logish_fwd,
    derivative=_logish_der,
    bounds=(-0.25276881678944036, INF),
    monotonic=False,
    zero_centered=True,
    saturates=("left",),
    references=(ZHU_LOGISH,),
    kernel=Kernel(
        # s = sigmoid(x) from e = e^(-|x|); f' = log1p(s) + x s (1 - s) / (1 + s), and
        # s (1 - s) / (1 + s) = e / ((1 + e)(2 + e)) (x >= 0) or e / ((1 + e)(1 + 2e)) (x < 0)
        forward="""
            V e = exp(-abs(x)); V s = where(x >= 0.0, 1.0, e) / (1.0 + e);
            return where(x == -inf, 0.0, x * log1p(s));""",
        derivative="""
            V e = exp(-abs(x)); V s = where(x >= 0.0, 1.0, e) / (1.0 + e);
            V r = e / ((1.0 + e) * where(x >= 0.0, 2.0 + e, 1.0 + 2.0 * e));
            return where(abs(x) == inf, where(x > 0.0, 0.6931471805599453, 0.0), log1p(s) + x * r);""",
        fast_forward="""
            V e = exp_inline(-abs(x)); V s = where(x >= 0.0, 1.0, e) / (1.0 + e);
            return x * log1p_unit(s);""",
        fast_derivative="""
            V e = exp_inline(-abs(x)); V s = where(x >= 0.0, 1.0, e) / (1.0 + e);
            V r = e / ((1.0 + e) * where(x >= 0.0, 2.0 + e, 1.0 + 2.0 * e));
            return log1p_unit(s) + x * r;""",
        fast_where="abs(x) < 80.0",
    ),
)


# ----------------------------------------------------------------------------- elish
@at_infinity(0.0, INF)
def _elish_fwd(x: Any, ops: Any) -> Any:
    neg, v, w = _split_exp(ops, x)
    left = ops.expm1(ops.minimum(x, 0.0)) * (v / (1.0 + v))
    right = x / (1.0 + w)
    return ops.where(neg, left, right)


@at_infinity(0.0, 1.0)
def _elish_der(x: Any, ops: Any) -> Any:
    # x < 0: v (v^2 + 2v - 1) / (1 + v)^2;  x >= 0: (1 + x w / (1 + w)) / (1 + w)
    neg, v, w = _split_exp(ops, x)
    left = v * (v * (v + 2.0) - 1.0) / ((1.0 + v) * (1.0 + v))
    right = (1.0 + x * (w / (1.0 + w))) / (1.0 + w)
    return ops.where(neg, left, right)


_EXPM1_TAYLOR = tuple(1.0 / math.factorial(k + 1) for k in range(11))  # (e^x - 1) / x

ELISH = Spec(
    name="elish",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' has a root at x ~ -0.8814 (the minimum of f); near it f' is a difference of terms of size ~1 and "
            "keeps only their absolute accuracy, so the derivative's allowance is its condition number |x f''/f'|"
            " (issue #10)"
        ),
    ),
    aliases=("exponential_linear_squashing",),
    family="self_gated",
    summary="x * sigmoid(x) for x >= 0, (e^x - 1) * sigmoid(x) for x < 0 (C^1: f''(0-) = 1, f''(0+) = 1/2).",
    definition=lambda x, sp: sp.Piecewise((x / (1 + sp.exp(-x)), x >= 0), (_sympy_expm1(x) / (1 + sp.exp(-x)), True)),
    forward=_elish_fwd,
    derivative=_elish_der,
    bounds=(-0.17157287525380991, INF),  # 2 sqrt 2 - 3 at x = log(sqrt 2 - 1)
    monotonic=False,
    smoothness=1,
    zero_centered=True,
    saturates=("left",),
    references=(BASIRAT_ELISH,),
    kernel=Kernel(
        # e = e^(-|x|) gives sigmoid on both sides; x < 0: expm1(x) sigmoid(x), f' = e (e^2 + 2e - 1) / (1 + e)^2
        forward="""
            V e = exp(-abs(x)); V d = 1.0 / (1.0 + e);
            return where(x >= 0.0, x * d, expm1(min(x, 0.0)) * (e * d));""",
        derivative="""
            V e = exp(-abs(x)); V d = 1.0 / (1.0 + e);
            V left = e * (e * (e + 2.0) - 1.0) * (d * d); V right = (1.0 + x * (e * d)) * d;
            return where(x == inf, 1.0, where(x >= 0.0, right, left));""",
        # float: one exp; e^x - 1 is e - 1 below x = -0.7 (no cancellation: e < 1/2) and its Taylor
        # polynomial above (degree 11, truncation below 1e-9 relative)
        fast_forward=f"""
            V e = exp_inline(-abs(x));
            V m = where(x > -0.7, x * {_horner("x", _EXPM1_TAYLOR)}, e - 1.0);
            return where(x >= 0.0, x, m * e) / (1.0 + e);""",
        fast_derivative="""
            V e = exp_inline(-abs(x)); V d = 1.0 / (1.0 + e);
            V left = e * fma(e, e + 2.0, V(S(-1.0))) / square(1.0 + e); V right = (1.0 + x * (e * d)) * d;
            return where(x >= 0.0, right, left);""",
        fast_where="abs(x) < 80.0",
    ),
)


# ----------------------------------------------------------------------------- hard_elish
def _hard_elish_fwd(x: Any, ops: Any) -> Any:
    gate = ops.clip((x + 1.0) * 0.5, 0.0, 1.0)
    left = ops.expm1(ops.minimum(x, 0.0)) * gate
    # ordered so that NaN falls through to the last branch (x)
    return ops.where(x < -1.0, 0.0, ops.where(x < 0.0, left, ops.where(x < 1.0, x * gate, x)))


def _hard_elish_der(x: Any, ops: Any) -> Any:
    # outer pieces at the kinks (hardsigmoid's gate has slope 0 at its clip bounds, as in PyTorch):
    # f'(1) = 1, f'(-1) = 0
    xm = ops.minimum(x, 0.0)
    left = 0.5 * (ops.exp(xm) * (x + 1.0) + ops.expm1(xm))
    y = ops.where(x <= -1.0, 0.0, ops.where(x < 0.0, left, ops.where(x < 1.0, x + 0.5, 1.0)))
    return ops.where(ops.isnan(x), x, y)


HARD_ELISH = Spec(
    name="hard_elish",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' has a root at x ~ -0.4429 (the minimum of f); near it f' is a difference of terms of size ~1 and "
            "keeps only their absolute accuracy, so the derivative's allowance is its condition number |x f''/f'|"
            " (issue #10)"
        ),
    ),
    aliases=("hardelish",),
    family="self_gated",
    summary="ELiSH with the hard sigmoid clip((x + 1) / 2, 0, 1) as gate: x * gate (x >= 0), (e^x - 1) * gate (x < 0).",
    definition=lambda x, sp: sp.Piecewise(
        (x, x >= 1),
        (x * (x + 1) / 2, x >= 0),
        (_sympy_expm1(x) * (x + 1) / 2, x >= -1),
        (0, True),
    ),
    forward=_hard_elish_fwd,
    derivative=_hard_elish_der,
    kinks=(
        Kink(at=-1.0, grad=0.0, note="one-sided slopes 0 (left) and (1/e - 1)/2 (right); the outer piece's 0"),
        Kink(at=1.0, grad=1.0, note="one-sided slopes 3/2 (left) and 1 (right); the outer piece's 1"),
    ),
    bounds=(-0.099673151528742622, INF),  # at x = -0.442854, where e^x (x + 2) = 1
    monotonic=False,
    smoothness=0,
    zero_centered=True,
    saturates=("left",),
    references=(BASIRAT_ELISH,),
    kernel=Kernel(
        # the eager formulas; NaN falls through to the last branch (x); no tails, so float everywhere
        forward="""
            V gate = min(max((x + 1.0) * 0.5, 0.0), 1.0);
            V left = expm1(min(x, 0.0)) * gate;
            return where(x < -1.0, 0.0, where(x < 0.0, left, where(x < 1.0, x * gate, x)));""",
        derivative="""
            V xm = min(x, 0.0);
            V left = 0.5 * (exp(xm) * (x + 1.0) + expm1(xm));
            V r = where(x <= -1.0, 0.0, where(x < 0.0, left, where(x < 1.0, x + 0.5, 1.0)));
            return where(x != x, x, r);""",
        # float: no transcendental; on [-1, 0) e^x - 1 = m is elish's Taylor polynomial (truncation
        # 3e-9 relative at -1), and f' = ((x + 1) + m (x + 2)) / 2 there
        fast_forward=f"""
            V gate = min(max((x + 1.0) * 0.5, 0.0), 1.0);
            V left = (x * {_horner("x", _EXPM1_TAYLOR)}) * gate;
            return where(x < -1.0, 0.0, where(x < 0.0, left, where(x < 1.0, x * gate, x)));""",
        fast_derivative=f"""
            V m = x * {_horner("x", _EXPM1_TAYLOR)};
            V left = 0.5 * ((x + 1.0) + m * (x + 2.0));
            V r = where(x <= -1.0, 0.0, where(x < 0.0, left, where(x < 1.0, x + 0.5, 1.0)));
            return where(x != x, x, r);""",
        fast_where="",
    ),
    notes="Differentiable at 0 (both one-sided slopes 1/2) but not at -1 and 1.",
)


# ----------------------------------------------------------------------------- gcu
GCU = Spec(
    name="gcu",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' = cos x - x sin x has a root near every x ~ k pi (the first at +-0.8603); near them the "
            "derivative's allowance is its condition number |x f''/f'| (issue #10)"
        ),
    ),
    aliases=("growing_cosine_unit",),
    family="self_gated",
    summary="x * cos(x): the growing cosine unit, oscillating with zeros at (k + 1/2) pi.",
    definition=lambda x, sp: x * sp.cos(x),
    forward=lambda x, ops: x * ops.cos(x),
    derivative=lambda x, ops: ops.cos(x) - x * ops.sin(x),
    monotonic=False,
    zero_centered=True,
    references=(NOEL_GCU,),
    kernel=Kernel(
        # no float form: ATen's float sin/cos are 3.5-ulp SLEEF functions, and x cos x has no allowance
        forward="return x * cos(x);",
        derivative="return cos(x) - x * sin(x);",
    ),
    notes="f(+-inf) has no limit (NaN). No condition-number allowance is needed: the inputs are exact and "
    "cos is evaluated with full argument reduction by both backends, so x cos x stays within 2 ulp even "
    "next to its roots (k + 1/2) pi (measured without the allowance on the 20,000-point grid).",
)


# ----------------------------------------------------------------------------- max_x_xexp
@at_infinity(0.0, INF)
def _max_x_xexp_fwd(x: Any, ops: Any) -> Any:
    xm = ops.minimum(x, 0.0)
    left = ops.where(x < -_T, _tail_exp(ops, x, x), xm * ops.exp(xm))
    return ops.where(x < 0.0, left, x)


@at_infinity(0.0, 1.0)
def _max_x_xexp_der(x: Any, ops: Any) -> Any:
    xm = ops.minimum(x, 0.0)
    left = ops.where(x < -_T, _tail_exp(ops, 1.0 + x, x), (1.0 + xm) * ops.exp(xm))
    y = ops.where(x < 0.0, left, 1.0)
    return ops.where(ops.isnan(x), x, y)


MAX_X_XEXP = Spec(
    name="max_x_xexp",
    aliases=("xexp_linear_unit", "max_x_x_exp_neg_abs_x"),
    family="self_gated",
    summary="max(x, x e^(-|x|)) = x for x >= 0 and x e^x for x < 0: a swish-like unit, identity on the right.",
    definition=lambda x, sp: sp.Piecewise((x, x >= 0), (x * sp.exp(x), True)),
    forward=_max_x_xexp_fwd,
    derivative=_max_x_xexp_der,
    bounds=(-0.36787944117144234, INF),  # -1/e at x = -1
    monotonic=False,
    smoothness=1,
    zero_centered=True,
    saturates=("left",),
    references=(ACTLAB_NOTES,),
    kernel=Kernel(
        forward="""
            V xm = min(x, 0.0);
            return where(x == -inf, 0.0, where(x < 0.0, xm * exp(xm), x));""",
        derivative="""
            V xm = min(x, 0.0); V r = where(x < 0.0, (1.0 + xm) * exp(xm), 1.0);
            return where(x == -inf, 0.0, where(x != x, x, r));""",
        # float: max(x, 0) + xm e^xm and (1 + xm) e^xm by one fma (xm = min(x, 0)): the same values as
        # where(x < 0, x e^x, x), which GCC compiled to ~3x the time (the input blended with a value
        # computed after the exp, measured)
        fast_forward="""
            V xm = min(x, 0.0);
            return max(x, 0.0) + xm * exp_inline(xm);""",
        fast_derivative="""
            V xm = min(x, 0.0); V e = exp_inline(xm);
            return fma(xm, e, e);""",
        # below -80, x e^x nears float32's subnormal range
        fast_where="x > -80.0",
    ),
    notes="For x > 0, x e^(-x) < x, and for x < 0, x e^x > x (e^x < 1, x < 0), so the max is x on the right "
    "and x e^x on the left. Both pieces have value 0 and slope 1 at 0 ((1 + x) e^x -> 1), so f is C^1 with "
    "no kink; f'' jumps from 2 to 0 at 0, so it is not C^2. Minimum -1/e at x = -1; f' -> 0 as x -> -inf.",
)


# ----------------------------------------------------------------------------- snake
def _snake_sin2(ops: Any, y: Any) -> Any:
    # sin^2(y): (1 - cos 2y) / 2 is accurate where sin^2 >= 1/2, sin(y)^2 where it is small
    c2 = ops.cos(2.0 * y)
    s = ops.sin(y)
    return ops.where(c2 > 0.0, s * s, (1.0 - c2) * 0.5)


def _snake_y(ops: Any, x: Any, frequency: float) -> tuple[Any, Any]:
    """a x as hi + lo (lo None when the product is exact): sin(2 a x) at |x| ~ 1e4 needs a x to
    full precision, and the oracle's a is the exact binary value of ``frequency``. Where |a x| is
    so large that lo is no longer small, lo is 0 (no correction)."""
    if frequency == 1.0:
        return x, None
    if is_power_of_two(frequency):
        return x * frequency, None
    P = precision(x, ops)
    yh, yl = mul_const(x, ops, frequency, 0.0, P)
    return yh, ops.where(ops.abs(yh) < P.trig_dw, yl, 0.0)


_SNAKE_TRIG_MAX = 2.0**50  # beyond |a x| = 2^50, sin^2(a x) / a is below 2^-50 |x|: not evaluated


@at_infinity(-INF, INF)
def _snake_fwd(x: Any, ops: Any, frequency: float = 1.0) -> Any:
    return _snake_finite(ops, x, frequency)


def _snake_finite(ops: Any, x: Any, frequency: float) -> Any:
    yh, yl = _snake_y(ops, x, frequency)
    yt = ops.clip(yh, -_SNAKE_TRIG_MAX, _SNAKE_TRIG_MAX)
    s2 = _snake_sin2(ops, yt)
    if yl is not None:
        s2 = s2 + ops.sin(2.0 * yt) * yl  # sin^2(yh + yl) to first order
    if frequency == 1.0:
        return x + s2
    # near 0, (a x + sin^2(a x)) / a: the cancelling sum is formed before the division's rounding
    # (yh + s2 is exact where it cancels, by Sterbenz's lemma; yl is added last)
    near = yh + s2 if yl is None else (yh + s2) + yl
    c, _, _, tail = precision(x, ops).const(frequency)
    q_near, q_far = near / c, s2 / c
    if tail != 0.0:  # divide by the exact binary frequency, not its float32 rounding
        q_near, q_far = q_near - q_near * (tail / c), q_far - q_far * (tail / c)
    ay = ops.abs(yh)  # below |a x| = 1/16 nothing cancels (and a x may be subnormal)
    return ops.where((ay >= 0.0625) & (ay < 8.0), q_near, x + q_far)


def _snake_der(x: Any, ops: Any, frequency: float = 1.0) -> Any:
    yh, yl = _snake_y(ops, x, frequency)
    # 1 + sin(2y) = (sin y + cos y)^2: near the double roots y = -pi/4 + k pi the sum cancels with an
    # error of about eps, so f' keeps a relative error ~ eps / sqrt(f'), within its condition number
    # |x f''/f'|; 1 + sin(2y) would keep only eps / f' (issue #10: 1e3 of those units at a = 1).
    s, c = ops.sin(yh), ops.cos(yh)
    t = s + c
    if yl is not None:  # sin(yh + yl) + cos(yh + yl) to second order in yl
        t = t * (1.0 - 0.5 * yl * yl) + (c - s) * yl
    return t * t


def _snake_check(p: dict) -> None:
    if abs(p["frequency"]) < 1e-3:
        raise ParameterError(
            f"frequency must satisfy 1e-3 <= |frequency| <= 100 (the function divides by it); got {p['frequency']!r}"
        )


SNAKE = Spec(
    name="snake",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' = 1 + sin(2 a x) = (sin ax + cos ax)^2 has double roots at x = -pi/(4a) + k pi/a, and sin, cos "
            "take a rounded a x: the derivative's allowance is its condition number |x f''/f'| (issue #10)"
        ),
    ),
    family="self_gated",
    summary="x + sin^2(a x) / a: periodic-plus-linear, monotonic (f' = 1 + sin(2 a x) >= 0).",
    params=(
        Param(
            "frequency",
            1.0,
            low=-100.0,
            high=100.0,
            trainable=True,
            doc="the frequency a of the periodic part (the paper's a, BigVGAN's alpha, TF Addons' frequency), "
            "1e-3 <= |a| <= 100; a < 0 (TF Addons accepts it) gives x - sin^2(|a| x) / |a|. Beyond 100, at "
            "|x| ~ 1e4 in float32 the low part of a x is dropped and the derivative's error passes its condition "
            "number (211 times it at a = 5000); below 1e-3 a learnable a's gradient x sin(2ax)/a - sin(ax)^2/a^2 "
            "cancels completely (sin(ax)^2 underflows)",
        ),
    ),
    constraints=_snake_check,
    definition=lambda x, sp, frequency: x + sp.sin(frequency * x) ** 2 / frequency,
    forward=_snake_fwd,
    derivative=_snake_der,
    monotonic=True,
    zero_centered=True,
    references=(ZIYIN_SNAKE,),
    kernel=Kernel(
        # double: a x keeps 29 spare bits, enough for sin at |a x| ~ 1e6. No float form: ATen's float
        # sin/cos are 3.5-ulp functions and a x rounded in float moves sin^2(a x) / a by ~|x| ulp.
        forward="""
            V s = sin(frequency * x);
            return where(abs(x) == inf, x, x + s * s / frequency);""",
        derivative="""
            V y = frequency * x; V t = sin(y) + cos(y);
            return t * t;""",
    ),
    equivalents=(
        Equivalent(
            "tfa",
            "tfa.activations.snake",
            "frequency=1 as here; computes x + (1 - cos(2 a x)) / (2a), which cancels for small |a x| "
            "(relative error ~ 1/(a x)^2 ulp)",
            names=("snake",),
        ),
    ),
    notes="f(+-inf) = +-inf; f'(+-inf) has no limit (NaN).",
)


# ----------------------------------------------------------------------------- tanhshrink
_TS_SWITCH = 1.5
_TS_LEVELS = {np.dtype(np.float32): 6, np.dtype(np.float64): 10}


def _tanhshrink_fwd(x: Any, ops: Any) -> Any:
    # |x| < 1.5: x - tanh x = x P / (1 + P) with P = x coth x - 1 from Lambert's continued fraction
    # P = u / (3 + u / (5 + u / (7 + ...))), u = x^2 (no cancellation; relative error 1e-9 / 1e-18 at 1.5)
    xs = ops.clip(x, -_TS_SWITCH, _TS_SWITCH)
    u = xs * xs
    levels = _TS_LEVELS[precision(x, ops).dtype]
    t = ops.full_like(xs, float(2 * levels + 1))
    for k in range(levels - 1, 0, -1):
        t = (2 * k + 1) + u / t
    p = u / t
    near = xs * (p / (1.0 + p))
    return ops.where(ops.abs(x) < _TS_SWITCH, near, x - ops.tanh(x))


TANHSHRINK = Spec(
    name="tanhshrink",
    aliases=("tanh_shrink",),
    family="self_gated",
    summary="x - tanh(x); ~x^3/3 near 0, computed without the cancellation of the direct formula.",
    definition=lambda x, sp: sp.Piecewise(
        # the series stands in for x - tanh(x) only where the difference is below 1e-36 relative
        # to x and mpmath would return an exact 0 at any fixed precision
        (
            x**3 / 3 - 2 * x**5 / 15 + 17 * x**7 / 315 - 62 * x**9 / 2835 + 1382 * x**11 / 155925,
            sp.Abs(x) < sp.Rational(1, 2**20),
        ),
        (x - sp.tanh(x), True),
    ),
    formula=r"x - \tanh(x)",
    forward=_tanhshrink_fwd,
    derivative=lambda x, ops: ops.square(ops.tanh(x)),
    monotonic=True,
    zero_centered=True,
    references=(TORCH_TANHSHRINK,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.tanhshrink",
            "x - tanh(x) evaluated directly: cancels near 0 (relative error ~ 3 / x^2 ulp, 5 % at x = 1e-3 in float32)",
            names=("tanhshrink", "Tanhshrink"),
        ),
        Equivalent(
            "keras",
            "keras.activations.tanh_shrink",
            "Keras 3 (also keras.ops.tanh_shrink); direct x - tanh(x)",
            names=("tanh_shrink",),
        ),
        Equivalent("tfa", "tfa.activations.tanhshrink", names=("tanhshrink",)),
    ),
    torch_native=lambda x, torch: torch.nn.functional.tanhshrink(x),
    kernel=Kernel(
        # |x| < 1.5: x - tanh x = x P / (1 + P), P = x coth x - 1 from Lambert's continued fraction
        # (six levels, as the eager code) collapsed into one rational function of u = x^2 with
        # positive coefficients (no cancellation; relative error 6e-10 at 1.5); beyond, x - tanh x
        # loses at most 1 ulp of tanh. Float everywhere: no tails, inf - 1 = inf.
        forward=f"""
            V u = x * x;
            V r = x * ((u * {_horner("u", _TANH_N)}) / {_horner("u", _TANH_E)});
            return where(abs(x) < 1.5, r, x - tanh(x));""",
        derivative="V t = tanh(x); return t * t;",
        fast_forward=f"""
            V a = abs(x); V w = exp_inline(-2.0 * a); {_tanh_cxx("a", "w", "t")}
            return where(a < 1.5, copysign(t_c, x), x - copysign(t, x));""",
        fast_derivative=f"""
            V a = abs(x); V w = exp_inline(-2.0 * a); {_tanh_cxx("a", "w", "t")}
            return t * t;""",
        fast_where="",
    ),
    native=False,
)


SPECS = (
    SWISH,
    SILU,
    QUICK_GELU,
    MISH,
    GELU,
    LISHT,
    TANHEXP,
    SERF,
    SMISH,
    LOGISH,
    ELISH,
    HARD_ELISH,
    GCU,
    MAX_X_XEXP,
    SNAKE,
    TANHSHRINK,
)
