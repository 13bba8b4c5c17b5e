"""Rectifiers: piecewise-linear and ReLU-like functions.

Conventions shared by every spec in this family:

- At a kink the derivative is PyTorch's autograd value where PyTorch has the function
  (relu'(0) = 0, leaky_relu'(0) = negative_slope, hardtanh' = 0 at both bounds, hardswish'(-3) = 0
  and hardswish'(3) = 1, shrink functions 0 at +-lambd, threshold 0 at the threshold); elsewhere
  the slope of the outer piece (the one that continues to +-inf), which is what PyTorch does for
  hardtanh and what timm does for hard_mish.
- Branches are selected so that a NaN input falls into a branch that is computed from x, so NaN
  in gives NaN out; piecewise-constant derivatives pass NaN through explicitly.
- A slope of 0 is never multiplied by x (0 * inf is NaN); the constant is used instead.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Any

import numpy as np

from actlab.catalog._refs import (
    GOODFELLOW_DL,
    MAAS_LEAKY,
    NAIR_HINTON_RELU,
    XU_RRELU,
)
from actlab.catalog.spec import (
    Equivalent,
    Kernel,
    Kink,
    Param,
    ParameterError,
    Reference,
    Spec,
    Tolerance,
    ordered,
)

INF = math.inf

# ----------------------------------------------------------------------------- references
KRIZHEVSKY_RELU6 = Reference(
    "Convolutional Deep Belief Networks on CIFAR-10",
    "Krizhevsky",
    2010,
    url="https://www.cs.toronto.edu/~kriz/conv-cifar10-aug2010.pdf",
)
HOWARD_MOBILENETV3 = Reference(
    "Searching for MobileNetV3",
    "Howard, Sandler, Chu, Chen, Chen, Tan, Wang, Zhu, Pang, Vasudevan, Le, Adam",
    2019,
    arxiv="1905.02244",
)
COURBARIAUX_BINARYCONNECT = Reference(
    "BinaryConnect: Training Deep Neural Networks with binary weights during propagations",
    "Courbariaux, Bengio, David",
    2015,
    arxiv="1511.00363",
)
COLLOBERT_NLP = Reference(
    "Natural Language Processing (almost) from Scratch",
    "Collobert, Weston, Bottou, Karlen, Kavukcuoglu, Kuksa",
    2011,
    arxiv="1103.0398",
)
MISRA_MISH = Reference("Mish: A Self Regularized Non-Monotonic Activation Function", "Misra", 2019, arxiv="1908.08681")
HMISH_NOTES = Reference(
    "H-Mish (hard Mish) notes",
    "Misra",
    2020,
    url="https://github.com/digantamisra98/H-Mish",
)
MCCULLOCH_PITTS = Reference(
    "A logical calculus of the ideas immanent in nervous activity",
    "McCulloch, Pitts",
    1943,
    url="https://doi.org/10.1007/BF02478259",
)
DONOHO_JOHNSTONE = Reference(
    "Ideal spatial adaptation by wavelet shrinkage",
    "Donoho, Johnstone",
    1994,
    url="https://doi.org/10.1093/biomet/81.3.425",
)
DONOHO_SOFT = Reference("De-noising by soft-thresholding", "Donoho", 1995, url="https://doi.org/10.1109/18.382009")
BLONDEL_FY = Reference("Learning with Fenchel-Young Losses", "Blondel, Martins, Niculae", 2019, arxiv="1901.02324")
SO_PRIMER = Reference(
    "Primer: Searching for Efficient Transformers for Language Modeling",
    "So, Mańke, Liu, Dai, Shazeer, Le",
    2021,
    arxiv="2109.08668",
)
NICOLAE_PLU = Reference("PLU: The Piecewise Linear Unit Activation Function", "Nicolae", 2018, arxiv="1809.09534")
WURAOLA_SQNL = Reference(
    "SQNL: A New Computationally Efficient Activation Function",
    "Wuraola, Patel",
    2018,
    url="https://doi.org/10.1109/IJCNN.2018.8489043",
)
JARRETT_ABS = Reference(
    "What is the Best Multi-Stage Architecture for Object Recognition?",
    "Jarrett, Kavukcuoglu, Ranzato, LeCun",
    2009,
    url="https://doi.org/10.1109/ICCV.2009.5459469",
)
JIN_SRELU = Reference(
    "Deep Learning with S-shaped Rectified Linear Activation Units",
    "Jin, Xu, Feng, Wei, Xiong, Yan",
    2015,
    arxiv="1512.07030",
)
YU_METAFORMER = Reference(
    "MetaFormer Baselines for Vision", "Yu, Si, Zhou, Luo, Zhou, Feng, Yan, Wang", 2022, arxiv="2210.13452"
)


# ----------------------------------------------------------------------------- helpers
def _nan_through(x: Any, ops: Any, d: Any) -> Any:
    """``d`` where x is a number, NaN where x is NaN (for piecewise-constant derivatives)."""
    return ops.where(ops.isnan(x), x, d)


def _const(x: Any, ops: Any, value: float) -> Any:
    return ops.full_like(x, value)


# Breakpoints given as Python floats (or exact fractions) are compared with x exactly, not after
# rounding them to x's dtype: in float32, x <= t is x <= (the largest float32 <= t). Specs whose torch
# path is PyTorch's own kernel keep PyTorch's rounding instead, so that torch and NumPy agree.
def _bits(x: Any, ops: Any) -> int:
    # float16/bfloat16 reach forward/derivative as float32 (computed in float32, rounded once).
    return 64 if ops.finfo(x).bits >= 64 else 32


@functools.lru_cache(maxsize=256)
def _neighbours(t: float | Fraction, bits: int) -> tuple[float, float]:
    """(lo, hi): the floats of the given width around t, lo <= t <= hi (equal when t is one)."""
    conv = np.float64 if bits == 64 else np.float32
    exact = Fraction(t)
    with np.errstate(over="ignore"):
        f = conv(float(t))
    if not np.isfinite(f):
        big = np.finfo(conv).max
        return (float(big), math.inf) if f > 0 else (-math.inf, float(-big))
    ff = Fraction(float(f))
    if ff == exact:
        return float(f), float(f)
    if ff < exact:
        return float(f), float(np.nextafter(f, conv(np.inf)))
    return float(np.nextafter(f, conv(-np.inf))), float(f)


@functools.lru_cache(maxsize=256)
def _split(t: float | Fraction, bits: int) -> tuple[float, float]:
    """t = hi + lo (to about twice the working precision) with hi the nearest float of that width."""
    conv = np.float64 if bits == 64 else np.float32
    with np.errstate(over="ignore"):
        hi = float(conv(float(t)))
    if not math.isfinite(hi):
        return hi, 0.0
    return hi, float(conv(float(Fraction(t) - Fraction(hi))))


def _le(x: Any, ops: Any, t: float | Fraction) -> Any:
    return x <= _neighbours(t, _bits(x, ops))[0]


def _lt(x: Any, ops: Any, t: float | Fraction) -> Any:
    return x < _neighbours(t, _bits(x, ops))[1]


def _ge(x: Any, ops: Any, t: float | Fraction) -> Any:
    return x >= _neighbours(t, _bits(x, ops))[1]


def _gt(x: Any, ops: Any, t: float | Fraction) -> Any:
    return x > _neighbours(t, _bits(x, ops))[0]


def _sub(x: Any, ops: Any, t: float | Fraction) -> Any:
    """x - t without rounding t to x's dtype first (exact near x = t, one rounding elsewhere)."""
    hi, lo = _split(t, _bits(x, ops))
    z = x - hi
    return z - lo if lo else z


def _line(x: Any, ops: Any, t: float, a: float) -> Any:
    """t + a (x - t), the constant t when a == 0 (so that x = +-inf gives t, not NaN)."""
    if a == 0.0:
        return _const(x, ops, t)
    return t + a * _sub(x, ops, t)


def _reciprocal_int(slope: float) -> int | None:
    """k when ``slope`` is the double nearest to 1/k for a positive integer k, else None."""
    if not (0.0 < slope <= 1.0):
        return None
    k = round(1.0 / slope)
    if k >= 1 and 1.0 / k == slope:
        return int(k)
    return None


