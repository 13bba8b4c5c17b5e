"""Accuracy of vector specs (softmax family, sparsemax, entmax, gated units, maxout, crelu).

Data first: :func:`measure_vector` returns a :class:`VectorAccuracyRow` (an ``AccuracyRow``);
``python -m actlab.verify.vector NAME...`` prints them with a few functional checks.

The oracle of a vector spec is ``spec.oracle(row, mp, **params)``: the exact output for ONE 1-D
row (a list of mpf) at mpmath's current precision, with every parameter except ``axis``. Here
it is evaluated

- forward: at raised precision until two evaluations agree to 80 bits in every element (the
  approach of :func:`actlab.verify.oracle.evaluate_point`);
- vjp: through the Jacobian, column by column, by numerical differentiation of the oracle
  (central differences, h = 10^-(digits/3)) at a precision raised until the column is resolved
  to 2^-80 of its largest entry (or to below the dtype's smallest subnormal) and two precisions
  agree; see :func:`_row_jacobian`. A column whose one-sided differences disagree is a kink
  (ties in maxout, the edge of the sparsemax support, relu gates at 0): its vjp element is not
  measured and is counted in ``kink_elements``.

The rows (:func:`vector_rows`, seeded) are Gaussian rows of many scales, uniform rows over
[-1e4, 1e4], large offsets, ties, all-equal rows, rows whose sparsemax support has 1, 2, 3,
half and all elements, mixed magnitudes and exact zeros; the cotangent is Gaussian.

Rules (the elementwise targets of issue #2 applied per element):

- forward: float32 within 4 ulp, float64 within 8 ulp of the correctly rounded value of each
  element; results below the smallest normal number may flush to zero; specs declaring
  ``condition_allowance`` get ``limit * max(1, kappa_i)`` with the componentwise condition number
  ``kappa_i = sum_j |x_j dy_i/dx_j| / |y_i|`` (x replaced by x - max(x) when the function is
  shift-invariant on that row);
- vjp (torch autograd, or the spec's vjp on NumPy) for a random cotangent g: within 8 units of
  max(ulp(true_j), ulp(A_j) / 2) with A_j = sum_i |g_i dy_i/dx_j|, i.e. within 8 ulp of the true
  value or 4 ulp of the sum of the absolute terms (the error of an exact product with g rounded
  once: backward stability in g, the vector form of the elementwise floor "4 ulp of max |f'|");
  for ``condition_allowance`` specs the vjp elements of a row share the largest allowance of
  the row's outputs (entmax's vjp is built from sqrt(y_i) of every support element: with two,
  both vjp elements are proportional to the smaller one);
- no NaN or inf where the true value is finite.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from actlab.ops._lazy import require
from actlab.verify.accuracy import DERIVATIVE_LIMIT, FORWARD_LIMIT, AccuracyRow, ulp, ulp_errors
from actlab.verify.oracle import _PRECISIONS, OracleError, _agree, _cache_dir

__all__ = ["VectorAccuracyRow", "measure_vector", "measure_masked", "vector_rows", "functional_checks", "main"]

ROWS = 96
WIDTH = 16
_JACOBIAN_START = 40  # digits; h = 10^-(digits/3)
_JACOBIAN_MAX = 20000
_TINY = {"float32": -50, "float64": -330}  # log10 of a value below the smallest subnormal
_KINK_RTOL = 1e-10
_CACHE_VERSION = "7"


@dataclass
class VectorAccuracyRow(AccuracyRow):
    rows: int = 0
    width: int = 0
    kink_elements: int = 0  # vjp elements not measured (one-sided derivatives disagree)
    worst_forward_row: tuple | None = None  # the input row of the worst forward element
    worst_derivative_row: tuple | None = None
    # measure_masked: masked outputs not exactly the spec's fill value, masked gradients not exactly 0
    mask_errors: int = 0
    # the jvp (forward mode) by the vjp's rule: 8 units of max(ulp(true), ulp(sum_j |J_ij t_j|) / 2)
    tangent_ulps: float = 0.0

    @property
    def passed(self) -> bool:
        tangent_ok = not math.isnan(self.tangent_ulps) and self.tangent_ulps <= self.derivative_limit
        return super().passed and self.mask_errors == 0 and tangent_ok


# ----------------------------------------------------------------------------- input rows
def _width_for(spec: Any, params: dict[str, Any], width: int) -> int:
    step = 2
    if "pieces" in params:
        step = step * params["pieces"] // math.gcd(step, params["pieces"])
    return max(step, -(-width // step) * step)


def _support_row(rng: np.random.Generator, w: int, k: int) -> np.ndarray:
    """A row whose sparsemax support has exactly k elements."""
    k = max(1, min(k, w))
    t = rng.normal(0, 3)
    top = t - rng.uniform(0, 0.5 / k, size=k)
    rest = t - 2.0 / k - 1.0 - np.abs(rng.normal(0, 2, size=w - k))
    row = np.concatenate([top, rest])
    rng.shuffle(row)
    return row


def _generators() -> list[Callable[[np.random.Generator, int], np.ndarray]]:
    gens: list[Callable[[np.random.Generator, int], np.ndarray]] = []
    for s in (1e-3, 0.1, 1.0, 3.0, 10.0, 100.0):
        gens.append(lambda r, w, s=s: r.normal(0, s, size=w))
    gens.append(lambda r, w: r.uniform(-1e4, 1e4, size=w))
    for c in (1e4, -1e4, 100.0, -100.0):
        gens.append(lambda r, w, c=c: c + r.normal(0, 2.0, size=w))
    gens.append(lambda r, w: r.choice([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], size=w))
    gens.append(lambda r, w: np.full(w, r.choice([0.0, 1.0, -3.5, 1e4, -1e4])))
    for k in (1, 2, 3, 0.5, 1.0):
        gens.append(lambda r, w, k=k: _support_row(r, w, k if k >= 1 else max(1, int(k * w))))

    def mixed(r: np.random.Generator, w: int) -> np.ndarray:
        row = np.where(r.random(w) < 0.5, r.normal(0, 1e-3, size=w), 50 + r.normal(0, 10, size=w))
        row[r.integers(0, w)] = 0.0
        return row

    def zeros(r: np.random.Generator, w: int) -> np.ndarray:
        row = r.normal(0, 1, size=w)
        row[r.random(w) < 0.3] = 0.0
        return row

    gens += [mixed, zeros, lambda r, w: r.normal(0, 30, size=w)]
    return gens


def vector_rows(
    spec: Any,
    params: dict[str, Any] | None = None,
    dtype: str = "float32",
    rows: int = ROWS,
    width: int = WIDTH,
    seed: int = 0,
) -> np.ndarray:
    """Seeded test rows (rows, width') as float64 holding ``dtype`` values: Gaussian rows of many
    scales, uniform rows over [-1e4, 1e4], large offsets (+-1e4, +-100), ties, all-equal rows,
    rows whose sparsemax support has 1, 2, 3, half and all elements, mixed magnitudes, zeros."""
    params = spec.resolve_params(**(params or {}))
    w = _width_for(spec, params, width)
    rng = np.random.default_rng(seed)
    gens = _generators()
    out = np.stack([gens[i % len(gens)](rng, w) for i in range(rows)])
    return out.astype(dtype).astype(np.float64)


# ----------------------------------------------------------------------------- the oracle
def _mp() -> Any:
    return require("mpmath", "the accuracy oracle")


def _row_fn(spec: Any, params: dict[str, Any]) -> Callable[[list], list]:
    extra = {k: v for k, v in params.items() if k != "axis"}
    return lambda row: spec.oracle(row, _mp(), **extra)


def _row_truth(fn: Callable[[list], list], row: np.ndarray) -> list:
    mp = _mp()
    previous = None
    for dps in _PRECISIONS:
        with mp.workdps(dps):
            value = [mp.mpf(v) for v in fn([mp.mpf(float(v)) for v in row])]
        same = previous is not None and len(previous) == len(value)
        if same and all(_agree(a, b, mp) for a, b in zip(previous, value)):
            return value
        previous = value
    raise OracleError(f"vector oracle did not converge on row {row.tolist()!r}")


def _dependent_outputs(fn: Callable[[list], list], row: np.ndarray, j: int, f0: list) -> list[bool]:
    """The outputs that depend on input j: those that become NaN when x_j is NaN, or change when
    x_j moves far (to 0, -x_j - 1, x_j + 1).

    An output that passes neither test does not depend on input j (a gated unit's other pairs,
    maxout's other groups, outputs off the sparsemax support), and its magnitude does not limit
    how precisely column j must be computed. NaN propagation finds weak dependences that a value
    probe at low precision misses (softmax's largest output on a far smaller entry); the value
    probes find the dependences that comparisons (max, sorting) hide from NaN.
    """
    mp = _mp()
    with mp.workdps(_JACOBIAN_START):
        xs = [mp.mpf(float(v)) for v in row]
        probe = list(xs)
        probe[j] = mp.nan
        try:
            changed = [bool(mp.isnan(v)) for v in fn(probe)]
            if len(changed) != len(f0):
                raise ValueError
        except (ArithmeticError, ValueError, TypeError):
            return [True] * len(f0)
        for value in (mp.mpf(0), -xs[j] - 1, xs[j] + 1):
            probe = list(xs)
            probe[j] = value
            changed = [c or a != b for c, a, b in zip(changed, fn(probe), f0)]
    return changed


def _row_jacobian(fn: Callable[[list], list], row: np.ndarray, tiny: int) -> tuple[list, list, list]:
    """(central J, max one-sided |J|, kink flag) per column j (the derivatives by input j).

    Each column is wanted to 2^-80 of its largest entry, or to 10^tiny (below the dtype's
    smallest subnormal) when it is smaller than that: the precision is raised until the rounding
    noise of the differences, ~10^-dps max|f_i| / h with h = 10^-(dps/3) over the outputs that
    depend on input j, is below that (a derivative far below |f| / h is lost at a fixed
    precision, identically at every one), and then until two precisions agree (which catches
    cancellation inside the oracle). A column whose one-sided differences disagree is a kink.
    """
    mp = _mp()
    f0_at: dict[int, list] = {}

    def base(dps: int) -> list:
        if dps not in f0_at:
            with mp.workdps(dps):
                f0_at[dps] = fn([mp.mpf(float(v)) for v in row])
        return f0_at[dps]

    central_cols, abs_cols, kinks = [], [], []
    for j in range(len(row)):
        dependent = _dependent_outputs(fn, row, j, base(_JACOBIAN_START))
        dps, previous = _JACOBIAN_START, None
        while True:
            if dps > _JACOBIAN_MAX:
                raise OracleError(f"vector oracle Jacobian did not converge on row {row.tolist()!r}")
            hexp = dps // 3
            f0 = base(dps)
            with mp.workdps(dps):
                h = mp.mpf(10) ** (-hexp)
                xs = [mp.mpf(float(v)) for v in row]
                xp, xm = list(xs), list(xs)
                xp[j] = xs[j] + h
                xm[j] = xs[j] - h
                fp, fm = fn(xp), fn(xm)
                plus = [(a - b) / h for a, b in zip(fp, f0)]
                minus = [(b - c) / h for b, c in zip(f0, fm)]
                central = [(a + b) / 2 for a, b in zip(plus, minus)]
                scale = max((abs(v) for v in central), default=mp.mpf(0))
                big = max([mp.mpf(0)] + [abs(v) for v, dep in zip(f0, dependent) if dep])
                noise = 8 * big * mp.mpf(10) ** (hexp - dps)
                need = max(scale * mp.mpf(2) ** -80, mp.mpf(10) ** tiny)
                if noise > need:  # differences not resolved: raise the precision to what they need
                    previous = None
                    dps = max(int(dps * 1.5), int(1.5 * float(mp.log10(8 * big / need))) + 10)
                    continue
                if previous is not None and all(abs(a - b) <= need for a, b in zip(previous, central)):
                    jump = max((abs(a - b) for a, b in zip(plus, minus)), default=mp.mpf(0))
                    kinks.append(bool(jump > _KINK_RTOL * scale + 100 * need))
                    central_cols.append(central)
                    abs_cols.append([max(abs(a), abs(b)) for a, b in zip(plus, minus)])
                    break
            previous = central
            dps = int(dps * 1.5)
    return central_cols, abs_cols, kinks


def _row_tangent(fn: Callable[[list], list], row: np.ndarray, t: np.ndarray, tiny: int) -> tuple[list, bool]:
    """(the directional derivative d/de f(row + e t) at e = 0, kink flag) for the jvp check.

    Central differences along ``t`` as :func:`_row_jacobian` does along one axis, but resolved
    per element (each to 2^-80 of itself, or 10^tiny): a tiny output's tangent is as small as
    the output, far below the largest one. The precision is raised until the rounding noise of
    each difference is below that and two precisions agree; one-sided differences that disagree
    mark a kink on the line (ties, support edges), where the row is not measured.
    """
    mp = _mp()
    dps, previous = _JACOBIAN_START, None
    while True:
        if dps > _JACOBIAN_MAX:
            raise OracleError(f"vector oracle tangent did not converge on row {row.tolist()!r}")
        hexp = dps // 3
        with mp.workdps(dps):
            h = mp.mpf(10) ** (-hexp)
            xs = [mp.mpf(float(v)) for v in row]
            ts = [mp.mpf(float(v)) for v in t]
            f0 = fn(xs)
            fp = fn([a + h * b for a, b in zip(xs, ts)])
            fm = fn([a - h * b for a, b in zip(xs, ts)])
            plus = [(a - b) / h for a, b in zip(fp, f0)]
            minus = [(b - c) / h for b, c in zip(f0, fm)]
            central = [(a + b) / 2 for a, b in zip(plus, minus)]
            need = [max(abs(c) * mp.mpf(2) ** -80, mp.mpf(10) ** tiny) for c in central]
            ratio = max(8 * abs(f) / q for f, q in zip(f0, need))
            if ratio * mp.mpf(10) ** (hexp - dps) > 1:  # some difference not resolved yet
                previous = None
                dps = max(int(dps * 1.5), int(1.5 * float(mp.log10(ratio))) + 10)
                continue
            if previous is not None and all(abs(a - b) <= q for a, b, q in zip(previous, central, need)):
                kink = any(abs(a - b) > _KINK_RTOL * abs(c) + 100 * q for a, b, c, q in zip(plus, minus, central, need))
                return central, kink
        previous = central
        dps = int(dps * 1.5)


def _shift_invariant(fn: Callable[[list], list], row: np.ndarray, truth: list) -> bool:
    mp = _mp()
    with mp.workdps(60):
        xs = [mp.mpf(float(v)) for v in row]
        top = max(xs)
        shifted = fn([v - top for v in xs])
        scale = max(abs(v) for v in truth) if truth else 0
        return all(abs(a - b) <= (scale + mp.mpf(2) ** -300) * mp.mpf(2) ** -100 for a, b in zip(shifted, truth))


def _source_hash(spec: Any) -> str:
    h = hashlib.sha256(_CACHE_VERSION.encode())
    try:
        h.update(Path(inspect.getsourcefile(spec.oracle) or "").read_bytes())
    except (OSError, TypeError):
        h.update(repr(spec.oracle).encode())
    return h.hexdigest()


def _truth(
    spec: Any,
    params: dict[str, Any],
    xs: np.ndarray,
    gs: np.ndarray,
    tiny: int,
    cache: bool = True,
    ts: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Forward values, condition numbers, vjp values, sum_i |g_i J_ij| and kink masks per row
    (cached); with tangents ``ts`` also the jvp values, sum_j |J_ij t_j| and the rows with a kink
    on the line x + e t."""
    path = None
    folder = _cache_dir() if cache else None
    if folder is not None:
        key = hashlib.sha256()
        key.update(spec.name.encode())
        key.update(repr(sorted(params.items())).encode())
        key.update(_source_hash(spec).encode())
        key.update(np.ascontiguousarray(xs).tobytes())
        key.update(np.ascontiguousarray(gs).tobytes())
        key.update(repr(tiny).encode())
        if ts is not None:
            key.update(np.ascontiguousarray(ts).tobytes())
        path = folder / "vector" / f"{spec.name}-{key.hexdigest()[:32]}.npz"
        if path.exists():
            try:
                with np.load(path) as data:
                    return {k: data[k] for k in data.files}
            except (OSError, ValueError):
                pass
    mp = _mp()
    fn = _row_fn(spec, params)
    allowance = spec.tolerance.condition_allowance
    fwd, cond, vjp, absg, kink = [], [], [], [], []
    jvp, abst, tkink = [], [], []
    for r, (row, g) in enumerate(zip(xs, gs)):
        truth = _row_truth(fn, row)
        central, absj, kinks = _row_jacobian(fn, row, tiny)
        with mp.workdps(60):
            gm = [mp.mpf(float(v)) for v in g]
            vjp.append([float(mp.fsum(gi * jij for gi, jij in zip(gm, col))) for col in central])
            absg.append([float(mp.fsum(abs(gi * jij) for gi, jij in zip(gm, col))) for col in central])
            if allowance:
                ref = max(row) if _shift_invariant(fn, row, truth) else 0.0
                xt = [abs(mp.mpf(float(v)) - mp.mpf(float(ref))) for v in row]
                k_row = []
                for i, yi in enumerate(truth):
                    num = mp.fsum(xt[j] * absj[j][i] for j in range(len(row)))
                    k_row.append(float(num / abs(yi)) if yi != 0 else 1.0)
                cond.append(k_row)
            else:
                cond.append([1.0] * len(truth))
        fwd.append([float(v) for v in truth])
        kink.append(kinks)
        if ts is not None:
            tangent, on_kink = _row_tangent(fn, row, ts[r], tiny)
            jvp.append([float(v) for v in tangent])
            with mp.workdps(60):
                tm = [mp.mpf(float(v)) for v in ts[r]]
                # sum_j |J_ij t_j| from the columns (each resolved to 2^-80 of its largest entry,
                # so for an output far below the others this floor is generous)
                abst.append(
                    [float(mp.fsum(abs(tm[j] * central[j][i]) for j in range(len(row)))) for i in range(len(truth))]
                )
            tkink.append(on_kink)
    out = {
        "forward": np.array(fwd, dtype=np.float64),
        "cond": np.maximum(np.nan_to_num(np.array(cond, dtype=np.float64), nan=1.0, posinf=1.0), 1.0),
        "vjp": np.array(vjp, dtype=np.float64),
        "absg": np.array(absg, dtype=np.float64),
        "kink": np.array(kink, dtype=bool),
    }
    if ts is not None:
        out["jvp"] = np.array(jvp, dtype=np.float64)
        out["abst"] = np.array(abst, dtype=np.float64)
        out["tkink"] = np.array(tkink, dtype=bool)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, **out)
            os.replace(tmp, path)
        except OSError:
            pass
    return out


# ----------------------------------------------------------------------------- measurement
@dataclass
class _Measured:
    forward: np.ndarray
    vjp: np.ndarray | None
    jvp: np.ndarray | None = None


def _torch_eval(
    fn: Callable[[Any], Any], xs: np.ndarray, gs: np.ndarray, dtype: str, ts: np.ndarray | None = None
) -> _Measured:
    import torch

    x = torch.tensor(xs, dtype=getattr(torch, dtype), requires_grad=True)
    y = fn(x)
    fwd = y.detach().to(torch.float64).numpy()
    try:
        (gx,) = torch.autograd.grad(y, x, torch.tensor(gs, dtype=y.dtype))
        der = gx.to(torch.float64).numpy()
    except RuntimeError:
        der = None
    tan = None
    if ts is not None:
        try:
            _, jt = torch.func.jvp(fn, (x.detach(),), (torch.tensor(ts, dtype=x.dtype),))
            tan = jt.to(torch.float64).numpy()
        except (RuntimeError, NotImplementedError):
            tan = None
    return _Measured(fwd, der, tan)


def _numpy_eval(
    spec: Any, params: dict[str, Any], xs: np.ndarray, gs: np.ndarray, dtype: str, ts: np.ndarray
) -> _Measured:
    from actlab.ops import numpy_ops

    x = xs.astype(dtype)
    y = numpy_ops.apply(spec, x, params)
    saved_x, saved_y = (None, y) if spec.saves == "output" else (x, None)
    gx = spec.vjp(saved_x, saved_y, gs.astype(dtype), numpy_ops.NUMPY, **params)
    jt = spec.jvp(x, y, ts.astype(dtype), numpy_ops.NUMPY, **params) if spec.jvp is not None else None
    tan = None if jt is None else np.asarray(jt).astype(np.float64)
    return _Measured(y.astype(np.float64), np.asarray(gx).astype(np.float64), tan)


def measure_vector(
    spec: Any,
    dtype: str = "float32",
    rows: int = ROWS,
    width: int = WIDTH,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    backend: str = "torch",
    with_torch: bool = True,
    cache: bool = True,
) -> VectorAccuracyRow:
    """Measure a vector spec (and PyTorch's native function, if any) against its row oracle."""
    if spec.kind != "vector" or spec.oracle is None:
        raise TypeError(f"{spec.name}: measure_vector needs a vector spec with an oracle")
    params = spec.resolve_params(**(params or {}))
    xs = vector_rows(spec, params, dtype, rows, width, seed)
    from actlab.ops import numpy_ops

    out_shape = numpy_ops.apply(spec, xs.astype(dtype), params).shape
    rng = np.random.default_rng(seed + 1)
    gs = rng.normal(0, 1, size=out_shape).astype(dtype).astype(np.float64)
    ts = np.random.default_rng(seed + 2).normal(0, 1, size=xs.shape).astype(dtype).astype(np.float64)
    truth = _truth(spec, params, xs, gs, _TINY[dtype], cache=cache, ts=ts)
    true_f, cond, true_v, kink = truth["forward"], truth["cond"], truth["vjp"], truth["kink"]
    if not spec.tolerance.condition_allowance:
        cond = np.ones_like(true_f)
    conditioned = int(np.sum(cond > 1.0))
    f_limit = spec.tolerance.forward_ulps or FORWARD_LIMIT[dtype]
    d_limit = spec.tolerance.derivative_ulps or DERIVATIVE_LIMIT
    finite_v = np.isfinite(true_v) & ~kink
    v_floor = ulp(truth["absg"], dtype) / 2.0  # 4 ulp of sum_i |g_i J_ij|: backward-stable in g

    def score(m: _Measured) -> tuple[float, float, int, int, int]:
        f_err, f_bad = ulp_errors(m.forward, true_f, dtype)
        f_err = f_err / cond
        nonfinite = int(np.sum(f_bad))
        if m.vjp is None:
            d_max, d_row = math.nan, -1
        else:
            d_err, d_bad = ulp_errors(m.vjp, true_v, dtype, floor=v_floor)
            if spec.tolerance.condition_allowance and d_err.shape == cond.shape:
                # the vjp of a row is built from all its outputs (entmax: sqrt(y)), so every
                # element of it shares the row's largest output allowance
                d_err = d_err / np.max(cond, axis=1, keepdims=True)
            d_err = np.where(finite_v, d_err, 0.0)
            nonfinite += int(np.sum(d_bad & finite_v))
            i = int(np.argmax(d_err))
            d_max, d_row = float(d_err.flat[i]), i // d_err.shape[1]
        i = int(np.argmax(f_err))
        return float(f_err.flat[i]), d_max, nonfinite, i // f_err.shape[1], d_row

    finite_t = np.isfinite(truth["jvp"]) & ~truth["tkink"][:, None]
    t_floor = ulp(truth["abst"], dtype) / 2.0

    def tangent_score(m: _Measured) -> tuple[float, int]:
        if m.jvp is None:
            return math.nan, 0
        t_err, t_bad = ulp_errors(m.jvp, truth["jvp"], dtype, floor=t_floor)
        if spec.tolerance.condition_allowance:
            t_err = t_err / np.max(cond, axis=1, keepdims=True)  # as the vjp: the row's allowance
        t_err = np.where(finite_t, t_err, 0.0)
        return float(np.max(t_err)), int(np.sum(t_bad & finite_t))

    if backend == "numpy":
        ours = _numpy_eval(spec, params, xs, gs, dtype, ts)
    else:
        from actlab.torch.functional import apply

        ours = _torch_eval(lambda t: apply(spec, t, params), xs, gs, dtype, ts)
    f_ulps, d_ulps, nonfinite, f_row, d_row = score(ours)
    t_ulps, t_nonfinite = tangent_score(ours)
    nonfinite += t_nonfinite
    result = VectorAccuracyRow(
        name=spec.name,
        dtype=dtype,
        points=int(true_f.size),
        forward_ulps=f_ulps,
        derivative_ulps=d_ulps,
        nonfinite=nonfinite,
        conditioned=conditioned,
        forward_limit=f_limit,
        derivative_limit=d_limit,
        rows=int(xs.shape[0]),
        width=int(xs.shape[1]),
        kink_elements=int(np.sum(kink)),
        worst_forward_row=tuple(xs[f_row].tolist()),
        worst_derivative_row=tuple(xs[d_row].tolist()) if d_row >= 0 else None,
        tangent_ulps=t_ulps,
    )
    if with_torch and backend == "torch" and spec.torch_native is not None:
        import torch

        theirs = _torch_eval(lambda t: spec.torch_native(t, torch, **params), xs, gs, dtype)
        tf, td, tn, _, _ = score(theirs)
        result.torch_forward_ulps, result.torch_derivative_ulps, result.torch_nonfinite = tf, td, tn
        eq = [e for e in spec.equivalents if e.framework == "pytorch"]
        result.torch_name = eq[0].symbol if eq else "torch"
    return result


def measure_masked(
    spec: Any,
    dtype: str = "float32",
    rows: int = 32,
    width: int = WIDTH,
    keep: int = 10,
    seed: int = 0,
    cache: bool = True,
) -> VectorAccuracyRow:
    """A normaliser with a ``where`` mask over a tuple of axes, against the row oracle.

    Each row of ``vector_rows`` keeps ``keep`` random entries; the masked ones hold junk (+-1e4,
    +-inf, NaN, 0) that must not matter. The rows are evaluated as (rows, 4, width/4) tensors with
    ``axis=(1, 2)`` and the mask, by torch (forward and backward); the truth of a row is the
    oracle of its unmasked entries alone (forward and vjp with the cotangent's unmasked entries).
    The rules are measure_vector's (the jvp included); besides, every masked output must be exactly
    the spec's fill value (0, or -inf for log_softmax) and every masked input's gradient and every
    masked output's tangent exactly 0, also in two extra rows with nothing unmasked
    (``mask_errors`` counts the exceptions).
    """
    import torch

    from actlab.torch.functional import apply

    if spec.kind != "vector" or spec.masked is None or spec.oracle is None:
        raise TypeError(f"{spec.name}: measure_masked needs a normaliser (a vector spec with where= support)")
    params = spec.resolve_params()
    w = 4 * -(-width // 4)
    full = vector_rows(spec, params, dtype, rows, w, seed)
    rng = np.random.default_rng(seed + 7)
    mask = np.zeros(full.shape, bool)
    for i in range(rows):
        mask[i, rng.choice(w, keep, replace=False)] = True
    compressed = full[mask].reshape(rows, keep)  # row-major: each row's kept entries, in order
    gs = rng.normal(0, 1, size=full.shape).astype(dtype).astype(np.float64)
    ts = rng.normal(0, 1, size=full.shape).astype(dtype).astype(np.float64)
    truth = _truth(
        spec,
        params,
        compressed,
        gs[mask].reshape(rows, keep),
        _TINY[dtype],
        cache=cache,
        ts=ts[mask].reshape(rows, keep),
    )
    junk = rng.choice(np.array([1e4, -1e4, math.inf, -math.inf, math.nan, 0.0]), size=full.shape)
    xs = np.concatenate([np.where(mask, full, junk), junk[:2]])  # + two rows with nothing unmasked
    ms = np.concatenate([mask, np.zeros((2, w), bool)])
    gs = np.concatenate([gs, gs[:2]])
    ts = np.concatenate([ts, ts[:2]])
    tdtype = getattr(torch, dtype)
    x = torch.tensor(xs.reshape(-1, 4, w // 4), dtype=tdtype, requires_grad=True)
    m = torch.tensor(ms.reshape(x.shape))
    y = apply(spec, x, {**params, "axis": (1, 2)}, where=m)
    (gx,) = torch.autograd.grad(y, x, torch.tensor(gs.reshape(x.shape), dtype=tdtype))
    fwd = y.detach().to(torch.float64).numpy().reshape(-1, w)
    vjp = gx.to(torch.float64).numpy().reshape(-1, w)

    def masked_fn(v: Any) -> Any:
        return apply(spec, v, {**params, "axis": (1, 2)}, where=m)

    _, jt = torch.func.jvp(masked_fn, (x.detach(),), (torch.tensor(ts.reshape(x.shape), dtype=tdtype),))
    jvp = jt.to(torch.float64).numpy().reshape(-1, w)
    fill = spec.masked[1]
    mask_errors = int(np.sum(fwd[~ms] != fill)) + int(np.sum(vjp[~ms] != 0.0)) + int(np.sum(jvp[~ms] != 0.0))
    mask_errors += int(np.sum(~np.isfinite(vjp))) + int(np.sum(~np.isfinite(jvp[ms])))
    got_f, got_v = fwd[:rows][mask].reshape(rows, keep), vjp[:rows][mask].reshape(rows, keep)
    true_f, true_v, kink = truth["forward"], truth["vjp"], truth["kink"]
    cond = truth["cond"] if spec.tolerance.condition_allowance else np.ones_like(true_f)
    f_err, f_bad = ulp_errors(got_f, true_f, dtype)
    f_err = f_err / cond
    d_err, d_bad = ulp_errors(got_v, true_v, dtype, floor=ulp(truth["absg"], dtype) / 2.0)
    if spec.tolerance.condition_allowance:
        d_err = d_err / np.max(cond, axis=1, keepdims=True)
    finite_v = np.isfinite(true_v) & ~kink
    d_err = np.where(finite_v, d_err, 0.0)
    t_err, t_bad = ulp_errors(
        jvp[:rows][mask].reshape(rows, keep), truth["jvp"], dtype, floor=ulp(truth["abst"], dtype) / 2.0
    )
    if spec.tolerance.condition_allowance:
        t_err = t_err / np.max(cond, axis=1, keepdims=True)
    finite_t = np.isfinite(truth["jvp"]) & ~truth["tkink"][:, None]
    t_err = np.where(finite_t, t_err, 0.0)
    fi, di = int(np.argmax(f_err)), int(np.argmax(d_err))
    return VectorAccuracyRow(
        name=f"{spec.name}[where, axis=(1, 2)]",
        dtype=dtype,
        points=int(true_f.size),
        forward_ulps=float(f_err.flat[fi]),
        derivative_ulps=float(d_err.flat[di]),
        nonfinite=int(np.sum(f_bad)) + int(np.sum(d_bad & finite_v)) + int(np.sum(t_bad & finite_t)),
        conditioned=int(np.sum(cond > 1.0)),
        forward_limit=spec.tolerance.forward_ulps or FORWARD_LIMIT[dtype],
        derivative_limit=spec.tolerance.derivative_ulps or DERIVATIVE_LIMIT,
        rows=rows,
        width=keep,
        kink_elements=int(np.sum(kink)),
        worst_forward_row=tuple(compressed[fi // keep].tolist()),
        worst_derivative_row=tuple(compressed[di // keep].tolist()),
        mask_errors=mask_errors,
        tangent_ulps=float(np.max(t_err)),
    )


# ----------------------------------------------------------------------------- functional checks
def functional_checks(spec: Any, params: dict[str, Any] | None = None, seed: int = 0) -> list[tuple[str, bool, str]]:
    """(check, passed, detail) for: other axes, float16/bfloat16, gradcheck and gradgradcheck in
    float64, the values and gradients at special rows (inf, NaN, +-0, subnormals)."""
    import torch

    from actlab.torch.functional import apply

    params = spec.resolve_params(**(params or {}))
    out: list[tuple[str, bool, str]] = []
    w = _width_for(spec, params, 8)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(5, w, generator=gen, dtype=torch.float64)

    def run(t: torch.Tensor, axis: int) -> torch.Tensor:
        return apply(spec, t, {**params, "axis": axis})

    ref = run(x, -1)
    same = torch.equal(run(x.t().contiguous(), 0).t(), ref)
    x3 = x.reshape(5, 1, w).expand(5, 3, w).transpose(1, 2).contiguous()  # (5, w, 3), axis 1
    same3 = torch.equal(run(x3, 1)[:, :, 0], ref) and torch.equal(run(x3, -2)[:, :, 2], ref)
    out.append(("other axes (0 on the transpose, 1 and -2 of a 3-d input)", same and same3, ""))

    for low in (torch.float16, torch.bfloat16):
        xl = x.to(low).requires_grad_(True)
        yl = run(xl, -1)
        y32 = run(xl.detach().float(), -1).to(low)
        (gl,) = torch.autograd.grad(yl, xl, torch.ones_like(yl))
        eps = torch.finfo(low).eps
        close = torch.allclose(yl.float(), y32.float(), rtol=eps, atol=eps * float(y32.float().abs().max()))
        ok = yl.dtype == low and gl.dtype == low and bool(torch.isfinite(gl).all()) and close
        out.append((f"{str(low).split('.')[-1]} (computed in float32)", ok, ""))

    xg = (torch.randn(3, w, generator=gen, dtype=torch.float64) * 1.5).requires_grad_(True)
    try:
        ok = torch.autograd.gradcheck(lambda t: run(t, -1), (xg,))
        detail = ""
    except Exception as err:  # noqa: BLE001 - reported, not raised
        ok, detail = False, str(err).splitlines()[0][:200]
    out.append(("gradcheck float64", bool(ok), detail))
    try:
        ok = torch.autograd.gradgradcheck(lambda t: run(t, -1), (xg,))
        detail = ""
    except Exception as err:  # noqa: BLE001
        ok, detail = False, str(err).splitlines()[0][:200]
    out.append(("gradgradcheck float64", bool(ok), detail))

    if spec.masked is not None:
        # empty inputs along every axis keep their shape; a 0-d input is a one-element row
        # (log_softmax 0, the others 1, as torch.softmax); a fully masked row is the fill value
        # with zero gradients (no NaN)
        shapes_ok = all(
            tuple(run(torch.zeros(shape, dtype=torch.float64), a).shape) == shape
            for shape in [(0,), (3, 0), (5, 0, 0)]
            for a in range(-len(shape), len(shape))
        )
        one = run(torch.tensor(2.0, dtype=torch.float64), -1)
        xm = x[:2].clone().requires_grad_(True)
        mask = torch.zeros(xm.shape, dtype=torch.bool)
        mask[0, ::2] = True  # row 1: nothing unmasked
        ym = apply(spec, xm, params, where=mask)
        (gm,) = torch.autograd.grad(ym, xm, torch.ones_like(ym).masked_fill(~mask, 0.0))
        fill = spec.masked[1]
        ok = (
            shapes_ok
            and one.shape == ()
            and one.item() == (0.0 if fill == -math.inf else 1.0)
            and bool((ym[~mask] == fill).all())
            and bool(torch.isfinite(gm).all())
            and bool((gm[~mask] == 0).all())
        )
        out.append(("empty and 0-d inputs, a fully masked row (where=)", ok, ""))

    inf, nan = math.inf, math.nan
    specials = [
        [inf, 1.0, -2.0, 0.0],
        [-inf, 1.0, -2.0, 0.0],
        [-inf, -inf, -inf, -inf],
        [inf, inf, 0.0, 1.0],
        [nan, 1.0, 2.0, 3.0],
        [0.0, -0.0, 1e-310, -1e-310],
        [1e4, -1e4, 1e4, 0.0],
    ]
    ws = _width_for(spec, params, 4)
    rows = torch.tensor([r * (ws // 4) for r in specials], dtype=torch.float64, requires_grad=True)
    y = run(rows, -1)
    (g,) = torch.autograd.grad(y, rows, torch.ones_like(y))
    np.set_printoptions(precision=4, linewidth=200)
    detail = "\n".join(
        f"      x={r}\n      f={fy}\n      g={gg}"
        for r, fy, gg in zip(rows.detach().numpy(), y.detach().numpy(), g.numpy())
    )
    numpy_y = spec(rows.detach().numpy(), **{k: v for k, v in params.items()})
    # Within 4 ulp (summation orders differ: entmax15([1e4, -1e4, 1e4, 0]) is 0.5 -+ 1 ulp), the
    # same NaN and infinite entries.
    agree = np.allclose(
        np.asarray(numpy_y), y.detach().numpy(), rtol=4 * np.finfo(np.float64).eps, atol=0, equal_nan=True
    )
    out.append(("special rows (torch == numpy within 4 ulp)", bool(agree), detail))
    return out


# ----------------------------------------------------------------------------- CLI
def main(argv: list[str]) -> int:
    from actlab.registry import get_spec

    failed = False
    for name in argv:
        spec = get_spec(name)
        for dtype in ("float32", "float64"):
            for backend in ("torch", "numpy"):
                row = measure_vector(spec, dtype, backend=backend, with_torch=backend == "torch")
                failed |= not row.passed
                print(
                    f"{spec.name:>12} {dtype} {backend:>5}: fwd {row.forward_ulps:7.2f} ulp "
                    f"vjp {row.derivative_ulps:7.2f} jvp {row.tangent_ulps:7.2f} nonfinite={row.nonfinite} "
                    f"cond={row.conditioned} "
                    f"kinks={row.kink_elements} {'PASS' if row.passed else 'FAIL'}"
                    + (
                        f" | torch fwd {row.torch_forward_ulps:.3g} vjp {row.torch_derivative_ulps:.3g} "
                        f"nonfinite={row.torch_nonfinite}"
                        if row.torch_name
                        else ""
                    )
                )
                if not row.passed:
                    print(f"{'':>14}worst forward row: {row.worst_forward_row}")
                    print(f"{'':>14}worst vjp row: {row.worst_derivative_row}")
        if spec.masked is not None:
            for dtype in ("float32", "float64"):
                row = measure_masked(spec, dtype)
                failed |= not row.passed
                print(
                    f"{spec.name:>12} {dtype} where+axes: fwd {row.forward_ulps:7.2f} ulp vjp "
                    f"{row.derivative_ulps:7.2f} jvp {row.tangent_ulps:7.2f} nonfinite={row.nonfinite} "
                    f"mask_errors={row.mask_errors} "
                    f"{'PASS' if row.passed else 'FAIL'}"
                )
        for check, ok, detail in functional_checks(spec):
            failed |= not ok
            print(f"{'':>14}{check}: {'ok' if ok else 'FAILED'}" + (f"\n{detail}" if detail else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
