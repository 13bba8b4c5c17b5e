"""float16 and bfloat16 accuracy against the oracle rounded once to that dtype (issue #10, item 4).

Data first: :func:`measure_low_precision` (elementwise specs) and :func:`measure_vector_low_precision`
(vector specs) return :class:`LowPrecisionRow` records; ``python -m actlab.verify.low_precision
NAME...`` prints them.

What is expected, and why "<= 1 ulp". actlab computes float16/bfloat16 in float32 and rounds once
(``_compute`` and ``grad_input`` in :mod:`actlab.torch.functional`). The inputs here are values of
the low dtype, so ``x.float()`` is exact and the only errors are the float32 evaluation's and the
final rounding. Let ``y`` be the true value, ``y32`` the float32 result with ``|y32 - y| <= d``,
``d = k ulp32(y)``, and ``RN`` rounding to nearest-even in the low dtype. float32 has 24
significand bits, bfloat16 8 and float16 11, so ``ulp32 = 2^-16 ulp_bf16`` and ``2^-13 ulp_f16``
over the normal range (float32's exponent range covers both; its subnormals start far below
float16's, and at bfloat16's with the same 2^-16 ratio). Rounding is monotone, so ``RN(y32)``
lies between ``RN(y - d)`` and ``RN(y + d)``; for k < 2^14 (bfloat16; 2^11 for float16) ``d`` is
below half the spacing around ``y``, and these two are ``RN(y)`` and at most its neighbour on one
side. So the result is the correctly rounded value or one step from it, never further, and it is
one step off only when ``y`` lies within ``d`` of a midpoint between two low-dtype values: a
fraction of about ``k 2^-15`` (bfloat16) or ``k 2^-12`` (float16) of the inputs. Even a correctly
rounded float32 (k = 1/2) double-rounds there: ``y = 1 + 2^-8 + 2^-40`` gives float32 ``1 + 2^-8``,
a tie that rounds to bfloat16 1, where ``RN(y) = 1 + 2^-7``. The bound is exact: 1 step, reached
only in that double-rounding case (``|RN(y32) - y| <= ulp/2 + d``). It holds in float16's subnormal
range (quantum 2^-24, float32 is normal there) and at overflow: IEEE rounds as if the exponent
were unbounded and gives inf where that reaches 2^(emax+1) (from max + ulp/2 = 65520 for float16),
so inf is one step beyond the largest finite value, and ``y`` just below 65520 may give inf after
a float32 error.

The error measure is exact: the number of representable low-dtype values between the result and
``RN(y)`` (their distance in the ordered sequence of bit patterns, where -0 = +0 and inf is one
step beyond the largest finite value). ``RN`` is computed from float64 in one correct rounding
(:func:`round_to`; float64 -> float32 -> bfloat16 would round twice), and the oracle's float64
value, itself rounded from the mpmath value, is re-evaluated in mpmath where it is exactly a
midpoint of the low dtype (the only place the float64 rounding can change ``RN``).

Rules (elementwise): forward, the input gradient with ``grad_output = 1`` (``RN(f'(x))``) and with
a random representable cotangent ``g`` (``RN(g f'(x))``, one rounding of the exact product: a
derivative rounded to the low dtype before the product rounds twice, and overflows or underflows
where the product does not) each within 1 step, or the spec's ``Tolerance.low_precision_ulps``.
A true value beyond max + ulp/2 by more than a float32 error must give inf of its sign exactly
(the largest finite value, one step away, would be a clamp). float16's subnormal results
(6e-8 .. 6e-5, normal numbers in float32) are checked like any other; bfloat16's are float32's
subnormals, and there, as the float32 targets allow, a result may flush to zero. At a kink the
expected derivative is the spec's declared one. NaN inputs give NaN; a NaN true value needs NaN.
Where ``f'(x)`` itself is beyond float32's range (squared_relu at 3e38) the float32 product
``g f'`` is inf for any g: those cotangent points are reported in ``notes``, not measured; so are
points the oracle cannot evaluate (``tanh(exp(x))`` at x = 1e12).

Vector specs (rows compared with the row oracle of :mod:`actlab.verify.vector`): each output
element within 1 step of ``RN(true)``; the vjp element within 1 step of the interval
``[RN(v - b), RN(v + b)]`` with ``b = 4 ulp32(sum_i |g_i J_ij|)``, the float32 vjp budget (a vjp
is a sum that may cancel: float32 cannot be expected to give the rounded value of a result far
below its terms, and the float32 tests hold it to exactly that floor); specs with
``condition_allowance`` get ``b = 4 kappa ulp32(y)`` in the forward for the same reason.

Inputs (:func:`sample_inputs`): seeded values of the dtype, half of them in 1e-3 <= |x| <= 10, the
rest small (subnormals too), up to 100, up to 1e4, and a few of bfloat16's large end (1e6 ..
3.4e38), with every kink and its neighbours; ``size=None`` takes every finite value (63,487 for
float16, 65,279 for bfloat16): ``python -m actlab.verify.low_precision --all NAME``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "LOW_DTYPES",
    "LowPrecisionRow",
    "Format",
    "FORMATS",
    "round_to",
    "ordinal",
    "step_distance",
    "representable_values",
    "sample_inputs",
    "measure_low_precision",
    "measure_vector_low_precision",
    "measure_any",
    "main",
]

LOW_DTYPES = ("float16", "bfloat16")
LIMIT = 1.0  # steps of the low dtype from the correctly rounded value
SAMPLE_SIZE = 512
RANGE = 1e4  # random samples up to here (as actlab.verify.accuracy); beyond, the points in HUGE
HUGE = {"bfloat16": (1.0e6, 1.0e12, 1.0e20, 1.0e30)}
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_FORWARD_BUDGET = 4.0  # ulp32: the float32 target (actlab.verify.accuracy.FORWARD_LIMIT)


@dataclass(frozen=True)
class Format:
    """An IEEE-style binary format: ``precision`` significand bits (with the implicit one),
    ``emin``/``emax`` the exponents of the smallest/largest normal binade."""

    name: str
    precision: int
    emin: int
    emax: int

    @property
    def max(self) -> float:
        return math.ldexp(2.0 - math.ldexp(1.0, 1 - self.precision), self.emax)

    @property
    def tiny(self) -> float:
        return math.ldexp(1.0, self.emin)

    @property
    def smallest_subnormal(self) -> float:
        return math.ldexp(1.0, self.emin - self.precision + 1)

    @property
    def inf_bits(self) -> int:
        return ((self.emax - self.emin + 2) << (self.precision - 1)) & 0x7FFF


FORMATS = {
    "float16": Format("float16", 11, -14, 15),
    "bfloat16": Format("bfloat16", 8, -126, 127),
}


def _fmt(dtype: Any) -> Format:
    name = str(dtype).removeprefix("torch.")
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"dtype must be one of {', '.join(LOW_DTYPES)}; got {dtype!r}") from None


# ----------------------------------------------------------------------------- rounding
def _quantum_exponent(x: np.ndarray, fmt: Format) -> np.ndarray:
    _, e = np.frexp(x)  # |x| in [2^(e-1), 2^e): spacing 2^(e-p), at least the subnormal quantum
    return np.maximum(e - fmt.precision, fmt.emin - fmt.precision + 1)


def round_to(values: Any, dtype: Any) -> np.ndarray:
    """float64 values rounded ONCE to nearest-even in ``dtype`` ("float16"/"bfloat16"), as float64.

    Subnormals are kept (rounded to the subnormal quantum), a value whose rounding (with an
    unbounded exponent) exceeds the largest finite value is inf of its sign, -0 and NaN stay.
    Scaling by a power of two is exact, and ``np.rint`` rounds the scaled value to an integer
    with ties to even, the parity of the last significand bit.
    """
    fmt = _fmt(dtype)
    x = np.array(values, dtype=np.float64, copy=True)
    flat = x.reshape(-1)
    sel = np.isfinite(flat) & (flat != 0)
    v = flat[sel]
    q = _quantum_exponent(v, fmt)
    with np.errstate(over="ignore"):
        r = np.ldexp(np.rint(np.ldexp(v, -q)), q)
    big = np.abs(r) > fmt.max
    r[big] = np.copysign(np.inf, r[big])
    flat[sel] = r
    return x


def is_midpoint(values: Any, dtype: Any) -> np.ndarray:
    """True where a float64 value lies exactly halfway between two values of ``dtype``."""
    fmt = _fmt(dtype)
    x = np.asarray(values, dtype=np.float64)
    out = np.zeros(x.shape, bool)
    sel = np.isfinite(x) & (x != 0)
    v = x[sel]
    scaled = np.ldexp(v, -_quantum_exponent(v, fmt))
    out[sel] = np.abs(scaled - np.trunc(scaled)) == 0.5
    return out


def _bits(values: np.ndarray, fmt: Format) -> np.ndarray:
    """The 16-bit patterns of float64 values that are exactly representable in ``fmt`` (or inf)."""
    with np.errstate(over="ignore"):
        if fmt.name == "float16":
            return values.astype(np.float16).view(np.uint16).astype(np.int64)
        return (values.astype(np.float32).view(np.uint32) >> 16).astype(np.int64)


def ordinal(values: Any, dtype: Any) -> np.ndarray:
    """Position of each low-dtype value (given as float64) in the ordered sequence of the dtype's
    values: consecutive values differ by 1, -0 = +0 = 0, +-inf = +-(largest finite + 1).
    NaN maps to an arbitrary number; callers mask it."""
    fmt = _fmt(dtype)
    x = np.asarray(values, dtype=np.float64)
    bits = _bits(np.where(np.isnan(x), 0.0, x), fmt)
    mag = bits & 0x7FFF
    return np.where(bits & 0x8000, -mag, mag)


def step_distance(got: Any, want: Any, dtype: Any) -> np.ndarray:
    """Number of representable steps between two arrays of low-dtype values (as float64); 0
    where both are NaN, inf where exactly one is."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    d = np.abs(ordinal(got, dtype) - ordinal(want, dtype)).astype(np.float64)
    gn, wn = np.isnan(got), np.isnan(want)
    return np.where(gn & wn, 0.0, np.where(gn | wn, np.inf, d))