def _upcast(x: Any, torch: Any, fn: Any) -> Any:
    """fn(x) computed in float32 for float16/bfloat16 and rounded once (compositions of torch ops)."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return fn(x.float()).to(x.dtype)
    return fn(x)


def _torch_relu_or(x: Any, torch: Any, slope: float) -> Any:
    # F.leaky_relu(x, 0.0) computes x * 0 for x <= 0, which is NaN at -inf.
    if slope == 0.0:
        return torch.relu(x)
    return torch.nn.functional.leaky_relu(x, slope)


# ----------------------------------------------------------------------------- relu
def _relu_def(x: Any, sp: Any, negative_slope: Any, max_value: Any, threshold: Any) -> Any:
    pieces = []
    if max_value is not None:
        # max_value == threshold (Keras accepts it): x <= threshold keeps the negative side
        pieces.append((max_value, x > max_value if max_value == threshold else x >= max_value))
    pieces.append((x, x > threshold))
    pieces.append((negative_slope * (x - threshold), True))
    return sp.Piecewise(*pieces)


def _relu_fwd(x: Any, ops: Any, negative_slope: float, max_value: float | None, threshold: float) -> Any:
    if negative_slope == 0.0 and threshold == 0.0:
        y = ops.maximum(x, 0.0)
    else:
        # slope * (x - t), or 0 when the slope is 0 (never 0 * inf); NaN selects x.
        neg = _const(x, ops, 0.0) if negative_slope == 0.0 else negative_slope * (x - threshold)
        y = ops.where(x <= threshold, neg, x)
    if max_value is not None:
        y = ops.where((x > max_value) if max_value == threshold else (x >= max_value), max_value, y)
    return y


def _relu_der(x: Any, ops: Any, negative_slope: float, max_value: float | None, threshold: float) -> Any:
    d = ops.where(x <= threshold, negative_slope, ops.ones_like(x))
    if max_value is not None:
        d = ops.where((x > max_value) if max_value == threshold else (x >= max_value), 0.0, d)
    return _nan_through(x, ops, d)


def _relu_torch(x: Any, torch: Any, negative_slope: float, max_value: float | None, threshold: float) -> Any:
    F = torch.nn.functional
    if threshold == 0.0:
        if max_value is None:
            return _torch_relu_or(x, torch, negative_slope)
        if negative_slope == 0.0:
            return F.relu6(x) if max_value == 6.0 else F.hardtanh(x, 0.0, max_value)
    if negative_slope == 0.0 and max_value is None:
        return F.threshold(x, threshold, 0.0)

    def compose(z: Any) -> Any:
        y = (
            F.threshold(z, threshold, 0.0)
            if negative_slope == 0.0
            else torch.where(z <= threshold, negative_slope * (z - threshold), z)
        )
        if max_value is not None:
            top = (z > max_value) if max_value == threshold else (z >= max_value)
            y = torch.where(top, torch.full_like(z, max_value), y)
        return y

    return _upcast(x, torch, compose)


def _relu_bounds(p: dict) -> tuple[float, float]:
    lo = -INF if p["negative_slope"] > 0 else min(0.0, p["threshold"])
    hi = INF if p["max_value"] is None else p["max_value"]
    return lo, hi


RELU = Spec(
    name="relu",
    family="rectifier",
    summary="Rectified linear unit max(x, 0); with Keras' optional negative_slope, max_value and threshold.",
    params=(
        Param("negative_slope", 0.0, low=0.0, doc="slope below the threshold (Keras' negative_slope)"),
        Param("max_value", None, low=0.0, low_open=True, nullable=True, doc="saturation value; None: unbounded"),
        Param("threshold", 0.0, doc="x > threshold passes unchanged; below it negative_slope * (x - threshold)"),
    ),
    constraints=ordered("threshold", "max_value", strict=False),  # Keras: relu(threshold=5, max_value=5)
    definition=_relu_def,
    forward=_relu_fwd,
    derivative=_relu_der,
    # The kernel serves bfloat16/float16 (float32 takes PyTorch's own op). Float: the parameters' float
    # neighbours make x <= threshold and x >= max_value exact; x - threshold from threshold as two floats.
    kernel=Kernel(
        forward="""
            V y = negative_slope == 0.0 ? where(x <= threshold, 0.0, x)
                                        : where(x <= threshold, negative_slope * (x - threshold), x);
            if (max_value_is_none) return y;
            V top = max_value == threshold ? (x > max_value) : (x >= max_value);
            return where(top, max_value, y);""",
        derivative="""
            V d = where(x <= threshold, negative_slope, 1.0);
            if (!max_value_is_none) d = where(max_value == threshold ? (x > max_value) : (x >= max_value), 0.0, d);
            return where(x != x, x, d);""",
        fast_forward="""
            const float tb = float_below(threshold);
            const S th = static_cast<S>(threshold), tl = static_cast<S>(threshold - th);
            V y = negative_slope == 0.0 ? where(x <= tb, 0.0, x)
                                        : where(x <= tb, static_cast<S>(negative_slope) * ((x - th) - tl), x);
            if (max_value_is_none) return y;
            V top = max_value == threshold ? (x > float_below(max_value)) : (x >= float_above(max_value));
            return where(top, max_value, y);""",
        fast_derivative="""
            V d = where(x <= float_below(threshold), negative_slope, 1.0);
            if (!max_value_is_none) {
              d = where(max_value == threshold ? (x > float_below(max_value)) : (x >= float_above(max_value)), 0.0, d);
            }
            return where(x != x, x, d);""",
        fast_where="V(static_cast<float>(std::abs(threshold) <= 1e30 && negative_slope <= 1e30)) == 1.0",
    ),
    kinks=(
        Kink(at=lambda p: p["threshold"], grad=lambda p: p["negative_slope"], note="PyTorch: relu'(0) = 0"),
        Kink(
            at=lambda p: None if p["max_value"] == p["threshold"] else p["max_value"],
            grad=0.0,
            note="as hardtanh/relu6 at the upper bound",
        ),
    ),
    bounds=_relu_bounds,
    monotonic=True,
    smoothness=0,
    saturates=("left",),
    references=(NAIR_HINTON_RELU,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.relu",
            "no parameters; actlab maps negative_slope to F.leaky_relu, max_value to F.hardtanh/F.relu6 and threshold to F.threshold; relu'(0) = 0 as in PyTorch",
            names=("relu", "ReLU"),
        ),
        Equivalent(
            "keras",
            "keras.activations.relu",
            "same parameters and defaults (layer: keras.layers.ReLU, whose docs require all three >= 0). "
            "Keras' code returns 0 at x == threshold (its docs say x); actlab follows the code. With a "
            "negative threshold and max_value set Keras clips (threshold, 0) to 0, actlab returns x there.",
            names=("relu", "ReLU"),
        ),
        Equivalent("jax", "jax.nn.relu", "no parameters; documents grad relu(0) = 0", names=("relu",)),
        Equivalent("transformers", "torch.nn.ReLU", "ACT2CLS['relu']", names=("relu",)),
        Equivalent("timm", "torch.nn.ReLU", "create_act name 'relu'", names=("relu",)),
    ),
    torch_native=_relu_torch,
    native=True,
    notes="Keras semantics: max_value for x >= max_value, x for threshold < x < max_value, "
    "negative_slope * (x - threshold) for x <= threshold (discontinuous when threshold != 0).",
)

# ----------------------------------------------------------------------------- relu6
RELU6 = Spec(
    name="relu6",
    aliases=("relu_6",),
    family="rectifier",
    summary="ReLU capped at 6: min(max(x, 0), 6).",
    definition=lambda x, sp: sp.Piecewise((0, x <= 0), (x, x < 6), (6, True)),
    forward=lambda x, ops: ops.clip(x, 0.0, 6.0),
    derivative=lambda x, ops: _nan_through(x, ops, ops.where((x <= 0.0) | (x >= 6.0), 0.0, ops.ones_like(x))),
    kernel=Kernel(
        forward="return min(max(x, 0.0), 6.0);",
        derivative="return where(x != x, x, where((x <= 0.0) | (x >= 6.0), 0.0, 1.0));",
        fast_forward="return min(max(x, 0.0), 6.0);",
        fast_derivative="return where(x != x, x, where((x <= 0.0) | (x >= 6.0), 0.0, 1.0));",
        fast_where="",
    ),
    kinks=(Kink(at=0.0, grad=0.0), Kink(at=6.0, grad=0.0)),
    bounds=(0.0, 6.0),
    monotonic=True,
    smoothness=0,
    saturates=("left", "right"),
    references=(KRIZHEVSKY_RELU6, HOWARD_MOBILENETV3),
    equivalents=(
        Equivalent(
            "pytorch", "torch.nn.functional.relu6", "gradient 0 at 0 and at 6 (as actlab)", names=("relu6", "ReLU6")
        ),
        Equivalent("keras", "keras.activations.relu6", "same as relu(x, max_value=6)", names=("relu6",)),
        Equivalent("jax", "jax.nn.relu6", "custom JVP: gradient 0 at 0 and at 6 (as actlab)", names=("relu6",)),
        Equivalent("transformers", "torch.nn.ReLU6", "ACT2CLS['relu6']", names=("relu6",)),
        Equivalent("timm", "torch.nn.ReLU6", "create_act name 'relu6'", names=("relu6",)),
    ),
    torch_native=lambda x, torch: torch.nn.functional.relu6(x),
    native=True,
)


# ----------------------------------------------------------------------------- leaky_relu
def _leaky_fwd(x: Any, ops: Any, negative_slope: float) -> Any:
    if negative_slope == 0.0:
        return ops.maximum(x, 0.0)
    return ops.where(x > 0.0, x, negative_slope * x)


def _leaky_der(x: Any, ops: Any, negative_slope: float) -> Any:
    return _nan_through(x, ops, ops.where(x > 0.0, 1.0, ops.full_like(x, negative_slope)))


LEAKY_RELU = Spec(
    name="leaky_relu",
    aliases=("leakyrelu", "lrelu"),
    family="rectifier",
    summary="x for x > 0, negative_slope * x otherwise (PyTorch default slope 0.01).",
    params=(Param("negative_slope", 0.01, low=0.0, trainable=True, doc="slope for x <= 0"),),
    definition=lambda x, sp, negative_slope: sp.Piecewise((x, x > 0), (negative_slope * x, True)),
    forward=_leaky_fwd,
    derivative=_leaky_der,
    kernel=Kernel(
        forward="return negative_slope == 0.0 ? max(x, 0.0) : where(x > 0.0, x, negative_slope * x);",
        derivative="return where(x != x, x, where(x > 0.0, 1.0, negative_slope));",
        fast_forward="return negative_slope == 0.0 ? max(x, 0.0) : where(x > 0.0, x, negative_slope * x);",
        fast_derivative="return where(x != x, x, where(x > 0.0, 1.0, negative_slope));",
        fast_where="V(static_cast<float>(negative_slope <= 1e30)) == 1.0",  # a float slope (never inf * 0)
    ),
    kinks=(Kink(at=0.0, grad=lambda p: p["negative_slope"], note="PyTorch: leaky_relu'(0) = negative_slope"),),
    bounds=lambda p: (-INF if p["negative_slope"] > 0 else 0.0, INF),
    monotonic=True,
    smoothness=0,
    zero_centered=True,
    references=(MAAS_LEAKY,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.leaky_relu",
            "default negative_slope=0.01; gradient at 0 is negative_slope (as actlab)",
            names=("leaky_relu", "LeakyReLU"),
        ),
        Equivalent(
            "keras",
            "keras.activations.leaky_relu",
            "default negative_slope=0.2; the layer keras.layers.LeakyReLU defaults to 0.3 (Keras 2: argument named alpha)",
            names=("leaky_relu",),
            params={"negative_slope": 0.2},
        ),
        Equivalent(
            "jax",
            "jax.nn.leaky_relu",
            "default negative_slope=0.01; selects x for x >= 0, so its gradient at 0 is 1, not negative_slope",
            names=("leaky_relu",),
        ),
        Equivalent(
            "transformers",
            "torch.nn.LeakyReLU",
            "ACT2CLS['leaky_relu']: PyTorch's default slope 0.01",
            names=("leaky_relu",),
        ),
        Equivalent(
            "timm",
            "torch.nn.LeakyReLU",
            "create_act name 'leaky_relu': PyTorch's default slope 0.01",
            names=("leaky_relu",),
        ),
        Equivalent(
            "keras",
            "keras.layers.LeakyReLU",
            "the layer's default negative_slope is 0.3 (the function's 0.2); Keras 2 named it alpha",
            names=("LeakyReLU",),
            params={"negative_slope": 0.3},
        ),
    ),
    torch_native=lambda x, torch, negative_slope: _torch_relu_or(x, torch, negative_slope),
    native=True,
)


# ----------------------------------------------------------------------------- rrelu
def _rrelu_slope(lower: float, upper: float) -> float:
    return (lower + upper) / 2.0


def _rrelu_train(x: Any, torch: Any, generator: Any = None, *, lower: float, upper: float) -> Any:
    """Training mode: a slope ~ U(lower, upper) per element for x <= 0 (PyTorch's rule)."""
    low_precision = x.dtype in (torch.float16, torch.bfloat16)
    work = x.float() if low_precision else x
    if generator is None:
        y = torch.nn.functional.rrelu(work, lower, upper, training=True)
    else:
        noise = torch.empty_like(work).uniform_(lower, upper, generator=generator)
        y = torch.where(work > 0, work, work * noise)
    return y.to(x.dtype) if low_precision else y


RRELU = Spec(
    name="rrelu",
    aliases=("randomized_leaky_relu",),
    family="rectifier",
    summary="Randomized leaky ReLU: slope ~ U(lower, upper) in training, (lower + upper) / 2 in evaluation.",
    params=(
        Param("lower", 1.0 / 8.0, low=0.0, doc="lower bound of the random negative slope"),
        Param("upper", 1.0 / 3.0, low=0.0, doc="upper bound of the random negative slope"),
    ),
    constraints=ordered("lower", "upper", strict=False),
    definition=lambda x, sp, lower, upper: sp.Piecewise((x, x > 0), ((lower + upper) / 2 * x, True)),
    forward=lambda x, ops, lower, upper: _leaky_fwd(x, ops, _rrelu_slope(lower, upper)),
    derivative=lambda x, ops, lower, upper: _leaky_der(x, ops, _rrelu_slope(lower, upper)),
    train_forward=_rrelu_train,
    kinks=(
        Kink(at=0.0, grad=lambda p: _rrelu_slope(p["lower"], p["upper"]), note="PyTorch eval mode: the mean slope"),
    ),
    bounds=lambda p: (-INF if p["upper"] > 0 else 0.0, INF),
    monotonic=True,
    smoothness=0,
    zero_centered=True,
    references=(XU_RRELU,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.rrelu",
            "F.rrelu defaults to training=False (deterministic mean slope); nn.RReLU samples in train mode; lower > upper raises",
            names=("rrelu", "RReLU"),
        ),
        Equivalent(
            "tfa",
            "tfa.activations.rrelu",
            "same defaults (lower=0.125, upper=1/3); training=None; seeded by seed/rng",
            names=("rrelu",),
        ),
    ),
    torch_native=lambda x, torch, lower, upper: (
        torch.relu(x)
        if _rrelu_slope(lower, upper) == 0.0
        # = F.rrelu(x, lower, upper, training=False), bit for bit, which has no vmap rule (vecad, #10)
        else torch.nn.functional.leaky_relu(x, _rrelu_slope(lower, upper))
    ),
    native=True,
    notes="The deterministic forward (and all accuracy checks) is the evaluation mode. In training mode "
    "(functional training=True or a module in train()), each element with x <= 0 gets its own slope "
    "~ U(lower, upper), reproducible under torch.manual_seed or with an explicit generator.",
)

