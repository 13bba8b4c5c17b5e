"""Vector activations: functions of a whole slice along ``axis`` (DESIGN.md §2, last paragraph).

Normalisers (softmax, log_softmax, softmin, sparsemax, entmax15), gated units (glu, reglu, geglu,
swiglu, gtu, bilinear), maxout and crelu.

Conventions shared by every spec here:

- Parameters: ``axis`` first (an int, default -1, PyTorch's ``dim``), then any others. ``forward(x,
  ops, axis, ...)``; ``vjp(x, y, g, ops, axis, ...)`` returns the gradient with respect to ``x``
  (``x`` is None when the spec saves its output, ``y`` is None when it saves its input);
  ``jvp(x, y, t, ops, axis, ...)`` the output's tangent for an input tangent ``t`` (forward-mode
  AD), given both the input and the output. softmax, softmin, sparsemax and entmax15 have symmetric
  Jacobians, so their jvp is their vjp applied to the tangent.
- Normalisers (softmax, log_softmax, softmin, sparsemax, entmax15; ``masked`` set) also accept a
  tuple of axes (normalised as one row), 0-d inputs (one-element rows: 1, or 0 for log_softmax,
  as torch.softmax) and empty inputs (empty outputs), and a boolean ``where`` mask given as a
  keyword of the call (jax.nn's semantics): :func:`over_axes` reduces all of these to one int
  axis before ``forward`` runs, on NumPy and torch alike.
- ``oracle(row, mp, **params_without_axis)`` gives the exact output of ONE 1-D row (a list of mpf)
  at mpmath's current precision; :mod:`actlab.verify.vector` raises the precision until it
  converges and differentiates it numerically for the vjp check.
- Gated units split the axis in two halves ``x = [a, b]`` and gate the SECOND half:
  ``a * act(b)``, exactly as ``torch.nn.functional.glu`` (``a * sigmoid(b)``), ``keras.ops.glu``
  and ``jax.nn.glu`` do. An odd length raises ValueError naming the axis and the shape.
- Infinite inputs give the mathematical limit where it exists (softmax([inf, 1]) = [1, 0], which
  PyTorch returns as NaN) and NaN where it does not (a row whose maximum is +-inf and occurs more
  than once: all -inf, or several +inf). NaN anywhere in a row makes that row NaN.

Numerics: the normalisers shift by the row maximum with an exact two-sum (x - max = hi + lo,
no rounding), so a small output keeps its relative accuracy when the inputs mix magnitudes;
log_softmax uses log1p of the sum without the maximum; sparsemax and entmax15 find the threshold
by the sort-based algorithm and then refine it with Newton steps on the shifted values. The
vjps from the output form sum_j w_j (g_i - g_j) without cancellation for a dominant entry (where
PyTorch's y (g - sum g y) returns 0 for the maximum of a nearly one-hot softmax). Gated units:
sigmoid(b) is split as e^(b/2) e^(b/2) below b = -60 so that a * sigmoid(b) is accurate where
sigmoid(b) alone underflows; geglu takes Phi(b) from erfc with the argument -b/sqrt2 in double
length (erfc's tail amplifies an argument error by 2 t^2), and from erfcx(t) exp(-b^2/2) with
b^2 in double length where erfc leaves the normal range; gelu' and silu' are Taylor series
around their non-trivial roots (-0.7518 and -1.2785), where Phi + b phi and
sigmoid (1 + b sigmoid(-b)) cancel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from actlab.catalog._refs import (
    DAUPHIN_GLU,
    GOODFELLOW_DL,
    GOODFELLOW_MAXOUT,
    MARTINS_SPARSEMAX,
    PETERS_ENTMAX,
    SHAZEER_GLU,
)
from actlab.catalog.spec import Equivalent, Param, Reference, Spec, Tolerance
from actlab.ops.exact import square, veltkamp_constant

BRIDLE_SOFTMAX = Reference(
    "Probabilistic Interpretation of Feedforward Classification Network Outputs, with Relationships "
    "to Statistical Pattern Recognition",
    "Bridle",
    1990,
)
VAN_DEN_OORD_GATED = Reference(
    "Conditional Image Generation with PixelCNN Decoders",
    "van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves, Kavukcuoglu",
    2016,
    arxiv="1606.05328",
)
SHANG_CRELU = Reference(
    "Understanding and Improving Convolutional Neural Networks via Concatenated Rectified Linear Units",
    "Shang, Sohn, Almeida, Lee",
    2016,
    arxiv="1603.05201",
)

_INV_SQRT2 = 0.7071067811865476  # 1/sqrt(2)
_INV_SQRT_2PI = 0.3989422804014327  # 1/sqrt(2 pi)
_TWO_OVER_SQRT_PI = 1.1283791670955126
# 1/sqrt(2) = _C_HH + _C_HL + _C_LO: two 12-bit parts (exact products with split halves of any
# float32/float64 number) and the double remainder, for t = -b/sqrt(2) in double length.
_C_HH = 2896.0 / 4096.0
_C_HL = 7.551908493041992e-05  # 1267 / 2^24
_C_LO = 1.210161710447897e-08  # 1/sqrt(2) - _C_HH - _C_HL, from the exact value (mpmath)
# Phi(b) = erfc(-b/sqrt2)/2 is taken from erfc down to b_split (where it leaves the normal range):
# PyTorch's erfc is within 1 ulp there (its erfcx is not: up to 5 ulps in float32), and so is
# SciPy's in float32 (computed in double). SciPy's float64 erfc is not (9 ulps at t = 2, 60 at
# t = 8, 500 at t = 23), so NumPy float64 switches to erfcx(t) exp(-t^2) below this b.
_GELU_TAIL = -0.5
# Phi(b) underflows to 0 in float64 for b < -38.5; the tail branch is evaluated at >= this.
_GELU_FLOOR = -64.0


def _axis_param(doc: str = "the axis along which the function is applied (PyTorch's ``dim``)") -> Param:
    return Param("axis", -1, kind=int, aliases=("dim",), doc=doc)  # PyTorch spells it dim


def _axes_param() -> Param:
    return Param(
        "axis",
        -1,
        kind=int,
        axes=True,
        aliases=("dim",),  # PyTorch spells it dim
        doc="the axis along which the function is applied (PyTorch's ``dim``), or a tuple of axes: "
        "their union is normalised as one (Keras 3's and jax.nn's axis=(1, 2))",
    )


_WHERE_NOTE = (
    "Axis: an int or a tuple of axes (their union is one row). 0-d inputs are one-element rows "
    "(as torch.softmax) and empty inputs give empty outputs of the same shape. where=: a boolean "
    "mask broadcastable to the input, a keyword of the call (spec(x, where=m), "
    "functional.{name}(x, where=m), module(x, where=m)), not a parameter: masked entries are left "
    "out of the row and get {out}; a row with nothing unmasked gives {out} everywhere, not NaN "
    "(jax.nn's where= semantics). "
)


def over_axes(fn: Any, x: Any, ops: Any, axis: Any, where: Any, masked: tuple[float, float], name: str) -> Any:
    """A normaliser ``fn(x, axis: int)`` applied over ``axis`` (an int or a tuple of axes) with an
    optional boolean ``where`` mask; 0-d inputs are one-element rows, empty inputs give empty outputs.

    A tuple of axes is moved to the end and flattened into one axis (a view-and-copy that autograd
    and vmap follow), so that ``fn`` always sees a single axis. Masked inputs are replaced by
    ``masked[0]`` (-inf: no weight) and masked outputs by ``masked[1]``; a fully masked row is NaN
    inside (all -inf) and the output mask replaces every entry of it, gradients included.
    """
    shape = tuple(x.shape)
    nd = len(shape)
    given = axis if isinstance(axis, tuple) else (axis,)
    span = max(nd, 1)  # a 0-d input takes axis 0 or -1, as torch.softmax does
    for a in given:
        if not -span <= a < span:
            raise ValueError(f"{name}: axis {axis} is out of range for an input of shape {shape}")
    axes = sorted({a % span for a in given})
    if len(axes) != len(given):
        raise ValueError(f"{name}: axis {axis} names the same axis twice for an input of shape {shape}")
    mask = None
    if where is not None:
        mask = ops.as_mask(where, x)
        try:
            fits = np.broadcast_shapes(tuple(mask.shape), shape) == shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"{name}: where= mask of shape {tuple(mask.shape)} does not broadcast to the input's shape {shape}"
            )
        x = ops.where(mask, x, masked[0])
    if ops.numel(x) == 0:
        y = x * 1.0  # empty in, empty out (of the same shape, still on the autograd graph)
    elif nd == 0:
        y = ops.reshape(fn(ops.reshape(x, (1,)), 0), ())
    elif len(axes) == 1:
        y = fn(x, axes[0])
    else:
        keep = [d for d in range(nd) if d not in axes]
        order = keep + axes
        inverse = [0] * nd
        size = 1
        for i, d in enumerate(order):  # plain loops: torch.compile traces them (not math.prod)
            inverse[d] = i
            size *= shape[d] if d in axes else 1
        flat = ops.reshape(ops.permute(x, order), [shape[d] for d in keep] + [size])
        y = ops.permute(ops.reshape(fn(flat, len(keep)), [shape[d] for d in order]), inverse)
    if mask is not None:
        y = ops.where(mask, y, masked[1])
    return y


# ----------------------------------------------------------------------------- shared helpers
def _norm_axis(x: Any, axis: int, name: str) -> int:
    nd = x.ndim
    if nd == 0:
        raise ValueError(f"{name}: needs an input with at least one dimension, got a 0-d input")
    if not -nd <= axis < nd:
        raise ValueError(f"{name}: axis {axis} is out of range for an input of shape {tuple(x.shape)}")
    return axis % nd


def _halves(x: Any, ops: Any, axis: int, name: str) -> tuple[Any, Any, int]:
    ax = _norm_axis(x, axis, name)
    n = x.shape[ax]
    if n % 2:
        raise ValueError(
            f"{name}: dimension {n} of axis {axis} in shape {tuple(x.shape)} is not divisible by 2 "
            "(the input is split into two halves [a, b] along this axis)"
        )
    a, b = ops.split2(x, ax)
    return a, b, ax


def _indicator(mask: Any, like: Any, ops: Any) -> Any:
    return ops.where(mask, ops.ones_like(like), ops.zeros_like(like))


def _shift(x: Any, ops: Any, axis: int) -> tuple[Any, Any, Any, Any]:
    """``x - max`` along ``axis`` as an unevaluated sum ``hi + lo`` (exact two-sum).

    Returns (hi, lo, top, m): ``top`` marks the entries equal to the maximum ``m`` (hi = lo = 0
    there). Non-finite entries: -inf below a finite maximum gives hi = -inf; +inf maxima give 0
    at the +inf entries and -inf elsewhere; NaN anywhere in the row gives NaN.
    """
    m = ops.amax(x, axis)
    top = x == m
    fin = ops.isfinite(x) & ops.isfinite(m)
    xf = ops.where(fin, x, 0.0)
    mf = ops.where(fin, m, 0.0)
    hi = xf - mf
    bv = hi - xf
    lo = (xf - (hi - bv)) - (mf + bv)
    lo = ops.where(ops.isfinite(lo), lo, 0.0)
    nan_row = ops.isnan(x) | ops.isnan(m)
    special = ops.where(nan_row, ops.full_like(x, math.nan), ops.full_like(x, -math.inf))
    special = ops.where(top, ops.zeros_like(x), special)
    hi = ops.where(fin, hi, special)
    return hi, lo, top, m


def _nan_where_undefined(y: Any, x: Any, top: Any, m: Any, ops: Any, axis: int) -> Any:
    count = ops.sum(_indicator(top, x, ops), axis)
    bad = ops.isinf(m) & (count > 1.5)
    return ops.where(bad, ops.full_like(y, math.nan), y)


# ----------------------------------------------------------------------------- softmax family
def _exp_shifted(x: Any, ops: Any, axis: int) -> tuple[Any, Any, Any, Any, Any, Any, Any]:
    """(hi, lo, top, m, e, ntop, rest): e = exp(x - max), the number of maxima and the sum of the
    other terms. sum(e) = ntop + rest with one rounding: the small terms are summed among
    themselves, not one by one into the 1 of the maximum (which loses up to an ulp each)."""
    hi, lo, top, m = _shift(x, ops, axis)
    e = ops.exp(hi)
    e = e + e * lo  # exp(hi + lo) = exp(hi) (1 + lo), |lo| <= ulp(hi)/2
    ntop = ops.sum(_indicator(top, x, ops), axis)
    rest = ops.sum(ops.where(top, ops.zeros_like(e), e), axis)
    return hi, lo, top, m, e, ntop, rest


def _softmax(x: Any, ops: Any, axis: int) -> Any:
    axis = _norm_axis(x, axis, "softmax")
    hi, lo, top, m, e, ntop, rest = _exp_shifted(x, ops, axis)
    y = e / (ntop + rest)
    return _nan_where_undefined(y, x, top, m, ops, axis)


def _split_vjp(w: Any, g: Any, ops: Any, axis: int) -> Any:
    """sum_j w_j (g_i - g_j) scaled by w_i, i.e. w_i (g_i S - T) with S = sum w, T = sum g w.

    An entry holding more than half of S (at most one per row; softmax's maximum when the others
    are tiny) would lose the difference g_i S - T to cancellation (S - w_i rounds away); for it
    the sums over the other entries are formed directly: w_i (g_i R - U), R = S - w_i, U = T - g_i w_i.
    """
    diff, _ = _centred(w, g, ops, axis)
    return w * diff


def _centred(w: Any, g: Any, ops: Any, axis: int) -> tuple[Any, Any]:
    """(g_i S - T, S) with S = sum w, T = sum g w: sum_j w_j (g_i - g_j), without cancellation for
    the entry holding more than half of S (formed from the sums over the others, R and U)."""
    big = w > 0.5 * ops.sum(w, axis)
    gw = g * w
    zero = ops.zeros_like(w)
    r = ops.sum(ops.where(big, zero, w), axis)
    u = ops.sum(ops.where(big, zero, gw), axis)
    # S and T as (the dominant term) + (the sum of the others): one rounding each
    s = ops.sum(ops.where(big, w, zero), axis) + r
    t = ops.sum(ops.where(big, gw, zero), axis) + u
    return ops.where(big, g * r - u, g * s - t), s


def _softmax_vjp(x: Any, y: Any, g: Any, ops: Any, axis: int) -> Any:
    return _split_vjp(y, g, ops, axis)


def _log_softmax(x: Any, ops: Any, axis: int) -> Any:
    axis = _norm_axis(x, axis, "log_softmax")
    hi, lo, top, m, e, ntop, rest = _exp_shifted(x, ops, axis)
    # log sum exp(x - max) = log1p(rest + extra maxima)
    y = (hi - ops.log1p(rest + (ntop - 1.0))) + lo
    return _nan_where_undefined(y, x, top, m, ops, axis)


def _log_softmax_vjp(x: Any, y: Any, g: Any, ops: Any, axis: int) -> Any:
    return g - ops.exp(y) * ops.sum(g, axis)


def _log_softmax_jvp(x: Any, y: Any, t: Any, ops: Any, axis: int) -> Any:
    # J = I - 1 p^T with p = softmax(x) (not symmetric): J t = t_i - sum_j p_j t_j =
    # sum_j p_j (t_i - t_j) / sum p, formed without cancellation for the dominant entry (whose
    # tangent is as small as the others' weights: t_i - sum p t would lose it entirely). p from x,
    # not exp(y): exp amplifies y's rounding by |y| (tens of ulps where y ~ -30).
    diff, s = _centred(_softmax(x, ops, axis), t, ops, axis)
    return diff / s


def _softmin(x: Any, ops: Any, axis: int) -> Any:
    _norm_axis(x, axis, "softmin")
    return _softmax(-x, ops, axis)


def _softmin_vjp(x: Any, y: Any, g: Any, ops: Any, axis: int) -> Any:
    return -_split_vjp(y, g, ops, axis)


def _mp_softmax(row: list, mp: Any) -> list:
    m = max(row)
    e = [mp.exp(v - m) for v in row]
    s = mp.fsum(e)
    return [v / s for v in e]


def _mp_log_softmax(row: list, mp: Any) -> list:
    m = max(row)
    first = row.index(m)
    rest = mp.fsum(mp.exp(v - m) for j, v in enumerate(row) if j != first)
    big = mp.log1p(rest)
    return [(v - m) - big for v in row]


# ----------------------------------------------------------------------------- sparse normalisers
def _sorted_prefix(h: Any, ops: Any, axis: int, supported: Any) -> tuple[Any, Any, Any]:
    """Sort ``h`` descending; the prefix mask of the support found by ``supported``, its size."""
    zs = ops.sort_descending(h, axis)
    k = ops.count_along(zs, axis)
    size = ops.sum(_indicator(supported(zs, k), zs, ops), axis)
    prefix = k <= size
    return zs, prefix, size


def _sparsemax(x: Any, ops: Any, axis: int) -> Any:
    axis = _norm_axis(x, axis, "sparsemax")
    hi, lo, top, m = _shift(x, ops, axis)
    # Entries below max - 1 are never in the support (tau >= max - 1); clamping them keeps the
    # cumulative sums finite and small without changing the support.
    h = ops.maximum(hi, -2.0)
    zs, prefix, size = _sorted_prefix(h, ops, axis, lambda zs, k: 1.0 + k * zs > ops.cumsum(zs, axis))
    tau = (ops.sum(ops.where(prefix, zs, ops.zeros_like(zs)), axis) - 1.0) / ops.maximum(size, 1.0)
    # One Newton step on F(t) = sum (z - t)_+ - 1 (exact once the support is right) repairs the
    # rounding of the cumulative sums; z = h + lo is the exactly shifted input.
    u0, c = _two_diff(h, tau, lo, ops)
    p = ops.maximum(u0 + c, 0.0)
    n = ops.sum(_indicator(p > 0, p, ops), axis)
    c = c - (ops.sum(p, axis) - 1.0) / ops.maximum(n, 1.0)
    y = ops.maximum(u0 + c, 0.0)
    return _nan_where_undefined(y, x, top, m, ops, axis)


def _two_diff(h: Any, tau: Any, c: Any, ops: Any) -> tuple[Any, Any]:
    """h - tau + c as u0 + c' with u0 = fl(h - tau) and its rounding error moved into c'
    (two-sum), so that the final u0 + c' is rounded once. h and tau are finite."""
    u0 = h - tau
    bv = u0 - h
    return u0, c + ((h - (u0 - bv)) - (tau + bv))