def _interval_distance(got: np.ndarray, lo: np.ndarray, hi: np.ndarray, dtype: str) -> np.ndarray:
    """Steps from ``got`` to the interval [lo, hi] of low-dtype values (0 inside)."""
    g, a, b = ordinal(got, dtype), ordinal(lo, dtype), ordinal(hi, dtype)
    d = np.maximum(np.maximum(a - g, g - b), 0).astype(np.float64)
    gn, wn = np.isnan(got), np.isnan(lo) | np.isnan(hi)
    return np.where(gn & wn, 0.0, np.where(gn | wn, np.inf, d))


def representable_values(dtype: Any, positive: bool = False) -> np.ndarray:
    """Every finite value of ``dtype`` as float64, sorted (only +0 and the positive ones if
    ``positive``): 63,489 / 65,281 values for float16 / bfloat16 (with one zero)."""
    fmt = _fmt(dtype)
    mags = np.arange(0, fmt.inf_bits, dtype=np.uint32)
    if fmt.name == "float16":
        pos = mags.astype(np.uint16).view(np.float16).astype(np.float64)
    else:
        pos = (mags << 16).view(np.float32).astype(np.float64)
    return pos if positive else np.concatenate([-pos[:0:-1], pos])


def _neighbours(value: float, fmt: Format, count: int, pos: np.ndarray) -> np.ndarray:
    """``value`` rounded to the dtype and the ``count`` representable values on each side."""
    r = float(round_to(np.array([value]), fmt.name)[0])
    if not math.isfinite(r):
        return np.empty(0)
    values = np.concatenate([-pos[:0:-1], pos])
    i = int(np.searchsorted(values, r))
    return values[max(i - count, 0) : i + count + 1]


