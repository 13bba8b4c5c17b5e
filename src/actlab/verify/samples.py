"""Parameter samples generated from a spec's declared ``Param`` ranges (PyTorch's OpInfo sample
inputs, without a hand-kept list): :func:`parameter_samples`.

Every value comes from a ``Param``'s kind, range, choices and nullability, and from probing the
spec's cross-constraints; nothing names an activation. For one parameter at a time (the others at
their defaults):

- numbers: the default; each finite end (the end itself where the bound is closed, the nearest
  value inside where it is open); each unbounded side's extreme, float32's largest finite number
  (every real parameter is 0 or a normal float32 number, ``actlab.catalog.spec.FLOAT32_MAX``: a
  range claims every value in it, so where a function stops being computable its ``Param`` is
  bounded, and the ends are the real extremes); interior points, geometric from each end on
  half-bounded and unbounded sides (both signs where the range allows), linear on bounded ranges;
- integers (axes, piece counts): the ends where finite, then small steps from the default and from
  0 (their large values cost memory in the input, not accuracy);
- ``choices``: each choice; ``bool``: True and False; ``nullable``: None;
- cross-constraints (``constraints=``, e.g. ``ordered(low, high)``): every pair of numeric
  parameters is probed with one set equal to the other and one float32 step above and below it
  (adjacent in the narrowest dtype the tests use, so float32 does not round the pair together);
  where the constraint refuses one of those, the accepted ones are the edges and are samples;
- a few corners: every numeric parameter at its low extreme at once, and at its high extreme
  (where the constraints accept them).

Levels: ``"defaults"`` (one sample: the defaults), ``"ci"`` (the defaults, every end and extreme,
two interior points per side (1/100 and 100 units from the end), every choice, bool, None and
constraint edge, the corners: a deterministic subset that fits the test suite's time), ``"all"``
(every sample above, with the full interior ladders). Samples are resolved (validated, defaults
filled in), unique and in a deterministic order: the defaults first.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from actlab.catalog.spec import FLOAT32_MAX, FLOAT32_TINY

__all__ = [
    "LEVELS",
    "ParamSample",
    "parameter_samples",
    "parameter_sample_records",
    "params_for_dtype",
    "sample_label",
]

LEVELS = ("defaults", "ci", "all")
# Interior points: offsets from an end, in units of the default's distance from it (at least 1).
_LADDER_CI = (1e-2, 1e2)
_LADDER_ALL = (1e-6, 1e-2, 0.5, 2.0, 1e2, 1e6)
# Bounded ranges: fractions of the width.
_LINEAR_CI = (0.5,)
_LINEAR_ALL = (0.1, 0.25, 0.5, 0.75, 0.9)
_INT_STEPS = (1, 2, 3)


@dataclass(frozen=True)
class ParamSample:
    """A resolved parameter dict and why it was chosen (``"default"``, ``"alpha=low"``, ...)."""

    params: dict[str, Any]
    why: str

    def label(self, spec: Any) -> str:
        return sample_label(spec, self.params)


def sample_label(spec: Any, params: dict[str, Any]) -> str:
    """The parameters that differ from the defaults, as ``name=value, ...`` (``"defaults"`` if none)."""
    diff = spec.non_default(params)
    if not diff:
        return "defaults"
    return ", ".join(f"{k}={v:.9g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in diff.items())


def parameter_samples(spec: Any, level: str = "ci") -> list[dict[str, Any]]:
    """Resolved parameter dicts of ``spec`` for ``level`` ("defaults", "ci" or "all"); see the module doc."""
    return [s.params for s in parameter_sample_records(spec, level)]


def parameter_sample_records(spec: Any, level: str = "ci") -> list[ParamSample]:
    """:func:`parameter_samples` with the reason each sample was chosen."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(map(repr, LEVELS))}; got {level!r}")
    out: list[ParamSample] = []
    seen: set[tuple] = set()

    def add(changes: dict[str, Any], why: str) -> None:
        try:
            resolved = spec.resolve_params(**{**spec.defaults, **changes})
        except (TypeError, ValueError):
            return  # refused by a cross-constraint (or the probe went outside a range)
        key = tuple(sorted((k, repr(v)) for k, v in resolved.items()))
        if key not in seen:
            seen.add(key)
            out.append(ParamSample(resolved, why))

    add({}, "default")
    if level == "defaults":
        return out
    full = level == "all"
    for p in spec.params:
        for value, why in _values(p, full):
            add({p.name: value}, f"{p.name}={why}")
    for changes, why in _constraint_edges(spec):
        add(changes, why)
    for changes, why in _corners(spec):
        add(changes, why)
    return out


