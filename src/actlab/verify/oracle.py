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
from pathlib import Path
from typing import Any, Callable

import numpy as np

from actlab.ops._lazy import require

_PRECISIONS = (40, 80, 160, 320, 640, 1280)
_AGREE_BITS = 80


class OracleError(RuntimeError):
    """The oracle could not evaluate a definition to the required precision."""


def _mp() -> Any:
    return require("mpmath", "the accuracy oracle")


@functools.lru_cache(maxsize=512)
def _compiled(spec: Any, params_key: tuple, order: int) -> Callable[[Any], Any]:
    sympy = require("sympy", "the accuracy oracle")
    x = sympy.Symbol("x", real=True)
    expr = spec.sympy_definition(x, **dict(params_key))
    if order:
        expr = sympy.diff(expr, x, order)
    return sympy.lambdify(x, expr, modules="mpmath")


def _agree(a: Any, b: Any, mp: Any) -> bool:
    if not (mp.isfinite(a) and mp.isfinite(b)):
        return bool(a == b)
    if b == 0:
        return bool(a == 0)
    return bool(abs(a - b) <= abs(b) * mp.mpf(2) ** (-_AGREE_BITS))


def evaluate_point(fn: Callable[[Any], Any], x: float) -> Any:
    """``fn(x)`` as an mpf correct to about 80 bits, raising precision until it converges."""
    mp = _mp()
    previous = None
    for dps in _PRECISIONS:
        with mp.workdps(dps):
            try:
                value = fn(mp.mpf(x))
            except ZeroDivisionError:
                value = mp.nan
            if isinstance(value, mp.mpc):
                if value.imag != 0:
                    raise OracleError(f"complex value at x={x!r}: {value}")
                value = value.real
            value = mp.mpf(value)
        if previous is not None and _agree(previous, value, mp):
            return value
        previous = value
    raise OracleError(f"oracle did not converge at x={x!r} (up to {_PRECISIONS[-1]} digits)")


def _cache_dir() -> Path | None:
    root = os.environ.get("ACTLAB_CACHE")
    if root == "":
        return None
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "actlab"
    return base / "oracle"


def _cache_key(spec: Any, params_key: tuple, order: int, xs: np.ndarray) -> str:
    h = hashlib.sha256()
    sympy = require("sympy")
    h.update(spec.name.encode())
    h.update(repr(params_key).encode())
    h.update(str(order).encode())
    h.update(sympy.srepr(spec.sympy_definition(**dict(params_key))).encode())
    h.update(np.ascontiguousarray(xs, dtype=np.float64).tobytes())
    return h.hexdigest()[:32]


def oracle(spec: Any, xs: np.ndarray, params: dict[str, Any] | None = None, order: int = 0, cache: bool = True) -> np.ndarray:
    """True values of ``spec`` (``order``-th derivative) at float64 points ``xs``, rounded to float64.

    mpf -> float64 conversion is correctly rounded. Results are cached on disk (``ACTLAB_CACHE``
    overrides the folder, an empty value disables the cache) keyed by the definition and points.
    """
    params = spec.resolve_params(**(params or {}))
    params_key = tuple(sorted(params.items()))
    xs = np.asarray(xs, dtype=np.float64)
    path = None
    folder = _cache_dir() if cache else None
    if folder is not None:
        path = folder / f"{spec.name}-{_cache_key(spec, params_key, order, xs)}.npy"
        if path.exists():
            try:
                return np.load(path)
            except (OSError, ValueError):
                pass  # a damaged cache entry is recomputed
    fn = _compiled(spec, params_key, order)
    out = np.array([float(evaluate_point(fn, float(x))) for x in xs.ravel()], dtype=np.float64)
    out = out.reshape(xs.shape)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, out)
            os.replace(tmp, path)  # never a half-written cache file
        except OSError:
            pass
    return out


def oracle_mp(spec: Any, x: float, params: dict[str, Any] | None = None, order: int = 0) -> Any:
    """One value as an mpf (for tests that need more than float64)."""
    params = spec.resolve_params(**(params or {}))
    return evaluate_point(_compiled(spec, tuple(sorted(params.items())), order), float(x))