def _symmetric_jvp(vjp: Any) -> Any:
    """The jvp of a function whose Jacobian is symmetric (softmax: diag(y) - y y^T; softmin, its
    negative; sparsemax: the projection onto the support's zero-sum plane; entmax15: diag(s) -
    s s^T / sum s): J t = J^T t, the vjp applied to the tangent."""

    def jvp(x: Any, y: Any, t: Any, ops: Any, axis: int) -> Any:
        return vjp(x, y, t, ops, axis)

    return jvp


def _sparsemax_vjp(x: Any, y: Any, g: Any, ops: Any, axis: int) -> Any:
    support = y > 0
    gs = ops.where(support, g, ops.zeros_like(g))
    n = ops.sum(_indicator(support, g, ops), axis)
    mean = ops.sum(gs, axis) / ops.maximum(n, 1.0)
    return ops.where(support, g - mean, ops.zeros_like(g)) + 0.0 * y  # + 0 y: NaN rows stay NaN


def _entmax15(x: Any, ops: Any, axis: int) -> Any:
    axis = _norm_axis(x, axis, "entmax15")
    hi, lo, top, m = _shift(x, ops, axis)
    h, hl = hi * 0.5, lo * 0.5  # entmax15(x) = (x/2 - tau)_+^2 with sum = 1
    # tau >= max/2 - 1, so entries below max/2 - 1 never enter the support: clamp them.
    hc = ops.maximum(h, -2.0)

    def supported(zs: Any, k: Any) -> Any:
        mean = ops.cumsum(zs, axis) / k
        ss = ops.cumsum(zs * zs, axis) - k * mean * mean
        d = (1.0 - ss) / k
        tau_k = mean - ops.sqrt(ops.maximum(d, 0.0))
        return tau_k <= zs

    zs, prefix, size = _sorted_prefix(hc, ops, axis, supported)
    zp = ops.where(prefix, zs, ops.zeros_like(zs))
    s1 = ops.sum(zp, axis)
    size = ops.maximum(size, 1.0)  # 0 only in NaN rows
    mean = s1 / size
    dev = ops.where(prefix, zs - mean, ops.zeros_like(zs))
    ss = ops.sum(dev * dev, axis)
    tau = mean - ops.sqrt(ops.maximum((1.0 - ss) / size, 0.0))
    # Two Newton steps on F(t) = sum (z - t)_+^2 - 1 with z = h + hl exact; the corrections are
    # kept apart from fl(hc - tau) so that z - tau is rounded once at the end.
    u0, c = _two_diff(hc, tau, hl, ops)
    for _ in range(2):
        p = ops.maximum(u0 + c, 0.0)
        c = c - (ops.sum(p * p, axis) - 1.0) / (2.0 * ops.sum(p, axis))
    p = ops.maximum(u0 + c, 0.0)
    y = p * p
    return _nan_where_undefined(y, x, top, m, ops, axis)