# ----------------------------------------------------------------------------- one parameter
def _values(p: Any, full: bool) -> Iterator[tuple[Any, str]]:
    if p.nullable:
        yield None, "None"
    if p.choices is not None:
        for c in p.choices:
            yield c, repr(c)
        return
    if p.kind is bool:
        yield True, "True"
        yield False, "False"
        return
    if p.kind is int:
        yield from _int_values(p)
        return
    if p.kind is not float:
        return
    yield from _float_values(p, full)


def _inside(p: Any, value: float, toward: float) -> float:
    """``value`` if the parameter accepts it, else the first accepted value stepping toward ``toward``:
    the nearest float64 inside an open bound, or float32's smallest normal magnitude (every real
    Param is 0 or a normal float32 number; see ``actlab.catalog.spec.FLOAT32_TINY``)."""
    candidates = [value, math.nextafter(value, toward)]
    if 0 < abs(value) < FLOAT32_TINY or value == 0.0:
        candidates.append(math.copysign(FLOAT32_TINY, toward - value))
    for c in candidates:
        if _valid(p, c):
            return c
    return value


def _low(p: Any) -> float:
    """The smallest float64 the parameter accepts."""
    if p.low is None:
        return -FLOAT32_MAX
    return _inside(p, float(p.low), math.inf)


def _high(p: Any) -> float:
    if p.high is None:
        return FLOAT32_MAX
    return _inside(p, float(p.high), -math.inf)


def _float_values(p: Any, full: bool) -> Iterator[tuple[Any, str]]:
    lo, hi = _low(p), _high(p)
    yield lo, "low" if p.low is not None else "most negative"
    yield hi, "high" if p.high is not None else "largest"
    default = p.default if isinstance(p.default, (int, float)) and not isinstance(p.default, bool) else None
    if p.low is not None and p.high is not None:
        for t in _LINEAR_ALL if full else _LINEAR_CI:
            yield p.low + t * (p.high - p.low), f"interior {t:g}"
        return
    ladder = _LADDER_ALL if full else _LADDER_CI
    # Geometric from each finite end, in units of the default's distance from it.
    for end, sign in ((p.low, 1.0), (p.high, -1.0)):
        if end is None:
            continue
        unit = max(abs(default - end), 1.0) if default is not None else 1.0
        for k in ladder:
            yield end + sign * k * unit, f"interior {'+' if sign > 0 else '-'}{k:g}"
    if p.low is None and p.high is None:
        # Both signs: around zero, geometric, on each side.
        unit = max(abs(default), 1.0) if default is not None else 1.0
        yield 0.0, "zero"
        for k in ladder:
            yield k * unit, f"interior +{k:g}"
            yield -k * unit, f"interior -{k:g}"
    if default is not None and default != 0:
        yield -default, "default with the other sign"


def _int_values(p: Any) -> Iterator[tuple[Any, str]]:
    if p.low is not None:
        yield int(p.low) + (1 if p.low_open else 0), "low"
    if p.high is not None:
        yield int(p.high) - (1 if p.high_open else 0), "high"
    base = p.default if isinstance(p.default, int) else 0
    for s in _INT_STEPS:
        yield base + s, f"default+{s}"
        yield base - s, f"default-{s}"
    for s in (0, 1, -1):
        yield s, str(s)


