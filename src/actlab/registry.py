"""The registry: identifiers -> activations, and back (DESIGN.md §4).

``get`` accepts a name or alias (case-insensitive), a call string parsed with :mod:`ast`
(literal arguments only; nothing is evaluated), a ``{"name", "config"}`` dict, Keras-serialized
dicts and strings, a :class:`Spec`, a :class:`BoundActivation`, a callable, or None (identity).

Three kinds of entries: ``elementwise`` and ``vector`` functions (the catalog), and ``layer``
entries (PReLU, PAU, APL, gated and maxout layers with their projections) whose output depends on
trained weights, so they have no fixed curve: :func:`all_specs` and :func:`list_activations` return
the functions unless asked for ``kind="layer"`` or ``kind="all"``, and
``actlab.nn.create_activation`` builds the module of any entry.

A parameter declared ``trainable`` may be given as ``"learnable"`` (initialised at its default)
or ``"learnable(0.5)"``: ``swish(beta='learnable')``. The module form then holds it as an
``nn.Parameter``, ``num_parameters``/``channel_dim`` make it one value per channel, and the
identifier (not the learned value, which lives in the state_dict) is what serializes.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from actlab.catalog import SPECS, Param, ParameterError, Spec

__all__ = [
    "UnknownActivationError",
    "IdentifierError",
    "BoundActivation",
    "get",
    "get_spec",
    "serialize",
    "deserialize",
    "register",
    "list_activations",
    "all_specs",
    "check_spec",
    "FUNCTION_KINDS",
    "LEARNABLE",
]

FUNCTION_KINDS = ("elementwise", "vector")
KINDS = FUNCTION_KINDS + ("layer",)
LEARNABLE = "learnable"
_LEARNABLE_RE = re.compile(r"^\s*learnable\s*(?:\(\s*(?P<init>[^()]*?)\s*\))?\s*$")
# Options of a function whose parameters are learnable: one value per channel along channel_dim.
_OPTIONS = (
    Param("num_parameters", 1, low=1, kind=int, doc="values per learnable parameter (1: shared; C: one per channel)"),
    Param("channel_dim", 1, kind=int, doc="the channel axis of the input (1: channels-first, -1: channels-last)"),
)
_OPTION_NAMES = tuple(p.name for p in _OPTIONS)


class UnknownActivationError(KeyError):
    """No activation of that name; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


class IdentifierError(ValueError):
    """An identifier that is not a name, a literal call string, a dict, a spec or a callable."""


_BY_NAME: dict[str, Spec] = {}
_BY_ALIAS: dict[str, str] = {}  # lower-case name or alias -> canonical name
_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def check_spec(spec: Spec) -> list[str]:
    """Problems that make ``spec`` incomplete or inconsistent (an empty list when it is sound)."""
    problems = []
    if not _SNAKE.match(spec.name):
        problems.append(f"name {spec.name!r} is not snake_case")
    for text, what in ((spec.family, "family"), (spec.summary, "summary")):
        if not text:
            problems.append(f"missing {what}")
    if not callable(spec.definition) and spec.oracle is None and spec.kind != "layer":
        problems.append("no definition (SymPy) and no oracle")
    if not callable(spec.forward):
        problems.append("forward is not callable")
    if spec.kind == "elementwise":
        if not callable(spec.derivative):
            problems.append("elementwise spec without a derivative")
    elif spec.kind == "vector":
        if not callable(spec.vjp):
            problems.append("vector spec without a vjp")
        if "axis" not in spec.param_names:
            problems.append("vector spec without an 'axis' parameter")
    elif spec.kind == "layer":
        module = getattr(spec, "module", "")
        if not (isinstance(module, str) and re.match(r"^[\w.]+:\w+$", module)):
            problems.append("layer spec without a module path 'package.module:Class'")
        if any(p.trainable for p in spec.params):
            problems.append("a layer's parameters are its configuration; its trained tensors are its weights")
    else:
        problems.append(f"unknown kind {spec.kind!r}")
    if spec.saves not in ("input", "output"):
        problems.append(f"saves must be 'input' or 'output', not {spec.saves!r}")
    names = spec.param_names
    if len(set(names)) != len(names):
        problems.append("duplicate parameter names")
    for fn_name in ("forward", "derivative", "derivative_from_output", "definition"):
        fn = getattr(spec, fn_name)
        if fn is None:
            continue
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            continue
        declared = [p.name for p in sig.parameters.values() if p.kind is not p.VAR_KEYWORD][2:]
        has_var_kw = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        if not has_var_kw and declared != list(names):
            problems.append(f"{fn_name} takes parameters {declared}, the spec declares {list(names)}")
    for p in spec.params:
        try:
            p.validate(p.default, spec.name)
        except ValueError as err:
            problems.append(f"default of {p.name!r} is invalid: {err}")
    return problems