# ----------------------------------------------------------------------------- inputs
def sample_inputs(
    spec: Any,
    params: dict[str, Any] | None = None,
    dtype: str = "bfloat16",
    size: int | None = SAMPLE_SIZE,
    seed: int = 0,
) -> np.ndarray:
    """Seeded distinct values of ``dtype`` (as float64) in the spec's domain; ``size=None``: all of them.

    About half are in 1e-3 <= |x| <= 10 (uniform over the representable values, so log-uniform),
    the rest below 1e-3 (subnormals included), in (10, 100] and up to the largest finite value,
    with random signs; always +-0, the smallest subnormal, the smallest normal, 1 and the largest
    value of both signs; and every kink with the 4 representable values on each side of it.
    """
    fmt = _fmt(dtype)
    params = spec.resolve_params(**(params or {}))
    lo, hi = spec.domain
    if size is None:
        xs = representable_values(dtype)
    else:
        rng = np.random.default_rng([seed, fmt.precision, *spec.name.encode()])
        pos = representable_values(dtype, positive=True)[1:]
        strata = (
            (0.5, (pos >= 1e-3) & (pos <= 10)),
            (0.12, pos < 1e-3),
            (0.12, (pos > 10) & (pos <= 100)),
            (0.1, (pos > 100) & (pos <= RANGE)),
        )
        parts = []
        for share, mask in strata:
            pool = pos[mask]
            take = rng.choice(pool, size=min(int(share * size), pool.size), replace=False)
            parts.append(take * rng.choice([-1.0, 1.0], size=take.size))
        # The large end beyond 1e4 (bfloat16 reaches 3.4e38) at a few points: an oracle of
        # tanh(exp(x)) cannot be evaluated at 3e38 (those points are reported, not measured).
        special = [0.0, fmt.smallest_subnormal, fmt.tiny, 1.0, fmt.max, *HUGE.get(dtype, ())]
        parts.append(round_to(np.array(special + [-v for v in special]), dtype))
        for at, _ in spec.kink_points(params):
            parts.append(_neighbours(at, fmt, 4, pos))
        xs = np.unique(np.concatenate(parts))
        xs = xs[~((xs == 0) & np.signbit(xs))]  # np.unique keeps one of +-0
        xs = np.concatenate([xs, [-0.0]])
    return xs[(xs >= lo) & (xs <= hi)]