def _entmax15_vjp(x: Any, y: Any, g: Any, ops: Any, axis: int) -> Any:
    support = y > 0
    # double where: sqrt is never evaluated at 0, so double backward stays finite
    s = ops.where(support, ops.sqrt(ops.where(support, y, ops.ones_like(y))), ops.zeros_like(y))
    # s (g - sum(s g) / sum(s)), formed without cancellation for a dominant entry; sum(s) is 0
    # only in NaN rows, which stay NaN (+ 0 y)
    return _split_vjp(s, g, ops, axis) / ops.maximum(ops.sum(s, axis), 1.0) + 0.0 * y


def _mp_sparsemax(row: list, mp: Any) -> list:
    zs = sorted(row, reverse=True)
    n = len(zs)
    total = mp.mpf(0)
    for k in range(1, n + 1):
        total += zs[k - 1]
        tau = (total - 1) / k
        if zs[k - 1] > tau and (k == n or zs[k] <= tau):
            return [max(v - tau, mp.mpf(0)) for v in row]
    raise ArithmeticError("sparsemax oracle: no consistent support")


def _mp_entmax15(row: list, mp: Any) -> list:
    z = [v / 2 for v in row]
    zs = sorted(z, reverse=True)
    n = len(zs)
    for k in range(1, n + 1):
        head = zs[:k]
        mean = mp.fsum(head) / k
        ss = mp.fsum((v - mean) ** 2 for v in head)
        d = (1 - ss) / k
        if d < 0:
            continue
        tau = mean - mp.sqrt(d)
        if tau <= zs[k - 1] and (k == n or zs[k] <= tau):
            return [max(v - tau, mp.mpf(0)) ** 2 for v in z]
    raise ArithmeticError("entmax15 oracle: no consistent support")