# ----------------------------------------------------------------------------- threshold
THRESHOLD = Spec(
    name="threshold",
    aliases=(),
    family="rectifier",
    summary="x for x > threshold, the constant value otherwise (PyTorch's F.threshold).",
    params=(
        Param("threshold", 0.0, doc="inputs above it pass unchanged"),
        Param("value", 0.0, aliases=("default_value",), doc="output for x <= threshold (Keras: default_value)"),
    ),
    definition=lambda x, sp, threshold, value: sp.Piecewise((x, x > threshold), (value, True)),
    forward=lambda x, ops, threshold, value: ops.where(x <= threshold, value, x),
    derivative=lambda x, ops, threshold, value: _nan_through(x, ops, ops.where(x <= threshold, 0.0, ops.ones_like(x))),
    kernel=Kernel(
        forward="return where(x <= threshold, value, x);",
        derivative="return where(x != x, x, where(x <= threshold, 0.0, 1.0));",
        fast_forward="""
            return where(x <= float_below(threshold), value, x);""",
        fast_derivative="""
            return where(x != x, x, where(x <= float_below(threshold), 0.0, 1.0));""",
        fast_where="",
    ),
    kinks=(Kink(at=lambda p: p["threshold"], grad=0.0, note="PyTorch: 0 at x == threshold"),),
    bounds=lambda p: (min(p["value"], p["threshold"]), INF),
    monotonic=True,
    smoothness=0,
    saturates=("left",),
    references=(GOODFELLOW_DL,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.threshold",
            "threshold and value are required there; actlab defaults both to 0 (= relu)",
            names=("threshold", "Threshold"),
        ),
        Equivalent(
            "keras",
            "keras.activations.threshold",
            "Keras 3: threshold(x, threshold, default_value), both required; same rule x > threshold",
            names=("threshold",),
        ),
    ),
    torch_native=lambda x, torch, threshold, value: torch.nn.functional.threshold(x, threshold, value),
    native=True,
    notes="Properties are for the defaults (threshold = value = 0, i.e. relu); with value != threshold "
    "the function is discontinuous at the threshold, and not monotonic when value > threshold.",
)


# ----------------------------------------------------------------------------- hard_tanh
def _hardtanh_der(x: Any, ops: Any, min_val: float, max_val: float) -> Any:
    inside = ops.where(x >= max_val, 0.0, ops.ones_like(x))
    return _nan_through(x, ops, ops.where(x <= min_val, 0.0, inside))


HARD_TANH = Spec(
    name="hard_tanh",
    aliases=("hardtanh",),
    family="rectifier",
    summary="clip(x, min_val, max_val): the identity between the bounds, constant outside.",
    params=(
        Param("min_val", -1.0, doc="lower bound"),
        Param("max_val", 1.0, doc="upper bound (>= min_val; equal bounds give a constant, as in PyTorch)"),
    ),
    constraints=ordered("min_val", "max_val", strict=False),
    definition=lambda x, sp, min_val, max_val: sp.Piecewise((min_val, x <= min_val), (x, x < max_val), (max_val, True)),
    forward=lambda x, ops, min_val, max_val: ops.clip(x, min_val, max_val),
    derivative=_hardtanh_der,
    # clipping to the nearest floats of the bounds is exact (no float lies between a bound and its
    # nearest float); the derivative compares with the bounds' float neighbours
    kernel=Kernel(
        forward="return min(max(x, min_val), max_val);",
        derivative="return where(x != x, x, where((x <= min_val) | (x >= max_val), 0.0, 1.0));",
        fast_forward="return min(max(x, min_val), max_val);",
        fast_derivative="""
            return where(x != x, x, where((x <= float_below(min_val)) | (x >= float_above(max_val)), 0.0, 1.0));""",
        fast_where="",
    ),
    kinks=(Kink(at=lambda p: p["min_val"], grad=0.0), Kink(at=lambda p: p["max_val"], grad=0.0)),
    bounds=lambda p: (p["min_val"], p["max_val"]),
    monotonic=True,
    smoothness=0,
    zero_centered=True,
    saturates=("left", "right"),
    approximates="tanh",
    approximation_error=0.239,
    references=(COLLOBERT_NLP,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.hardtanh",
            "same parameters, min_val == max_val allowed (a constant); gradient 0 at both bounds (as actlab)",
            names=("hardtanh", "Hardtanh"),
        ),
        Equivalent(
            "keras", "keras.activations.hard_tanh", "Keras 3; no parameters (bounds -1, 1)", names=("hard_tanh",)
        ),
        Equivalent(
            "jax",
            "jax.nn.hard_tanh",
            "no parameters; where-based, so its gradient at +-1 is 1 (actlab: 0)",
            names=("hard_tanh",),
        ),
    ),
    torch_native=lambda x, torch, min_val, max_val: torch.nn.functional.hardtanh(x, min_val, max_val),
    native=True,
)