# ----------------------------------------------------------------------------- results
@dataclass
class LowPrecisionRow:
    name: str
    dtype: str
    params: dict[str, Any]
    points: int
    forward_ulps: float  # steps of the dtype from the correctly rounded true value (limit 1)
    backward_ulps: float  # input gradient, grad_output = 1 (vector specs: the vjp)
    cotangent_ulps: float  # input gradient for a random representable cotangent (elementwise)
    forward_mismatches: int  # results that are not the correctly rounded value (informational)
    backward_mismatches: int
    nonfinite: int  # non-finite results where the true value is finite in the dtype
    worst_forward_x: Any = None
    worst_backward_x: Any = None
    worst_cotangent_x: Any = None
    limit: float = LIMIT
    reason: str = ""  # the spec's tolerance reason where the limit is widened
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        worst = max(self.forward_ulps, self.backward_ulps, self.cotangent_ulps)
        return worst <= self.limit and self.nonfinite == 0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        return d


def limit_for(spec: Any) -> float:
    tol = spec.tolerance.low_precision_ulps
    return float(tol) if tol is not None else LIMIT


def _torch_dtype(dtype: str) -> Any:
    import torch

    return getattr(torch, dtype)


def _resolve_midpoints(truth: np.ndarray, dtype: str, exact: Any) -> np.ndarray:
    """``RN(truth)`` where the float64 truth is a midpoint of the dtype: the float64 value was
    rounded from the mpf, so the side is decided on the mpf (``exact(i)``)."""
    rounded = round_to(truth, dtype)
    for i in np.flatnonzero(is_midpoint(truth, dtype)):
        true_mp = exact(int(i))
        mid = float(truth[i])
        if true_mp != mid:  # not exactly a tie: round from the side it lies on
            side = np.nextafter(mid, math.inf if true_mp > mid else -math.inf)
            rounded[i] = round_to(np.array([side]), dtype)[0]
    return rounded


