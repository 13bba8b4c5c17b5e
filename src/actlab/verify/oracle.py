"""The mpmath oracle: a spec's SymPy definition evaluated at raised precision until it converges.

A fixed precision is not an oracle: a definition that cancels (``1 + erf(x)`` for x << 0) gives
the same wrong digits at 50 and at 100 digits only when it cancels *completely*; otherwise the
two evaluations differ and the precision is raised. Definitions are written in forms that do not
cancel completely (erfc, not 1 + erf), and evaluation that does not converge raises.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from actlab.ops._lazy import require

_PRECISIONS = (40, 80, 160, 320, 640, 1280)
_AGREE_BITS = 80
_ZERO_CHECK_DPS = 640
_NEGLIGIBLE_BITS = 1100  # 2^-1100: far below float64's smallest subnormal, 2^-1074
_VERSION = 4  # bump when the evaluation changes: cached values are keyed by it


class OracleError(RuntimeError):
    """The oracle could not evaluate a definition to the required precision."""


def _mp() -> Any:
    return require("mpmath", "the accuracy oracle")


@functools.lru_cache(maxsize=512)
def _compiled(spec: Any, params_key: tuple, order: int, wrt: str | None = None) -> Callable[[Any], Any]:
    sympy = require("sympy", "the accuracy oracle")
    x = sympy.Symbol("x", real=True)
    if wrt is not None:
        return _compiled_wrt(spec, params_key, wrt, x, sympy, order)
    expr = spec.sympy_definition(x, **dict(params_key))
    if order:
        expr = sympy.diff(expr, x, order)
        # f'' of a Piecewise or |x| holds DiracDelta at the kinks, where nothing is measured
        expr = expr.replace(sympy.DiracDelta, lambda *args: sympy.Integer(0))
    return sympy.lambdify(x, expr, modules="mpmath")


def _compiled_wrt(spec: Any, params_key: tuple, wrt: str, x: Any, sympy: Any, order: int = 0) -> Callable[[Any], Any]:
    """d f / d(parameter ``wrt``) (then ``order`` times d/dx) at the parameters of ``params_key``, as a
    function of x: the definition differentiated by SymPy with that parameter a symbol, then
    evaluated at its exact binary value (the implementation's)."""
    from actlab.catalog.spec import _sympy_value

    params = dict(params_key)
    symbol = sympy.Symbol(f"_param_{wrt}", real=True)
    values = {k: (symbol if k == wrt else _sympy_value(sympy, v)) for k, v in params.items()}
    expr = sympy.diff(spec.definition(x, sympy, **values), symbol)
    if order:
        expr = sympy.diff(expr, x, order).replace(sympy.DiracDelta, lambda *args: sympy.Integer(0))
    raw = float(params[wrt])  # mpf(float) is exact at any precision
    fn = sympy.lambdify((x, symbol), expr, modules="mpmath")
    return lambda t: fn(t, _mp().mpf(raw))


def _agree(a: Any, b: Any, mp: Any) -> bool:
    if not (mp.isfinite(a) and mp.isfinite(b)):
        return bool(a == b)
    if b == 0:
        return bool(a == 0)
    return bool(abs(a - b) <= abs(b) * mp.mpf(2) ** (-_AGREE_BITS))


def evaluate_point(fn: Callable[[Any], Any], x: float) -> Any:
    """``fn(x)`` as an mpf correct to about 80 bits, raising precision until it converges.

    Two evaluations that agree on exactly 0 or on an infinity are checked once more at 640 digits:
    a complete cancellation (1 - tanh(x)^2 at x = -300) is 0 at every low precision, an operand
    lost to rounding (log1p(x - 1) at x = 1e-308) gives -inf, and 640 digits resolve every value
    float64 can represent.
    """
    mp = _mp()
    negligible = mp.mpf(2) ** -_NEGLIGIBLE_BITS
    previous = None
    for dps in _PRECISIONS:
        value = _at_precision(fn, x, dps, mp)
        if previous is not None and mp.isnan(value) and mp.isnan(previous):
            return value  # undefined at x (a real function outside its domain)
        if previous is not None and 0 < abs(previous) < negligible and 0 < abs(value) < negligible:
            return mp.mpf(0)  # what is left of a cancellation, and no float64 can hold it
        if previous is not None and _agree(previous, value, mp):
            if (value != 0 and mp.isfinite(value)) or dps >= _ZERO_CHECK_DPS:
                return value
            high = _at_precision(fn, x, _ZERO_CHECK_DPS, mp)
            if value == 0 and abs(high) < negligible:
                return value  # zero, or too small for any float64 to tell from zero
            if mp.isinf(value) and high == value:
                return value  # an infinity that is not a lost operand (log1p(x - 1) at x = 1e-308)
            higher = _at_precision(fn, x, 2 * _ZERO_CHECK_DPS, mp)
            if mp.isnan(high) and mp.isnan(higher):
                return higher  # undefined: an operand lost at low precision hid the domain's edge
            if _agree(high, higher, mp):
                return higher
            break
        previous = value
    raise OracleError(f"oracle did not converge at x={x!r} (up to {_PRECISIONS[-1]} digits)")


def _at_precision(fn: Callable[[Any], Any], x: float, dps: int, mp: Any) -> Any:
    with mp.workdps(dps):
        try:
            value = fn(mp.mpf(x))
        except ZeroDivisionError:
            value = mp.nan
        if isinstance(value, mp.mpc):
            if value.imag != 0:
                # the real function is not defined there (soft_exponential's log branch below
                # x = 1/|alpha| - |alpha| for alpha < 0): NaN, which accuracy does not measure
                return mp.nan
            value = value.real
        return mp.mpf(value)


def _cache_dir() -> Path | None:
    root = os.environ.get("ACTLAB_CACHE")
    if root == "":
        return None
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "actlab"
    return base / "oracle"


def _cache_key(spec: Any, params_key: tuple, order: int | str) -> str:
    sympy = require("sympy")
    h = hashlib.sha256()
    h.update(f"{spec.name}/oracle-{_VERSION}".encode())
    h.update(repr(params_key).encode())
    h.update(str(order).encode())
    h.update(sympy.srepr(spec.sympy_definition(**dict(params_key))).encode())
    return h.hexdigest()[:32]


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path) as data:
            return data["x"], data["y"]
    except (OSError, ValueError, KeyError):
        return np.empty(0), np.empty(0)  # missing or damaged: recomputed