def register(spec: Spec, *, overwrite: bool = False) -> Spec:
    """Add ``spec`` (and its aliases) to the registry, checking it is complete first."""
    if not isinstance(spec, Spec):
        raise TypeError(f"register() takes a Spec, got {type(spec).__name__}")
    problems = check_spec(spec)
    if problems:
        raise ValueError(f"spec {spec.name!r} is incomplete: " + "; ".join(problems))
    keys = [_key(spec.name)] + [_key(a) for a in spec.aliases]
    if not overwrite:
        for k in keys:
            owner = _BY_ALIAS.get(k)
            if owner is not None and owner != spec.name:
                raise ValueError(f"{k!r} already names activation {owner!r}")
        if spec.name in _BY_NAME:
            raise ValueError(f"activation {spec.name!r} is already registered (pass overwrite=True)")
    elif spec.name in _BY_NAME:
        old = _BY_NAME[spec.name]
        for a in old.aliases:
            _BY_ALIAS.pop(_key(a), None)
    _BY_NAME[spec.name] = spec
    for k in keys:
        _BY_ALIAS[k] = spec.name
    return spec


def _kinds(kind: str | None) -> tuple[str, ...]:
    if kind is None:
        return FUNCTION_KINDS
    if kind == "all":
        return KINDS
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, 'all' or None, got {kind!r}")
    return (kind,)


def all_specs(kind: str | None = None) -> list[Spec]:
    """Registered specs in registration order: the functions (elementwise and vector) by default,
    ``kind="layer"`` for the layers with trained weights, ``kind="all"`` for every entry."""
    kinds = _kinds(kind)
    return [s for s in _BY_NAME.values() if s.kind in kinds]


def list_activations(family: str | None = None, kind: str | None = None) -> list[str]:
    """Canonical names, sorted, optionally of one family or kind.

    ``kind``: None (the default) lists the functions, "elementwise" | "vector" | "layer" one kind,
    "all" every entry (layers need sizes or trained weights, so they are not listed by default).
    """
    kinds = _kinds(kind)
    return sorted(s.name for s in _BY_NAME.values() if (family is None or s.family == family) and s.kind in kinds)


def learnable_params(spec: Spec) -> tuple[str, ...]:
    """Names of the parameters of ``spec`` that may be given as ``"learnable"``."""
    return tuple(p.name for p in spec.params if p.trainable) if spec.kind != "layer" else ()


def get_spec(name: str) -> Spec:
    """The spec for a name or alias (case-insensitive); unknown names suggest close matches."""
    if not isinstance(name, str):
        raise TypeError(f"activation name must be a string, got {type(name).__name__}")
    canonical = _BY_ALIAS.get(_key(name))
    if canonical is None:
        close = suggestions(_key(name))
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownActivationError(f"unknown activation {name!r}{hint} (see `actlab list`)")
    return _BY_NAME[canonical]