# ----------------------------------------------------------------------------- hard_sigmoid
def _hsig_roots(slope: float, offset: float) -> tuple[Fraction, Fraction, int | None]:
    """The exact breakpoints x0 (f = 0) and x1 (f = 1), and k when slope means 1/k."""
    k = _reciprocal_int(slope)
    a = Fraction(1, k) if k is not None else Fraction(slope)
    return -Fraction(offset) / a, (1 - Fraction(offset)) / a, k


def _hsig_kinks(slope: float, offset: float) -> tuple[float, float]:
    x0, x1, _ = _hsig_roots(slope, offset)
    return float(x0), float(x1)


def _hsig_def(x: Any, sp: Any, slope: Any, offset: Any) -> Any:
    k = _reciprocal_int(float(slope))
    a = sp.Rational(1, k) if k is not None else slope
    lo = -offset / a
    hi = (1 - offset) / a
    return sp.Piecewise((0, x <= lo), (1, x >= hi), (a * (x - lo), True))


def _hsig_fwd(x: Any, ops: Any, slope: float, offset: float) -> Any:
    x0, _, k = _hsig_roots(slope, offset)
    # a (x - x0) around the root x0: x - x0 is exact near the root, so f is accurate where it is
    # small; (x + 3) / 6 for the default (one rounding after the exact x + 3 near -3).
    z = _sub(x, ops, x0)
    y = z / float(k) if k is not None else slope * z
    return ops.clip(y, 0.0, 1.0)


def _hsig_der(x: Any, ops: Any, slope: float, offset: float) -> Any:
    x0, x1, _ = _hsig_roots(slope, offset)
    d = ops.where(_le(x, ops, x0) | _ge(x, ops, x1), 0.0, ops.full_like(x, slope))
    return _nan_through(x, ops, d)


def _hsig_torch(x: Any, torch: Any, slope: float, offset: float) -> Any:
    F = torch.nn.functional
    if slope == 1.0 / 6.0 and offset == 0.5:
        return F.hardsigmoid(x)
    return F.hardtanh(slope * x + offset, 0.0, 1.0)


HARD_SIGMOID = Spec(
    name="hard_sigmoid",
    aliases=("hardsigmoid",),
    family="rectifier",
    summary="clip(slope * x + offset, 0, 1); default relu6(x + 3) / 6 (PyTorch, Keras 3, JAX).",
    params=(
        Param(
            "slope",
            1.0 / 6.0,
            low=0.0,
            high=1e4,
            low_open=True,
            doc="slope of the linear part; a value that is the double nearest 1/k (1/6, 0.2 = 1/5) means exactly 1/k; "
            "at most 1e4 (slope x overflows float32 near slope's largest value)",
        ),
        Param("offset", 0.5, doc="value at x = 0"),
    ),
    definition=_hsig_def,
    forward=_hsig_fwd,
    derivative=_hsig_der,
    kernel=Kernel(
        # a x + offset as (m x + c) / dv: m = 1, c = k offset, dv = k where slope means 1/k, else
        # m = slope, c = offset, dv = 1. Double: m x and m x + c without rounding (two_prod, two_sum),
        # so f is accurate near its root and the signs of a x + offset and a x + offset - 1 (the
        # derivative's exact breakpoints x0, x1) are right.
        forward="""
            const double k = std::nearbyint(1.0 / slope);
            const bool rec = slope <= 1.0 && k >= 1.0 && 1.0 / k == slope;
            const double m = rec ? 1.0 : slope, dv = rec ? k : 1.0;
            const double ch = rec ? offset * k : offset, cl = rec ? std::fma(offset, k, -ch) : 0.0;
            V p, e, s, t; two_prod(V(m), x, p, e); two_sum(p, V(ch), s, t);
            V y = (s + (t + (e + cl))) / dv;
            return where(x == inf, 1.0, where(x == -inf, 0.0, min(max(y, 0.0), 1.0)));""",
        derivative="""
            const double k = std::nearbyint(1.0 / slope);
            const bool rec = slope <= 1.0 && k >= 1.0 && 1.0 / k == slope;
            const double m = rec ? 1.0 : slope, dv = rec ? k : 1.0;
            const double ch = rec ? offset * k : offset, cl = rec ? std::fma(offset, k, -ch) : 0.0;
            V p, e, s, t; two_prod(V(m), x, p, e); two_sum(p, V(ch), s, t);
            V r = t + (e + cl);
            V d = where(((s + r) <= 0.0) | (((s - dv) + r) >= 0.0), 0.0, V(slope));
            return where(x != x, x, where(abs(x) == inf, 0.0, d));""",
        # float, as the eager float32 code: z = x - x0 with the root x0 = -c/m carried as two floats
        # (exact near the root), f = slope z; the breakpoints' signs from x - x0 and x - x1 (x1 likewise).
        fast_forward="""
            const double k = std::nearbyint(1.0 / slope);
            const bool rec = slope <= 1.0 && k >= 1.0 && 1.0 / k == slope;
            const double m = rec ? 1.0 : slope;
            const double ch = rec ? offset * k : offset, cl = rec ? std::fma(offset, k, -ch) : 0.0;
            const double x0h = rec ? -ch : -ch / m, x0l = rec ? -cl : (-std::fma(x0h, m, ch) - cl) / m;
            const float x0f = static_cast<float>(x0h), x0g = static_cast<float>((x0h - x0f) + x0l);
            V z = (x - x0f) - x0g;
            V y = z * static_cast<S>(slope);  // slope = RN(1/k) when it means 1/k: a product, not a division
            return min(max(y, 0.0), 1.0);""",
        fast_derivative="""
            const double k = std::nearbyint(1.0 / slope);
            const bool rec = slope <= 1.0 && k >= 1.0 && 1.0 / k == slope;
            const double m = rec ? 1.0 : slope, dv = rec ? k : 1.0;
            const double ch = rec ? offset * k : offset, cl = rec ? std::fma(offset, k, -ch) : 0.0;
            const double x0h = rec ? -ch : -ch / m, x0l = rec ? -cl : (-std::fma(x0h, m, ch) - cl) / m;
            const double qh = dv - ch, qb = qh - dv, ql = ((dv - (qh - qb)) + (-ch - qb)) - cl;  // dv - c
            const double x1h = rec ? qh : qh / m, x1l = rec ? ql : (std::fma(-x1h, m, qh) + ql) / m;
            const float x0f = static_cast<float>(x0h), x0g = static_cast<float>((x0h - x0f) + x0l);
            const float x1f = static_cast<float>(x1h), x1g = static_cast<float>((x1h - x1f) + x1l);
            V d = where((((x - x0f) - x0g) <= 0.0) | (((x - x1f) - x1g) >= 0.0), 0.0, V(static_cast<S>(slope)));
            return where(x != x, x, d);""",
        # breakpoints within 1e30 (as floats) and a slope far from float32's underflow
        fast_where="V(static_cast<float>(slope >= 1e-30 && std::abs(offset) + 1.0 < 1e30 * slope)) == 1.0",
    ),
    kinks=(
        Kink(at=lambda p: _hsig_kinks(p["slope"], p["offset"])[0], grad=0.0, note="PyTorch: 0 at -3"),
        Kink(at=lambda p: _hsig_kinks(p["slope"], p["offset"])[1], grad=0.0, note="PyTorch: 0 at 3"),
    ),
    bounds=(0.0, 1.0),
    monotonic=True,
    smoothness=0,
    saturates=("left", "right"),
    approximates="sigmoid",
    approximation_error=0.07,
    references=(HOWARD_MOBILENETV3, COURBARIAUX_BINARYCONNECT),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.hardsigmoid",
            "fixed slope 1/6; its float64 backward uses the single-precision constant 1/6 "
            "(gradient 0.1666666716...), so actlab does not use the native kernel",
            names=("hardsigmoid", "Hardsigmoid"),
        ),
        Equivalent(
            "keras",
            "keras.activations.hard_sigmoid",
            "Keras 3: relu6(x + 3) / 6 (all backends; the keras.ops.hard_sigmoid docstring still "
            "shows Keras 2's formula). Keras 2 / tf.keras: 0.2 x + 0.5 clipped at +-2.5 = hard_sigmoid(slope=0.2)",
            names=("hard_sigmoid",),
        ),
        Equivalent(
            "jax",
            "jax.nn.hard_sigmoid",
            "relu6(x + 3) / 6; gradient 0 at +-3 through relu6's custom JVP",
            names=("hard_sigmoid",),
        ),
        Equivalent(
            "timm", "timm.layers.activations.hard_sigmoid", "F.relu6(x + 3) / 6", names=("hard_sigmoid", "hardsigmoid")
        ),
    ),
    torch_native=_hsig_torch,
    native=False,
    notes="BinaryConnect's hard sigmoid clip((x + 1) / 2, 0, 1) is hard_sigmoid(slope=0.5) and equals sparse_sigmoid.",
)