# ----------------------------------------------------------------------------- gated units
# Near the non-trivial roots of gelu' (b0 = -0.7518) and silu' (b1 = -1.2785) the usual formulas
# (Phi(b) + b phi(b), sigmoid(b) (1 + b sigmoid(-b))) cancel; there they are evaluated as Taylor
# series in d = b - root, with the root split as hi (float32-exact) + mid + lo so that d is exact
# in float32 and float64 alike. Coefficients: mpmath at 80 digits; truncation < 4e-18 relative.
_GELU_ROOT = (-0.7517915368080139, 1.211444988769017e-08, -4.291324506730527e-16)
_GELU_RADIUS = 0.5
_GELU_SERIES = (
    0.4314939923140469,
    0.388284982990552,
    -0.018199676398671087,
    -0.1140082332972217,
    -0.014771522148244337,
    0.019421679838189067,
    0.004539228379125415,
    -0.002239538068073497,
    -0.0007448268386746817,
    0.00018633974623233514,
    8.615947861116571e-05,
    -1.121438018842664e-05,
    -7.74846130700372e-06,
    4.3284506257392273e-07,
    5.702764979242107e-07,
    -1.6044265494246427e-09,
    -3.5459866461783865e-08,
    -1.396942086426202e-09,
    1.90319840501314e-09,
    1.4506418938779426e-10,
    -8.950037692726255e-11,
    -9.950340824808053e-12,
    3.725967039270119e-12,
    5.482292964742324e-13,
)
_SILU_ROOT = (-1.2784645557403564, 1.2979282537628478e-08, 1.1257466309409694e-16)
_SILU_RADIUS = 0.7
_SILU_SERIES = (
    0.2178117057198001,
    0.1466487969969469,
    0.018874814223782312,
    -0.015222655223188032,
    -0.006606589138356696,
    0.000126627410081122,
    0.0007985218818397998,
    0.00018570724361186496,
    -4.090534237428612e-05,
    -2.9733542213263917e-05,
    -2.942631888842464e-06,
    2.346029682463866e-06,
    8.599695028268575e-07,
    -3.051244750055421e-08,
    -9.266646309267441e-08,
    -1.8877622907727957e-08,
    4.619379769031606e-09,
    2.9177603026903803e-09,
    2.3648315053103244e-10,
    -2.251366201881081e-10,
    -7.50344609385287e-11,
    3.998547874723996e-12,
    8.04274075537398e-12,
    1.4842855116792256e-12,
    -4.1428341124873365e-13,
    -2.3496573817834053e-13,
    -1.5376365106809265e-14,
    1.8397842645887054e-14,
    5.662235988802348e-15,
)
# Below this b, sigmoid(b) = e^b to working precision and is split as e^(b/2) * e^(b/2), so that
# a * sigmoid(b) stays accurate where sigmoid(b) alone would be subnormal (or 0) but the product is not.
_SIG_SPLIT = -60.0


def _root_series(b: Any, ops: Any, root: tuple[float, float, float], radius: float, coeffs: tuple) -> tuple[Any, Any]:
    """(mask |b - root| < radius, the series sum_k c_k d^k at d = b - root)."""
    near = ops.abs(b - root[0]) < radius
    bs = ops.clip(b, root[0] - radius, root[0] + radius)  # unselected lanes stay finite (double where)
    d = ((bs - root[0]) - root[1]) - root[2]
    q = d * coeffs[-1] + coeffs[-2]
    for c in reversed(coeffs[:-2]):
        q = q * d + c
    return near, q * d


def _sigmoid_parts(b: Any, ops: Any) -> tuple[Any, Any]:
    """sigmoid(b) = p1 * p2, both factors normal numbers wherever possible (p2 = 1 unless b < -60)."""
    tail = b < _SIG_SPLIT
    h = ops.exp(0.5 * ops.minimum(b, _SIG_SPLIT))
    return ops.where(tail, h, ops.sigmoid(b)), ops.where(tail, h, ops.ones_like(b))


def _sech2(a: Any, ops: Any) -> Any:
    """1 - tanh(a)^2 = 4 e / (1 + e)^2 with e = exp(-2|a|): no cancellation, no overflow."""
    e = ops.exp(-2.0 * ops.abs(a))
    return 4.0 * e / ops.square(1.0 + e)


def _gauss(b: Any, ops: Any, scale: float) -> Any:
    """exp(-scale * b^2) with b^2 in double length (no argument error)."""
    hi, lo = square(b, veltkamp_constant(b, ops))  # b^2 exactly
    e = ops.exp(-scale * hi)
    return e - e * (scale * lo)