def _guarded_oracle(spec: Any, xs: np.ndarray, params: dict[str, Any], order: int) -> tuple[np.ndarray, np.ndarray]:
    """The oracle at ``xs``, NaN and flagged where mpmath fails: ``tanh(exp(x))`` at x = 1e12, or a
    complex value at a parameter point outside the function's domain. All points at once first;
    after a failure those up to 1e4 at once and the others one at a time (uncached)."""
    from actlab.verify.oracle import OracleError, oracle

    errors = (OracleError, MemoryError, OverflowError, ValueError)
    skipped = np.zeros(xs.shape, bool)
    try:
        return oracle(spec, xs, params, order=order), skipped
    except errors:
        pass
    out = np.full(xs.shape, np.nan)
    far = np.abs(xs) > RANGE
    try:
        out[~far] = oracle(spec, xs[~far], params, order=order)
    except errors:
        far[:] = True
    for i in np.flatnonzero(far):
        try:
            out[i] = oracle(spec, xs[i : i + 1], params, order=order, cache=False)[0]
        except errors:
            skipped[i] = True
    return out, skipped


def _steps(got: np.ndarray, want: np.ndarray, fmt: Format, true: np.ndarray) -> np.ndarray:
    """:func:`step_distance`, except that

    - a true value clearly beyond the overflow threshold (max + ulp/2, by more than any float32
      error, 2^-16 of it) must give inf of its sign exactly: the largest finite value, one step
      away, is a clamp, not a rounding;
    - bfloat16 results below the smallest normal number may flush to zero when the true value is
      there too: bfloat16's subnormals are float32's, where the float32 targets allow the same
      (float16's subnormals are float32 normals: no allowance).
    """
    err = np.where(_flushed(got, want, fmt), 0.0, step_distance(got, want, fmt.name))
    threshold = math.ldexp(2.0 - math.ldexp(1.0, -fmt.precision), fmt.emax) * (1 + 2.0**-16)
    with np.errstate(invalid="ignore"):
        must_overflow = (np.abs(true) > threshold) & (got != want)
    return np.where(must_overflow, np.inf, err)


def _flushed(got: np.ndarray, want: np.ndarray, fmt: Format) -> np.ndarray:
    if fmt.name != "bfloat16":
        return np.zeros(np.shape(got), bool)
    return (np.abs(got) < fmt.tiny) & (np.abs(want) < fmt.tiny)


def _worst(err: np.ndarray, xs: np.ndarray) -> tuple[float, Any]:
    if err.size == 0 or not np.any(err > 0):
        return 0.0, None
    i = int(np.argmax(err))
    return float(err[i]), xs[i].tolist() if hasattr(xs[i], "tolist") else xs[i]