# ----------------------------------------------------------------------------- hardswish
def _hswish_fwd(x: Any, ops: Any) -> Any:
    # x (x + 3) / 6: x + 3 is exact near the root -3, then one product and one division.
    return ops.where(x >= 3.0, x, ops.where(x <= -3.0, 0.0, x * (x + 3.0) / 6.0))


def _hswish_der(x: Any, ops: Any) -> Any:
    # PyTorch: 0 at -3 and 1 at 3 (the right-hand slopes).
    return ops.where(x >= 3.0, 1.0, ops.where(x <= -3.0, 0.0, (2.0 * x + 3.0) / 6.0))


HARDSWISH = Spec(
    name="hardswish",
    aliases=("hard_swish", "hard_silu", "hardsilu"),
    family="rectifier",
    summary="x * relu6(x + 3) / 6, the piecewise-quadratic MobileNetV3 approximation of SiLU.",
    definition=lambda x, sp: sp.Piecewise((0, x <= -3), (x * (x + 3) / 6, x < 3), (x, True)),
    forward=_hswish_fwd,
    derivative=_hswish_der,
    # float is exact enough everywhere: x + 3 (2x + 3) is exact near its root -3 (-1.5), then two roundings
    kernel=Kernel(
        forward="return where(x >= 3.0, x, where(x <= -3.0, 0.0, x * (x + 3.0) / 6.0));",
        derivative="return where(x >= 3.0, 1.0, where(x <= -3.0, 0.0, (2.0 * x + 3.0) / 6.0));",
        fast_forward="return where(x >= 3.0, x, where(x <= -3.0, 0.0, x * (x + 3.0) / 6.0));",
        fast_derivative="return where(x >= 3.0, 1.0, where(x <= -3.0, 0.0, (2.0 * x + 3.0) / 6.0));",
        fast_where="",
    ),
    kinks=(Kink(at=-3.0, grad=0.0, note="PyTorch: 0"), Kink(at=3.0, grad=1.0, note="PyTorch: 1")),
    bounds=(-0.375, INF),
    monotonic=False,
    smoothness=0,
    zero_centered=True,
    saturates=("left",),
    approximates="silu",
    approximation_error=0.143,
    references=(HOWARD_MOBILENETV3,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.hardswish",
            "returns NaN at x = -inf (x * 0), so actlab does not use the native kernel; gradient 0 at -3 and 1 at 3 (as actlab)",
            names=("hardswish", "Hardswish"),
        ),
        Equivalent(
            "keras",
            "keras.activations.hard_silu",
            "alias keras.activations.hard_swish; the torch backend calls F.hardswish",
            names=("hard_silu", "hard_swish"),
        ),
        Equivalent(
            "jax",
            "jax.nn.hard_silu",
            "alias jax.nn.hard_swish; x * relu6(x + 3) / 6, also NaN at -inf",
            names=("hard_silu", "hard_swish"),
        ),
        Equivalent(
            "timm", "timm.layers.activations.hard_swish", "x * F.relu6(x + 3) / 6", names=("hard_swish", "hardswish")
        ),
        Equivalent("transformers", "torch.nn.Hardswish", "ACT2CLS['hardswish']", names=("hardswish",)),
    ),
    torch_native=lambda x, torch: torch.nn.functional.hardswish(x),
    native=False,
)


# ----------------------------------------------------------------------------- hard_mish
def _hmish_fwd(x: Any, ops: Any) -> Any:
    return ops.where(x >= 0.0, x, ops.where(x <= -2.0, 0.0, 0.5 * x * (x + 2.0)))


def _hmish_der(x: Any, ops: Any) -> Any:
    # timm's backward: x + 1 on [-2, 0], so -1 at the kink x = -2.
    return ops.where(x >= 0.0, 1.0, ops.where(x < -2.0, 0.0, x + 1.0))


HARD_MISH = Spec(
    name="hard_mish",
    aliases=("hardmish", "h_mish"),
    family="rectifier",
    summary="0.5 * x * clip(x + 2, 0, 2): a piecewise-quadratic approximation of Mish (timm).",
    definition=lambda x, sp: sp.Piecewise((0, x <= -2), (x * (x + 2) / 2, x < 0), (x, True)),
    forward=_hmish_fwd,
    derivative=_hmish_der,
    kernel=Kernel(
        forward="return where(x >= 0.0, x, where(x <= -2.0, 0.0, 0.5 * x * (x + 2.0)));",
        derivative="return where(x >= 0.0, 1.0, where(x < -2.0, 0.0, x + 1.0));",
        fast_forward="return where(x >= 0.0, x, where(x <= -2.0, 0.0, 0.5 * x * (x + 2.0)));",
        fast_derivative="return where(x >= 0.0, 1.0, where(x < -2.0, 0.0, x + 1.0));",
        fast_where="",
    ),
    kinks=(Kink(at=-2.0, grad=-1.0, note="timm (both implementations): -1"),),
    bounds=(-0.5, INF),
    monotonic=False,
    smoothness=0,
    zero_centered=True,
    saturates=("left",),
    approximates="mish",
    approximation_error=0.253,
    references=(HMISH_NOTES, MISRA_MISH),
    equivalents=(
        Equivalent(
            "timm",
            "timm.layers.activations.hard_mish",
            "same function (module HardMish; memory-efficient HardMishMe with the same gradient)",
            names=("hard_mish",),
        ),
    ),
)


# ----------------------------------------------------------------------------- heaviside
def _heaviside_fwd(x: Any, ops: Any, value_at_zero: float) -> Any:
    # NaN fails every comparison and falls through to x.
    return ops.where(x > 0.0, 1.0, ops.where(x < 0.0, 0.0, ops.where(x == 0.0, value_at_zero, x)))


HEAVISIDE = Spec(
    name="heaviside",
    aliases=("binary_step", "step", "unit_step"),
    family="rectifier",
    summary="Unit step: 0 for x < 0, 1 for x > 0, value_at_zero at 0 (default 1/2); derivative 0.",
    params=(
        Param(
            "value_at_zero",
            0.5,
            low=0.0,
            high=1.0,
            doc="H(0); 0.5 is the symmetric convention, 1 the 'binary step' x >= 0",
        ),
    ),
    definition=lambda x, sp, value_at_zero: sp.Piecewise((0, x < 0), (value_at_zero, x <= 0), (1, True)),
    forward=_heaviside_fwd,
    derivative=lambda x, ops, value_at_zero: _nan_through(x, ops, ops.zeros_like(x)),
    derivative_from_output=lambda y, ops, value_at_zero: _nan_through(y, ops, ops.zeros_like(y)),
    kernel=Kernel(
        forward="""
            return where(x > 0.0, 1.0, where(x < 0.0, 0.0, where(x == 0.0, V(static_cast<S>(value_at_zero)), x)));""",
        derivative="return where(x != x, x, 0.0);",
        fast_forward="""
            return where(x > 0.0, 1.0, where(x < 0.0, 0.0, where(x == 0.0, V(static_cast<S>(value_at_zero)), x)));""",
        fast_derivative="return where(x != x, x, 0.0);",
        fast_where="",
    ),
    kinks=(Kink(at=0.0, grad=0.0, note="jump; the derivative is 0 everywhere (no straight-through estimator)"),),
    bounds=(0.0, 1.0),
    monotonic=True,
    smoothness=-1,
    saturates=("left", "right"),
    references=(MCCULLOCH_PITTS,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.heaviside",
            "values (the value at 0) is a required tensor; no autograd derivative; returns 0, not NaN, for NaN input",
        ),
        Equivalent("jax", "jax.numpy.heaviside", "jnp.heaviside(x, x2): x2 (value at 0) required"),
    ),
    torch_native=lambda x, torch, value_at_zero: torch.heaviside(
        x, torch.tensor(value_at_zero, dtype=x.dtype, device=x.device)
    ),
    native=False,
    notes="numpy.heaviside(x, 0.5) and SymPy's Heaviside use the same default value at 0.",
)

# ----------------------------------------------------------------------------- linear
LINEAR = Spec(
    name="linear",
    aliases=("identity",),
    family="rectifier",
    summary="The identity f(x) = x (no activation).",
    definition=lambda x, sp: x,
    forward=lambda x, ops: x,
    derivative=lambda x, ops: _nan_through(x, ops, ops.ones_like(x)),
    kernel=Kernel(
        forward="return x;",
        derivative="return where(x != x, x, 1.0);",
        fast_forward="return x;",
        fast_derivative="return where(x != x, x, 1.0);",
        fast_where="",
    ),
    bounds=(-INF, INF),
    monotonic=True,
    smoothness=INF,
    zero_centered=True,
    references=(GOODFELLOW_DL,),
    equivalents=(
        Equivalent("pytorch", "torch.nn.Identity", "module only; returns its input", names=("Identity",)),
        Equivalent("keras", "keras.activations.linear", "returns its input", names=("linear",)),
        Equivalent("transformers", "transformers.activations.LinearActivation", "returns its input", names=("linear",)),
        Equivalent("timm", "torch.nn.Identity", "create_act name 'identity'", names=("identity",)),
        Equivalent("jax", "jax.nn.identity", "returns its input", names=("identity",)),
    ),
    torch_native=lambda x, torch: x,
    native=True,
    notes="Returns the input object itself, as torch.nn.Identity and keras.activations.linear do.",
)