def oracle(
    spec: Any,
    xs: np.ndarray,
    params: dict[str, Any] | None = None,
    order: int = 0,
    cache: bool = True,
    wrt: str | None = None,
    strict: bool = True,
) -> np.ndarray:
    """True values of ``spec`` (``order``-th derivative) at float64 points ``xs``, rounded to float64.

    ``wrt``: instead, the derivative with respect to that parameter (what a learnable parameter's
    gradient should be, per element), from the definition differentiated by SymPy (then ``order``
    times with respect to x).
    ``strict=False``: a point that does not converge is NaN instead of an OracleError (for
    estimates such as condition numbers; NaN values are not cached).

    mpf -> float64 conversion is correctly rounded. Values are cached on disk per definition,
    parameters and derivative order (``ACTLAB_CACHE`` names the folder; an empty value turns the
    cache off), so grids that share points (float32 and float64, sampled and full) share work.
    """
    params = spec.resolve_params(**(params or {}))
    params_key = tuple(sorted(params.items()))
    xs = np.asarray(xs, dtype=np.float64)
    flat = xs.ravel()
    folder = _cache_dir() if cache else None
    known_x, known_y = np.empty(0), np.empty(0)
    path = None
    if folder is not None:
        key_order = order if wrt is None else f"d/d{wrt}"
        path = folder / f"{spec.name}-{_cache_key(spec, params_key, key_order)}.npz"
        known_x, known_y = _load(path)
    out = np.empty(flat.shape, dtype=np.float64)
    pos = np.searchsorted(known_x, flat).clip(0, max(known_x.size - 1, 0))
    hit = (known_x.size > 0) & (known_x[pos] == flat) if known_x.size else np.zeros(flat.shape, bool)
    out[hit] = known_y[pos[hit]]
    missing = np.unique(flat[~hit])
    if missing.size:
        fn = _compiled(spec, params_key, order, wrt)
        values = np.array([_value(fn, float(x), strict) for x in missing], dtype=np.float64)
        out[~hit] = values[np.searchsorted(missing, flat[~hit])]
        if path is not None:
            keep = ~np.isnan(values) if not strict else np.ones(values.shape, bool)
            _store(path, np.concatenate([known_x, missing[keep]]), np.concatenate([known_y, values[keep]]))
    return out.reshape(xs.shape)


def _value(fn: Callable[[Any], Any], x: float, strict: bool) -> float:
    try:
        return float(evaluate_point(fn, x))
    except OracleError:
        if strict:
            raise
        return float("nan")


def _store(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    keep = np.concatenate([[True], x[1:] != x[:-1]]) if x.size else np.zeros(0, bool)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, x=x[keep], y=y[keep])
        os.replace(tmp, path)  # never a half-written cache file
    except OSError:
        pass


def oracle_mp(spec: Any, x: float, params: dict[str, Any] | None = None, order: int = 0) -> Any:
    """One value as an mpf (for tests that need more than float64)."""
    params = spec.resolve_params(**(params or {}))
    return evaluate_point(_compiled(spec, tuple(sorted(params.items())), order), float(x))