def _neg_t(b: Any, ops: Any) -> tuple[Any, Any]:
    """t = -b/sqrt(2) as hi + lo (exact product by Dekker's method, then the constant's tail)."""
    eps = float(ops.finfo(b).eps)
    bits = int(round(-math.log2(eps))) + 1
    c = float(2 ** ((bits + 1) // 2) + 1) * b
    bh = c - (c - b)
    bl = b - bh
    ch = _C_HH + _C_HL
    p = b * ch
    e = ((bh * _C_HH - p) + bh * _C_HL + bl * _C_HH) + bl * _C_HL
    q = e + b * _C_LO
    hi = p + q  # renormalise: |lo| <= ulp(hi) / 2 (fast two-sum, |q| << |p|)
    return -hi, -((p - hi) + q)


def _gelu_parts(b: Any, ops: Any) -> tuple[Any, Any, Any, Any]:
    """(G1, G2, Q1, Q2) with gelu(b) = b Phi(b) = G1 * G2 and gelu'(b) = Phi(b) + b phi(b) = Q1 * Q2.

    Three regions, each evaluated on a clamped copy of b so that every branch is finite
    (double where): main (b >= b_x): Phi = erfc(t_hi) (1 - t_lo 2/(sqrt(pi) erfcx(t_hi))) / 2 with
    t = -b/sqrt2 in double length; tail (b_split <= b < b_x): Phi = erfcx(t) exp(-b^2/2) / 2;
    deep tail (b < b_split, where Phi is below the normal range): the same with exp(-b^2/2)
    split into two normal factors, so that a * gelu(b) stays accurate when it is a normal number.
    Near the root of gelu' (-0.7518) gelu' is its Taylor series.
    """
    finfo = ops.finfo(b)
    b_split = -math.sqrt(2.0 * (-math.log(float(finfo.tiny)) - 4.0))
    b_x = b_split if (float(finfo.eps) > 1e-10 or ops.name == "torch") else _GELU_TAIL
    one = ops.ones_like(b)
    # main region
    bm = ops.clip(b, b_x, 64.0)
    th, tl = _neg_t(bm, ops)
    phi_m = 0.5 * ops.erfc(th) * (1.0 - tl * (_TWO_OVER_SQRT_PI / ops.erfcx(th)))
    d_m = phi_m + _INV_SQRT_2PI * bm * _gauss(bm, ops, 0.5)
    # tail regions
    bx = ops.clip(b, _GELU_FLOOR, b_x)
    rx = 0.5 * ops.erfcx(bx * -_INV_SQRT2)
    ex = _gauss(bx, ops, 0.5)
    half = _gauss(bx, ops, 0.25)
    inner = rx + _INV_SQRT_2PI * bx
    main = b >= b_x
    deep = b < b_split
    g1 = ops.where(main, b * phi_m, ops.where(deep, bx * (rx * half), bx * (rx * ex)))
    g2 = ops.where(deep, half, one)
    near, series = _root_series(b, ops, _GELU_ROOT, _GELU_RADIUS, _GELU_SERIES)
    q1 = ops.where(near, series, ops.where(main, d_m, ops.where(deep, half * inner, ex * inner)))
    q2 = ops.where(deep & ~near, half, one)
    return g1, g2, q1, q2


def _glu(x: Any, ops: Any, axis: int) -> Any:
    a, b, _ = _halves(x, ops, axis, "glu")
    p1, p2 = _sigmoid_parts(b, ops)
    return (a * p1) * p2


def _glu_vjp(x: Any, y: Any, g: Any, ops: Any, axis: int) -> Any:
    a, b, ax = _halves(x, ops, axis, "glu")
    p1, p2 = _sigmoid_parts(b, ops)
    gp = g * p1
    return ops.concat([gp * p2, (gp * (a * p2)) * ops.sigmoid(-b)], ax)


# jvps of the gated units: with [t_a, t_b] the halves of the tangent, d(a act(b)) = t_a act(b) +
# a act'(b) t_b, each term formed from the same factors (and in the same order) as the vjp.
def _glu_jvp(x: Any, y: Any, t: Any, ops: Any, axis: int) -> Any:
    a, b, _ = _halves(x, ops, axis, "glu")
    ta, tb = ops.split2(t, _norm_axis(x, axis, "glu"))
    p1, p2 = _sigmoid_parts(b, ops)
    return (ta * p1) * p2 + ((tb * p1) * (a * p2)) * ops.sigmoid(-b)


def _reglu(x: Any, ops: Any, axis: int) -> Any:
    a, b, _ = _halves(x, ops, axis, "reglu")
    return a * ops.maximum(b, 0.0)


def _reglu_vjp(x: Any, y: Any, g: Any, ops: Any, axis: int) -> Any:
    a, b, ax = _halves(x, ops, axis, "reglu")
    return ops.concat([g * ops.maximum(b, 0.0), ops.where(b > 0, g * a, ops.zeros_like(g))], ax)


def _reglu_jvp(x: Any, y: Any, t: Any, ops: Any, axis: int) -> Any:
    a, b, ax = _halves(x, ops, axis, "reglu")
    ta, tb = ops.split2(t, ax)
    return ta * ops.maximum(b, 0.0) + ops.where(b > 0, tb * a, ops.zeros_like(tb))


def _geglu(x: Any, ops: Any, axis: int) -> Any:
    a, b, _ = _halves(x, ops, axis, "geglu")
    g1, g2, _, _ = _gelu_parts(b, ops)
    return (a * g1) * g2


def _geglu_vjp(x: Any, y: Any, g: Any, ops: Any, axis: int) -> Any:
    a, b, ax = _halves(x, ops, axis, "geglu")
    g1, g2, q1, q2 = _gelu_parts(b, ops)
    return ops.concat([(g * g1) * g2, (g * q1) * (a * q2)], ax)


def _geglu_jvp(x: Any, y: Any, t: Any, ops: Any, axis: int) -> Any:
    a, b, ax = _halves(x, ops, axis, "geglu")
    ta, tb = ops.split2(t, ax)
    g1, g2, q1, q2 = _gelu_parts(b, ops)
    return (ta * g1) * g2 + (tb * q1) * (a * q2)


def _swiglu(x: Any, ops: Any, axis: int) -> Any:
    a, b, _ = _halves(x, ops, axis, "swiglu")
    p1, p2 = _sigmoid_parts(b, ops)
    return (a * p1) * (b * p2)


def _swiglu_parts(x: Any, ops: Any, axis: int) -> tuple:
    """(a, b, axis, p1, p2, f1, f2, f3): silu(b) = p1 * (b p2) and silu'(b) = f1 * f2 * f3, with
    sigmoid(b) (1 + b sigmoid(-b)) replaced by its series near silu's critical point."""
    a, b, ax = _halves(x, ops, axis, "swiglu")
    p1, p2 = _sigmoid_parts(b, ops)
    near, series = _root_series(b, ops, _SILU_ROOT, _SILU_RADIUS, _SILU_SERIES)
    one = ops.ones_like(b)
    f1 = ops.where(near, series, p1)
    f2 = ops.where(near, one, p2)
    f3 = ops.where(near, one, 1.0 + b * ops.sigmoid(-b))
    return a, b, ax, p1, p2, f1, f2, f3


def _swiglu_vjp(x: Any, y: Any, g: Any, ops: Any, axis: int) -> Any:
    a, b, ax, p1, p2, f1, f2, f3 = _swiglu_parts(x, ops, axis)
    return ops.concat([(g * p1) * (b * p2), (g * f1) * ((a * f2) * f3)], ax)


def _swiglu_jvp(x: Any, y: Any, t: Any, ops: Any, axis: int) -> Any:
    a, b, ax, p1, p2, f1, f2, f3 = _swiglu_parts(x, ops, axis)
    ta, tb = ops.split2(t, ax)
    return (ta * p1) * (b * p2) + (tb * f1) * ((a * f2) * f3)


def _gtu(x: Any, ops: Any, axis: int) -> Any:
    a, b, _ = _halves(x, ops, axis, "gtu")
    p1, p2 = _sigmoid_parts(b, ops)
    return (ops.tanh(a) * p1) * p2


def _gtu_vjp(x: Any, y: Any, g: Any, ops: Any, axis: int) -> Any:
    a, b, ax = _halves(x, ops, axis, "gtu")
    p1, p2 = _sigmoid_parts(b, ops)
    gp = g * p1
    return ops.concat([(gp * _sech2(a, ops)) * p2, ((gp * ops.tanh(a)) * p2) * ops.sigmoid(-b)], ax)


def _gtu_jvp(x: Any, y: Any, t: Any, ops: Any, axis: int) -> Any:
    a, b, ax = _halves(x, ops, axis, "gtu")
    ta, tb = ops.split2(t, ax)
    p1, p2 = _sigmoid_parts(b, ops)
    return ((ta * p1) * _sech2(a, ops)) * p2 + (((tb * p1) * ops.tanh(a)) * p2) * ops.sigmoid(-b)


def _bilinear(x: Any, ops: Any, axis: int) -> Any:
    a, b, _ = _halves(x, ops, axis, "bilinear")
    return a * b


def _bilinear_vjp(x: Any, y: Any, g: Any, ops: Any, axis: int) -> Any:
    a, b, ax = _halves(x, ops, axis, "bilinear")
    return ops.concat([g * b, g * a], ax)


def _bilinear_jvp(x: Any, y: Any, t: Any, ops: Any, axis: int) -> Any:
    a, b, ax = _halves(x, ops, axis, "bilinear")
    ta, tb = ops.split2(t, ax)
    return ta * b + a * tb


def _mp_halves(row: list) -> tuple[list, list]:
    n = len(row) // 2
    return row[:n], row[n:]


def _mp_sigmoid(v: Any, mp: Any) -> Any:
    return 1 / (1 + mp.exp(-v))


def _mp_gelu(b: Any, mp: Any) -> Any:
    # b Phi(b); for b > 0 through erfc of a positive argument (mpmath's erfc(-t) for large t is a
    # slow series at high precision), without cancellation since erfc(b/sqrt2)/2 <= 1/2.
    if b > 0:
        return b * (1 - mp.erfc(b / mp.sqrt(2)) / 2)
    return b * mp.erfc(-b / mp.sqrt(2)) / 2


def _mp_gated(act: Any) -> Any:
    def oracle(row: list, mp: Any) -> list:
        a, b = _mp_halves(row)
        return [act(ai, bi, mp) for ai, bi in zip(a, b)]

    return oracle


# ----------------------------------------------------------------------------- maxout, crelu
def _groups(x: Any, ops: Any, axis: int, pieces: int) -> tuple[Any, int]:
    ax = _norm_axis(x, axis, "maxout")
    c = x.shape[ax]
    if c % pieces:
        raise ValueError(
            f"maxout: dimension {c} of axis {axis} in shape {tuple(x.shape)} is not divisible by pieces={pieces}"
        )
    shape = tuple(x.shape[:ax]) + (c // pieces, pieces) + tuple(x.shape[ax + 1 :])
    return ops.reshape(x, shape), ax


def _maxout(x: Any, ops: Any, axis: int, pieces: int) -> Any:
    xr, ax = _groups(x, ops, axis, pieces)
    return ops.amax_dim(xr, ax + 1)


def _maxout_vjp(x: Any, y: Any, g: Any, ops: Any, axis: int, pieces: int) -> Any:
    xr, ax = _groups(x, ops, axis, pieces)
    m = ops.amax(xr, ax + 1)
    hit = (xr == m) | ops.isnan(xr)  # a NaN maximum: the gradient goes to the (first) NaN
    first = hit & (ops.cumsum(_indicator(hit, xr, ops), ax + 1) == 1.0)
    gshape = list(xr.shape)
    gshape[ax + 1] = 1
    gx = ops.where(first, ops.reshape(g, gshape), ops.zeros_like(xr))
    return ops.reshape(gx, tuple(x.shape))


def _maxout_jvp(x: Any, y: Any, t: Any, ops: Any, axis: int, pieces: int) -> Any:
    """The tangent of the (first) maximal entry of each group: the transpose of the vjp's routing."""
    xr, ax = _groups(x, ops, axis, pieces)
    tr, _ = _groups(t, ops, axis, pieces)
    m = ops.amax(xr, ax + 1)
    hit = (xr == m) | ops.isnan(xr)
    first = hit & (ops.cumsum(_indicator(hit, xr, ops), ax + 1) == 1.0)
    picked = ops.sum(ops.where(first, tr, ops.zeros_like(tr)), ax + 1)  # one non-zero term per group
    out_shape = tuple(xr.shape[: ax + 1]) + tuple(xr.shape[ax + 2 :])
    return ops.reshape(picked, out_shape)


def _mp_maxout(row: list, mp: Any, pieces: int) -> list:
    return [max(row[i : i + pieces]) for i in range(0, len(row), pieces)]


def _crelu(x: Any, ops: Any, axis: int) -> Any:
    ax = _norm_axis(x, axis, "crelu")
    return ops.concat([ops.maximum(x, 0.0), ops.maximum(-x, 0.0)], ax)


def _crelu_vjp(x: Any, y: Any, g: Any, ops: Any, axis: int) -> Any:
    ax = _norm_axis(x, axis, "crelu")
    gp, gn = ops.split2(g, ax)
    zero = ops.zeros_like(x)
    return ops.where(x > 0, gp, zero) - ops.where(x < 0, gn, zero)


def _crelu_jvp(x: Any, y: Any, t: Any, ops: Any, axis: int) -> Any:
    ax = _norm_axis(x, axis, "crelu")
    zero = ops.zeros_like(t)
    return ops.concat([ops.where(x > 0, t, zero), ops.where(x < 0, -t, zero)], ax)


def _mp_crelu(row: list, mp: Any) -> list:
    zero = mp.mpf(0)
    return [max(v, zero) for v in row] + [max(-v, zero) for v in row]


# ----------------------------------------------------------------------------- specs
_SHIFT_NOTE = (
    "Computed as exp(x - max) with x - max formed exactly (two-sum), so every element, also the "
    "tiny ones, is accurate to a few ulps of itself."
)

SOFTMAX = Spec(
    name="softmax",
    aliases=("soft_max",),
    family="vector",
    kind="vector",
    summary="exp(x_i) / sum_j exp(x_j) along axis: a probability vector, shift-invariant.",
    definition=None,
    formula=r"\mathrm{softmax}(x)_i = \frac{e^{x_i}}{\sum_j e^{x_j}}",
    oracle=_mp_softmax,
    forward=lambda x, ops, axis: _softmax(x, ops, axis),
    vjp=lambda x, y, g, ops, axis: _softmax_vjp(x, y, g, ops, axis),
    jvp=_symmetric_jvp(_softmax_vjp),
    masked=(-math.inf, 0.0),
    saves="output",
    params=(_axes_param(),),
    bounds=(0.0, 1.0),
    smoothness=math.inf,
    references=(BRIDLE_SOFTMAX, GOODFELLOW_DL),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.softmax",
            "dim has no default there: omitting it is deprecated and picks dim=0 for 0-, 1- and 3-d "
            "inputs and dim=1 otherwise (actlab: axis=-1). PyTorch returns NaN for a row containing "
            "+inf (actlab: the limit, 1 at the +inf entry) and computes exp(x - max) with x - max "
            "rounded, which costs relative accuracy in small outputs (tens to hundreds of ulps); "
            "its backward y (g - sum g y) returns 0 for the dominant entry of a nearly one-hot row "
            "(actlab: the small true value).",
            names=("softmax", "Softmax"),
        ),
        Equivalent("keras", "keras.activations.softmax", "axis=-1, same default.", names=("softmax", "Softmax")),
        Equivalent(
            "jax",
            "jax.nn.softmax",
            "axis=-1, same default; extra where=/initial= masking arguments.",
            names=("softmax",),
        ),
        Equivalent(
            "pytorch",
            "torch.nn.Softmax2d",
            "softmax over the channels of a (N, C, H, W) or (C, H, W) tensor: axis=-3 (PyTorch requires a 3- or 4-d input)",
            names=("Softmax2d",),
            params={"axis": -3},
        ),
    ),
    torch_native=lambda x, torch, axis: torch.nn.functional.softmax(x, dim=axis),
    native=False,
    notes=_WHERE_NOTE.format(name="softmax", out="0") + _SHIFT_NOTE,
)

LOG_SOFTMAX = Spec(
    name="log_softmax",
    aliases=("logsoftmax",),
    family="vector",
    kind="vector",
    summary="x_i - log sum_j exp(x_j) along axis: the log of softmax without its underflow.",
    definition=None,
    formula=r"\mathrm{log\_softmax}(x)_i = x_i - \log \sum_j e^{x_j}",
    oracle=_mp_log_softmax,
    forward=lambda x, ops, axis: _log_softmax(x, ops, axis),
    vjp=lambda x, y, g, ops, axis: _log_softmax_vjp(x, y, g, ops, axis),
    jvp=lambda x, y, t, ops, axis: _log_softmax_jvp(x, y, t, ops, axis),
    masked=(-math.inf, -math.inf),
    saves="output",
    params=(_axes_param(),),
    bounds=(-math.inf, 0.0),
    smoothness=math.inf,
    references=(BRIDLE_SOFTMAX, GOODFELLOW_DL),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.log_softmax",
            "dim has no default there (deprecated implicit choice: dim=0 for 0-, 1- and 3-d inputs, "
            "else 1). NaN for a row containing +inf (actlab: 0 at the +inf entry, -inf elsewhere). "
            "Its maximum's output rounds to 0 when the other entries are tiny, e.g. [0, 30] gives "
            "[-30, 0] (actlab: [-30, -9.36e-14]).",
            names=("log_softmax", "LogSoftmax"),
        ),
        Equivalent("keras", "keras.activations.log_softmax", "axis=-1, same default.", names=("log_softmax",)),
        Equivalent("jax", "jax.nn.log_softmax", "axis=-1, same default.", names=("log_softmax",)),
    ),
    torch_native=lambda x, torch, axis: torch.nn.functional.log_softmax(x, dim=axis),
    native=False,
    notes=_WHERE_NOTE.format(name="log_softmax", out="-inf")
    + "The maximum's own output is -log1p(sum of the others), so it keeps its relative accuracy "
    "when the others are tiny.",
)