# ----------------------------------------------------------------------------- hardshrink
HARDSHRINK = Spec(
    name="hardshrink",
    aliases=("hard_shrink",),
    family="rectifier",
    summary="Hard thresholding: x for |x| > lambd, 0 otherwise.",
    params=(
        Param(
            "lambd",
            0.5,
            aliases=("threshold",),
            doc="half-width of the dead zone (Keras: threshold); lambd < 0 is the identity, as in PyTorch",
        ),
    ),
    definition=lambda x, sp, lambd: sp.Piecewise((x, x < -lambd), (0, x <= lambd), (x, True)),
    forward=lambda x, ops, lambd: ops.where(ops.abs(x) <= lambd, 0.0, x),
    derivative=lambda x, ops, lambd: _nan_through(x, ops, ops.where(ops.abs(x) <= lambd, 0.0, ops.ones_like(x))),
    kernel=Kernel(
        forward="return where(abs(x) <= lambd, 0.0, x);",
        derivative="return where(x != x, x, where(abs(x) <= lambd, 0.0, 1.0));",
        fast_forward="""
            return where(abs(x) <= float_below(lambd), 0.0, x);""",
        fast_derivative="""
            return where(x != x, x, where(abs(x) <= float_below(lambd), 0.0, 1.0));""",
        fast_where="",
    ),
    kinks=(
        Kink(at=lambda p: -p["lambd"] if p["lambd"] >= 0 else None, grad=0.0, note="jump; PyTorch: 0"),
        Kink(at=lambda p: p["lambd"] if p["lambd"] > 0 else None, grad=0.0, note="jump; PyTorch: 0"),
    ),
    bounds=(-INF, INF),
    monotonic=True,
    smoothness=-1,
    zero_centered=True,
    references=(DONOHO_JOHNSTONE,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.hardshrink",
            "default lambd=0.5; 0 (and gradient 0) at |x| == lambd (as actlab)",
            names=("hardshrink", "Hardshrink"),
        ),
        Equivalent(
            "keras",
            "keras.activations.hard_shrink",
            "Keras 3; parameter named threshold, default 0.5",
            names=("hard_shrink",),
        ),
        Equivalent(
            "tfa",
            "tfa.activations.hardshrink",
            "asymmetric lower/upper (default -0.5, 0.5); actlab's hardshrink is symmetric",
            names=("hardshrink",),
        ),
    ),
    torch_native=lambda x, torch, lambd: torch.nn.functional.hardshrink(x, lambd),
    native=True,
)


# ----------------------------------------------------------------------------- softshrink
def _soft_bounds(p: dict) -> tuple[float, float]:
    lo = -p["lambd"] if p["lower"] is None else p["lower"]
    hi = p["lambd"] if p["upper"] is None else p["upper"]
    return lo, hi


def _soft_check(p: dict) -> None:
    lo, hi = _soft_bounds(p)
    if lo > hi:
        raise ParameterError(f"the dead zone must satisfy lower <= upper; got lower={lo!r}, upper={hi!r}")


def _soft_def(x: Any, sp: Any, lambd: Any, lower: Any, upper: Any) -> Any:
    lo = -lambd if lower is None else lower
    hi = lambd if upper is None else upper
    return sp.Piecewise((x - lo, x < lo), (0, x <= hi), (x - hi, True))


def _soft_fwd(x: Any, ops: Any, lambd: float, lower: float | None, upper: float | None) -> Any:
    lo, hi = _soft_bounds({"lambd": lambd, "lower": lower, "upper": upper})
    # NaN fails both comparisons and falls through to x - lo.
    return ops.where(x > hi, x - hi, ops.where(x >= lo, 0.0, x - lo))


def _soft_der(x: Any, ops: Any, lambd: float, lower: float | None, upper: float | None) -> Any:
    lo, hi = _soft_bounds({"lambd": lambd, "lower": lower, "upper": upper})
    return _nan_through(x, ops, ops.where((x > hi) | (x < lo), 1.0, ops.zeros_like(x)))


def _soft_torch(x: Any, torch: Any, lambd: float, lower: float | None, upper: float | None) -> Any:
    if lower is None and upper is None:
        return torch.nn.functional.softshrink(x, lambd)
    lo, hi = _soft_bounds({"lambd": lambd, "lower": lower, "upper": upper})
    return _upcast(x, torch, lambda z: torch.where(z > hi, z - hi, torch.where(z >= lo, torch.zeros_like(z), z - lo)))


SOFTSHRINK = Spec(
    name="softshrink",
    aliases=("soft_shrink", "soft_threshold"),
    family="rectifier",
    summary="Soft thresholding: x - upper above upper, x - lower below lower, 0 in between (default +-lambd).",
    params=(
        Param(
            "lambd",
            0.5,
            low=0.0,
            aliases=("threshold",),
            doc="half-width of the symmetric dead zone (Keras: threshold)",
        ),
        Param("lower", None, nullable=True, doc="TF Addons' lower end of the dead zone; None: -lambd"),
        Param("upper", None, nullable=True, doc="TF Addons' upper end of the dead zone; None: lambd"),
    ),
    constraints=_soft_check,
    definition=_soft_def,
    forward=_soft_fwd,
    derivative=_soft_der,
    # x - hi and x - lo are exact near the ends in double; float: the ends as two floats, and their
    # float neighbours for the comparisons
    kernel=Kernel(
        forward="""
            const double lo = lower_is_none ? -lambd : lower, hi = upper_is_none ? lambd : upper;
            return where(x > hi, x - hi, where(x >= lo, 0.0, x - lo));""",
        derivative="""
            const double lo = lower_is_none ? -lambd : lower, hi = upper_is_none ? lambd : upper;
            return where(x != x, x, where((x > hi) | (x < lo), 1.0, 0.0));""",
        fast_forward="""
            const double lo = lower_is_none ? -lambd : lower, hi = upper_is_none ? lambd : upper;
            const S hh = static_cast<S>(hi), hl = static_cast<S>(hi - hh);
            const S lh = static_cast<S>(lo), ll = static_cast<S>(lo - lh);
            return where(x > float_below(hi), (x - hh) - hl, where(x >= float_above(lo), 0.0, (x - lh) - ll));""",
        fast_derivative="""
            const double lo = lower_is_none ? -lambd : lower, hi = upper_is_none ? lambd : upper;
            return where(x != x, x, where((x > float_below(hi)) | (x < float_above(lo)), 1.0, 0.0));""",
        fast_where="V(static_cast<float>(std::abs(lower_is_none ? lambd : lower) <= 1e38 && "
        "std::abs(upper_is_none ? lambd : upper) <= 1e38)) == 1.0",
    ),
    kinks=(
        Kink(at=lambda p: _soft_bounds(p)[0], grad=0.0, note="PyTorch: 0 at -lambd"),
        Kink(at=lambda p: _soft_bounds(p)[1], grad=0.0, note="PyTorch: 0 at lambd"),
    ),
    bounds=(-INF, INF),
    monotonic=True,
    smoothness=0,
    zero_centered=True,
    references=(DONOHO_SOFT,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.softshrink",
            "symmetric only (lambd, default 0.5); gradient 0 at +-lambd (as actlab)",
            names=("softshrink", "Softshrink"),
        ),
        Equivalent(
            "keras",
            "keras.activations.soft_shrink",
            "Keras 3; parameter named threshold, default 0.5",
            names=("soft_shrink",),
        ),
        Equivalent(
            "tfa",
            "tfa.activations.softshrink",
            "lower=-0.5, upper=0.5 = softshrink(lower=..., upper=...); requires lower <= upper",
            names=("softshrink",),
        ),
    ),
    torch_native=_soft_torch,
    native=True,
    notes="lower/upper, when given, override -lambd/+lambd (TF Addons' asymmetric form).",
)

# ----------------------------------------------------------------------------- sparse_sigmoid
SPARSE_SIGMOID = Spec(
    name="sparse_sigmoid",
    aliases=(),
    family="rectifier",
    summary="0 for x <= -1, (x + 1) / 2 in between, 1 for x >= 1 (the derivative of sparse_plus).",
    definition=lambda x, sp: sp.Piecewise((0, x <= -1), ((x + 1) / 2, x < 1), (1, True)),
    forward=lambda x, ops: ops.where(x >= 1.0, 1.0, ops.where(x <= -1.0, 0.0, (x + 1.0) * 0.5)),
    derivative=lambda x, ops: _nan_through(x, ops, ops.where((x <= -1.0) | (x >= 1.0), 0.0, ops.full_like(x, 0.5))),
    kernel=Kernel(
        forward="return where(x >= 1.0, 1.0, where(x <= -1.0, 0.0, (x + 1.0) * 0.5));",
        derivative="return where(x != x, x, where((x <= -1.0) | (x >= 1.0), 0.0, 0.5));",
        fast_forward="return where(x >= 1.0, 1.0, where(x <= -1.0, 0.0, (x + 1.0) * 0.5));",
        fast_derivative="return where(x != x, x, where((x <= -1.0) | (x >= 1.0), 0.0, 0.5));",
        fast_where="",
    ),
    kinks=(Kink(at=-1.0, grad=0.0), Kink(at=1.0, grad=0.0)),
    bounds=(0.0, 1.0),
    monotonic=True,
    smoothness=0,
    saturates=("left", "right"),
    references=(BLONDEL_FY,),
    equivalents=(
        Equivalent(
            "jax",
            "jax.nn.sparse_sigmoid",
            "0.5 * clip(x + 1, 0, 2); its gradient at +-1 comes from differentiating clip",
            names=("sparse_sigmoid",),
        ),
        Equivalent("keras", "keras.activations.sparse_sigmoid", "Keras 3", names=("sparse_sigmoid",)),
    ),
    notes="Equal to BinaryConnect's hard sigmoid and to hard_sigmoid(slope=0.5).",
)

