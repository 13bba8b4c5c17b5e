"""The activation spec: one frozen record per activation, the single source of truth.

Everything else (registry, torch functional, modules, CLI listings, oracle tests) is generated
from these records. Nothing here imports SymPy or torch: ``definition`` is a callable that
receives the SymPy module, and ``forward``/``derivative`` receive an ``ops`` namespace.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Param",
    "Kink",
    "Reference",
    "Equivalent",
    "FRAMEWORKS",
    "Tolerance",
    "Kernel",
    "Spec",
    "ParameterError",
]


class ParameterError(ValueError):
    """An activation parameter outside its allowed range (a ``ValueError``)."""


_MISSING = object()

# Every real parameter is 0 or a normal float32 number: activations run in float32 (a float32 tensor
# op rounds a Python float parameter to float32), so a value beyond float32's range becomes inf
# (elu(alpha=1e308) overflowed on a tensor; gain('elu(alpha=1e160)') allocated 8 GB) and one below
# its smallest normal number becomes 0 or loses its precision (celu's x / alpha divides by 0).
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_TINY = 2.0**-126


@dataclass(frozen=True)
class Param:
    """One parameter of an activation, with its default and allowed values.

    ``low``/``high`` bound numeric parameters (``low_open``/``high_open`` make a bound strict);
    ``choices`` restricts string (or other) parameters to a fixed set; ``nullable`` allows None
    (Keras' ``max_value=None``).
    """

    name: str
    default: Any
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple | None = None
    kind: type = float
    nullable: bool = False
    trainable: bool = False
    doc: str = ""
    # Other frameworks' spellings: parameter names (Keras' ``threshold`` for ``lambd``) and values
    # (``approximate=True`` for ``'tanh'``) accepted with the peer's meaning; (given, canonical) pairs.
    aliases: tuple[str, ...] = ()
    spellings: tuple[tuple[Any, Any], ...] = ()
    # An axis parameter that also accepts a tuple of distinct integers (Keras 3's
    # softmax(axis=(1, 2)), jax.nn's axis tuples): the function then normalises over their union.
    axes: bool = False

    def allowed(self) -> str:
        """Human-readable description of the allowed values."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind is bool:
            text = "True or False"
        else:
            lo = "-inf" if self.low is None else repr(self.low)
            hi = "inf" if self.high is None else repr(self.high)
            left = "(" if (self.low_open or self.low is None) else "["
            right = ")" if (self.high_open or self.high is None) else "]"
            text = f"{'an integer' if self.kind is int else 'a finite real number'} in {left}{lo}, {hi}{right}"
            if self.kind is not int and self._reaches_beyond_float32():
                text += " that float32 holds (0, or 1.2e-38 <= |value| <= 3.4e38)"
        if self.axes:
            text += " or a non-empty tuple of distinct integers"
        if self.nullable:
            text += " or None"
        return text

    def _reaches_beyond_float32(self) -> bool:
        """The declared range holds values float32 refuses (unbounded, or a nonzero tiny one)."""
        lo = -math.inf if self.low is None else self.low
        hi = math.inf if self.high is None else self.high
        return -lo > FLOAT32_MAX or hi > FLOAT32_MAX or (lo < FLOAT32_TINY and hi > -FLOAT32_TINY)

    def validate(self, value: Any, owner: str) -> Any:
        """Return ``value`` converted to the parameter's kind, or raise naming the parameter."""

        def fail(reason: str = "") -> ParameterError:
            extra = f" ({reason})" if reason else ""
            return ParameterError(
                f"{owner}: invalid value {value!r} for parameter {self.name!r}{extra}; allowed: {self.allowed()}"
            )

        for given, canonical in self.spellings:
            # exact type and value: True must not also match 1 or 1.0
            if type(value) is type(given) and value == given:
                value = canonical
                break
        if value is None:
            if self.nullable:
                return None
            raise fail()
        if self.choices is not None:
            if value not in self.choices:
                raise fail()
            return value
        if self.axes and isinstance(value, (tuple, list)):
            items = tuple(Param(self.name, 0, kind=int).validate(v, owner) for v in value)
            if not items or len(set(items)) != len(items):
                raise fail("a tuple of axes must be non-empty, without repeats")
            return items
        if self.kind is bool:
            if not isinstance(value, bool):
                raise fail("expected a bool")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            # numbers only: strings, tensors of size > 1 and the like are refused here.
            try:
                value = value.item()  # 0-d NumPy/torch scalars
            except (AttributeError, ValueError, RuntimeError):
                raise fail("expected a number") from None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise fail("expected a number")
        if self.kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise fail("expected an integer")
            value = int(value)
        else:
            try:
                value = float(value)
            except OverflowError:  # an int beyond float's range
                raise fail("too large for a float") from None
            if not math.isfinite(value):
                raise fail("must be finite")
            if value != 0.0 and not FLOAT32_TINY <= abs(value) <= FLOAT32_MAX:
                raise fail("outside float32's normal range, where activations are computed")
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise fail()
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            raise fail()
        return value


@dataclass(frozen=True)
class Kink:
    """A point where the function is not differentiable, and the derivative actlab returns there.

    ``at`` and ``grad`` are numbers or callables of the parameter dict. ``grad`` follows PyTorch's
    convention where PyTorch has the function (relu'(0) = 0, leaky_relu'(0) = negative_slope, ...).
    """

    at: float | Callable[[Mapping[str, Any]], float | None]
    grad: float | Callable[[Mapping[str, Any]], float]
    note: str = ""

    def location(self, params: Mapping[str, Any]) -> float | None:
        return self.at(params) if callable(self.at) else self.at

    def gradient(self, params: Mapping[str, Any]) -> float:
        return self.grad(params) if callable(self.grad) else self.grad


@dataclass(frozen=True)
class Reference:
    title: str
    authors: str
    year: int
    arxiv: str | None = None
    url: str | None = None

    def __str__(self) -> str:
        where = f", arXiv:{self.arxiv}" if self.arxiv else (f", {self.url}" if self.url else "")
        return f"{self.authors} ({self.year}). {self.title}{where}"


FRAMEWORKS = ("pytorch", "transformers", "timm", "keras", "jax", "tfa", "tensorflow")


@dataclass(frozen=True)
class Equivalent:
    """The same function in another framework, with every default or behaviour that differs.

    ``names``: the peer's own lookup names for it (keys of its activation table, its function or
    layer names), from which the registry's peer-name table is generated. ``params``: the values
    the peer's defaults bind, in actlab's parameter names (transformers' ``gelu_new`` is
    ``gelu`` with ``approximate='tanh'``; Keras' ``leaky_relu`` has ``negative_slope=0.2``).
    A mapping is accepted and stored as sorted (name, value) pairs so the record stays hashable.
    """

    framework: str  # one of FRAMEWORKS
    symbol: str
    differences: str = ""
    names: tuple[str, ...] = ()
    params: Any = ()

    def __post_init__(self) -> None:
        if isinstance(self.names, str):
            object.__setattr__(self, "names", (self.names,))
        if isinstance(self.params, Mapping):
            object.__setattr__(self, "params", tuple(sorted(self.params.items())))

    @property
    def bound(self) -> dict[str, Any]:
        """The parameter values the peer's defaults bind (a new dict)."""
        return dict(self.params)


@dataclass(frozen=True)
class Tolerance:
    """A per-spec widening of the accuracy targets, always with the reason."""

    forward_ulps: float | None = None
    derivative_ulps: float | None = None
    # Near non-trivial roots the allowance is the condition number |x f'(x) / f(x)|.
    condition_allowance: bool = False
    # float16/bfloat16 forward and backward, in steps of that dtype from the correctly rounded
    # value (default 1: computed in float32 and rounded once; actlab.verify.low_precision).
    low_precision_ulps: float | None = None
    # Near non-trivial roots of f' the derivative's allowance is its condition number |x f''(x) / f'(x)|.
    derivative_condition_allowance: bool = False
    reason: str = ""


@dataclass(frozen=True)
class Kernel:
    """The fused fast path of an elementwise activation (``actlab.torch.kernels``): C++ bodies.

    ``forward`` returns f(x) and ``derivative`` f'(x) for ``x`` a ``V`` = ATen ``Vectorized<double>``:
    this form must be accurate for every float32 input (double carries 29 extra bits, so the plain
    formula usually is, but not across a cancellation). ``fast_forward``/``fast_derivative`` are the
    same for ``V`` = ``Vectorized<float>``, used for a group of 16 (AVX-512) or 8 elements whenever
    the mask expression ``fast_where`` holds for all of them (e.g. ``abs(x) < 8.0``, or ``""`` for
    everywhere), and must meet the catalog's float32 accuracy there. Parameters are C++ constants of
    the same names: numbers as ``double``, a choice as an ``int`` index with ``<param>_<choice>``
    constants, a bool as ``bool``, None as ``<param>_is_none``. Helpers: exp, expm1, log, log1p, erf,
    erfc, tanh, sqrt, abs, atan, asinh, sin, cos, sigmoid, square, where(mask, a, b), max, min, fma,
    two_sum, two_prod, logical_and/or (csrc/actlab_kernels.h). Half and bfloat16 compute as float32
    does and round once more; float64 tensors take the accurate eager path (the reference).
    """

    forward: str
    derivative: str
    fast_forward: str = ""
    fast_derivative: str = ""
    fast_where: str | None = None  # None: no float form
    note: str = ""

    def __post_init__(self) -> None:
        if (self.fast_where is None) != (not self.fast_forward) or bool(self.fast_forward) != bool(
            self.fast_derivative
        ):
            raise ValueError("Kernel: fast_forward, fast_derivative and fast_where go together")


Bounds = tuple[float, float]


@dataclass(frozen=True)
class Spec:
    """One activation function. See DESIGN.md §2 for the meaning of every field.

    Elementwise specs (``kind == "elementwise"``) map each element independently; vector specs
    (``kind == "vector"``) map along ``axis`` (softmax family, sparsemax, GLU variants, maxout).
    """

    name: str
    family: str
    summary: str
    definition: Callable[..., Any] | None  # None only for vector specs with a row oracle
    forward: Callable[..., Any]
    derivative: Callable[..., Any] | None = None
    derivative_from_output: Callable[..., Any] | None = None
    # Vector specs: the vector-Jacobian product ``vjp(x, y, g, ops, **p)`` instead of a
    # derivative, a row oracle ``oracle(row: list[mpf], mp, **p) -> list[mpf]`` where SymPy
    # has no closed form (sparsemax, entmax), and the LaTeX shown in docs.
    vjp: Callable[..., Any] | None = None
    # vecad (issue #10): the Jacobian-vector product ``jvp(x, y, t, ops, **p)`` (forward-mode AD: the
    # tangent of the output for an input tangent ``t``), given both the input x and the output y.
    jvp: Callable[..., Any] | None = None
    # vecad (issue #10): normalisers (softmax family, sparsemax, entmax) accept a boolean ``where``
    # mask (a keyword of the call, never a parameter): (value given to masked inputs, value of
    # masked outputs), e.g. (-inf, 0.0) for softmax; None where ``where`` is refused.
    masked: tuple[float, float] | None = None
    oracle: Callable[..., Any] | None = None
    formula: str | None = None
    # What backward keeps: "input", or "output" (vector specs whose vjp needs only y; elementwise
    # specs keep the output automatically when they have ``derivative_from_output``).
    saves: str = "input"
    params: tuple[Param, ...] = ()
    aliases: tuple[str, ...] = ()
    kind: str = "elementwise"
    kinks: tuple[Kink, ...] = ()
    # Properties at default parameters; checked by the generated property tests.
    bounds: Bounds | Callable[[Mapping[str, Any]], Bounds] = (-math.inf, math.inf)
    monotonic: bool = False
    smoothness: int | float = math.inf  # C^k; -1 means discontinuous
    zero_centered: bool = False
    saturates: tuple[str, ...] = ()  # sides where f' -> 0: "left", "right"
    self_normalizing: bool = False
    approximates: str | None = None
    approximation_error: float | None = None  # max |f - target| over the real line
    references: tuple[Reference, ...] = ()
    equivalents: tuple[Equivalent, ...] = ()
    # How PyTorch computes the function (``lambda x, torch, **p``), shown beside actlab's in
    # ``actlab accuracy``; ``native`` says actlab's torch path uses it because it is accurate.
    torch_native: Callable[..., Any] | None = None
    native: bool = False
    # The fused fast path (elementwise specs): C++ bodies of f and f' (``Kernel``); None: eager only.
    kernel: Kernel | None = None
    # Random in training mode (rrelu): ``train_forward(x, torch, generator=None, **p)``.
    train_forward: Callable[..., Any] | None = None
    tolerance: Tolerance = field(default_factory=Tolerance)
    # For the accuracy grid: a region outside which the function is not defined or not tested.
    domain: tuple[float, float] = (-math.inf, math.inf)
    # Constraints between parameters (each is validated alone first), e.g. lower < upper.
    constraints: Callable[[dict[str, Any]], None] | None = None
    notes: str = ""

    # ----------------------------------------------------------------- parameters
    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def param(self, name: str) -> Param:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def resolve_params(self, **given: Any) -> dict[str, Any]:
        """Validate ``given`` against the declared parameters and fill in the defaults."""
        given = self.canonical_names(given)
        unknown = sorted(set(given) - set(self.param_names))
        if unknown:
            known = ", ".join(self.param_names) or "none"
            raise TypeError(
                f"{self.name}: unexpected parameter(s) {', '.join(map(repr, unknown))}; accepted parameters: {known}"
            )
        out = {}
        for p in self.params:
            out[p.name] = p.validate(given.get(p.name, p.default), self.name)
        if self.constraints is not None:
            try:
                self.constraints(out)
            except ParameterError as err:
                raise ParameterError(f"{self.name}: {err}") from None
        return out

    def canonical_names(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """``given`` with other frameworks' parameter names (``Param.aliases``) renamed to actlab's."""
        renames = {a: p.name for p in self.params for a in p.aliases if a not in self.param_names}
        if not any(k in renames for k in given):
            return dict(given)
        out: dict[str, Any] = {}
        for k, v in given.items():
            name = renames.get(k, k)
            if name in out:
                raise TypeError(f"{self.name}: parameter {name!r} given twice (as {name!r} and its alias {k!r})")
            out[name] = v
        return out

    def non_default(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in params.items() if self.param(k).default != v}

    # ----------------------------------------------------------------- properties
    def bounds_for(self, params: Mapping[str, Any] | None = None) -> Bounds:
        params = self.defaults if params is None else params
        return self.bounds(params) if callable(self.bounds) else self.bounds

    def kink_points(self, params: Mapping[str, Any] | None = None) -> list[tuple[float, float]]:
        params = self.defaults if params is None else params
        out = []
        for k in self.kinks:
            loc = k.location(params)
            if loc is not None and math.isfinite(loc):
                out.append((loc, k.gradient(params)))
        return out

    # ----------------------------------------------------------------- evaluation
    def __call__(self, x: Any, *, where: Any = None, **params: Any) -> Any:
        """Evaluate on a NumPy array (or anything NumPy accepts); ``where``: a boolean mask for the
        normalisers (see ``masked``)."""
        from actlab.ops import numpy_ops

        return numpy_ops.apply(self, x, self.resolve_params(**params), where=where)

    def sympy_definition(self, x: Any = None, *, exact: bool = True, **params: Any) -> Any:
        """The definition as a SymPy expression in ``x`` (imports SymPy).

        ``exact``: float parameters are their exact binary values (the oracle); otherwise their
        shortest decimal form (for display).
        """
        import sympy

        if x is None:
            x = sympy.Symbol("x", real=True)
        resolved = self.resolve_params(**params)
        values = {k: _sympy_value(sympy, v, exact) for k, v in resolved.items()}
        return self.definition(x, sympy, **values)

    def latex(self, **params: Any) -> str:
        if self.formula is not None:
            return self.formula
        import sympy

        return sympy.latex(self.sympy_definition(exact=False, **params))


def _sympy_value(sympy: Any, value: Any, exact: bool = True) -> Any:
    # A float parameter is the exact binary value the implementation uses.
    if isinstance(value, float):
        return sympy.Float(value, 60) if exact else sympy.Float(repr(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return sympy.Integer(value)
    return value


def ordered(low_name: str, high_name: str, strict: bool = True) -> Callable[[dict[str, Any]], None]:
    """A ``constraints`` check that ``params[low_name] < params[high_name]`` (``<=`` if not strict)."""

    def check(params: dict[str, Any]) -> None:
        lo, hi = params[low_name], params[high_name]
        if lo is None or hi is None:
            return
        if lo > hi or (strict and lo == hi):
            rel = "<" if strict else "<="
            raise ParameterError(
                f"parameters must satisfy {low_name} {rel} {high_name}; got {low_name}={lo!r}, {high_name}={hi!r}"
            )

    return check