def _edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions, transpositions."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def suggestions(key: str, limit: int = 4) -> list[str]:
    """Registered names and aliases close to ``key``: typos first, then similar spellings."""
    ranked = {k: _edit_distance(key, k) for k in _BY_ALIAS}
    near = [k for k, d in ranked.items() if d <= max(1, len(key) // 3)]
    near += difflib.get_close_matches(key, list(_BY_ALIAS), n=limit, cutoff=0.75)
    near = sorted(set(near), key=lambda k: (ranked[k], abs(len(k) - len(key)), k))
    return near[:limit]


class BoundActivation:
    """An activation with its parameters resolved: callable on NumPy arrays and torch tensors.

    ``params`` holds numbers (a learnable parameter's initial value); ``learnable`` names the
    parameters a module trains, ``options`` its per-channel layout. ``repr`` is a call string that
    :func:`get` parses back to an equal object.
    """

    __slots__ = ("spec", "params", "learnable", "options")

    def __init__(self, spec: Spec, params: Mapping[str, Any] | None = None):
        given = dict(params or {})
        learnable = []
        options = {}
        for name in list(given):
            if name in _OPTION_NAMES and name not in spec.param_names and spec.kind != "layer":
                options[name] = given.pop(name)
                continue
            init = _learnable_init(spec, name, given[name])
            if init is not _NOT_LEARNABLE:
                learnable.append(name)
                if init is None:
                    given.pop(name)  # the default is the initial value
                else:
                    given[name] = init
        self.spec = spec
        self.params = spec.resolve_params(**given)
        self.learnable = frozenset(learnable)
        if options and not learnable:
            names = learnable_params(spec)
            hint = f"; mark one learnable, e.g. {names[0]}='learnable'" if names else f" ({spec.name} has none)"
            verb = "apply" if len(options) > 1 else "applies"
            raise ParameterError(
                f"{spec.name}: {' and '.join(sorted(options))} {verb} only to learnable parameters{hint}"
            )
        self.options = {p.name: p.validate(options[p.name], spec.name) for p in _OPTIONS if p.name in options}
        self.options = {k: v for k, v in self.options.items() if v != _OPTION_DEFAULTS[k]}

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def config(self) -> dict[str, Any]:
        """The parameters that differ from the defaults (learnable ones always), then the options."""
        cfg = {}
        for k, v in self.params.items():
            if k in self.learnable:
                cfg[k] = LEARNABLE if v == self.spec.param(k).default else f"{LEARNABLE}({v!r})"
            elif self.spec.param(k).default != v:
                cfg[k] = v
        cfg.update(self.options)
        return cfg

    @property
    def num_parameters(self) -> int:
        return self.options.get("num_parameters", 1)

    @property
    def channel_dim(self) -> int:
        return self.options.get("channel_dim", 1)

    def __call__(self, x: Any, **kwargs: Any) -> Any:
        if _is_tensor(x):
            from actlab.torch.functional import apply

            return apply(self.spec, x, self.params, **kwargs)
        where = kwargs.pop("where", None)  # the normalisers' mask (vecad, #10)
        if kwargs:
            raise TypeError(f"unexpected keyword(s) for a NumPy call: {sorted(kwargs)}")
        from actlab.ops import numpy_ops

        return numpy_ops.apply(self.spec, x, self.params, where=where)

    def derivative(self, x: Any) -> Any:
        """f'(x) on NumPy (elementwise specs)."""
        if self.spec.derivative is None:
            what = "a layer with trained weights" if self.spec.kind == "layer" else "a vector activation"
            raise TypeError(f"{self.name} is {what}; it has no derivative f'(x)")
        from actlab.ops import numpy_ops

        return numpy_ops.apply_derivative(self.spec, x, self.params)

    def __repr__(self) -> str:
        cfg = self.config
        if not cfg:
            return self.name
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in cfg.items())})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BoundActivation):
            return NotImplemented
        return (
            self.spec.name == other.spec.name
            and self.params == other.params
            and self.learnable == other.learnable
            and self.options == other.options
        )

    def __hash__(self) -> int:
        return hash((self.spec.name, tuple(sorted(self.params.items())), self.learnable, tuple(self.options.items())))

    def __reduce__(self) -> tuple:
        return (deserialize, (serialize(self),))


_OPTION_DEFAULTS = {p.name: p.default for p in _OPTIONS}
_NOT_LEARNABLE = object()


def _learnable_init(spec: Spec, name: str, value: Any) -> Any:
    """For ``"learnable"`` / ``"learnable(v)"``: None (start at the default) or v; otherwise a marker."""
    if not isinstance(value, str):
        return _NOT_LEARNABLE
    match = _LEARNABLE_RE.match(value)
    if match is None or name not in spec.param_names:
        return _NOT_LEARNABLE  # validated (and refused where wrong) as an ordinary value
    if name not in learnable_params(spec):
        names = learnable_params(spec)
        allowed = ", ".join(map(repr, names)) if names else "none"
        raise ParameterError(
            f"{spec.name}: parameter {name!r} cannot be learnable; learnable parameters of {spec.name}: {allowed}"
        )
    text = match.group("init")
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise ParameterError(
            f"{spec.name}: {value!r} for parameter {name!r}: write 'learnable' or 'learnable(<number>)'"
        ) from None


def _is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