# ----------------------------------------------------------------------------- elementwise
def measure_low_precision(
    spec: Any,
    dtype: str = "bfloat16",
    params: dict[str, Any] | None = None,
    size: int | None = SAMPLE_SIZE,
    seed: int = 0,
    xs: np.ndarray | None = None,
    native: bool = False,
    fn: Callable[[Any], Any] | None = None,
) -> LowPrecisionRow:
    """actlab's torch path (``apply`` with autograd) in ``dtype`` against the oracle rounded once.

    ``params``: any parameter point the spec accepts (the parameter-sample tests pass theirs);
    ``size=None`` measures every finite value of the dtype; ``xs`` overrides the sample (values
    of the dtype); ``native``: PyTorch's own function (``spec.torch_native``) in that dtype instead;
    ``fn``: any other torch callable of the same function at ``params`` (a module, a learnable form).
    """
    import torch

    from actlab.torch.functional import apply
    from actlab.verify.oracle import oracle_mp

    fmt = _fmt(dtype)
    if spec.kind != "elementwise":
        raise TypeError(f"{spec.name}: measure_low_precision needs an elementwise spec (use measure_any)")
    params = spec.resolve_params(**(params or {}))
    if xs is None:
        xs = sample_inputs(spec, params, dtype, size, seed)
    else:
        xs = np.asarray(xs, dtype=np.float64)
        if not np.array_equal(round_to(xs, dtype), xs, equal_nan=True):
            raise ValueError(f"xs must hold {dtype} values")
    rng = np.random.default_rng([seed, 7, fmt.precision])
    gs = round_to(rng.normal(0.0, 1.0, xs.shape) * rng.choice([1.0, 0.01, 100.0], xs.shape), dtype)
    gs = np.where(gs == 0, 1.5, gs)

    tdtype = _torch_dtype(dtype)
    x = torch.tensor(xs, dtype=tdtype, requires_grad=True)
    if fn is not None:
        run = fn
    elif native:
        run = lambda t: spec.torch_native(t, torch, **params)  # noqa: E731
    else:
        run = lambda t: apply(spec, t, params)  # noqa: E731
    y = run(x)
    (g1,) = torch.autograd.grad(y, x, torch.ones_like(y), retain_graph=True)
    (gg,) = torch.autograd.grad(y, x, torch.tensor(gs, dtype=tdtype))
    got_f = y.detach().to(torch.float64).numpy()
    got_d = g1.to(torch.float64).numpy()
    got_g = gg.to(torch.float64).numpy()

    true_f, skipped_f = _guarded_oracle(spec, xs, params, 0)
    true_d, skipped_d = _guarded_oracle(spec, xs, params, 1)
    skipped = skipped_f | skipped_d
    kink_grad = {at: grad for at, grad in spec.kink_points(params)}
    for i, xv in enumerate(xs):
        if float(xv) in kink_grad:
            true_d[i] = kink_grad[float(xv)]
    at_kink = np.isin(xs, list(kink_grad)) if kink_grad else np.zeros(xs.shape, bool)

    def exact_f(i: int) -> Any:
        return oracle_mp(spec, float(xs[i]), params)

    def exact_d(i: int) -> Any:
        return true_d[i] if at_kink[i] else oracle_mp(spec, float(xs[i]), params, order=1)

    def exact_g(i: int) -> Any:
        import mpmath

        with mpmath.workprec(256):  # exact: the mpf's bits times g's 11 (the default 53 would round)
            return mpmath.mpf(exact_d(i)) * mpmath.mpf(float(gs[i]))

    notes: list[str] = []
    want_f = _resolve_midpoints(true_f, dtype, exact_f)
    want_d = _resolve_midpoints(true_d, dtype, exact_d)
    with np.errstate(over="ignore", invalid="ignore"):
        prod = true_d * gs
    want_g = _resolve_midpoints(prod, dtype, exact_g)

    # g f'(x) is computed as float32(g) * float32(f'(x)): where f' itself is beyond float32's (=
    # bfloat16's) range the product is inf, however small g is; such points are not measured.
    with np.errstate(invalid="ignore"):
        beyond = np.abs(true_d) > FLOAT32_MAX
    if beyond.any() and np.isfinite(want_g[beyond]).any():
        notes.append(f"g f'(x) not measured where f' is beyond float32's range: {int(beyond.sum())} points")
    err_f = np.where(skipped, 0.0, _steps(got_f, want_f, fmt, true_f))
    err_d = np.where(skipped, 0.0, _steps(got_d, want_d, fmt, true_d))
    with np.errstate(over="ignore", invalid="ignore"):
        err_g = np.where(skipped | beyond, 0.0, _steps(got_g, want_g, fmt, prod))
    unmeasured_g = skipped | beyond
    nonfinite = int(
        np.sum(np.isfinite(want_f) & ~np.isfinite(got_f) & ~skipped)
        + np.sum(np.isfinite(want_d) & ~np.isfinite(got_d) & ~skipped)
        + np.sum(np.isfinite(want_g) & ~np.isfinite(got_g) & ~unmeasured_g)
    )

    # NaN in, NaN out (the forward: PyTorch's own relu passes the gradient through at NaN)
    yn = run(torch.tensor([math.nan], dtype=tdtype))
    if not torch.isnan(yn).all():
        nonfinite += 1  # counted as a failure: a NaN input must not give a number
        notes.append(f"NaN input gave f={yn.item()}")
    if skipped.any():
        shown = ", ".join(f"{v:g}" for v in xs[skipped][:8]) + (", ..." if skipped.sum() > 8 else "")
        notes.append(f"oracle cannot evaluate {int(skipped.sum())} points (x = {shown}): not measured")

    fw, fx = _worst(err_f, xs)
    bw, bx = _worst(err_d, xs)
    cw, cx = _worst(err_g, xs)
    return LowPrecisionRow(
        name=spec.name,
        dtype=dtype,
        params=spec.non_default(params),
        points=int(xs.size),
        forward_ulps=fw,
        backward_ulps=bw,
        cotangent_ulps=cw,
        forward_mismatches=int(np.sum(err_f > 0)),
        backward_mismatches=int(np.sum(err_d > 0) + np.sum(err_g > 0)),
        nonfinite=nonfinite,
        worst_forward_x=fx,
        worst_backward_x=bx,
        worst_cotangent_x=cx,
        limit=limit_for(spec),
        reason=spec.tolerance.reason if limit_for(spec) != LIMIT else "",
        notes=notes,
    )