# ----------------------------------------------------------------------------- cross-constraints
def _numeric(p: Any) -> bool:
    return p.choices is None and p.kind in (int, float)


def _some_number(p: Any) -> float:
    """A number the parameter accepts: its default, else 1, 0 or -1, else one of its ends."""
    if isinstance(p.default, (int, float)) and not isinstance(p.default, bool):
        return p.default
    for candidate in (1.0, 0.0, -1.0, _low(p), _high(p)):
        try:
            return p.validate(candidate, "probe")
        except ValueError:
            continue
    return 0.0


def _valid(p: Any, value: Any) -> bool:
    try:
        p.validate(value, "probe")
    except ValueError:
        return False
    return True


def _accepted(spec: Any, changes: dict[str, Any]) -> bool:
    try:
        spec.resolve_params(**{**spec.defaults, **changes})
    except (TypeError, ValueError):
        return False
    return True


def _constraint_edges(spec: Any) -> Iterator[tuple[dict[str, Any], str]]:
    """Equal and adjacent values of every numeric pair the spec's constraints relate."""
    if spec.constraints is None:
        return
    numeric = [p for p in spec.params if _numeric(p)]
    for p in numeric:
        for q in numeric:
            if p is q:
                continue
            v = _some_number(q)
            base = {q.name: v}
            if p.kind is int:
                probes = [(v, "equal"), (v + 1, "one above"), (v - 1, "one below")]
            else:
                v = float(v)
                # float32 neighbours: adjacent in float32, and distinct in float64 too
                probes = [(v, "equal"), (_step32(v, math.inf), "one above"), (_step32(v, -math.inf), "one below")]
            # only values the parameter accepts on its own: a refusal must come from the constraint
            probes = [(value, why) for value, why in probes if _valid(p, value)]
            results = [(value, why, _accepted(spec, {**base, p.name: value})) for value, why in probes]
            if all(ok for _, _, ok in results) or not any(ok for _, _, ok in results):
                continue  # the constraint does not relate p and q at this point
            for value, why, ok in results:
                if ok:
                    yield {**base, p.name: value}, f"{p.name} {why} {q.name}"


def _step32(v: float, toward: float) -> float:
    """The float32 next to ``v`` (itself a float32 value) toward ``toward``."""
    import numpy as np

    return float(np.nextafter(np.float32(v), np.float32(toward)))


def _corners(spec: Any) -> Iterator[tuple[dict[str, Any], str]]:
    numeric = [p for p in spec.params if p.kind is float and p.choices is None]
    if len(numeric) < 2:
        return
    yield {p.name: _low(p) for p in numeric}, "all low"
    yield {p.name: _high(p) for p in numeric}, "all high"
    yield {p.name: (_low(p) if i % 2 == 0 else _high(p)) for i, p in enumerate(numeric)}, "alternating low/high"


def params_for_dtype(spec: Any, params: dict[str, Any], dtype: str) -> dict[str, Any]:
    """``params`` as a computation in ``dtype`` holds them: a float32 tensor op rounds a Python float
    parameter to float32 (``x > 0.01`` compares with float32(0.01)), so the float32 oracle is taken at
    the rounded values. A value that does not survive the rounding (one beyond float32's range, or
    one that rounds onto an open bound) raises the spec's ParameterError: the Param's range claims
    a value that a float32 computation cannot hold."""
    if dtype != "float32":
        return dict(params)
    import numpy as np

    rounded = {}
    for k, v in params.items():
        if isinstance(v, float):
            with np.errstate(over="ignore"):
                r = float(np.float32(v))
            if math.isinf(r) or (r == 0.0 and v != 0.0 and spec.param(k).low == 0.0 and spec.param(k).low_open):
                from actlab.catalog.spec import ParameterError

                raise ParameterError(f"{spec.name}: {k}={v!r} is not representable in float32")
            v = r
        rounded[k] = v
    return spec.resolve_params(**rounded)