SOFTMIN = Spec(
    name="softmin",
    aliases=("soft_min",),
    family="vector",
    kind="vector",
    summary="softmax(-x) along axis: weights concentrated on the smallest entries.",
    definition=None,
    formula=r"\mathrm{softmin}(x)_i = \frac{e^{-x_i}}{\sum_j e^{-x_j}}",
    oracle=lambda row, mp: _mp_softmax([-v for v in row], mp),
    forward=lambda x, ops, axis: _softmin(x, ops, axis),
    vjp=lambda x, y, g, ops, axis: _softmin_vjp(x, y, g, ops, axis),
    jvp=_symmetric_jvp(_softmin_vjp),
    masked=(math.inf, 0.0),
    saves="output",
    params=(_axes_param(),),
    bounds=(0.0, 1.0),
    smoothness=math.inf,
    references=(BRIDLE_SOFTMAX,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.softmin",
            "dim has no default there (deprecated implicit choice: dim=0 for 0-, 1- and 3-d inputs, "
            "else 1). NaN for a row containing -inf (actlab: the limit).",
            names=("softmin", "Softmin"),
        ),
    ),
    torch_native=lambda x, torch, axis: torch.nn.functional.softmin(x, dim=axis),
    native=False,
    notes=_WHERE_NOTE.format(name="softmin", out="0") + _SHIFT_NOTE,
)

