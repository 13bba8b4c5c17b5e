"""Limits at ±infinity from the oracle: what f(±inf) and f'(±inf) must return.

The definition is evaluated far beyond float64's range (|x| = 1e400, 1e500, 1e600, where mpmath
has no overflow); three values that agree give the limit (rounded to float64, so a growing
function gives ±inf), values that disagree mean there is none (sin, x cos x), and the
implementation must return NaN there.
"""

from __future__ import annotations

import math
from typing import Any

from actlab.verify.oracle import OracleError, _compiled, _mp, evaluate_point

_FAR = ("1e400", "1e450", "1e500", "1e550", "1e600")
# Where mpmath cannot go that far (tanh(e^x) needs e^(e^x)): as far as it can.
_FALLBACKS = (("1e100", "1e120", "1e140", "1e160", "1e180"), ("2e3", "4e3", "6e3", "8e3", "1e4"))


def limit_at_infinity(spec: Any, sign: int, order: int = 0, params: dict[str, Any] | None = None) -> float:
    """lim f^(order)(x) as x -> sign*inf, as a float64 (inf allowed); NaN when there is none."""
    mp = _mp()
    params = spec.resolve_params(**(params or {}))
    fn = _compiled(spec, tuple(sorted(params.items())), order)
    for points in (_FAR, *_FALLBACKS):
        try:
            values = [_as_float(evaluate_point(fn, mp.mpf(p) * sign)) for p in points]
            break
        except (OracleError, OverflowError, ValueError):
            continue
    else:
        return math.nan
    if any(math.isnan(v) for v in values):
        return math.nan
    if len(set(values)) == 1:
        return values[0]  # beyond float64's resolution every value rounds to the limit
    # Slow growth (log x): same sign, magnitudes strictly increasing -> diverges to ±inf.
    mags = [abs(v) for v in values]
    if len({v > 0 for v in values}) == 1 and all(a < b for a, b in zip(mags, mags[1:])):
        return math.copysign(math.inf, values[0])
    # Slow decay (1 / sqrt x): same sign, magnitudes falling by orders of magnitude -> 0.
    if len({v > 0 for v in values}) == 1 and all(b < 1e-10 * a for a, b in zip(mags, mags[1:])):
        return 0.0
    return math.nan  # oscillates: no limit


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:  # beyond what mpmath converts: far outside float64's range
        return math.copysign(math.inf, float(value > 0) - 0.5) if abs(value) > 1 else 0.0