# ----------------------------------------------------------------------------- squared_relu
SQUARED_RELU = Spec(
    name="squared_relu",
    aliases=("relu_squared", "relu2", "squaredrelu"),
    family="rectifier",
    summary="relu(x)^2, the Primer feed-forward activation.",
    definition=lambda x, sp: sp.Piecewise((x**2, x > 0), (0, True)),
    forward=lambda x, ops: ops.square(ops.maximum(x, 0.0)),
    derivative=lambda x, ops: 2.0 * ops.maximum(x, 0.0),
    kernel=Kernel(
        forward="V r = max(x, 0.0); return r * r;",
        derivative="return 2.0 * max(x, 0.0);",
        fast_forward="V r = max(x, 0.0); return r * r;",
        fast_derivative="return 2.0 * max(x, 0.0);",
        fast_where="",
    ),
    bounds=(0.0, INF),
    monotonic=True,
    smoothness=1,
    saturates=("left",),
    references=(SO_PRIMER,),
    equivalents=(
        Equivalent(
            "transformers",
            "transformers.activations.ReLUSquaredActivation",
            "ACT2CLS['relu2']: square(relu(x)) (Primer)",
            names=("relu2",),
        ),
        Equivalent(
            "timm",
            "timm.models.metaformer.SquaredReLU",
            "torch.square(relu(x)); the module takes inplace (passed to its ReLU); not in timm's act-layer table",
        ),
    ),
)


# ----------------------------------------------------------------------------- plu
def _plu_fwd(x: Any, ops: Any, alpha: float, c: float) -> Any:
    return ops.where(_gt(x, ops, c), _line(x, ops, c, alpha), ops.where(_lt(x, ops, -c), _line(x, ops, -c, alpha), x))


def _plu_der(x: Any, ops: Any, alpha: float, c: float) -> Any:
    outer = _ge(x, ops, c) | _le(x, ops, -c)
    return _nan_through(x, ops, ops.where(outer, alpha, ops.ones_like(x)))


PLU = Spec(
    name="plu",
    aliases=("piecewise_linear_unit",),
    family="rectifier",
    summary="max(alpha (x + c) - c, min(alpha (x - c) + c, x)): identity on [-c, c], slope alpha outside.",
    params=(
        Param("alpha", 0.1, low=0.0, high=1.0, doc="slope outside [-c, c]"),
        Param("c", 1.0, low=0.0, doc="half-width of the identity segment"),
    ),
    definition=lambda x, sp, alpha, c: sp.Piecewise(
        (alpha * (x + c) - c, x <= -c), (x, x < c), (alpha * (x - c) + c, True)
    ),
    forward=_plu_fwd,
    derivative=_plu_der,
    kernel=Kernel(
        # no cancellation (c >= 0, 0 <= alpha <= 1: |f| >= c outside [-c, c]); alpha == 0 gives the
        # constant (never 0 * inf). Float: c's float neighbours decide x > c and x >= c exactly.
        forward="""
            V up = alpha == 0.0 ? V(c) : c + alpha * (x - c);
            V dn = alpha == 0.0 ? V(-c) : alpha * (x + c) - c;
            return where(x > c, up, where(x < -c, dn, x));""",
        derivative="return where(x != x, x, where((x >= c) | (x <= -c), alpha, 1.0));",
        fast_forward="""
            const float cb = float_below(c); const S cf = static_cast<S>(c), af = static_cast<S>(alpha);
            V up = alpha == 0.0 ? V(cf) : cf + af * (x - cf);
            V dn = alpha == 0.0 ? V(-cf) : af * (x + cf) - cf;
            return where(x > cb, up, where(x < -cb, dn, x));""",
        fast_derivative="""
            const float ca = float_above(c);
            return where(x != x, x, where((x >= ca) | (x <= -ca), alpha, 1.0));""",
        fast_where="V(static_cast<float>(c < 1e30)) == 1.0",
    ),
    kinks=(
        Kink(at=lambda p: -p["c"], grad=lambda p: p["alpha"], note="outer slope, as hardtanh (= plu with alpha=0)"),
        Kink(at=lambda p: p["c"], grad=lambda p: p["alpha"], note="outer slope"),
    ),
    bounds=lambda p: (-INF, INF) if p["alpha"] > 0 else (-p["c"], p["c"]),
    monotonic=True,
    smoothness=0,
    zero_centered=True,
    references=(NICOLAE_PLU,),
)


# ----------------------------------------------------------------------------- sqnl
def _sqnl_fwd(x: Any, ops: Any) -> Any:
    a = ops.abs(x)
    return ops.where(x > 2.0, 1.0, ops.where(x < -2.0, -1.0, x * (1.0 - 0.25 * a)))


def _sqnl_der(x: Any, ops: Any) -> Any:
    a = ops.abs(x)
    # (2 - |x|) / 2 is exact near |x| = 2.
    return ops.where(a > 2.0, 0.0, (2.0 - a) * 0.5)


SQNL = Spec(
    name="sqnl",
    aliases=("square_nonlinearity",),
    family="rectifier",
    summary="Square nonlinearity: x - x|x|/4 on [-2, 2], sign(x) outside; a tanh-like C^1 function.",
    definition=lambda x, sp: sp.Piecewise((-1, x < -2), (x + x**2 / 4, x < 0), (x - x**2 / 4, x <= 2), (1, True)),
    forward=_sqnl_fwd,
    derivative=_sqnl_der,
    kernel=Kernel(
        forward="V a = abs(x); return where(x > 2.0, 1.0, where(x < -2.0, -1.0, x * (1.0 - 0.25 * a)));",
        derivative="V a = abs(x); return where(a > 2.0, 0.0, (2.0 - a) * 0.5);",
        fast_forward="V a = abs(x); return where(x > 2.0, 1.0, where(x < -2.0, -1.0, x * (1.0 - 0.25 * a)));",
        fast_derivative="V a = abs(x); return where(a > 2.0, 0.0, (2.0 - a) * 0.5);",
        fast_where="",
    ),
    bounds=(-1.0, 1.0),
    monotonic=True,
    smoothness=1,
    zero_centered=True,
    saturates=("left", "right"),
    approximates="tanh",
    approximation_error=0.0433,
    references=(WURAOLA_SQNL,),
)

# ----------------------------------------------------------------------------- absolute
ABSOLUTE = Spec(
    name="absolute",
    aliases=("abs", "abs_rectifier"),
    family="rectifier",
    summary="Absolute-value rectification |x|.",
    definition=lambda x, sp: sp.Abs(x),
    forward=lambda x, ops: ops.abs(x),
    # torch.sign(NaN) is 0, so NaN passes through explicitly.
    derivative=lambda x, ops: _nan_through(x, ops, ops.sign(x)),
    kernel=Kernel(
        forward="return abs(x);",
        derivative="return where(x > 0.0, 1.0, where(x < 0.0, -1.0, where(x == 0.0, 0.0, x)));",
        fast_forward="return abs(x);",
        fast_derivative="return where(x > 0.0, 1.0, where(x < 0.0, -1.0, where(x == 0.0, 0.0, x)));",
        fast_where="",
    ),
    kinks=(Kink(at=0.0, grad=0.0, note="torch.abs: 0"),),
    bounds=(0.0, INF),
    monotonic=False,
    smoothness=0,
    references=(JARRETT_ABS,),
    equivalents=(
        Equivalent("pytorch", "torch.abs", "gradient 0 at 0 (as actlab)"),
        Equivalent("jax", "jax.numpy.abs"),
    ),
    torch_native=lambda x, torch: torch.abs(x),
    native=True,
)


# ----------------------------------------------------------------------------- srelu
def _srelu_fwd(x: Any, ops: Any, t_left: float, a_left: float, t_right: float, a_right: float) -> Any:
    right = _line(x, ops, t_right, a_right)
    return ops.where(_ge(x, ops, t_right), right, ops.where(_le(x, ops, t_left), _line(x, ops, t_left, a_left), x))


def _srelu_der(x: Any, ops: Any, t_left: float, a_left: float, t_right: float, a_right: float) -> Any:
    d = ops.where(_ge(x, ops, t_right), a_right, ops.where(_le(x, ops, t_left), a_left, ops.ones_like(x)))
    return _nan_through(x, ops, d)