# ----------------------------------------------------------------------------- vector
_VECTOR_TINY = {"float16": -9, "bfloat16": -45}  # log10 below the smallest subnormal


def measure_vector_low_precision(
    spec: Any,
    dtype: str = "bfloat16",
    params: dict[str, Any] | None = None,
    rows: int = 24,  # the first 21 are one of each kind of row of actlab.verify.vector.vector_rows
    width: int = 8,
    seed: int = 0,
) -> LowPrecisionRow:
    """A vector spec's torch path in ``dtype`` against its row oracle rounded once (see module doc)."""
    import torch

    from actlab.ops import numpy_ops
    from actlab.torch.functional import apply
    from actlab.verify import vector as vec

    fmt = _fmt(dtype)
    if spec.kind != "vector" or spec.oracle is None:
        raise TypeError(f"{spec.name}: measure_vector_low_precision needs a vector spec with an oracle")
    params = spec.resolve_params(**(params or {}))
    xs = round_to(vec.vector_rows(spec, params, "float64", rows, width, seed), dtype)
    out_shape = numpy_ops.apply(spec, xs, params).shape
    rng = np.random.default_rng([seed, 11])
    gs = round_to(rng.normal(0, 1, size=out_shape), dtype)
    truth = vec._truth(spec, params, xs, gs, _VECTOR_TINY[dtype])

    tdtype = _torch_dtype(dtype)
    x = torch.tensor(xs, dtype=tdtype, requires_grad=True)
    y = apply(spec, x, params)
    (gx,) = torch.autograd.grad(y, x, torch.tensor(gs, dtype=tdtype))
    got_f = y.detach().to(torch.float64).numpy()
    got_v = gx.to(torch.float64).numpy()

    def f32_ulp(v: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            return np.spacing(np.abs(np.nan_to_num(v, posinf=0.0)).astype(np.float32)).astype(np.float64)

    true_f = truth["forward"]
    slack_f = np.zeros_like(true_f)
    if spec.tolerance.condition_allowance:
        cond = truth["cond"]
        slack_f = np.where(cond > 1.0, FLOAT32_FORWARD_BUDGET * cond * f32_ulp(true_f), 0.0)
    err_f = _interval_distance(got_f, round_to(true_f - slack_f, dtype), round_to(true_f + slack_f, dtype), dtype)
    true_v = truth["vjp"]
    slack_v = FLOAT32_FORWARD_BUDGET * f32_ulp(truth["absg"])
    err_v = _interval_distance(got_v, round_to(true_v - slack_v, dtype), round_to(true_v + slack_v, dtype), dtype)
    err_f = np.where(_flushed(got_f, round_to(true_f, dtype), fmt), 0.0, err_f)
    err_v = np.where(_flushed(got_v, round_to(true_v, dtype), fmt), 0.0, err_v)
    measured_v = np.isfinite(true_v) & ~truth["kink"]
    err_v = np.where(measured_v, err_v, 0.0)
    want_f = round_to(true_f, dtype)
    nonfinite = int(np.sum(np.isfinite(want_f) & ~np.isfinite(got_f)))
    nonfinite += int(np.sum(measured_v & np.isfinite(round_to(true_v, dtype)) & ~np.isfinite(got_v)))

    def worst(err: np.ndarray) -> tuple[float, Any]:
        if err.size == 0 or not np.any(err > 0):
            return 0.0, None
        i = int(np.argmax(err))
        return float(err.flat[i]), tuple(xs[i // err.shape[-1]].tolist())

    fw, fx = worst(err_f)
    bw, bx = worst(err_v)
    return LowPrecisionRow(
        name=spec.name,
        dtype=dtype,
        params=spec.non_default(params),
        points=int(true_f.size),
        forward_ulps=fw,
        backward_ulps=bw,
        cotangent_ulps=0.0,  # the vjp above already uses a random cotangent
        forward_mismatches=int(np.sum(step_distance(got_f, want_f, dtype) > 0)),
        backward_mismatches=int(np.sum(err_v > 0)),
        nonfinite=nonfinite,
        worst_forward_x=fx,
        worst_backward_x=bx,
        limit=limit_for(spec),
        reason=spec.tolerance.reason if limit_for(spec) != LIMIT else "",
        notes=[f"{int(np.sum(truth['kink']))} vjp elements at kinks not measured"] if truth["kink"].any() else [],
    )


def measure_any(spec: Any, dtype: str, params: dict[str, Any] | None = None, **kw: Any) -> LowPrecisionRow:
    """:func:`measure_low_precision` or :func:`measure_vector_low_precision` by the spec's kind."""
    if spec.kind == "vector":
        return measure_vector_low_precision(spec, dtype, params, **kw)
    return measure_low_precision(spec, dtype, params, **kw)


# ----------------------------------------------------------------------------- CLI
def main(argv: list[str]) -> int:
    """``python -m actlab.verify.low_precision [--all] NAME...`` (``--all``: every finite input
    of the elementwise specs; ``all`` as a name: every elementwise and vector spec)."""
    import argparse

    from actlab.registry import all_specs, get_spec

    parser = argparse.ArgumentParser(
        prog="python -m actlab.verify.low_precision",
        description="float16/bfloat16 forward and backward against the oracle rounded once, beside "
        "PyTorch's own half kernels and the learnable forms",
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="activations (default or 'all': every function)")
    parser.add_argument("--all", action="store_true", help="every finite input of the dtype (elementwise specs)")
    args = parser.parse_args(argv)
    exhaustive, names = args.all, args.names
    if names == ["all"] or not names:
        specs = [s for s in all_specs() if s.kind in ("elementwise", "vector")]
    else:
        try:
            specs = [get_spec(n) for n in names]
        except KeyError as err:
            parser.error(str(err))
    failed = False
    for spec in specs:
        for dtype in LOW_DTYPES:
            kw = {"size": None} if exhaustive and spec.kind == "elementwise" else {}
            row = measure_any(spec, dtype, **kw)
            failed |= not row.passed
            if spec.torch_native is not None and spec.kind == "elementwise":
                try:
                    t = measure_low_precision(spec, dtype, native=True, **kw)
                    row.notes.append(
                        f"PyTorch's own: fwd {t.forward_ulps:g} bwd {t.backward_ulps:g} g*f' {t.cotangent_ulps:g}"
                    )
                except RuntimeError as err:  # no derivative (torch.heaviside) or no half kernel
                    row.notes.append(f"PyTorch's own: {str(err).splitlines()[0][:60]}")
            learnable = [p.name for p in spec.params if p.trainable]
            if learnable and spec.kind == "elementwise":
                from actlab.nn import Activation
                from actlab.nn.activation import LEARNABLE_FORMS

                if spec.name in LEARNABLE_FORMS:
                    module = Activation(spec.name, **dict.fromkeys(learnable, "learnable"))
                    t = measure_low_precision(spec, dtype, fn=module, **kw)
                    row.notes.append(
                        f"learnable form: fwd {t.forward_ulps:g} bwd {t.backward_ulps:g} g*f' {t.cotangent_ulps:g}"
                    )
            print(
                f"{spec.name:>18} {dtype:>8} n={row.points:6d} fwd {row.forward_ulps:4g} (x={row.worst_forward_x}) "
                f"bwd {row.backward_ulps:4g} (x={row.worst_backward_x}) g*f' {row.cotangent_ulps:4g} "
                f"mismatch {row.forward_mismatches}/{row.backward_mismatches} nonfinite={row.nonfinite} "
                f"{'PASS' if row.passed else 'FAIL'}" + (f" {row.notes}" if row.notes else "")
            )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
