"""The registry: identifiers -> activations, and back (DESIGN.md §4).

``get`` accepts a name or alias (case-insensitive), a call string parsed with :mod:`ast`
(literal arguments only; nothing is evaluated), a ``{"name", "config"}`` dict, Keras-serialized
dicts and strings, a :class:`Spec`, a :class:`BoundActivation`, a callable, or None (identity).

Three kinds of entries: ``elementwise`` and ``vector`` functions (the catalog), and ``layer``
entries (PReLU, PAU, APL, gated and maxout layers with their projections) whose output depends on
trained weights, so they have no fixed curve: :func:`all_specs` and :func:`list_activations` return
the functions unless asked for ``kind="layer"`` or ``kind="all"``, and
``actlab.nn.create_activation`` builds the module of any entry.

Other frameworks' names (transformers' ``gelu_new``, Keras' ``LeakyReLU``, ``torch.nn.Softmax2d``
...) come from the specs' ``equivalents`` with the values the peer's defaults bind: a plain name
keeps actlab's meaning where actlab has it (``leaky_relu``: slope 0.01), a framework prefix gives
the peer's (``"keras:leaky_relu"``: 0.2; :func:`peer_names`, ``actlab list --framework keras``).

A parameter declared ``trainable`` may be given as ``"learnable"`` (initialised at its default)
or ``"learnable(0.5)"``: ``swish(beta='learnable')``. The module form then holds it as an
``nn.Parameter``, ``num_parameters``/``channel_dim`` make it one value per channel, and the
identifier (not the learned value, which lives in the state_dict) is what serializes.

Identifiers cannot hurt: a call string is at most ``MAX_IDENTIFIER_LENGTH`` characters, its
literals nest at most ``MAX_LITERAL_DEPTH`` deep and integers must fit a float, a keyword may be
given once; anything else raises :class:`IdentifierError` (a ``ValueError``), never the parser's
``MemoryError`` / ``RecursionError``. An unknown name raises :class:`UnknownActivationError`
(a ``KeyError`` and a ``ValueError``) with close matches computed on its first 64 characters, and
messages repeat at most 80 characters of what was given. Names and ``config`` keys are NFKC
normalised (as Python's parser does for identifiers), whether they come as strings or in a dict.

A :class:`Spec` that is not the registered object of its name (a ``dataclasses.replace`` copy, or
a spec never registered) is an *anonymous* activation: ``get`` uses it as given (it is not
registered as a side effect), it equals only activations of that same spec, its ``repr`` is
``<unregistered name(...)>``, and :func:`serialize` refuses it with an :class:`IdentifierError`,
because its name would deserialize to a different function (the registered one, or none). Register
it under a name of its own to serialize it.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import math
import re
import sys
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from actlab.catalog import SPECS, Param, ParameterError, Spec
from actlab.catalog.spec import FRAMEWORKS

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
    "is_registered",
    "MAX_IDENTIFIER_LENGTH",
    "PeerName",
    "peer_names",
    "resolve_name",
    "FRAMEWORKS",
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
# How a module runs the function (actlab.nn.Activation's keyword-only arguments), carried by an
# identifier so that "gelu(memory='fewbit', bits=3)" names an arena entry or a swap target.
# Validated here for type and range; whether the function allows them, by the module.
MODULE_OPTIONS = (
    Param("inplace", False, kind=bool, doc="write the output into the input (actlab.torch.inplace)"),
    Param("memory", "exact", choices=("exact", "mask", "fewbit"), kind=str, doc="what backward keeps"),
    Param("bits", None, low=1, high=4, kind=int, nullable=True, doc="bits per element of memory='fewbit'"),
)
_MODULE_OPTION_NAMES = tuple(p.name for p in MODULE_OPTIONS)


class IdentifierError(ValueError):
    """An identifier that is not a name, a literal call string, a dict, a spec or a callable,
    or one too long or too deeply nested to parse (the limits below)."""


class UnknownActivationError(KeyError, IdentifierError):
    """No activation of that name; the message lists close matches.

    A ``KeyError`` (a lookup that failed: what ``except KeyError`` call sites expect) and a
    ``ValueError`` (what Keras' ``activations.get`` raises for an unknown name), through
    :class:`IdentifierError`.
    """

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


# Limits that keep resolving any identifier cheap: the longest call string parsed (a real one is
# well under 100 characters), the nesting depth of a literal argument ("--1", "((1, 2),)"), the
# prefix of an unknown name that suggestions look at (the longest name has 31 characters; a
# prefix beyond ~1.7x that cannot be close to any), and the characters of an identifier that an
# error message repeats.
MAX_IDENTIFIER_LENGTH = 1000
MAX_LITERAL_DEPTH = 8
_SUGGEST_PREFIX = 64
_SHOWN = 80


def _shown(text: Any) -> str:
    """``repr`` of at most the first 80 characters of a string (saying how long it was); of another
    object, its ``repr`` cut the same way."""
    if not isinstance(text, str):
        shown = repr(text)
        return shown if len(shown) <= _SHOWN else f"{shown[:_SHOWN]}... ({len(shown)} characters)"
    if len(text) <= _SHOWN:
        return repr(text)
    return f"{text[:_SHOWN]!r}... ({len(text)} characters)"


_BY_NAME: dict[str, Spec] = {}
_BY_ALIAS: dict[str, str] = {}  # lower-case name or alias -> canonical name
# Peer names, generated from the specs' ``equivalents``: (framework, key) -> PeerName.
_BY_PEER: dict[tuple[str, str], PeerName] = {}
_SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


def _key(name: str) -> str:
    # NFKC, as Python's parser applies to identifiers: the full-width "ｒｅｌｕ" is "relu" whether it
    # comes as a string, inside a call string or in a dict.
    return unicodedata.normalize("NFKC", name).strip().lower().replace("-", "_")


class PeerName:
    """One name of another framework's activation table and what actlab resolves it to.

    ``params`` are the values the peer's defaults bind (in actlab's parameter names); ``same``
    says whether the plain name means the same in actlab (no collision, or a collision with
    actlab's own name at equal values).
    """

    __slots__ = ("framework", "name", "spellings", "spec", "params", "symbol", "differences")

    def __init__(self, framework: str, name: str, spec: Spec, params: dict[str, Any], symbol: str, differences: str):
        self.framework, self.name, self.spec, self.params = framework, name, spec, params
        self.symbol, self.differences = symbol, differences
        self.spellings: tuple[str, ...] = (name,)  # the same key in other cases (elu, ELU)

    @property
    def qualified(self) -> str:
        return f"{self.framework}:{self.name}"

    @property
    def activation(self) -> BoundActivation:
        return BoundActivation(self.spec, self.params)

    @property
    def plain(self) -> BoundActivation | None:
        """What the unqualified name resolves to (None where it is ambiguous)."""
        try:
            return get(self.name)
        except (KeyError, ValueError):
            return None

    def __repr__(self) -> str:
        return f"PeerName({self.qualified!r} -> {self.activation!r})"


# Spellings of the framework prefix in "keras:leaky_relu" (and in `actlab list --framework`).
_FRAMEWORK_ALIASES = {
    "torch": "pytorch",
    "hf": "transformers",
    "huggingface": "transformers",
    "tf_addons": "tfa",
    "tensorflow_addons": "tfa",
    "tf": "tensorflow",
}
_QUALIFIED = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:(?!:)(.*)$", re.S)


def framework_key(name: str) -> str:
    """The canonical framework name for ``name`` ("torch" -> "pytorch"); ValueError if unknown."""
    key = _key(name)
    key = _FRAMEWORK_ALIASES.get(key, key)
    if key not in FRAMEWORKS:
        known = sorted(set(FRAMEWORKS) | set(_FRAMEWORK_ALIASES))
        raise ValueError(f"unknown framework {name!r}; known: {', '.join(known)}")
    return key


def _split_framework(text: str) -> tuple[str | None, str]:
    """'keras:leaky_relu(...)' -> ('keras', 'leaky_relu(...)'); a plain identifier -> (None, text)."""
    match = _QUALIFIED.match(text)
    if match is None:
        return None, text
    try:
        return framework_key(match.group(1)), match.group(2)
    except ValueError as err:
        raise IdentifierError(f"activation identifier {text[:80]!r}: {err}") from None


def peer_names(framework: str | None = None) -> list[PeerName]:
    """Every peer name (of one framework), in registration order of the specs."""
    fw = None if framework is None else framework_key(framework)
    return [p for (f, _), p in _BY_PEER.items() if fw is None or f == fw]


def _peer_candidates(key: str) -> list[PeerName]:
    return [p for (_, k), p in _BY_PEER.items() if k == key]


def resolve_name(name: str, framework: str | None = None) -> tuple[Spec, dict[str, Any]]:
    """(spec, bound parameters) for a name, an alias or a peer name.

    Unqualified, actlab's own names and aliases win (``leaky_relu`` keeps slope 0.01); a peer name
    that is not one of them resolves with the peer's defaults where every framework that uses it
    agrees. ``framework`` (or the prefix in ``"keras:leaky_relu"``) gives that peer's meaning.
    """
    if not isinstance(name, str):
        raise TypeError(f"activation name must be a string, got {type(name).__name__}")
    if framework is None:
        framework, name = _split_framework(name)
    else:
        framework = framework_key(framework)
    key = _key(name)
    if framework is not None:
        peer = _BY_PEER.get((framework, key))
        if peer is None:
            names = [p.name for p in peer_names(framework)]
            close = difflib.get_close_matches(key[:_SUGGEST_PREFIX], [_key(n) for n in names], n=4, cutoff=0.75)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UnknownActivationError(
                f"{framework} has no activation {name[:80]!r} in actlab's peer table{hint} "
                f"(see `actlab list --framework {framework}`)"
            )
        return peer.spec, dict(peer.params)
    canonical = _BY_ALIAS.get(key)
    if canonical is not None:
        return _BY_NAME[canonical], {}
    found = _peer_candidates(key)
    meanings = {(p.spec.name, tuple(sorted(p.params.items()))) for p in found}
    if len(meanings) == 1:
        return found[0].spec, dict(found[0].params)
    if found:
        options = ", ".join(f"{p.qualified!r} = {p.activation!r}" for p in found)
        raise UnknownActivationError(f"{name[:80]!r} means different functions in different frameworks: {options}")
    return get_spec(name), {}  # raises with suggestions


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
    peers = _peer_entries(spec)
    for (fw, k), peer in peers.items():
        owner = _BY_PEER.get((fw, k))
        if owner is not None and owner.spec.name != spec.name:
            raise ValueError(f"{fw} name {peer.name!r} is already the equivalent of {owner.spec.name!r}")
    if spec.name in _BY_NAME:
        for fk in [fk for fk, p in _BY_PEER.items() if p.spec.name == spec.name]:
            del _BY_PEER[fk]
    _BY_NAME[spec.name] = spec
    for k in keys:
        _BY_ALIAS[k] = spec.name
    _BY_PEER.update(peers)
    return spec


def _peer_entries(spec: Spec) -> dict[tuple[str, str], PeerName]:
    """The peer names a spec's ``equivalents`` declare, each checked against the spec's params."""
    out = {}
    for eq in spec.equivalents:
        if eq.names and eq.framework not in FRAMEWORKS:
            raise ValueError(f"spec {spec.name!r}: unknown framework {eq.framework!r} in equivalents")
        for n in eq.names:
            try:
                params = spec.resolve_params(**eq.bound)
            except (TypeError, ValueError) as err:
                raise ValueError(
                    f"spec {spec.name!r}: {eq.framework} name {n!r} binds invalid parameters: {err}"
                ) from None
            bound = {k: params[k] for k in dict(eq.params)}
            key = (eq.framework, _key(n))
            if key in out:  # "elu" and "ELU": one case-insensitive key, two spellings of it
                if out[key].params != bound:
                    raise ValueError(f"spec {spec.name!r}: {eq.framework} names {n!r} and {out[key].name!r} differ")
                out[key].spellings += (n,)
                continue
            out[key] = PeerName(eq.framework, n, spec, bound, eq.symbol, eq.differences)
    return out


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
    # No registered name is longer than MAX_IDENTIFIER_LENGTH: a longer one is unknown unread.
    canonical = _BY_ALIAS.get(_key(name)) if len(name) <= MAX_IDENTIFIER_LENGTH else None
    if canonical is None:
        found = _peer_candidates(_key(name)) if len(name) <= MAX_IDENTIFIER_LENGTH else []
        if found and all(not p.params and p.spec is found[0].spec for p in found):
            return found[0].spec  # a peer's plain rename (relu2, soft_sign, Softmax2d's spec is bound)
        if found:
            options = ", ".join(f"{p.qualified} = {p.activation!r}" for p in found)
            raise UnknownActivationError(
                f"{name[:80]!r} is a peer name with bound parameters ({options}), not a spec: "
                f"use actlab.get({name[:80]!r})"
            )
        close = suggestions(name)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownActivationError(f"unknown activation {_shown(name)}{hint} (see `actlab list`)")
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


def suggestions(name: str, limit: int = 4) -> list[str]:
    """Registered names, aliases and peer names close to ``name``: typos first, then similar spellings.

    Only the first 64 characters are compared (nothing longer is close to any registered name),
    and the edit distance is computed only for names whose length could be within the allowed
    distance, so the time is bounded whatever the length of ``name``.
    """
    key = _key(name[: 2 * _SUGGEST_PREFIX])[:_SUGGEST_PREFIX]
    allowed = max(1, len(key) // 3)
    known = list(dict.fromkeys([*_BY_ALIAS, *(k for (_, k) in _BY_PEER)]))
    # The edit distance is at least the difference in length: skip what cannot be within reach.
    ranked = {k: _edit_distance(key, k) for k in known if abs(len(k) - len(key)) <= allowed}
    near = [k for k, d in ranked.items() if d <= allowed]
    near += difflib.get_close_matches(key, known, n=limit, cutoff=0.75)
    near = sorted(set(near), key=lambda k: (ranked.get(k, math.inf), abs(len(k) - len(key)), k))
    return near[:limit]


class BoundActivation:
    """An activation with its parameters resolved: callable on NumPy arrays and torch tensors.

    ``params`` holds numbers (a learnable parameter's initial value); ``learnable`` names the
    parameters a module trains, ``options`` its per-channel layout. ``repr`` is a call string that
    :func:`get` parses back to an equal object.
    """

    __slots__ = ("spec", "params", "learnable", "options", "module_options")

    def __init__(self, spec: Spec, params: Mapping[str, Any] | None = None):
        given = spec.canonical_names(params or {})
        learnable = []
        options = {}
        module_options = {}
        for name in list(given):
            if name in _OPTION_NAMES and name not in spec.param_names and spec.kind != "layer":
                options[name] = given.pop(name)
                continue
            if name in _MODULE_OPTION_NAMES and name not in spec.param_names and spec.kind != "layer":
                module_options[name] = given.pop(name)
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
        # (False, "exact" and None are dropped: the plain function's identifier stays as it was)
        self.module_options = {}
        for p in MODULE_OPTIONS:
            value = p.validate(module_options[p.name], spec.name) if p.name in module_options else p.default
            if value != p.default:
                self.module_options[p.name] = value

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
        cfg.update(self.module_options)
        return cfg

    def split_module_options(self) -> tuple[BoundActivation, dict[str, Any]]:
        """(this activation without its module options, the options): what a module is built from."""
        if not self.module_options:
            return self, {}
        config = {k: v for k, v in {**self.params, **self.config}.items() if k not in self.module_options}
        return BoundActivation(self.spec, config), dict(self.module_options)

    @property
    def num_parameters(self) -> int:
        return self.options.get("num_parameters", 1)

    @property
    def channel_dim(self) -> int:
        return self.options.get("channel_dim", 1)

    def __call__(self, x: Any, **kwargs: Any) -> Any:
        if _is_tensor(x):
            if self.module_options:  # inplace / memory: the functional form takes them
                from actlab.torch.functional import function_for

                return function_for(self.spec)(x, **self.params, **self.module_options, **kwargs)
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
        text = self.name if not cfg else f"{self.name}({', '.join(f'{k}={v!r}' for k, v in cfg.items())})"
        # An anonymous activation's call string would parse to the registered spec: mark it.
        return text if is_registered(self.spec) else f"<unregistered {text}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BoundActivation):
            return NotImplemented
        if self.spec is not other.spec:
            # Registered specs are equal only to themselves; two anonymous copies of the same spec
            # (a deepcopy) are equal when every field is.
            if is_registered(self.spec) or is_registered(other.spec) or self.spec != other.spec:
                return False
        return (
            self.params == other.params
            and self.learnable == other.learnable
            and self.options == other.options
            and self.module_options == other.module_options
        )

    def __hash__(self) -> int:
        options = (tuple(self.options.items()), tuple(self.module_options.items()))
        return hash((self.spec.name, tuple(sorted(self.params.items())), self.learnable, options))

    def __reduce__(self) -> tuple:
        if not is_registered(self.spec):  # pickles the spec itself (its functions must be picklable)
            return (_anonymous, (self.spec, {**self.params, **self.config}))
        return (deserialize, (serialize(self),))


def _anonymous(spec: Spec, params: dict[str, Any]) -> BoundActivation:
    return BoundActivation(spec, params)


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
    """``"name"`` or ``"name(1, key=2.0)"`` -> (name, args, kwargs); literals only, never eval.

    Bounded: at most MAX_IDENTIFIER_LENGTH characters and literals nested at most
    MAX_LITERAL_DEPTH deep, so that no identifier exhausts the parser's stack or memory; a
    malformed one raises :class:`IdentifierError`, never the parser's RecursionError or
    MemoryError.
    """
    if len(text) > MAX_IDENTIFIER_LENGTH:
        raise IdentifierError(f"activation identifier {_shown(text)} is longer than {MAX_IDENTIFIER_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise IdentifierError(f"cannot parse activation identifier {_shown(text)}: {err.msg}") from None
    except (RecursionError, MemoryError, ValueError):  # a long run of unary operators or brackets
        raise IdentifierError(f"activation identifier {_shown(text)} is nested too deeply to parse") from None
    node = tree.body
    if isinstance(node, ast.Name):
        return node.id, (), {}
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise IdentifierError(
            f"activation identifier {_shown(text)} must be a name or a call like "
            "'leaky_relu(negative_slope=0.2)' with literal arguments"
        )
    if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
        raise IdentifierError(f"activation identifier {_shown(text)}: * and ** arguments are not allowed")
    names = [k.arg for k in node.keywords]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # Python refuses these when compiling; ast.parse does not
        raise IdentifierError(f"activation identifier {_shown(text)}: keyword(s) {repeated} given more than once")
    args = tuple(_literal(a, text) for a in node.args)
    kwargs = {k.arg: _literal(k.value, text) for k in node.keywords}
    return node.func.id, args, kwargs


def _literal(node: ast.AST, text: str, depth: int = 0) -> Any:
    """The value of a literal argument: a number, string, True/False/None, or a tuple/list of them.

    Written out instead of :func:`ast.literal_eval` to bound the nesting depth (a run of 3,000
    ``~`` recurses past Python's limit) and to refuse an integer no float can hold.
    """

    def refuse(why: str) -> IdentifierError:
        return IdentifierError(f"activation identifier {_shown(text)}: {why}")

    if depth > MAX_LITERAL_DEPTH:
        raise refuse(f"an argument is nested more than {MAX_LITERAL_DEPTH} deep")
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (bool, int, float, str))):
        value = node.value
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand, text, depth + 1)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise refuse(f"unary {'-' if isinstance(node.op, ast.USub) else '+'} applies to numbers only")
        value = -value if isinstance(node.op, ast.USub) else +value
    elif isinstance(node, (ast.Tuple, ast.List)):
        items = [_literal(e, text, depth + 1) for e in node.elts]
        value = tuple(items) if isinstance(node, ast.Tuple) else items
    else:
        try:
            shown = _shown(ast.unparse(node))
        except (RecursionError, ValueError):
            shown = "an expression"
        raise refuse(f"arguments must be literals (numbers, strings, True/False/None), not {shown}")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > sys.float_info.max:
        raise refuse(f"the integer {_shown(str(value))} is too large for a float")
    return value


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


# Keras layer config keys that are not the activation's parameter names (Keras 2 spelled
# LeakyReLU's slope ``alpha``); the layers themselves come from the Keras names in the specs'
# equivalents (keras.layers.ReLU, LeakyReLU, PReLU, ELU, Softmax, ...).
_KERAS_CONFIG_KEYS = {"leaky_relu": {"alpha": "negative_slope"}}
_KERAS_IGNORED = {"name", "trainable", "dtype", "autocast", "seed"}
_KERAS_INITIALIZERS = {"zeros": 0.0, "ones": 1.0}


def _keras_initial_value(init: Any, cls: str) -> float:
    """The constant a Keras initializer config sets ("zeros", {"class_name": "Constant", ...})."""
    if isinstance(init, str) and _key(init) in _KERAS_INITIALIZERS:
        return _KERAS_INITIALIZERS[_key(init)]
    if isinstance(init, Mapping):
        name = _key(str(init.get("class_name", "")))
        cfg = init.get("config") or {}
        if name in _KERAS_INITIALIZERS:
            return _KERAS_INITIALIZERS[name]
        if name == "constant" and isinstance(cfg, Mapping) and "value" in cfg:
            return cfg["value"]
    raise TypeError(f"Keras {cls}: only a constant alpha_initializer (zeros, ones, Constant) has an actlab equivalent")


def _keras_prelu(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """keras.layers.PReLU's config -> actlab prelu parameters (init: the initial slope)."""
    params: dict[str, Any] = {}
    for k, v in cfg.items():
        if k in _KERAS_IGNORED or k == "shared_axes":
            continue  # shared_axes: see the keras equivalent of prelu (the slope's layout, not the function)
        if k == "alpha_initializer":
            params["init"] = _keras_initial_value(v, "PReLU")
        elif k in ("alpha_regularizer", "alpha_constraint"):
            if v is not None:
                raise TypeError(f"Keras config key {k!r} of PReLU has no actlab equivalent (only None)")
        else:
            raise TypeError(f"Keras config key {k!r} of PReLU has no actlab equivalent")
    return params


def _from_keras_dict(d: Mapping[str, Any]) -> BoundActivation:
    cls = d.get("class_name")
    cfg = d.get("config")
    if cls == "function" or (isinstance(cfg, str) and cls in (None, "function")):
        return _from_keras_name(str(cfg))
    if cls == "Activation" and isinstance(cfg, Mapping):
        inner = cfg.get("activation")
        return _from_keras_name(inner) if isinstance(inner, str) else get(inner)
    if isinstance(cls, str) and isinstance(cfg, Mapping):
        peer = _BY_PEER.get(("keras", _key(cls)))
        if peer is not None:
            spec, params = peer.spec, dict(peer.params)
        else:
            try:
                spec, params = resolve_name(cls)
            except KeyError:
                spec, params = get_spec(re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", cls)), {}
        if spec.name == "prelu":
            return BoundActivation(spec, {**params, **_keras_prelu(cfg)})
        renames = _KERAS_CONFIG_KEYS.get(spec.name, {})
        for k, v in cfg.items():
            if k in _KERAS_IGNORED:
                continue
            name = renames.get(k, k)
            if name not in spec.param_names and all(name not in p.aliases for p in spec.params):
                raise TypeError(f"Keras config key {k!r} of {cls} has no actlab equivalent")
            params[name] = v
        return BoundActivation(spec, params)
    raise IdentifierError(f"unrecognised Keras-serialized activation: {_shown(dict(d))}")


def _from_keras_name(name: str) -> BoundActivation:
    """A Keras activation name means what it means in Keras (leaky_relu: slope 0.2)."""
    fw, rest = _split_framework(name)
    if fw is None and ("keras", _key(name)) in _BY_PEER:
        return _from_name(name, "keras")
    return _from_name(name)


def _from_name(text: str, framework: str | None = None) -> BoundActivation:
    fw, text = _split_framework(text)  # "keras:leaky_relu(...)": the peer's defaults, then the arguments
    if "(" not in text:  # a bare name (or not an identifier at all): an unknown name says so
        spec, bound = resolve_name(text, fw or framework)
        return BoundActivation(spec, bound)
    name, args, kwargs = _parse_call_string(text)
    spec, bound = resolve_name(name, fw or framework)
    return BoundActivation(spec, {**bound, **spec.canonical_names(_bind_positional(spec, args, kwargs))})


def _config(identifier: Mapping[str, Any]) -> dict[str, Any]:
    """The ``config`` of a ``{"name", "config"}`` dict: a mapping of parameter names (NFKC, as in a
    call string, where Python's parser normalises keyword names)."""
    config = identifier.get("config")
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise IdentifierError(
            f"'config' of an activation dict must be a dict of parameters, not {type(config).__name__} {_shown(config)}"
        )
    out = {}
    for k, v in config.items():
        if not isinstance(k, str):
            raise IdentifierError(f"'config' keys must be parameter names (strings), got {_shown(k)}")
        out[unicodedata.normalize("NFKC", k)] = v
    return out


def is_registered(spec: Spec) -> bool:
    """``spec`` is the object registered under its name (not a copy or a look-alike)."""
    return _BY_NAME.get(spec.name) is spec


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
        # The registered spec, or an anonymous user activation (a copy of a registered spec, an
        # unregistered one): usable everywhere, equal only to activations of the same spec, and
        # not serializable by name (see serialize).
        act = BoundActivation(identifier)
    elif isinstance(identifier, str):
        act = _from_name(identifier)
    elif isinstance(identifier, Mapping):
        if "name" in identifier:
            unknown = set(identifier) - {"name", "config"}
            if unknown:
                raise IdentifierError(f"unexpected keys {_shown(sorted(map(str, unknown)))} in activation dict")
            spec, bound = resolve_name(identifier["name"])
            act = BoundActivation(spec, {**bound, **spec.canonical_names(_config(identifier))})
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
        raise IdentifierError(f"cannot interpret {_shown(identifier)} as an activation")
    if params:
        act = BoundActivation(act.spec, {**act.params, **act.config, **act.spec.canonical_names(params)})
    return act


def serialize(activation: Any) -> str | dict[str, Any]:
    """The bare name when the parameters are the defaults, ``{"name", "config"}`` otherwise."""
    act = get(activation)
    if not isinstance(act, BoundActivation):
        raise ValueError(f"cannot serialize {activation!r}: register it as a Spec first")
    if not is_registered(act.spec):
        # Its name would deserialize to the registered spec of that name (or to nothing): a
        # different function. Code is not data, so there is no anonymous form to write either.
        raise IdentifierError(
            f"cannot serialize {act!r}: its spec is not the registered {act.spec.name!r} (an anonymous "
            "activation); register it under a name of its own, e.g. "
            f"actlab.register(dataclasses.replace(spec, name='my_{act.spec.name}'))"
        )
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