def _srelu_bounds(p: dict) -> tuple[float, float]:
    tl, al, tr, ar = p["t_left"], p["a_left"], p["t_right"], p["a_right"]
    left = (-INF, tl) if al > 0 else ((tl, tl) if al == 0 else (tl, INF))
    right = (tr, INF) if ar > 0 else ((tr, tr) if ar == 0 else (-INF, tr))
    return min(left[0], tl, right[0]), max(left[1], tr, right[1])


SRELU = Spec(
    name="srelu",
    tolerance=Tolerance(
        condition_allowance=True,
        reason=(
            "t + a (x - t) has a root at x = t - t/a on each side (t_left = 1, a_left = 0.2: x = -4) where it"
            " cancels: the forward allowance is its condition number |x f'/f| (issue #10)"
        ),
    ),
    aliases=("s_shaped_relu",),
    family="rectifier",
    summary="S-shaped ReLU: identity on (t_left, t_right), slopes a_left / a_right beyond (fixed parameters).",
    params=(
        Param("t_left", -1.0, trainable=True, doc="left threshold"),
        Param("a_left", 0.2, trainable=True, doc="slope for x <= t_left"),
        Param("t_right", 1.0, trainable=True, doc="right threshold (>= t_left)"),
        Param("a_right", 0.2, trainable=True, doc="slope for x >= t_right"),
    ),
    constraints=ordered("t_left", "t_right", strict=False),
    definition=lambda x, sp, t_left, a_left, t_right, a_right: sp.Piecewise(
        (t_left + a_left * (x - t_left), x <= t_left), (x, x < t_right), (t_right + a_right * (x - t_right), True)
    ),
    forward=_srelu_fwd,
    derivative=_srelu_der,
    kernel=Kernel(
        # t + a (x - t) (the constant t for a == 0); double is exact enough beside its root (the spec's
        # condition allowance). Float: a x + t (1 - a) with a and c = t (1 - a) as two floats each,
        # a_hi x + c_hi rounded once (fma): about 1 ulp even where the line cancels; the thresholds'
        # float neighbours for the exact comparisons x >= t_right, x <= t_left.
        forward="""
            V right = a_right == 0.0 ? V(t_right) : t_right + a_right * (x - t_right);
            V left = a_left == 0.0 ? V(t_left) : t_left + a_left * (x - t_left);
            return where(x >= t_right, right, where(x <= t_left, left, x));""",
        derivative="""
            return where(x != x, x, where(x >= t_right, a_right, where(x <= t_left, a_left, 1.0)));""",
        fast_forward="""
            const double cr = t_right * (1.0 - a_right), cl = t_left * (1.0 - a_left);
            const S rah = static_cast<S>(a_right), ral = static_cast<S>(a_right - rah);
            const S rch = static_cast<S>(cr), rcl = static_cast<S>(cr - rch);
            const S lah = static_cast<S>(a_left), lal = static_cast<S>(a_left - lah);
            const S lch = static_cast<S>(cl), lcl = static_cast<S>(cl - lch);
            V xc = min(max(x, -3.0e38), 3.0e38);  // the low parts stay finite (0 * inf) at x = +-inf
            V right = a_right == 0.0 ? V(static_cast<S>(t_right)) : fma(V(rah), x, V(rch)) + fma(V(ral), xc, V(rcl));
            V left = a_left == 0.0 ? V(static_cast<S>(t_left)) : fma(V(lah), x, V(lch)) + fma(V(lal), xc, V(lcl));
            return where(x >= float_above(t_right), right, where(x <= float_below(t_left), left, x));""",
        fast_derivative="""
            return where(x != x, x, where(x >= float_above(t_right), a_right, where(x <= float_below(t_left), a_left, 1.0)));""",
        # |t (1 - a)| <= 1e30 stays a float
        fast_where="V(static_cast<float>(std::max({std::abs(t_left), std::abs(t_right), std::abs(a_left), "
        "std::abs(a_right)}) <= 1e15)) == 1.0",
    ),
    kinks=(
        Kink(at=lambda p: p["t_left"], grad=lambda p: p["a_left"], note="outer slope (the paper's x <= t_l branch)"),
        Kink(at=lambda p: p["t_right"], grad=lambda p: p["a_right"], note="outer slope (the paper's x >= t_r branch)"),
    ),
    bounds=_srelu_bounds,
    monotonic=True,
    smoothness=0,
    zero_centered=True,
    references=(JIN_SRELU,),
    notes="The paper learns all four parameters per channel; here they are fixed hyper-parameters "
    "(defaults: a symmetric S shape). srelu(t_left=-c, a_left=alpha, t_right=c, a_right=alpha) is plu.",
)


# ----------------------------------------------------------------------------- star_relu
@functools.lru_cache(maxsize=64)
def _sqrt_fraction(q: Fraction, bits: int = 140) -> Fraction:
    """sqrt(q) to ``bits`` fractional bits (floor), from integers only."""
    return Fraction(math.isqrt((q.numerator << (2 * bits)) // q.denominator), 1 << bits)


def _star_fwd(x: Any, ops: Any, scale: float, bias: float) -> Any:
    if bias < 0.0:
        # s (x - x0)(x + x0) with the root x0 = sqrt(-bias/scale) carried to twice the working
        # precision: x - x0 is exact near the root, so the result is accurate where it is small.
        x0 = _sqrt_fraction(Fraction(-bias) / Fraction(scale))
        y = (scale * _sub(x, ops, x0)) * (x + float(x0))
    else:
        y = (scale * x) * x + bias
    # NaN fails x <= 0 and propagates through y.
    return ops.where(x <= 0.0, bias, y)


# star_relu's root x0 = sqrt(-bias / scale) as x0h + x0l (about twice double precision), for both forms:
# x0l = (q - x0h^2) / (2 x0h), q = qh - fma(qh, scale, bias) / scale, one division for both.
_STAR_ROOT = """
            const double qh = -bias / scale;
            const double x0h = std::sqrt(std::max(qh, 0.0)), sq = x0h * x0h, sqe = std::fma(x0h, x0h, -sq);
            const double x0r = ((qh - sq) - sqe) * scale - std::fma(qh, scale, bias);
            const double x0l = x0h > 0.0 ? x0r / (2.0 * x0h * scale) : 0.0;
"""

STAR_RELU = Spec(
    name="star_relu",
    aliases=("starrelu",),
    family="rectifier",
    summary="scale * relu(x)^2 + bias (MetaFormer's StarReLU, s = 0.8944, b = -0.4472).",
    params=(
        Param(
            "scale",
            0.8944,
            low=0.0,
            low_open=True,
            high=1e4,
            trainable=True,
            doc="s; the paper's 1/sqrt(Var relu(x)^2) = 2/sqrt(5) for x ~ N(0, 1), to 4 digits; at most 1e4 "
            "(s x is formed first and overflows float32 for s near its largest value)",
        ),
        Param(
            "bias",
            -0.4472,
            low=-1e4,
            high=1e4,
            trainable=True,
            doc="b; the paper's -E[relu(x)^2] s = -1/sqrt(5), to 4 digits; |b| <= 1e4 (the root "
            "sqrt(-b/s) is carried to twice the working precision, which overflows for |b| near float32's max)",
        ),
    ),
    definition=lambda x, sp, scale, bias: sp.Piecewise((scale * x**2 + bias, x > 0), (bias, True)),
    forward=_star_fwd,
    derivative=lambda x, ops, scale, bias: (2.0 * scale) * ops.maximum(x, 0.0),
    kernel=Kernel(
        # as the eager code: s (x - x0)(x + x0) with x - x0 exact near the root where bias < 0
        forward=_STAR_ROOT
        + """
            V y = bias < 0.0 ? (scale * ((x - x0h) - x0l)) * (x + x0h) : (scale * x) * x + bias;
            return where(x <= 0.0, bias, y);""",
        derivative="return (2.0 * scale) * max(x, 0.0);",
        fast_forward=_STAR_ROOT
        + """
            const S xh = static_cast<S>(x0h), xl = static_cast<S>((x0h - xh) + x0l);
            const S sf = static_cast<S>(scale), bf = static_cast<S>(bias);
            V y = bias < 0.0 ? (sf * ((x - xh) - xl)) * (x + xh) : (sf * x) * x + bf;
            return where(x <= 0.0, bf, y);""",
        fast_derivative="return static_cast<S>(2.0 * scale) * max(x, 0.0);",
        # scale far from float32's underflow (the root then stays below 1e12)
        fast_where="V(static_cast<float>(scale >= 1e-20)) == 1.0",
    ),
    bounds=lambda p: (p["bias"], INF),
    monotonic=True,
    smoothness=1,
    saturates=("left",),
    references=(YU_METAFORMER,),
    equivalents=(
        Equivalent(
            "timm",
            "timm.models.metaformer.StarReLU",
            "learnable scale and bias initialised to scale_value=1.0 and bias_value=0.0 (not 0.8944/-0.4472)",
        ),
    ),
)

SPECS = (
    RELU,
    RELU6,
    LEAKY_RELU,
    RRELU,
    THRESHOLD,
    HARD_TANH,
    HARD_SIGMOID,
    HARDSWISH,
    HARD_MISH,
    HEAVISIDE,
    LINEAR,
    HARDSHRINK,
    SOFTSHRINK,
    SPARSE_SIGMOID,
    SQUARED_RELU,
    PLU,
    SQNL,
    ABSOLUTE,
    SRELU,
    STAR_RELU,
)
