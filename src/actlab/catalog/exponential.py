"""Exponential family: the ELU family, the softplus family, log-based and polynomial rectifiers.

Numerical notes shared by several specs:

- ``exp(x) - 1`` and ``log(1 + u)`` are written with ``expm1``/``log1p`` both in the
  implementation and in the SymPy definition (SymPy's ``sympy.codegen.cfunctions`` versions,
  printed as ``e^x - 1`` and ``log(1 + u)`` in LaTeX): ``exp(x) - 1`` cancels completely in the
  mpmath oracle for |x| < 1e-80 at any of its first precisions, so it would not be an oracle.
- A parameter that multiplies ``x`` inside an exponential tail (softplus' ``beta``, soft
  clipping's and soft exponential's ``alpha``) makes the rounding of ``beta * x`` an error
  amplified by |beta x| (e^u has condition number |u|; PyTorch's float32 softplus is 44-64 ulp
  off for beta = 3 or 0.1 because of it). ``actlab.ops.exact.scale`` returns ``beta * x`` as an unevaluated sum
  ``hi + lo`` (Dekker's exact product, including the rounding of ``beta`` itself to float32), and
  the tail is corrected to first order in ``lo``. Powers of two (1, 2, 0.5, ...) skip it.
- ``loglog(x) = exp(-e^{-x})`` has condition number |x| e^{-x} on the left: a correctly rounded
  e^{-x} is not accurate enough (exp(-exp(-x)) is 130 ulp off in float32, 480 in float64), so
  e^{-x} is computed in double-word arithmetic (``_exp_double_word``) there. Its oracle needs
  e^{-x} to |x| / log 2 extra bits, which ``exp_neg_exp`` supplies (see ``_sym``).

The double-word helpers rely on each operation being rounded separately, as written (eager
PyTorch, NumPy): a compiler that re-associated them or contracted the Veltkamp split
``t - (t - a)`` into an FMA would lose the extra precision (results would still be within a few
ulp of the plain formulas).
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction
from typing import Any

from actlab.catalog._refs import CLEVERT_ELU, GOODFELLOW_DL, KLAMBAUER_SELU, WIKIPEDIA_TABLE
from actlab.catalog.spec import Equivalent, Kernel, Kink, Param, Reference, Spec, Tolerance
from actlab.ops.exact import is_single, scale, two_prod, two_sum, veltkamp_constant

INF = math.inf
LN2 = 0.6931471805599453
SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_LAMBDA_ALPHA = 1.7580993408473768  # the double nearest to the exact product
SELU_LAMBDA_STR = "1.0507009873554804934193349852946"
SELU_ALPHA_STR = "1.6732632423543772848170429916717"

# ----------------------------------------------------------------------------- references
BARRON_CELU = Reference("Continuously Differentiable Exponential Linear Units", "Barron", 2017, arxiv="1704.07483")
BARRON_SQUAREPLUS = Reference("Squareplus: A Softplus-Like Algebraic Rectifier", "Barron", 2021, arxiv="2112.11687")
DUGAS_SOFTPLUS = Reference(
    "Incorporating Second-Order Functional Knowledge for Better Option Pricing (NIPS 13)",
    "Dugas, Bengio, Bélisle, Nadeau, Garcia",
    2001,
)
SCHUTT_SCHNET = Reference(
    "SchNet: A continuous-filter convolutional neural network for modeling quantum interactions",
    "Schütt, Kindermans, Sauceda, Chmiela, Tkatchenko, Müller",
    2017,
    arxiv="1706.08566",
)
CARLILE_ISRLU = Reference(
    "Improving Deep Learning by Inverse Square Root Linear Units (ISRLUs)",
    "Carlile, Delamarter, Kinney, Marti, Whitney",
    2017,
    arxiv="1710.09967",
)
LIU_NLRELU = Reference(
    "Natural-Logarithm-Rectified Activation Function in Convolutional Neural Networks",
    "Liu, Zhang, Gao, Qu, Ji",
    2019,
    arxiv="1908.03682",
)
TROTTIER_PELU = Reference(
    "Parametric Exponential Linear Unit for Deep Convolutional Neural Networks",
    "Trottier, Giguère, Chaib-draa",
    2017,
    arxiv="1605.09332",
)
GODFREY_SOFTEXP = Reference(
    "A continuum among logarithmic, linear, and exponential functions, and its potential to improve generalization in neural networks",
    "Godfrey, Gashler",
    2016,
    arxiv="1602.01321",
)
KLIMEK_SOFTCLIP = Reference(
    "Neural Network-Based Approach to Phase Space Integration",
    "Klimek, Perelstein",
    2020,
    arxiv="1810.11509",
)
MCCULLAGH_GLM = Reference(
    "Generalized Linear Models, 2nd ed. (complementary log-log and log-log links)", "McCullagh, Nelder", 1989
)
CHEN_MANNING_CUBE = Reference(
    "A Fast and Accurate Dependency Parser using Neural Networks",
    "Chen, Manning",
    2014,
    url="https://aclanthology.org/D14-1082",
)


# ----------------------------------------------------------------------------- SymPy helpers
_SYMPY_FUNCS: dict[str, Any] = {}
# Beyond this, e^u > 2^64900 and exp(-e^u) < 2^(-2^64900): zero (or one) in every float format,
# and more than mpmath can raise to a power; the oracle returns the limit there.
_EXP_EXP_CUTOFF = 45000


def _exp_neg_exp_mp(u: Any) -> Any:
    """exp(-e^u) in mpmath, correct to the working precision: e^u is computed with log2(e^u)
    extra bits so that its absolute error stays below the working precision."""
    from mpmath import mp

    u = mp.mpf(u)
    if mp.isnan(u):
        return u
    if u > _EXP_EXP_CUTOFF:
        return mp.zero
    with mp.extraprec(int(max(float(u), 0.0) * 1.4426950408889634) + 16):
        value = mp.exp(-mp.exp(u))
    return +value


def _cloglog_mp(u: Any) -> Any:
    """1 - exp(-e^u) in mpmath (-expm1 keeps the left tail e^u exact)."""
    from mpmath import mp

    u = mp.mpf(u)
    if mp.isnan(u):
        return u
    if u > _EXP_EXP_CUTOFF:
        return mp.one
    return -mp.expm1(-mp.exp(u))


def _sym(name: str) -> Any:
    """SymPy functions whose mpmath evaluation does not cancel, printed as the textbook formula.

    ``expm1``/``log1p`` subclass ``sympy.codegen.cfunctions`` and keep the parent's name so
    lambdify maps them to ``mpmath.expm1``/``mpmath.log1p``. ``exp_neg_exp`` (exp(-e^u)) and
    ``cloglog`` (1 - exp(-e^u)) carry their own mpmath evaluation (``_imp_``, used by lambdify):
    the composed form needs e^u to |u| / log 2 extra bits, which the oracle's fixed precision
    ladder does not give for |u| > ~3000. Built on first use: importing the catalog needs no SymPy.
    """
    if not _SYMPY_FUNCS:
        import sympy
        from sympy.codegen import cfunctions

        class expm1(cfunctions.expm1):
            def _latex(self, printer: Any, exp: Any = None) -> str:
                text = rf"\left(e^{{{printer._print(self.args[0])}}} - 1\right)"
                return text if exp is None else rf"{text}^{{{exp}}}"

        class log1p(cfunctions.log1p):
            def _latex(self, printer: Any, exp: Any = None) -> str:
                text = rf"\log\left(1 + {printer._print(self.args[0])}\right)"
                return text if exp is None else rf"{text}^{{{exp}}}"

        class exp_neg_exp(sympy.Function):
            nargs = 1
            _imp_ = staticmethod(_exp_neg_exp_mp)

            def fdiff(self, argindex: int = 1) -> Any:
                u = self.args[0]
                return -sympy.exp(u) * exp_neg_exp(u)

            def _latex(self, printer: Any, exp: Any = None) -> str:
                text = rf"e^{{-e^{{{printer._print(self.args[0])}}}}}"
                return text if exp is None else rf"\left({text}\right)^{{{exp}}}"

        class cloglog(sympy.Function):
            nargs = 1
            _imp_ = staticmethod(_cloglog_mp)

            def fdiff(self, argindex: int = 1) -> Any:
                u = self.args[0]
                return sympy.exp(u) * exp_neg_exp(u)

            def _latex(self, printer: Any, exp: Any = None) -> str:
                text = rf"1 - e^{{-e^{{{printer._print(self.args[0])}}}}}"
                return text if exp is None else rf"\left({text}\right)^{{{exp}}}"

        _SYMPY_FUNCS.update(expm1=expm1, log1p=log1p, exp_neg_exp=exp_neg_exp, cloglog=cloglog)
    return _SYMPY_FUNCS[name]


def _expm1(u: Any) -> Any:
    return _sym("expm1")(u)


def _log1p(u: Any) -> Any:
    return _sym("log1p")(u)


# ----------------------------------------------------------------------------- numeric helpers
def _to_f32(value: float) -> float:
    if abs(value) > 3.4028234663852886e38:
        return math.copysign(math.inf, value)
    return struct.unpack("f", struct.pack("f", value))[0]


# ln 2 split for Cody-Waite reduction: k * L1 is exact for |k| <= 15.
_LN2_HI = {True: 0.693145751953125, False: 0.6931471805598903}
_LN2_LO = {True: 1.4286068203094173e-06, False: 5.497923018708371e-14}
# Taylor coefficients 1/n! for n = 4..15 (the tail of e^r beyond the cubic term, |r| <= 0.35).
_EXP_TAIL = tuple(1.0 / math.factorial(n) for n in range(4, 16))


def _exp_double_word(t: Any, ops: Any) -> tuple[Any, Any]:
    """e^t as ``hi + lo`` with ``lo`` accurate to several bits more than the working precision,
    for 0 <= t <= 7 (callers clamp). Cody-Waite reduction t = k ln2 + r, |r| <= ln2/2, then
    e^r = 1 + r + r^2/2 + r^3/6 + (tail) summed with error-free transformations."""
    single = is_single(t, ops)
    s = veltkamp_constant(t, ops)
    k = ops.floor(t * 1.4426950408889634 + 0.5)  # 0 .. 10
    r1 = t - k * _LN2_HI[single]  # exact (Sterbenz)
    r, r_lo = two_sum(r1, -(k * _LN2_LO[single]))
    a, b = two_prod(r, r, s)  # r^2 = a + b
    c, d = two_prod(r, a, s)  # r * a = c + d
    c6 = c / 6.0
    p6, q6 = two_prod(c6, ops.full_like(t, 6.0), s)
    e6 = ((c - p6) - q6) / 6.0  # c / 6 = c6 + e6
    tail = _EXP_TAIL[-1]
    for coef in reversed(_EXP_TAIL[:-1]):
        tail = tail * r + coef
    tail = tail * (a * a)
    hi, e1 = two_sum(ops.ones_like(t), r)
    hi, e2 = two_sum(hi, a * 0.5)
    hi, e3 = two_sum(hi, c6)
    lo = e1 + e2 + e3 + (b * 0.5 + e6 + (d + r * b) / 6.0 + tail)
    lo = lo + r_lo * (hi + lo)
    hi, lo = two_sum(hi, lo)
    p2 = ops.floor(ops.exp(k * LN2) + 0.5)  # 2^k, exact
    return hi * p2, lo * p2


# ============================================================================= ELU family
def _elu_fwd(x, ops, alpha):
    return ops.where(x > 0, x, alpha * ops.expm1(ops.minimum(x, 0.0)))


def _elu_der(x, ops, alpha):
    xn = ops.minimum(x, 0.0)
    if alpha <= 1.0:
        return ops.where(x > 0, 1.0, alpha * ops.exp(xn))
    # alpha e^x where e^x is subnormal or 0 but the product is normal (x < -87 in float32): e^(x + log
    # alpha) there. PyTorch's alpha * exp(x) loses about log2(alpha) bits in that band (261 ulp at
    # alpha = 1e4); its rounding of x + log alpha is within the allowance |x f''/f'| = |x| > 80.
    far = ops.exp(ops.minimum(xn, -80.0) + math.log(alpha))
    return ops.where(x > 0, 1.0, ops.where(xn < -80.0, far, alpha * ops.exp(xn)))


ELU = Spec(
    name="elu",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "for alpha > 1 and x < -80, f' = e^(x + log alpha): the sum is rounded before exp, so the "
            "relative error grows as |x| = |x f''/f'|, the derivative's allowance (issue #10)"
        ),
    ),
    aliases=("exponential_linear_unit",),
    family="exponential",
    summary="Exponential linear unit: x for x > 0, alpha (e^x - 1) otherwise; saturates at -alpha.",
    params=(
        Param(
            "alpha",
            1.0,
            low=0.0,
            trainable=True,
            doc="Saturation value -alpha for x -> -inf (alpha = 0 gives ReLU).",
        ),
    ),
    definition=lambda x, sp, alpha: sp.Piecewise((x, x > 0), (alpha * _expm1(x), True)),
    forward=_elu_fwd,
    derivative=_elu_der,
    # No derivative from the output: y + alpha cancels where y is near -alpha.
    kinks=(
        Kink(
            at=lambda p: None if p["alpha"] == 1.0 else 0.0,
            grad=lambda p: p["alpha"],
            note="C^1 only for alpha = 1; elsewhere f'(0) = alpha (the left branch), as PyTorch and JAX.",
        ),
    ),
    bounds=lambda p: (-p["alpha"], INF),
    monotonic=True,
    smoothness=1,
    zero_centered=True,
    saturates=("left",),
    references=(CLEVERT_ELU,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.elu",
            "alpha=1.0; autograd gives f'(0) = alpha (left branch), as actlab.",
            names=("elu", "ELU"),
        ),
        Equivalent(
            "keras",
            "keras.activations.elu",
            "alpha=1.0 (keras.layers.ELU(alpha=1.0)); Keras 3's docstring calls alpha the 'slope of positive section', it is the negative saturation.",
            names=("elu", "ELU"),
        ),
        Equivalent("jax", "jax.nn.elu", "alpha=1.0; x > 0 ? x : alpha * expm1(x), so f'(0) = alpha.", names=("elu",)),
        Equivalent("timm", "timm.layers.get_act_fn('elu')", "maps to torch.nn.functional.elu.", names=("elu",)),
    ),
    torch_native=lambda x, torch, alpha: torch.nn.functional.elu(x, alpha=alpha),
    native=False,  # PyTorch's backward alpha * exp(x) loses log2(alpha) bits where exp(x) is subnormal
    notes="PyTorch and JAX accept any alpha; actlab requires alpha >= 0 (negative alpha is not monotone).",
    kernel=Kernel(
        forward="return where(x > 0.0, x, alpha * expm1(min(x, 0.0)));",
        # alpha e^x where e^x underflows double but the product does not (alpha > 1e30 only)
        derivative="""
            V xn = min(x, 0.0); V r = alpha * exp(xn);
            if (alpha > 1e30) r = where(xn < -700.0, exp(xn + std::log(alpha)), r);
            return where(x > 0.0, 1.0, r);""",
        # float: e^t - 1 below -log 2 (|e^t - 1| >= 1/2: at most 1 ulp more), a degree-9 Taylor polynomial
        # above (truncation 1.4e-8 relative): SLEEF's float expm1 costs ~4x its exp. The `if (alpha == 1.0)`
        # and exp before the polynomial are for GCC: without them the same body took ~2x as long (measured,
        # AVX-512: a parameter multiplying a SLEEF result behind a where() got ~0.6 ns per element slower);
        # so is the sum max(x, 0) + em1 in place of where(x > 0, x, em1) (the input blended with a value
        # computed after a SLEEF call: 1.2 against 0.56 ns per element, measured).
        fast_forward="""
            V t = min(x, 0.0);
            V e = exp_inline(t) - 1.0;
            V q = fma(fma(fma(fma(fma(fma(fma(V(2.7557319e-06f), t, V(2.4801587e-05f)), t, V(1.9841270e-04f)), t,
                  V(1.3888889e-03f)), t, V(8.3333333e-03f)), t, V(4.1666668e-02f)), t, V(0.16666667f)), t, V(0.5f));
            V em1 = where(t < -0.6931471805599453, e, fma(t * t, q, t));
            if (alpha == 1.0) return max(x, 0.0) + em1;  // em1 = 0 for x > 0: the same values as a where()
            return max(x, 0.0) + alpha * em1;""",
        fast_derivative="""
            if (alpha == 1.0) return where(x > 0.0, 1.0, exp_inline(min(x, 0.0)));
            return where(x > 0.0, 1.0, alpha * exp_inline(min(x, 0.0)));""",
        # e^x normal above -80; alpha rounded to float keeps its relative accuracy in [1e-30, 1e30]
        fast_where="(alpha == 0.0 || (alpha >= 1e-30 && alpha <= 1e30)) ? (x > -80.0) : (V(0.0f) != 0.0)",
    ),
)

SELU = Spec(
    name="selu",
    aliases=("scaled_elu",),
    family="exponential",
    summary="Scaled ELU with the self-normalizing constants lambda = 1.0507..., alpha = 1.6733....",
    definition=lambda x, sp: (
        sp.Float(SELU_LAMBDA_STR, 40) * sp.Piecewise((x, x > 0), (sp.Float(SELU_ALPHA_STR, 40) * _expm1(x), True))
    ),
    forward=lambda x, ops: ops.where(x > 0, SELU_LAMBDA * x, SELU_LAMBDA_ALPHA * ops.expm1(ops.minimum(x, 0.0))),
    derivative=lambda x, ops: ops.where(x > 0, SELU_LAMBDA, SELU_LAMBDA_ALPHA * ops.exp(ops.minimum(x, 0.0))),
    derivative_from_output=lambda y, ops: ops.where(y > 0, SELU_LAMBDA, y + SELU_LAMBDA_ALPHA),
    kinks=(
        Kink(
            at=0.0, grad=SELU_LAMBDA_ALPHA, note="f'(0-) = lambda alpha, f'(0+) = lambda; PyTorch returns lambda alpha."
        ),
    ),
    bounds=(-SELU_LAMBDA_ALPHA, INF),
    monotonic=True,
    smoothness=0,
    zero_centered=True,
    saturates=("left",),
    self_normalizing=True,
    references=(KLAMBAUER_SELU,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.selu",
            "same constants; autograd gives f'(0) = lambda alpha.",
            names=("selu", "SELU"),
        ),
        Equivalent(
            "keras",
            "keras.activations.selu",
            "same function; the docstring rounds the constants to 8 digits. Use with the lecun_normal initializer and AlphaDropout.",
            names=("selu",),
        ),
        Equivalent(
            "jax", "jax.nn.selu", "same constants (scale * elu(x, alpha)), f'(0) = lambda alpha.", names=("selu",)
        ),
        Equivalent("timm", "timm.layers.get_act_fn('selu')", "maps to torch.nn.functional.selu.", names=("selu",)),
    ),
    torch_native=lambda x, torch: torch.nn.functional.selu(x),
    native=True,
)


def _celu_fwd(x, ops, alpha):
    t = ops.minimum(x, 0.0) / alpha
    # Where x / alpha underflows (or is subnormal, alpha >> |x|), alpha expm1(x/alpha) = x to within
    # |x/alpha|/2 relative, but alpha * (rounded t) has lost t's bits: return x itself.
    small = ops.abs(t) < 2.0**-60
    return ops.where(x > 0, x, ops.where(small, x, alpha * ops.expm1(t)))


CELU = Spec(
    name="celu",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' = e^(x/alpha): x/alpha is rounded before exp, so the relative error of f' grows as |x/alpha| "
            "= |x f''/f'|; that condition number is the derivative's allowance (issue #10)"
        ),
    ),
    aliases=("continuously_differentiable_elu",),
    family="exponential",
    summary="Continuously differentiable ELU: x for x > 0, alpha (e^(x/alpha) - 1) otherwise; C^1 for every alpha.",
    params=(
        Param(
            "alpha",
            1.0,
            low=1e-3,
            high=1e4,
            trainable=True,
            doc="Saturation value -alpha and scale of the exponential. In [1e-3, 1e4]: a learnable alpha's "
            "gradient expm1(t) - t e^t (t = x/alpha) overflows float32 for tiny alpha, and for huge alpha "
            "every t is tiny, where it cancels to 0 (true t^2/2).",
        ),
    ),
    definition=lambda x, sp, alpha: sp.Piecewise((x, x > 0), (alpha * _expm1(x / alpha), True)),
    forward=lambda x, ops, alpha: _celu_fwd(x, ops, alpha),
    derivative=lambda x, ops, alpha: ops.where(x > 0, 1.0, ops.exp(ops.minimum(x, 0.0) / alpha)),
    # No derivative from the output: y / alpha + 1 cancels where y is near -alpha.
    bounds=lambda p: (-p["alpha"], INF),
    monotonic=True,
    smoothness=1,
    zero_centered=True,
    saturates=("left",),
    references=(BARRON_CELU,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.celu",
            "alpha=1.0; alpha=0 raises ZeroDivisionError, negative alpha is accepted (actlab refuses alpha <= 0). "
            "Its float64 backward uses 1/alpha rounded to float32: for alpha not a power of 2 the gradient is off "
            "by ~1e-8 relative (3.6e-7 at x = -3, alpha = 0.3), so actlab does not use the native kernel.",
            names=("celu", "CELU"),
        ),
        Equivalent("keras", "keras.activations.celu", "alpha=1.0.", names=("celu",)),
        Equivalent(
            "jax",
            "jax.nn.celu",
            "alpha=1.0; computed as max(x, 0) + alpha * expm1(min(x, 0) / alpha).",
            names=("celu",),
        ),
        Equivalent("timm", "timm.layers.get_act_fn('celu')", "maps to torch.nn.functional.celu.", names=("celu",)),
    ),
    torch_native=lambda x, torch, alpha: torch.nn.functional.celu(x, alpha=alpha),
    kernel=Kernel(
        forward="return where(x > 0.0, x, alpha * expm1(min(x, 0.0) / alpha));",
        derivative="return where(x > 0.0, 1.0, exp(min(x, 0.0) / alpha));",
        # x itself above -1e-30: there alpha expm1(x / alpha) = x (1 + x / (2 alpha)) rounds to x, and
        # x / alpha in float could be subnormal and lose bits
        fast_forward="""
            V t = min(x, 0.0);
            if (alpha != 1.0) t = t / alpha;  // expm1(t) as for elu
            V e = exp_inline(t) - 1.0;
            V q = fma(fma(fma(fma(fma(fma(fma(V(2.7557319e-06f), t, V(2.4801587e-05f)), t, V(1.9841270e-04f)), t,
                  V(1.3888889e-03f)), t, V(8.3333333e-03f)), t, V(4.1666668e-02f)), t, V(0.16666667f)), t, V(0.5f));
            V em1 = where(t < -0.6931471805599453, e, fma(t * t, q, t));
            if (alpha == 1.0) return max(x, 0.0) + em1;  // as for elu
            return where(x > -1e-30, x, alpha * em1);""",
        fast_derivative="""
            if (alpha == 1.0) return where(x > 0.0, 1.0, exp_inline(min(x, 0.0)));
            return where(x > 0.0, 1.0, exp_inline(min(x, 0.0) / alpha));""",
        fast_where="x > -80.0 * alpha",  # e^(x / alpha) stays normal
    ),
)


def _pelu_fwd(x, ops, a, b):
    t = ops.minimum(x, 0.0) / b
    # where x / b underflows (b >> |x|), a expm1(t) is (a/b) x to within |t|/2 relative: use that
    small = ops.abs(t) < 2.0**-60
    return ops.where(x > 0, (a / b) * x, ops.where(small, (a / b) * x, a * ops.expm1(t)))


def _pelu_der(x, ops, a, b):
    t = ops.minimum(x, 0.0) / b
    # (a/b) e^t where e^t is subnormal or 0 but the product is a normal number (a/b up to 1e42):
    # e^(t + log(a/b)) there; the rounding of t + log(a/b) is within f''s allowance |t| > 80.
    far = ops.exp(ops.minimum(t, -80.0) + math.log(a / b))
    return ops.where(x > 0, a / b, ops.where(t < -80.0, far, (a / b) * ops.exp(t)))


PELU = Spec(
    name="pelu",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' = (a/b) e^(x/b): x/b is rounded before exp, so the relative error of f' grows as |x/b| = |x "
            "f''/f'|; that condition number is the derivative's allowance (issue #10)"
        ),
    ),
    aliases=("parametric_elu",),
    family="exponential",
    summary="Parametric ELU with fixed a, b > 0: (a/b) x for x >= 0, a (e^(x/b) - 1) otherwise; C^1 for all a, b.",
    params=(
        Param(
            "a",
            1.0,
            low=0.0,
            low_open=True,
            high=1e4,
            trainable=True,
            doc="Saturation value -a for x -> -inf; at most 1e4, so that the positive slope a/b stays well "
            "inside float32's range for every b >= 1e-3.",
        ),
        Param(
            "b",
            1.0,
            low=1e-3,
            trainable=True,
            doc="Scale of the exponential decay; the positive slope is a/b. At least 1e-3: a learnable b's "
            "gradient -a x e^(x/b) / b^2 overflows float32 for tiny b (at b = 1.2e-38 it is NaN).",
        ),
    ),
    definition=lambda x, sp, a, b: sp.Piecewise((a / b * x, x >= 0), (a * _expm1(x / b), True)),
    forward=_pelu_fwd,
    derivative=lambda x, ops, a, b: _pelu_der(x, ops, a, b),
    # No derivative from the output: y + a cancels where y is near -a.
    bounds=lambda p: (-p["a"], INF),
    monotonic=True,
    smoothness=1,
    zero_centered=True,
    saturates=("left",),
    references=(TROTTIER_PELU,),
    notes="In the paper a and b are learned per layer; this spec fixes them (a = b = 1 is ELU).",
    kernel=Kernel(
        # (a/b) x where x / b is too small for expm1 to matter (no underflow of x / b either)
        forward="""
            V t = min(x, 0.0) / b; V lin = (a / b) * x;
            return where(x > 0.0, lin, where(abs(t) < 0x1p-60, lin, a * expm1(t)));""",
        derivative="return where(x > 0.0, a / b, (a / b) * exp(min(x, 0.0) / b));",
    ),
)


# ============================================================================= softplus family
def _softplus_definition(x, sp, beta, threshold):
    exact = _log1p(sp.exp(beta * x)) / beta
    return exact if threshold is None else sp.Piecewise((x, beta * x > threshold), (exact, True))


def _sigmoid64(t):
    return 1.0 / (1.0 + math.exp(-t)) if t >= 0 else math.exp(t) / (1.0 + math.exp(t))


def _softplus_fwd(x, ops, beta, threshold):
    y = _softplus_exact(x, ops, beta)
    if threshold is None:
        return y
    # PyTorch's rule: x itself where beta * x > threshold (NaN fails the test and stays NaN)
    return ops.where(beta * x > threshold, x, y)


def _softplus_exact(x, ops, beta):
    if beta == 1.0:
        return ops.softplus(x)
    u, du = scale(x, ops, beta)
    # softplus(u) = max(u, 0) + softplus(-|u|): the second term is the only rounding-sensitive one.
    v = -ops.abs(u)
    tail = ops.softplus(v)
    if du is not None:
        dv = ops.where(u > 0, -du, du)
        tail = tail + ops.sigmoid(v) * dv
    return ops.maximum(x, 0.0) + tail / beta


def _softplus_der(x, ops, beta, threshold):
    d = _softplus_exact_der(x, ops, beta)
    if threshold is None:
        return d
    return ops.where(beta * x > threshold, ops.ones_like(x), d)


def _softplus_exact_der(x, ops, beta):
    if beta == 1.0:
        return ops.sigmoid(x)
    u, du = scale(x, ops, beta)
    s = ops.sigmoid(u)
    if du is None:
        return s
    return s + s * ops.sigmoid(-u) * du


SOFTPLUS = Spec(
    name="softplus",
    tolerance=Tolerance(
        derivative_ulps=16,
        condition_allowance=True,
        derivative_condition_allowance=True,
        reason=(
            "beta x is rounded before the exponential: the relative error of f and f' grows as their "
            "condition numbers |x f'/f| and |x f''/f'| (about |beta x| in the tails), which are the "
            "allowances (issue #10); the derivative within 16 ulp of that (10.4 at beta = 1e4 in float32)"
        ),
    ),
    aliases=("smooth_relu",),
    family="exponential",
    summary="log(1 + e^(beta x)) / beta, a smooth ReLU; exact at every x (no linear cut-off).",
    params=(
        Param(
            "beta",
            1.0,
            low=0.0,
            low_open=True,
            high=1e4,
            doc="Sharpness; softplus(beta x) / beta -> relu(x) as beta -> inf. At most 1e4: beta x is formed "
            "as an exact two-term product, whose splitting overflows float32 for beta near 1e34.",
        ),
        Param(
            "threshold",
            None,
            nullable=True,
            doc="None (default): the exact value everywhere. A number: x itself where beta x > threshold, "
            "as PyTorch does (its default is 20), a jump of log1p(e^-threshold) / beta there.",
        ),
    ),
    definition=_softplus_definition,
    forward=_softplus_fwd,
    derivative=_softplus_der,
    # no derivative_from_output: with a threshold, y just above threshold / beta comes from both sides
    kinks=(
        Kink(
            at=lambda p: None if p["threshold"] is None else p["threshold"] / p["beta"],
            grad=lambda p: _sigmoid64(p["threshold"]),
            note="PyTorch: the jump point belongs to the exact side (x itself only where beta x > threshold)",
        ),
    ),
    bounds=(0.0, INF),
    monotonic=True,
    smoothness=INF,
    saturates=("left",),
    references=(DUGAS_SOFTPLUS,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.softplus",
            "beta=1, threshold=20: returns x where beta x > threshold, a jump of about e^-20 = 2e-9 "
            "(invisible in float32, ~6e5 ulp in float64 at x = 20); actlab's default (threshold=None) is "
            "exact everywhere, and torch:softplus / an explicit threshold gives PyTorch's rule.",
            names=("softplus", "Softplus"),
            params={"threshold": 20.0},
        ),
        Equivalent("keras", "keras.activations.softplus", "no beta or threshold.", names=("softplus",)),
        Equivalent("jax", "jax.nn.softplus", "logaddexp(x, 0); no beta or threshold.", names=("softplus",)),
    ),
    # threshold=None has no PyTorch counterpart: PyTorch's own default (20) is what its users get
    torch_native=lambda x, torch, beta, threshold: torch.nn.functional.softplus(
        x, beta=beta, threshold=20.0 if threshold is None else threshold
    ),
    notes="threshold=None (the default) is exact everywhere; an explicit threshold switches to x where "
    "beta x > threshold exactly as PyTorch does (softplus(beta=3, threshold=0.2) is 0.1 at x = 0.1). "
    "Properties are for the default.",
    kernel=Kernel(
        # softplus(u) / beta = max(x, 0) + log1p(e^-|u|) / beta, u = beta x (double: exact to 2^-53)
        forward="""
            V u = beta * x; V y = max(x, 0.0) + log1p(exp(-abs(u))) / beta;
            return threshold_is_none ? y : where(u > threshold, x, y);""",
        derivative="""
            V u = beta * x; V e = exp(-abs(u)); V d = 1.0 / (1.0 + e);
            V s = where(u >= 0.0, d, e * d);
            return threshold_is_none ? s : where(u > threshold, 1.0, s);""",
        # float: log1p_unit (csrc/actlab_kernels.h) in place of SLEEF's log1p, half its cost
        fast_forward="return max(x, 0.0) + log1p_unit(exp(-abs(x)));",
        fast_derivative="V e = exp(-abs(x)); V d = 1.0 / (1.0 + e); return where(x >= 0.0, d, e * d);",
        # float only for beta = 1 (beta x exact) without a threshold; e^x normal above -80
        fast_where="(beta == 1.0 && threshold_is_none) ? (x > -80.0) : (V(0.0f) != 0.0)",
    ),
)

LOG_SIGMOID = Spec(
    name="log_sigmoid",
    aliases=("logsigmoid", "log_logistic"),
    family="exponential",
    summary="log(sigmoid(x)) = -softplus(-x); output in (-inf, 0).",
    definition=lambda x, sp: -_log1p(sp.exp(-x)),
    forward=lambda x, ops: ops.log_sigmoid(x),
    derivative=lambda x, ops: ops.sigmoid(-x),
    derivative_from_output=lambda y, ops: -ops.expm1(y),
    bounds=(-INF, 0.0),
    monotonic=True,
    smoothness=INF,
    saturates=("right",),
    references=(GOODFELLOW_DL,),
    equivalents=(
        Equivalent("pytorch", "torch.nn.functional.logsigmoid", names=("logsigmoid", "LogSigmoid")),
        Equivalent("keras", "keras.activations.log_sigmoid", names=("log_sigmoid",)),
        Equivalent("jax", "jax.nn.log_sigmoid", "computed as -softplus(-x).", names=("log_sigmoid",)),
    ),
    torch_native=lambda x, torch: torch.nn.functional.logsigmoid(x),
    native=True,
)

EXPONENTIAL = Spec(
    name="exponential",
    aliases=("exp",),
    family="exponential",
    summary="e^x; overflows to inf above log(max float) (~88.7 in float32), the correctly rounded result.",
    definition=lambda x, sp: sp.exp(x),
    forward=lambda x, ops: ops.exp(x),
    derivative=lambda x, ops: ops.exp(x),
    derivative_from_output=lambda y, ops: y,
    bounds=(0.0, INF),
    monotonic=True,
    smoothness=INF,
    saturates=("left",),
    references=(WIKIPEDIA_TABLE,),
    equivalents=(
        Equivalent("pytorch", "torch.exp"),
        Equivalent("keras", "keras.activations.exponential", names=("exponential",)),
        Equivalent("jax", "jax.numpy.exp"),
    ),
    torch_native=lambda x, torch: torch.exp(x),
    native=True,
)


def _shifted_softplus_fwd(x, ops):
    near = ops.log1p(ops.expm1(ops.minimum(x, 2.0)) * 0.5)  # log((1 + e^x) / 2), no cancellation at 0
    return ops.where(x <= 2.0, near, ops.softplus(x) - LN2)


SHIFTED_SOFTPLUS = Spec(
    name="shifted_softplus",
    aliases=("ssp",),
    family="exponential",
    summary="softplus(x) - log 2 (SchNet): zero at 0, output in (-log 2, inf).",
    definition=lambda x, sp: _log1p(_expm1(x) / 2),
    forward=_shifted_softplus_fwd,
    derivative=lambda x, ops: ops.sigmoid(x),
    # No derivative from the output: y + log 2 cancels in the left tail.
    bounds=(-LN2, INF),
    monotonic=True,
    smoothness=INF,
    zero_centered=True,
    saturates=("left",),
    references=(SCHUTT_SCHNET,),
    notes="SchNetPack computes softplus(x) - log(2), which cancels near 0; actlab uses log1p(expm1(x) / 2) there.",
    kernel=Kernel(
        forward="""
            V xc = max(x, 2.0);
            V far = (xc - 0.69314718055994530942) + log1p(exp(-xc));
            return where(x <= 2.0, log1p(0.5 * expm1(min(x, 2.0))), far);""",
        derivative="V e = exp(-abs(x)); V d = 1.0 / (1.0 + e); return where(x >= 0.0, d, e * d);",
        # float: log1p(expm1(x) / 2) alone up to 80 (expm1's rounding moves the log by < 1/log(e^x/2) ulp);
        # expm1 as elu's float form has it (e^x - 1 beyond log 2, Taylor within), SLEEF's costs ~4x exp
        fast_forward="""
            V t = x; V e = exp_inline(x) - 1.0;
            V q = fma(fma(fma(fma(fma(fma(fma(V(2.7557319e-06f), t, V(2.4801587e-05f)), t, V(1.9841270e-04f)), t,
                  V(1.3888889e-03f)), t, V(8.3333333e-03f)), t, V(4.1666668e-02f)), t, V(0.16666667f)), t, V(0.5f));
            return log1p(0.5 * where(abs(x) < 0.6931471805599453, fma(t * t, q, t), e));""",
        fast_derivative="V e = exp_inline(-abs(x)); V d = 1.0 / (1.0 + e); return where(x >= 0.0, d, e * d);",
        fast_where="(x > -80.0) & (x < 80.0)",
    ),
)


# ============================================================================= rectifiers
def _sparse_plus_fwd(x, ops):
    mid = ops.square(x + 1.0) * 0.25
    return ops.where(x <= -1.0, 0.0, ops.where(x >= 1.0, x, mid))


def _sparse_plus_from_output(y, ops):
    ys = ops.where(y > 0, y, 1.0)  # sqrt'(0) is infinite: keep 0 out of the graph (double backward)
    return ops.where(y > 0, ops.minimum(ops.sqrt(ys), 1.0), ops.where(y <= 0, 0.0, y))  # (x + 1) / 2 = sqrt(y)


SPARSE_PLUS = Spec(
    name="sparse_plus",
    aliases=("sparseplus",),
    family="exponential",
    summary="0 for x <= -1, (x + 1)^2 / 4 for |x| < 1, x for x >= 1: a C^1 softplus with exact zeros.",
    definition=lambda x, sp: sp.Piecewise((0, x <= -1), ((x + 1) ** 2 / 4, x < 1), (x, True)),
    forward=_sparse_plus_fwd,
    derivative=lambda x, ops: ops.clip((x + 1.0) * 0.5, 0.0, 1.0),
    derivative_from_output=_sparse_plus_from_output,
    bounds=(0.0, INF),
    monotonic=True,
    smoothness=1,
    saturates=("left",),
    references=(
        Reference(
            "Learning with Fenchel-Young Losses (sparse plus / sparse sigmoid, sec. 6.2)",
            "Blondel, Martins, Niculae",
            2019,
            arxiv="1901.02324",
        ),
    ),
    equivalents=(
        Equivalent("keras", "keras.activations.sparse_plus", names=("sparse_plus",)),
        Equivalent("jax", "jax.nn.sparse_plus", names=("sparse_plus",)),
    ),
    notes="The derivative is JAX's sparse_sigmoid, 0.5 * clip(x + 1, 0, 2).",
    kernel=Kernel(
        forward="return where(x <= -1.0, 0.0, where(x >= 1.0, x, square(x + 1.0) * 0.25));",
        derivative="return min(max((x + 1.0) * 0.5, 0.0), 1.0);",
        fast_forward="return where(x <= -1.0, 0.0, where(x >= 1.0, x, square(x + 1.0) * 0.25));",
        fast_derivative="return min(max((x + 1.0) * 0.5, 0.0), 1.0);",
        fast_where="",
    ),
)


def _squareplus_fwd(x, ops, b):
    if b == 0:
        return ops.maximum(x, 0.0)  # relu (NaN propagates)
    s = math.sqrt(b)
    xp = ops.maximum(x, 0.0)
    xn = ops.minimum(x, 0.0)
    pos = xp * 0.5 + ops.hypot(xp, ops.full_like(x, s)) * 0.5  # halves first: x + h overflows near the max
    neg = s * (s / (ops.hypot(xn, ops.full_like(x, s)) - xn)) * 0.5  # b / (2 (sqrt(x^2 + b) - x)): no cancellation
    return ops.where(x >= 0, pos, neg)


def _squareplus_der(x, ops, b):
    if b == 0:
        return ops.where(x > 0, 1.0, ops.where(x <= 0, 0.0, x))  # relu'(0) = 0, NaN stays NaN
    s = math.sqrt(b)
    xp = ops.where(x > 0, x, 1.0)
    xn = ops.minimum(x, 0.0)
    pos = (1.0 + 1.0 / ops.hypot(ops.ones_like(x), s / xp)) * 0.5  # (1 + x / h) / 2 for x > 0
    h = ops.hypot(xn, ops.full_like(x, s))
    neg = (s / h) * (s / (h - xn)) * 0.5  # (1 + x / h) / 2 = b / (2 h (h - x)) for x <= 0
    return ops.where(x > 0, pos, neg)


def _squareplus_from_output(y, ops, b):
    if b == 0:
        return ops.where(y > 0, 1.0, 0.0)
    return 1.0 / (1.0 + (b * 0.25) / (y * y))  # f' = y^2 / (y^2 + b/4)


SQUAREPLUS = Spec(
    name="squareplus",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' = (1 + x / sqrt(x^2 + b)) / 2 is a difference for x << -sqrt(b): its allowance is its "
            "condition number |x f''/f'| (issue #10)"
        ),
    ),
    aliases=("square_plus",),
    family="exponential",
    summary="(x + sqrt(x^2 + b)) / 2, an algebraic softplus; b = 0 is ReLU.",
    params=(Param("b", 4.0, low=0.0, doc="Size of the curved region around 0 (b >= 0; b = 0 gives ReLU)."),),
    definition=lambda x, sp, b: (x + sp.sqrt(x**2 + b)) / 2,
    forward=_squareplus_fwd,
    derivative=_squareplus_der,
    derivative_from_output=_squareplus_from_output,
    kinks=(Kink(at=lambda p: 0.0 if p["b"] == 0 else None, grad=0.0, note="only for b = 0 (ReLU); relu'(0) = 0."),),
    bounds=(0.0, INF),
    monotonic=True,
    smoothness=INF,
    saturates=("left",),
    references=(BARRON_SQUAREPLUS,),
    equivalents=(
        Equivalent(
            "jax",
            "jax.nn.squareplus",
            "b=4; computes (x + sqrt(x^2 + b)) / 2 literally: cancels for x << 0 (float32 returns 0 "
            "instead of 1e-4 at x = -1e4) and x^2 overflows for |x| > 1.8e19.",
            names=("squareplus",),
        ),
        Equivalent(
            "keras",
            "keras.activations.squareplus",
            "b=4; same literal formula as JAX (same cancellation); its docstring credits 'Ramachandran et al., 2021' but the paper is Barron's.",
            names=("squareplus",),
        ),
    ),
    kernel=Kernel(
        # x < 0: b / (2 (h - x)), h = sqrt(x^2 + b), without the cancellation of x + h
        forward="""
            if (b == 0.0) return max(x, 0.0);
            V h = sqrt(x * x + b);
            return where(x >= 0.0, 0.5 * (x + h), (0.5 * b) / (h - x));""",
        # f' = (1 + x / h) / 2: x / h = 1 / sqrt(1 + b / x^2) for x > 0 (finite at inf), b / (2 h (h - x)) else
        derivative="""
            if (b == 0.0) return where(x > 0.0, 1.0, where(x <= 0.0, 0.0, x));
            V h = sqrt(x * x + b);
            return where(x > 0.0, 0.5 + 0.5 / sqrt(1.0 + b / (x * x)), (0.5 * b) / (h * (h - x)));""",
        fast_forward="""
            if (b == 0.0) return max(x, 0.0);
            V h = sqrt(fma(x, x, V(static_cast<float>(b))));
            return where(x >= 0.0, 0.5 * (x + h), (0.5 * b) / (h - x));""",
        fast_derivative="""
            if (b == 0.0) return where(x > 0.0, 1.0, 0.0);
            V h = sqrt(fma(x, x, V(static_cast<float>(b))));
            return where(x > 0.0, 0.5 + 0.5 * (x / h), (0.5 * b) / (h * (h - x)));""",
        # x^2 + b and h (h - x) finite in float; b keeps its relative accuracy as a float
        fast_where="(b == 0.0 || (b >= 1e-30 && b <= 1e30)) ? (abs(x) < 1e15) : (V(0.0f) != 0.0)",
    ),
)


def _isrlu_fwd(x, ops, alpha):
    s = math.sqrt(alpha)
    xn = ops.minimum(x, 0.0)
    t = s * xn
    one = ops.ones_like(x)
    small = xn / ops.hypot(one, t)  # -1 <= t <= 0
    tb = ops.where(t < -1.0, t, -1.0)
    large = -1.0 / (s * ops.hypot(one, 1.0 / tb))  # t < -1, finite at t = -inf
    return ops.where(x >= 0, x, ops.where(t < -1.0, large, small))


def _isrlu_der(x, ops, alpha):
    q = 1.0 / ops.hypot(ops.ones_like(x), math.sqrt(alpha) * ops.minimum(x, 0.0))
    return ops.where(x >= 0, 1.0, q * q * q)


ISRLU = Spec(
    name="isrlu",
    aliases=("inverse_square_root_linear_unit",),
    family="exponential",
    summary="x for x >= 0, x / sqrt(1 + alpha x^2) otherwise; an algebraic ELU, C^2, saturating at -1/sqrt(alpha).",
    params=(Param("alpha", 1.0, low=0.0, low_open=True, doc="Negative saturation is -1/sqrt(alpha)."),),
    definition=lambda x, sp, alpha: sp.Piecewise((x, x >= 0), (x / sp.sqrt(1 + alpha * x**2), True)),
    forward=_isrlu_fwd,
    derivative=_isrlu_der,
    # No derivative from the output (_isrlu_from_output cancels in the left tail).
    bounds=lambda p: (-1.0 / math.sqrt(p["alpha"]), INF),
    monotonic=True,
    smoothness=2,
    zero_centered=True,
    saturates=("left",),
    references=(CARLILE_ISRLU,),
    kernel=Kernel(
        # t = sqrt(alpha) x; for t < -1, x / sqrt(1 + t^2) = -1 / (sqrt(alpha) sqrt(1 + 1/t^2)) (finite at -inf)
        forward="""
            const double s = std::sqrt(alpha);
            V xn = min(x, 0.0); V t = s * xn; V tb = where(t < -1.0, t, -1.0);
            V large = -1.0 / (s * sqrt(1.0 + 1.0 / (tb * tb)));
            return where(x >= 0.0, x, where(t < -1.0, large, xn / sqrt(1.0 + t * t)));""",
        derivative="""
            V t = std::sqrt(alpha) * min(x, 0.0); V q = 1.0 / sqrt(1.0 + t * t);
            return where(x >= 0.0, 1.0, q * q * q);""",
    ),
)


def _nlrelu_fwd(x, ops, beta):
    xp = ops.maximum(x, 0.0)
    u = xp * beta
    large = u > 2.0**60  # log1p(u) = log(u) to working precision; also where beta x overflows
    xl = ops.where(large, xp, 1.0)
    return ops.where(large, math.log(beta) + ops.log(xl), ops.log1p(u))


NLRELU = Spec(
    name="nlrelu",
    aliases=("natural_log_relu",),
    family="exponential",
    summary="log(1 + beta max(0, x)): ReLU compressed logarithmically.",
    params=(Param("beta", 1.0, low=0.0, low_open=True, doc="Slope at 0+ (f'(0+) = beta)."),),
    definition=lambda x, sp, beta: sp.Piecewise((_log1p(beta * x), x > 0), (0, True)),
    forward=_nlrelu_fwd,
    derivative=lambda x, ops, beta: ops.where(x > 0, 1.0 / (1.0 / beta + ops.maximum(x, 0.0)), 0.0),
    # No derivative from the output: where beta x underflows, y = 0 and beta e^-y would say f' = 0.
    kinks=(Kink(at=0.0, grad=0.0, note="f'(0-) = 0, f'(0+) = beta; 0 is returned, as relu'(0) in PyTorch."),),
    bounds=(0.0, INF),
    monotonic=True,
    smoothness=0,
    saturates=("left", "right"),
    references=(LIU_NLRELU,),
    kernel=Kernel(
        # log(beta) + log(x) only where beta x overflows double
        forward="""
            V xp = max(x, 0.0); V u = beta * xp; V big = u > 1e300;
            return where(big, std::log(beta) + log(where(big, xp, 1.0)), log1p(u));""",
        derivative="return where(x > 0.0, 1.0 / (1.0 / beta + max(x, 0.0)), where(x <= 0.0, 0.0, x));",
    ),
)


# ============================================================================= soft exponential
def _pair(value: Fraction, single: bool) -> tuple[float, float]:
    """An exact rational as hi + lo in the working precision."""
    hi = _to_f32(float(value)) if single else float(value)
    return hi, float(value - Fraction(hi))


def _softexp_log_args(x, ops, g):
    """For alpha = -g < 0: u = g (x - g) and w = 1 + u, each to about one rounding of its own
    value, so that neither the root (u -> 0) nor the domain boundary (w -> 0) loses digits to
    the rounding of g x, g^2 or 1 - g^2 (all exact for g = 1: w = x)."""
    single = is_single(x, ops)
    g2 = Fraction(g) ** 2
    g2h, g2l = _pair(g2, single)
    bh, bl = _pair(1 - g2, single)
    hi, lo = scale(x, ops, g)
    if lo is None:
        lo = 0.0
    u = (hi - g2h) + (lo - g2l)
    w = (hi + bh) + (lo + bl)
    return u, w


def _softexp_fwd(x, ops, alpha):
    if alpha == 0:
        return x * 1.0
    if alpha > 0:
        a2 = alpha * alpha
        u, du = scale(x, ops, alpha)  # e^u has condition number |u|: keep the rounding of alpha x
        un = ops.maximum(u, -LN2)
        uf = ops.minimum(u, -LN2)
        em1 = ops.expm1(un)
        ef = ops.exp(uf)
        if du is not None:  # first order in du; an overflowed e^u stays inf
            em1 = ops.where(ops.isfinite(em1), em1 + (em1 + 1.0) * du, em1)
            ef = ef + ef * du
        near = (em1 + a2) / alpha  # e^u >= 1/2: no loss in expm1
        far = (ef - (1.0 - a2)) / alpha  # e^u < 1/2: exact tail (alpha = 1: e^x)
        return ops.where(u > -LN2, near, far)
    g = -alpha
    u, w = _softexp_log_args(x, ops, g)
    big = ops.where(w > 0, w, 1.0)
    # log1p(u) near the root (w ~ 1), log(w) near the domain boundary w -> 0; NaN outside (w < 0)
    return ops.where(ops.abs(u) < 0.5, ops.log1p(u), ops.where(w > 0, ops.log(big), ops.log1p(u))) / g


def _softexp_der(x, ops, alpha):
    if alpha == 0:
        return ops.ones_like(x)
    if alpha > 0:
        u, du = scale(x, ops, alpha)
        e = ops.exp(u)
        return e if du is None else ops.where(ops.isfinite(e), e + e * du, e)
    _, w = _softexp_log_args(x, ops, -alpha)
    return ops.where(w >= 0, 1.0 / w, math.nan)


def _softexp_def(x, sp, alpha):
    if float(alpha) == 0.0:  # SymPy: Float(0.0) == 0 is False
        return x
    if float(alpha) > 0.0:
        # = (e^(alpha x) - 1)/alpha + alpha, written so that the tail is exact at alpha = 1 (e^x)
        return (sp.exp(alpha * x) - (1 - alpha**2)) / alpha
    return -_log1p(-alpha * (x + alpha)) / alpha


def _softexp_bounds(p):
    a = p["alpha"]
    return (a - 1.0 / a, INF) if a > 0 else (-INF, INF)


SOFT_EXPONENTIAL = Spec(
    name="soft_exponential",
    aliases=("softexp",),
    family="exponential",
    summary="Godfrey-Gashler soft exponential with fixed alpha in [-1, 1]: log-like (alpha < 0), identity (0), exp-like (alpha > 0).",
    params=(
        Param(
            "alpha",
            0.0,
            low=-1.0,
            high=1.0,
            trainable=True,
            doc="alpha < 0: -log(1 - alpha (x + alpha)) / alpha, defined only for x > 1/alpha - alpha; "
            "alpha = 0: x; alpha > 0: (e^(alpha x) - 1) / alpha + alpha. Default 0, the usual initialisation.",
        ),
    ),
    definition=_softexp_def,
    forward=_softexp_fwd,
    derivative=_softexp_der,
    bounds=_softexp_bounds,
    monotonic=True,
    smoothness=INF,
    zero_centered=True,
    references=(GODFREY_SOFTEXP,),
    tolerance=Tolerance(
        condition_allowance=True,
        reason="for alpha != 0 the function has a non-trivial root (x = log(1 - alpha^2)/alpha for alpha > 0, "
        "x = -alpha for alpha < 0) where no implementation keeps a bounded relative error; "
        "at the default alpha = 0 (identity) the allowance never applies.",
    ),
    notes="For alpha < 0 the function is undefined (NaN) for x <= 1/alpha - alpha (log of a non-positive "
    "number); Spec.domain cannot depend on parameters, so the default alpha = 0 keeps the whole line. "
    "In the paper alpha is trained per unit; here it is fixed.",
    kernel=Kernel(
        # alpha > 0: (expm1(u) + alpha^2) / alpha where e^u >= 1/2, (e^u - (1 - alpha^2)) / alpha below
        # (exact tail at alpha = 1), u = alpha x. alpha = -g < 0: log1p(u) / g near the root, u = g x - g^2
        # from an exact product (g x = ph + pl) and g^2 = g2h + g2l, and log(w) / g, w = 1 + u, elsewhere.
        forward="""
            if (alpha == 0.0) return x;
            if (alpha > 0.0) {
              const double a2 = alpha * alpha;
              V u = alpha * x;
              V near_ = (expm1(max(u, -0.69314718055994530942)) + a2) / alpha;
              V far_ = (exp(min(u, -0.69314718055994530942)) - (1.0 - a2)) / alpha;
              return where(u > -0.69314718055994530942, near_, far_);
            }
            const double g = -alpha, g2h = g * g, g2l = std::fma(g, g, -g2h);
            V ph, pl; two_prod(V(g), x, ph, pl);
            V u = (ph - g2h) + (pl - g2l); V w = (ph + (1.0 - g2h)) + (pl - g2l);
            return where(x == inf, inf, where(abs(u) < 0.5, log1p(u), log(w)) / g);""",
        derivative="""
            if (alpha == 0.0) return where(x != x, x, 1.0);
            if (alpha > 0.0) return exp(alpha * x);
            const double g = -alpha, g2h = g * g, g2l = std::fma(g, g, -g2h);
            V ph, pl; two_prod(V(g), x, ph, pl);
            V w = (ph + (1.0 - g2h)) + (pl - g2l);
            return where(x == inf, 0.0, where(w >= 0.0, 1.0 / w, std::nan("")));""",
        fast_forward="return x;",
        fast_derivative="return V(1.0f);",
        fast_where="alpha == 0.0 ? (x == x) : (V(0.0f) != 0.0)",  # the identity (the default)
    ),
)


# ============================================================================= bounded ones
def _softclip_half(x, ops, alpha, correct):
    """g(x) = log(1 + c e^(alpha x) / (1 + e^(alpha x - alpha))) / alpha for x <= 1/2 (no overflow
    of e^(alpha x); e^(-alpha x) may overflow to inf, giving w = 0 where g underflows anyway)."""
    c = -math.expm1(-alpha)
    ea = math.exp(-alpha)
    u, du = scale(x, ops, alpha)
    d = ops.exp(-u) + ea
    w = c / d  # = c e^u / (1 + e^u ea)
    if correct and du is not None:
        w = w + w * du / (1.0 + ea * ops.exp(u))  # first order in du: d log w / du = 1 / (1 + e^u ea)
    return ops.log1p(w) / alpha


def _softclip_fwd(x, ops, alpha):
    lo = _softclip_half(ops.minimum(x, 0.5), ops, alpha, True)
    hi = 1.0 - _softclip_half(ops.minimum(1.0 - x, 0.5), ops, alpha, True)  # f(x) = 1 - f(1 - x)
    return ops.where(x <= 0.5, lo, hi)


def _softclip_der_half(x, ops, alpha):
    c = -math.expm1(-alpha)
    ea = math.exp(-alpha)
    e = ops.exp(alpha * x)
    return c * e / ((1.0 + e) * (1.0 + e * ea))  # sigmoid(alpha x) - sigmoid(alpha (x - 1))


def _softclip_der(x, ops, alpha):
    left = _softclip_der_half(ops.minimum(x, 0.5), ops, alpha)
    right = _softclip_der_half(ops.minimum(1.0 - x, 0.5), ops, alpha)  # f'(x) = f'(1 - x)
    return ops.where(x <= 0.5, left, right)


def _softclip_def(x, sp, alpha):
    # (1/alpha) log((1 + e^(alpha x)) / (1 + e^(alpha (x - 1)))), written as g(x) for x <= 1/2 and
    # 1 - g(1 - x) above (the function is symmetric) so that neither the value nor SymPy's
    # derivative subtracts two nearly equal numbers (sigmoid(alpha x) - sigmoid(alpha (x - 1))).
    def g(z):
        return _log1p((1 - sp.exp(-alpha)) * sp.exp(alpha * z) / (1 + sp.exp(alpha * (z - 1)))) / alpha

    return sp.Piecewise((g(x), x <= sp.Rational(1, 2)), (1 - g(1 - x), True))


SOFT_CLIPPING = Spec(
    name="soft_clipping",
    tolerance=Tolerance(
        condition_allowance=True,
        derivative_condition_allowance=True,
        reason=(
            "alpha x and alpha (x - 1) are rounded before the exponentials: the relative errors of f and f' "
            "grow as their condition numbers |x f'/f| and |x f''/f'|, which are the allowances (issue #10)"
        ),
    ),
    aliases=("softclip", "soft_clip"),
    family="exponential",
    summary="(1/alpha) log((1 + e^(alpha x)) / (1 + e^(alpha (x - 1)))): a smooth clip of x to [0, 1].",
    params=(
        Param(
            "alpha",
            0.5,
            low=0.0,
            low_open=True,
            high=100.0,
            doc="Sharpness; alpha -> inf gives clip(x, 0, 1). At most 100: the derivative takes e^(alpha x) "
            "for x <= 1/2, which overflows float32 beyond alpha = 2 log(3.4e38) = 177.",
        ),
    ),
    definition=_softclip_def,
    formula=r"\frac{1}{\alpha} \log \frac{1 + e^{\alpha x}}{1 + e^{\alpha (x - 1)}}",
    forward=_softclip_fwd,
    derivative=_softclip_der,
    bounds=(0.0, 1.0),
    monotonic=True,
    smoothness=INF,
    saturates=("left", "right"),
    references=(KLIMEK_SOFTCLIP,),
    notes="Symmetric: f(x) + f(1 - x) = 1. Default alpha = 0.5 as in the Echo activation library; "
    "the paper leaves alpha as a hyperparameter.",
    kernel=Kernel(
        # f(x) = g(z) for x <= 1/2 and 1 - g(z) above, z = min(x, 1 - x) (f(x) + f(1 - x) = 1), with
        # g(z) = log1p(c / (e^(-alpha z) + e^-alpha)) / alpha, c = 1 - e^-alpha; f'(x) = g'(z)
        forward="""
            const double c = -std::expm1(-alpha), ea = std::exp(-alpha);
            V z = where(x <= 0.5, x, 1.0 - x);
            V g = log1p(c / (exp(-alpha * z) + ea)) / alpha;
            return where(x <= 0.5, g, 1.0 - g);""",
        derivative="""
            const double c = -std::expm1(-alpha), ea = std::exp(-alpha);
            V e = exp(alpha * where(x <= 0.5, x, 1.0 - x));
            return c * e / ((1.0 + e) * (1.0 + e * ea));""",
    ),
)


def _bent_fwd(x, ops):
    h = ops.hypot(x, ops.ones_like(x))
    small = x + x * (x / (h + 1.0)) * 0.5  # |x| <= 1: (h - 1)/2 = x^2 / (2 (h + 1))
    neg = (1.0 / (h - x) + x - 1.0) * 0.5  # x < -1: h + x = 1 / (h - x)
    pos = (h - 1.0) * 0.5 + x
    return ops.where(x < -1.0, neg, ops.where(x > 1.0, pos, small))


def _bent_der(x, ops):
    ax = ops.abs(x)
    h = ops.hypot(x, ops.ones_like(x))
    xb = ops.where(ax > 1.0, x, 1.0)
    ratio = ops.where(ax > 1.0, ops.sign(x) / ops.hypot(ops.ones_like(x), 1.0 / xb), x / h)  # x / h
    return 1.0 + ratio * 0.5


BENT_IDENTITY = Spec(
    name="bent_identity",
    aliases=("bentidentity",),
    family="exponential",
    summary="(sqrt(x^2 + 1) - 1)/2 + x: identity bent upward; slopes 1/2 (left) to 3/2 (right).",
    # (sqrt(x^2 + 1) - 1)/2 + x without cancellation (SymPy would reorder the textbook form into
    # x + sqrt(x^2 + 1)/2 - 1/2, which loses x entirely in mpmath for |x| < 1e-80)
    definition=lambda x, sp: x + x**2 / (2 * (sp.sqrt(x**2 + 1) + 1)),
    formula=r"\frac{\sqrt{x^2 + 1} - 1}{2} + x",
    forward=_bent_fwd,
    derivative=_bent_der,
    bounds=(-INF, INF),
    monotonic=True,
    smoothness=INF,
    zero_centered=True,
    references=(WIKIPEDIA_TABLE,),
    kernel=Kernel(
        # (h - 1)/2 + x, h = sqrt(x^2 + 1): x^2 / (2 (h + 1)) for |x| <= 1, and h + x = 1 / (h - x) for x < -1
        forward="""
            V h = sqrt(x * x + 1.0);
            V small = x + x * (x / (h + 1.0)) * 0.5;
            V neg = (1.0 / (h - x) + x - 1.0) * 0.5;
            return where(x < -1.0, neg, where(x > 1.0, (h - 1.0) * 0.5 + x, small));""",
        derivative="""
            V r = where(abs(x) == inf, where(x > 0.0, 1.0, -1.0), x / sqrt(x * x + 1.0));
            return 1.0 + 0.5 * r;""",
        fast_forward="""
            V h = sqrt(fma(x, x, V(1.0f)));
            V small = x + x * (x / (h + 1.0)) * 0.5;
            V neg = (1.0 / (h - x) + x - 1.0) * 0.5;
            return where(x < -1.0, neg, where(x > 1.0, (h - 1.0) * 0.5 + x, small));""",
        fast_derivative="return 1.0 + 0.5 * (x / sqrt(fma(x, x, V(1.0f))));",
        fast_where="abs(x) < 1e18",
    ),
)


def _cloglog_der(x, ops):
    e = ops.exp(ops.minimum(x, 10.0))  # f' = e^x exp(-e^x) underflows to 0 beyond x = 10 (float64: e^10 exp(-e^10) = 0)
    return e * ops.exp(-e)


CLOGLOG = Spec(
    name="cloglog",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' = e^(x - e^x): the exponent is rounded at the scale of e^x, so in the tail the relative error "
            "grows as |x f''/f'| = |x (1 - e^x)|; that condition number is the derivative's allowance (issue #10)"
        ),
    ),
    aliases=("complementary_log_log",),
    family="exponential",
    summary="1 - exp(-e^x), the complementary log-log (Gompertz) curve; output in (0, 1), asymmetric.",
    definition=lambda x, sp: _sym("cloglog")(x),
    forward=lambda x, ops: -ops.expm1(-ops.exp(ops.minimum(x, 80.0))),  # = 1 beyond 80 (and no overflow)
    derivative=_cloglog_der,
    bounds=(0.0, 1.0),
    monotonic=True,
    smoothness=INF,
    saturates=("left", "right"),
    references=(MCCULLAGH_GLM,),
    notes="The inverse of the complementary log-log link of generalized linear models.",
    kernel=Kernel(
        forward="return -expm1(-exp(min(x, 80.0)));",
        derivative="V e = exp(min(x, 10.0)); return e * exp(-e);",
        # float: expm1(t), t = -e^x, as elu's float form (SLEEF's float expm1 costs ~4x its exp)
        fast_forward="""
            V t = V(0.0f) - exp(x);
            V e = exp(t) - 1.0;
            V q = fma(fma(fma(fma(fma(fma(fma(V(2.7557319e-06f), t, V(2.4801587e-05f)), t, V(1.9841270e-04f)), t,
                  V(1.3888889e-03f)), t, V(8.3333333e-03f)), t, V(4.1666668e-02f)), t, V(0.16666667f)), t, V(0.5f));
            return V(0.0f) - where(t < -0.6931471805599453, e, fma(t * t, q, t));""",
        # the rounding of e^x moves e^-e by e^x ulp, within f''s allowance |x (1 - e^x)| above ~1
        fast_derivative="V e = exp(x); return e * exp(-e);",
        fast_where="(x > -80.0) & (x < 4.0)",  # e^x and e^-e^x stay normal
    ),
)


def _loglog_fwd(x, ops):
    t = -x
    plain = ops.exp(-ops.exp(ops.minimum(t, 80.0)))  # fine where e^t <= 1 and where the result underflows
    tc = ops.clip(t, 0.0, 7.0)
    e_hi, e_lo = _exp_double_word(tc, ops)
    base = ops.exp(-e_hi)
    precise = base + base * ops.expm1(-e_lo)
    return ops.where((t >= 0.0) & (t <= 7.0), precise, plain)


def _loglog_der(x, ops):
    e = ops.exp(ops.minimum(-x, 10.0))
    return e * ops.exp(-e)


LOGLOG = Spec(
    name="loglog",
    tolerance=Tolerance(
        derivative_condition_allowance=True,
        reason=(
            "f' = e^(-x - e^-x): the exponent is rounded at the scale of e^-x, so in the tail the relative error "
            "grows as |x f''/f'| = |x (1 - e^-x)|; that condition number is the derivative's allowance (issue "
            "#10)"
        ),
    ),
    aliases=("log_log", "gumbel_cdf"),
    family="exponential",
    summary="exp(-e^(-x)), the Gumbel CDF (log-log link); output in (0, 1), asymmetric.",
    definition=lambda x, sp: _sym("exp_neg_exp")(-x),
    forward=_loglog_fwd,
    derivative=_loglog_der,
    bounds=(0.0, 1.0),
    monotonic=True,
    smoothness=INF,
    saturates=("left", "right"),
    references=(MCCULLAGH_GLM,),
    notes="Condition number |x| e^(-x) on the left: e^(-x) is computed in double-word arithmetic there.",
    kernel=Kernel(
        # double: e^-x's rounding, amplified by e^-x <= 104 where the float result is not 0, is 2^-45
        forward="return exp(-exp(min(-x, 80.0)));",
        derivative="V e = exp(min(-x, 10.0)); return e * exp(-e);",
    ),
)


ARCSINH = Spec(
    name="arcsinh",
    aliases=("asinh",),
    family="exponential",
    summary="asinh(x) = log(x + sqrt(x^2 + 1)): identity near 0, logarithmic growth, unbounded.",
    definition=lambda x, sp: sp.asinh(x),
    forward=lambda x, ops: ops.asinh(x),
    derivative=lambda x, ops: 1.0 / ops.hypot(ops.ones_like(x), x),
    # No derivative from the output: 1/cosh(y) takes a rounded y = asinh(x), |y| eps relative (9 ulp).
    bounds=(-INF, INF),
    monotonic=True,
    smoothness=INF,
    zero_centered=True,
    saturates=("left", "right"),
    references=(WIKIPEDIA_TABLE,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.asinh",
            "autograd uses rsqrt(x^2 + 1), which is 0 for |x| > 1.8e19 in float32 (true 1/|x|).",
        ),
        Equivalent("jax", "jax.numpy.arcsinh"),
        Equivalent("keras", "keras.ops.arcsinh", "an op, not a registered activation."),
    ),
    torch_native=lambda x, torch: torch.asinh(x),
    kernel=Kernel(
        forward="return asinh(x);",
        derivative="return 1.0 / sqrt(1.0 + x * x);",
        # float: asinh|x| = log1p(a + a^2 / (1 + sqrt(1 + a^2))), sign restored: SLEEF's float log1p and
        # sqrt in place of its asinh, ~half the time (measured)
        fast_forward="V a = abs(x); V s = sqrt(fma(a, a, V(1.0f))); return copysign(log1p(a + (a * a) / (1.0 + s)), x);",
        fast_derivative="return 1.0 / sqrt(fma(x, x, V(1.0f)));",
        fast_where="abs(x) < 1e18",
    ),
)

CUBE = Spec(
    name="cube",
    aliases=("cubic",),
    family="exponential",
    summary="x^3 (Chen & Manning's parser activation): odd, unbounded, f'(0) = 0.",
    definition=lambda x, sp: x**3,
    forward=lambda x, ops: x * x * x,
    derivative=lambda x, ops: 3.0 * (x * x),
    bounds=(-INF, INF),
    monotonic=True,
    smoothness=INF,
    zero_centered=True,
    references=(CHEN_MANNING_CUBE,),
    equivalents=(Equivalent("pytorch", "torch.pow(x, 3)"),),
    torch_native=lambda x, torch: torch.pow(x, 3),
    native=True,
)


SPECS = (
    ELU,
    SELU,
    CELU,
    PELU,
    SOFTPLUS,
    LOG_SIGMOID,
    EXPONENTIAL,
    SHIFTED_SOFTPLUS,
    SPARSE_PLUS,
    SQUAREPLUS,
    ISRLU,
    NLRELU,
    SOFT_EXPONENTIAL,
    SOFT_CLIPPING,
    BENT_IDENTITY,
    CLOGLOG,
    LOGLOG,
    ARCSINH,
    CUBE,
)