_SPARSE_TOL = Tolerance(
    condition_allowance=True,
    reason="An output near the edge of the support is x_i - tau(x), a difference of two quantities "
    "of size |x - max| ~ 1 that vanishes at the edge (like a non-trivial root): its relative error "
    "is bounded by the componentwise condition number sum_j |x_j dy_i/dx_j| / |y_i| (taken on the "
    "shift-reduced input x - max, since the function is shift-invariant).",
)

SPARSEMAX = Spec(
    name="sparsemax",
    aliases=("sparse_max",),
    family="vector",
    kind="vector",
    summary="Euclidean projection of x onto the probability simplex: max(x_i - tau, 0), sparse.",
    definition=None,
    formula=r"\mathrm{sparsemax}(x)_i = \max(x_i - \tau(x), 0),\quad \sum_i \max(x_i - \tau, 0) = 1",
    oracle=_mp_sparsemax,
    forward=lambda x, ops, axis: _sparsemax(x, ops, axis),
    vjp=lambda x, y, g, ops, axis: _sparsemax_vjp(x, y, g, ops, axis),
    jvp=_symmetric_jvp(_sparsemax_vjp),
    masked=(-math.inf, 0.0),
    saves="output",
    params=(_axes_param(),),
    bounds=(0.0, 1.0),
    smoothness=0,
    tolerance=_SPARSE_TOL,
    references=(MARTINS_SPARSEMAX,),
    equivalents=(
        Equivalent(
            "tfa",
            "tfa.activations.sparsemax",
            "axis=-1, same default (TensorFlow Addons, no longer maintained).",
            names=("sparsemax",),
        ),
        Equivalent(
            "keras",
            "keras.activations.sparsemax",
            "axis=-1. WRONG whenever two or more outputs are non-zero: its jax, torch and "
            "tensorflow backends (keras/src/backend/*/nn.py) compute tau = (sum over the support of "
            "the cumulative sums - 1) / k instead of (k-th cumulative sum - 1) / k, e.g. "
            "[1, 0.8, 0] gives [0.1, 0, 0] (sum 0.1) instead of [0.6, 0.4, 0]. Correct only when "
            "the support has one element.",
            names=("sparsemax",),
        ),
        Equivalent(
            "entmax",
            "entmax.sparsemax",
            "the deep-spin entmax package (PyTorch); dim=-1 in current releases (dim=0 in early ones).",
        ),
    ),
    notes=_WHERE_NOTE.format(name="sparsemax", out="0")
    + "Sort-based threshold (Martins & Astudillo, Algorithm 1) on the exactly shifted input, then "
    "one Newton step on sum (z - tau)_+ = 1. vjp on the support S: g - mean_S(g); 0 elsewhere.",
)

ENTMAX15 = Spec(
    name="entmax15",
    aliases=("entmax_1_5", "entmax"),
    family="vector",
    kind="vector",
    summary="1.5-entmax: (x_i/2 - tau)_+^2 summing to 1; sparse like sparsemax, smooth like softmax.",
    definition=None,
    formula=r"\mathrm{entmax}_{1.5}(x)_i = \left[\tfrac{x_i}{2} - \tau(x)\right]_+^2,\quad \sum_i \left[\tfrac{x_i}{2} - \tau\right]_+^2 = 1",
    oracle=_mp_entmax15,
    forward=lambda x, ops, axis: _entmax15(x, ops, axis),
    vjp=lambda x, y, g, ops, axis: _entmax15_vjp(x, y, g, ops, axis),
    jvp=_symmetric_jvp(_entmax15_vjp),
    masked=(-math.inf, 0.0),
    saves="output",
    params=(_axes_param(),),
    bounds=(0.0, 1.0),
    smoothness=1,
    tolerance=_SPARSE_TOL,
    references=(PETERS_ENTMAX,),
    equivalents=(
        Equivalent(
            "entmax",
            "entmax.entmax15",
            "the deep-spin entmax package (PyTorch), exact sort-based algorithm; dim=-1 in current "
            "releases (dim=0 in early ones); optional k for partial sorting. Same vjp.",
        ),
    ),
    notes=_WHERE_NOTE.format(name="entmax15", out="0")
    + "Exact sort-based threshold (Peters, Niculae & Martins 2019) on the exactly shifted input, "
    "then two Newton steps on sum (z - tau)_+^2 = 1. vjp: s (g - sum(s g) / sum(s)) with s = sqrt(y).",
)

_GLU_CONVENTION = (
    "Halves [a, b] along axis; the second half b is the gate: a * act(b), as in "
    "torch.nn.functional.glu (a * sigmoid(b))."
)

GLU = Spec(
    name="glu",
    aliases=("gated_linear_unit", "sigmoid_glu"),
    family="vector",
    kind="vector",
    summary="Gated linear unit a * sigmoid(b), [a, b] = the two halves of x along axis.",
    definition=None,
    formula=r"\mathrm{GLU}([a, b]) = a \otimes \sigma(b)",
    oracle=_mp_gated(lambda a, b, mp: a * _mp_sigmoid(b, mp)),
    forward=lambda x, ops, axis: _glu(x, ops, axis),
    vjp=lambda x, y, g, ops, axis: _glu_vjp(x, y, g, ops, axis),
    jvp=lambda x, y, t, ops, axis: _glu_jvp(x, y, t, ops, axis),
    saves="input",
    params=(_axis_param("the axis split into the halves [a, b] (PyTorch's ``dim``)"),),
    smoothness=math.inf,
    references=(DAUPHIN_GLU,),
    equivalents=(
        Equivalent(
            "pytorch",
            "torch.nn.functional.glu",
            "dim=-1, first half times sigmoid(second half): same. Its backward returns 0 for the gate "
            "once sigmoid(b) rounds to 1 (b > 17 in float32, 37 in float64) instead of a e^-b; an odd "
            "size raises RuntimeError (actlab: ValueError naming axis and shape).",
            names=("glu", "GLU"),
        ),
        Equivalent("keras", "keras.activations.glu", "axis=-1, same convention.", names=("glu",)),
        Equivalent("jax", "jax.nn.glu", "axis=-1, same convention.", names=("glu",)),
        Equivalent(
            "timm",
            "timm.layers.GluMlp",
            "an MLP block (fc1, gate, fc2), not a bare activation; gate_last=True (default) is this convention.",
        ),
    ),
    torch_native=lambda x, torch, axis: torch.nn.functional.glu(x, dim=axis),
    native=False,
    notes=_GLU_CONVENTION,
)

REGLU = Spec(
    name="reglu",
    aliases=("relu_glu",),
    family="vector",
    kind="vector",
    summary="ReLU-gated linear unit a * max(b, 0), [a, b] = halves of x along axis.",
    definition=None,
    formula=r"\mathrm{ReGLU}([a, b]) = a \otimes \max(b, 0)",
    oracle=_mp_gated(lambda a, b, mp: a * max(b, mp.mpf(0))),
    forward=lambda x, ops, axis: _reglu(x, ops, axis),
    vjp=lambda x, y, g, ops, axis: _reglu_vjp(x, y, g, ops, axis),
    jvp=lambda x, y, t, ops, axis: _reglu_jvp(x, y, t, ops, axis),
    saves="input",
    params=(_axis_param("the axis split into the halves [a, b]"),),
    smoothness=0,
    references=(SHAZEER_GLU,),
    equivalents=(),
    notes=_GLU_CONVENTION + " At b = 0 the gradient with respect to b is 0 (PyTorch's relu'(0) = 0).",
)