# ----------------------------------------------------------------------------- parsing
def _parse_call_string(text: str) -> tuple[str, tuple, dict[str, Any]]:
    """``"name"`` or ``"name(1, key=2.0)"`` -> (name, args, kwargs); literals only, never eval."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise IdentifierError(f"cannot parse activation identifier {text!r}: {err.msg}") from None
    node = tree.body
    if isinstance(node, ast.Name):
        return node.id, (), {}
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise IdentifierError(
            f"activation identifier {text!r} must be a name or a call like "
            "'leaky_relu(negative_slope=0.2)' with literal arguments"
        )

    def literal(arg: ast.AST) -> Any:
        try:
            return ast.literal_eval(arg)
        except (ValueError, SyntaxError, TypeError):
            raise IdentifierError(
                f"activation identifier {text!r}: arguments must be literals "
                f"(numbers, strings, True/False/None), not {ast.unparse(arg)!r}"
            ) from None

    if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
        raise IdentifierError(f"activation identifier {text!r}: * and ** arguments are not allowed")
    args = tuple(literal(a) for a in node.args)
    kwargs = {k.arg: literal(k.value) for k in node.keywords}
    return node.func.id, args, kwargs


def _bind_positional(spec: Spec, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    names = spec.param_names
    if len(args) > len(names):
        raise TypeError(
            f"{spec.name} takes at most {len(names)} parameter(s) ({', '.join(names) or 'none'}), "
            f"got {len(args)} positional"
        )
    out = dict(zip(names, args))
    dup = sorted(set(out) & set(kwargs))
    if dup:
        raise TypeError(f"{spec.name}: parameter(s) {dup} given twice")
    out.update(kwargs)
    return out


_KERAS_LAYER_PARAMS = {
    # Keras layer class -> (actlab name, {keras config key: actlab parameter})
    "relu": ("relu", {"negative_slope": "negative_slope", "max_value": "max_value", "threshold": "threshold"}),
    "leakyrelu": ("leaky_relu", {"negative_slope": "negative_slope", "alpha": "negative_slope"}),
    "elu": ("elu", {"alpha": "alpha"}),
    "softmax": ("softmax", {"axis": "axis"}),
}
_KERAS_IGNORED = {"name", "trainable", "dtype", "autocast", "seed"}


def _from_keras_dict(d: Mapping[str, Any]) -> BoundActivation:
    cls = d.get("class_name")
    cfg = d.get("config")
    if cls == "function" or (isinstance(cfg, str) and cls in (None, "function")):
        return _from_name(str(cfg))
    if cls == "Activation" and isinstance(cfg, Mapping):
        return get(cfg.get("activation"))
    if isinstance(cls, str) and isinstance(cfg, Mapping):
        entry = _KERAS_LAYER_PARAMS.get(cls.lower())
        if entry is None:
            spec = get_spec(re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", cls))
            mapping = {p: p for p in spec.param_names}
        else:
            spec, mapping = get_spec(entry[0]), entry[1]
        params = {}
        for k, v in cfg.items():
            if k in _KERAS_IGNORED:
                continue
            if k not in mapping:
                raise TypeError(f"Keras config key {k!r} of {cls} has no actlab equivalent")
            params[mapping[k]] = v
        return BoundActivation(spec, params)
    raise IdentifierError(f"unrecognised Keras-serialized activation: {dict(d)!r}")


def _from_name(text: str) -> BoundActivation:
    name, args, kwargs = _parse_call_string(text)
    spec = get_spec(name)
    return BoundActivation(spec, _bind_positional(spec, args, kwargs))


def get(identifier: Any = None, **params: Any) -> Any:
    """Resolve any identifier to a :class:`BoundActivation` (or return a plain callable as is).

    Parameters given as keywords override those in the identifier. Invalid parameters raise
    here, when the identifier is resolved, not at the first call.
    """
    if identifier is None:
        act = BoundActivation(get_spec("linear"))
    elif isinstance(identifier, BoundActivation):
        act = identifier
    elif isinstance(identifier, Spec):
        act = BoundActivation(identifier if identifier.name in _BY_NAME else register(identifier))
    elif isinstance(identifier, str):
        act = _from_name(identifier)
    elif isinstance(identifier, Mapping):
        if "name" in identifier:
            unknown = set(identifier) - {"name", "config"}
            if unknown:
                raise IdentifierError(f"unexpected keys {sorted(unknown)} in activation dict")
            config = identifier.get("config") or {}
            if not isinstance(config, Mapping):
                raise IdentifierError("'config' of an activation dict must be a dict")
            act = BoundActivation(get_spec(identifier["name"]), dict(config))
        else:
            act = _from_keras_dict(identifier)
    elif callable(identifier):
        registered = getattr(identifier, "actlab_activation", None)
        if isinstance(registered, BoundActivation):
            act = registered
        else:
            if params:
                raise TypeError("parameters cannot be applied to an arbitrary callable")
            return identifier
    else:
        raise IdentifierError(f"cannot interpret {identifier!r} as an activation")
    if params:
        act = BoundActivation(act.spec, {**act.params, **act.config, **params})
    return act


def serialize(activation: Any) -> str | dict[str, Any]:
    """The bare name when the parameters are the defaults, ``{"name", "config"}`` otherwise."""
    act = get(activation)
    if not isinstance(act, BoundActivation):
        raise ValueError(f"cannot serialize {activation!r}: register it as a Spec first")
    cfg = act.config
    return act.name if not cfg else {"name": act.name, "config": cfg}


def deserialize(config: Any) -> BoundActivation:
    """Inverse of :func:`serialize`; also accepts every form :func:`get` does except callables."""
    act = get(config)
    if not isinstance(act, BoundActivation):
        raise IdentifierError(f"cannot deserialize {config!r}")
    return act


def _register_catalog(specs: Iterable[Spec]) -> None:
    for spec in specs:
        register(spec)


_register_catalog(SPECS)