GEGLU = Spec(
    name="geglu",
    aliases=("gelu_glu",),
    family="vector",
    kind="vector",
    summary="GELU-gated linear unit a * gelu(b) (exact, erf form), [a, b] = halves of x along axis.",
    definition=None,
    formula=r"\mathrm{GEGLU}([a, b]) = a \otimes b\,\Phi(b)",
    oracle=_mp_gated(lambda a, b, mp: a * _mp_gelu(b, mp)),
    forward=lambda x, ops, axis: _geglu(x, ops, axis),
    vjp=lambda x, y, g, ops, axis: _geglu_vjp(x, y, g, ops, axis),
    jvp=lambda x, y, t, ops, axis: _geglu_jvp(x, y, t, ops, axis),
    saves="input",
    params=(_axis_param("the axis split into the halves [a, b]"),),
    smoothness=math.inf,
    references=(SHAZEER_GLU,),
    equivalents=(),
    notes=_GLU_CONVENTION + " gelu is the exact (erf) form, accurate in the whole left tail (Phi(b) "
    "from erfc of a double-length argument, then erfcx(t) exp(-b^2/2) with b^2 in double length); "
    "gelu' is a Taylor series around its root b = -0.7518.",
)

SWIGLU = Spec(
    name="swiglu",
    aliases=("silu_glu", "swish_glu"),
    family="vector",
    kind="vector",
    summary="SiLU-gated linear unit a * b sigmoid(b), [a, b] = halves of x along axis.",
    definition=None,
    formula=r"\mathrm{SwiGLU}([a, b]) = a \otimes b\,\sigma(b)",
    oracle=_mp_gated(lambda a, b, mp: a * b * _mp_sigmoid(b, mp)),
    forward=lambda x, ops, axis: _swiglu(x, ops, axis),
    vjp=lambda x, y, g, ops, axis: _swiglu_vjp(x, y, g, ops, axis),
    jvp=lambda x, y, t, ops, axis: _swiglu_jvp(x, y, t, ops, axis),
    saves="input",
    params=(_axis_param("the axis split into the halves [a, b]"),),
    smoothness=math.inf,
    references=(SHAZEER_GLU,),
    equivalents=(
        Equivalent(
            "timm",
            "timm.layers.SwiGLUPacked",
            "an MLP block (GluMlp with act_layer=SiLU, gate_last=False): it computes silu(x1) * x2, "
            "gating the FIRST half, the opposite of actlab's a * silu(b); swap the halves to match. "
            "Many LLaMA-style codebases also write silu(gate) * up with gate first.",
        ),
    ),
    notes=_GLU_CONVENTION + " Shazeer's SwiGLU uses Swish with beta = 1, i.e. SiLU. silu' is a Taylor "
    "series around its root b = -1.2785.",
)

GTU = Spec(
    name="gtu",
    aliases=("gated_tanh_unit", "gated_tanh"),
    family="vector",
    kind="vector",
    summary="Gated tanh unit tanh(a) * sigmoid(b), [a, b] = halves of x along axis.",
    definition=None,
    formula=r"\mathrm{GTU}([a, b]) = \tanh(a) \otimes \sigma(b)",
    oracle=_mp_gated(lambda a, b, mp: mp.tanh(a) * _mp_sigmoid(b, mp)),
    forward=lambda x, ops, axis: _gtu(x, ops, axis),
    vjp=lambda x, y, g, ops, axis: _gtu_vjp(x, y, g, ops, axis),
    jvp=lambda x, y, t, ops, axis: _gtu_jvp(x, y, t, ops, axis),
    saves="input",
    params=(_axis_param("the axis split into the halves [a, b]"),),
    bounds=(-1.0, 1.0),
    smoothness=math.inf,
    references=(VAN_DEN_OORD_GATED, DAUPHIN_GLU),
    equivalents=(),
    notes=_GLU_CONVENTION + " The gated activation of PixelCNN/WaveNet; Dauphin et al. call it GTU.",
)

BILINEAR = Spec(
    name="bilinear",
    aliases=("bilinear_glu",),
    family="vector",
    kind="vector",
    summary="Bilinear gated unit a * b (GLU without the nonlinearity), [a, b] = halves along axis.",
    definition=None,
    formula=r"\mathrm{Bilinear}([a, b]) = a \otimes b",
    oracle=_mp_gated(lambda a, b, mp: a * b),
    forward=lambda x, ops, axis: _bilinear(x, ops, axis),
    vjp=lambda x, y, g, ops, axis: _bilinear_vjp(x, y, g, ops, axis),
    jvp=lambda x, y, t, ops, axis: _bilinear_jvp(x, y, t, ops, axis),
    saves="input",
    params=(_axis_param("the axis split into the halves [a, b]"),),
    smoothness=math.inf,
    references=(SHAZEER_GLU,),
    equivalents=(),
    notes=_GLU_CONVENTION,
)

MAXOUT = Spec(
    name="maxout",
    family="vector",
    kind="vector",
    summary="Maximum over groups of `pieces` consecutive entries along axis (size C -> C / pieces).",
    definition=None,
    formula=r"\mathrm{maxout}(x)_i = \max_{0 \le j < k} x_{ik + j}",
    oracle=_mp_maxout,
    forward=lambda x, ops, axis, pieces: _maxout(x, ops, axis, pieces),
    vjp=lambda x, y, g, ops, axis, pieces: _maxout_vjp(x, y, g, ops, axis, pieces),
    jvp=lambda x, y, t, ops, axis, pieces: _maxout_jvp(x, y, t, ops, axis, pieces),
    saves="input",
    params=(
        _axis_param(
            "the axis whose C entries are grouped (default -1, the feature axis of (N, C) inputs; "
            "pass axis=1 for channels-first conv maps (N, C, H, W))"
        ),
        Param("pieces", 2, low=1, kind=int, doc="entries per group k; C must be divisible by k"),
    ),
    smoothness=0,
    references=(GOODFELLOW_MAXOUT,),
    equivalents=(
        Equivalent(
            "tfa",
            "tfa.layers.Maxout",
            "parameterised by num_units = C / pieces (the number of outputs), not by the group size; "
            "axis=-1; the same contiguous groups on the last axis.",
        ),
    ),
    notes="Groups are contiguous: entries [i*k, (i+1)*k) form output i (x.view(..., C//k, k).max(-1)). "
    "On ties the whole gradient goes to the first maximal entry (like torch.max(dim) and max "
    "pooling; torch.amax would split it evenly).",
)

CRELU = Spec(
    name="crelu",
    aliases=("concatenated_relu",),
    family="vector",
    kind="vector",
    summary="Concatenated ReLU [relu(x), relu(-x)] along axis; the axis doubles in size.",
    definition=None,
    formula=r"\mathrm{CReLU}(x) = [\max(x, 0), \max(-x, 0)]",
    oracle=_mp_crelu,
    forward=lambda x, ops, axis: _crelu(x, ops, axis),
    vjp=lambda x, y, g, ops, axis: _crelu_vjp(x, y, g, ops, axis),
    jvp=lambda x, y, t, ops, axis: _crelu_jvp(x, y, t, ops, axis),
    saves="input",
    params=(_axis_param("the axis along which the two halves are concatenated"),),
    bounds=(0.0, math.inf),
    smoothness=0,
    references=(SHANG_CRELU,),
    equivalents=(Equivalent("tensorflow", "tf.nn.crelu", "axis=-1, same order (positive part first)."),),
    notes="At x = 0 both gradients are 0 (PyTorch's relu'(0) = 0).",
)

SPECS = (
    SOFTMAX,
    LOG_SOFTMAX,
    SOFTMIN,
    SPARSEMAX,
    ENTMAX15,
    GLU,
    REGLU,
    GEGLU,
    SWIGLU,
    GTU,
    BILINEAR,
    MAXOUT,
    CRELU,
)
