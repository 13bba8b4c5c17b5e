"""Where a model applies activations ("sites"), and which catalog activation each one computes.

A site is an activation *module* (torch.nn's activation classes, timm's and Hugging Face
transformers' classes, actlab's modules) or an activation *call* in ``forward`` (``F.relu(x)``,
``torch.tanh(x)``, ``x.sigmoid()``). The mapping from PyTorch, timm and transformers names to catalog
specs is derived from the specs' ``equivalents`` (no second list here); a module matched by its
class name is then checked by what it computes (its output on a fixed input against the spec), so
a class that shares a name but computes something else is not taken for that activation.
:func:`recognise` is the one public question "which catalog activation does this module compute?".
It lives beside the modules (below ``actlab.init`` and ``actlab.diagnose``, which both ask it).
"""

from __future__ import annotations

import fnmatch
import functools
import inspect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from actlab.catalog import Spec
from actlab.registry import BoundActivation, UnknownActivationError, _parse_call_string, all_specs, get, get_spec

__all__ = ["Site", "find_module_sites", "recognise", "recognize", "recognise_module", "recognise_function", "matches"]

# torch/timm keyword names that differ from the catalog's parameter names.
_PARAM_ALIASES = {"dim": "axis"}


@dataclass(frozen=True)
class Site:
    """One activation module in a model.

    ``activation`` is the catalog activation it computes (None for trainable activations with no
    fixed catalog spec, e.g. PReLU); ``key`` is what ``replace=`` and mapping keys match against:
    the spec name, or the lower-case class name when there is no spec (``"prelu"``).
    """

    name: str  # qualified module name ("" for the model itself)
    module: torch.nn.Module = field(repr=False, compare=False)
    key: str
    activation: BoundActivation | None = None
    label: str = ""  # what to show: "relu", "swish(beta='learnable')", "prelu(num_parameters=64)"

    @property
    def spec(self) -> Spec | None:
        return None if self.activation is None else self.activation.spec

    @property
    def elementwise(self) -> bool:
        return self.activation is None or self.activation.spec.kind == "elementwise"


def _normalise(name: str) -> str:
    return name.lower().replace("_", "")


def _torch_activation_symbol(framework: str, symbol: str) -> str | None:
    """The bare function/class name of an equivalent that is an activation in torch, timm or transformers."""
    if framework == "transformers":
        # transformers.activations.<Class> (or <Class>(-10, 10): the arguments are the spec's parameters,
        # read from the instance); transformers' torch.nn classes are covered by the pytorch equivalents.
        head = symbol.split("(", 1)[0]
        prefix = "transformers.activations."
        return head[len(prefix) :] if head.startswith(prefix) and head[len(prefix) :].isidentifier() else None
    if "(" in symbol or " " in symbol:
        return None  # a call like get_act_fn('elu'): no name of its own
    last = symbol.rsplit(".", 1)[-1]
    if framework == "timm":
        return last
    if framework != "pytorch":
        return None
    if symbol.startswith("torch.nn.functional."):
        return last
    # torch.sigmoid / torch.tanh are activations (torch.nn has Sigmoid, Tanh); torch.exp, torch.abs,
    # torch.sin are math functions that happen to be catalog entries, not activations to hook or swap.
    if symbol == f"torch.{last}" and any(_normalise(c) == last for c in _torch_activation_classes()):
        return last
    return None


@functools.cache
def _torch_activation_classes() -> tuple[str, ...]:
    import torch.nn.modules.activation as act

    return tuple(
        n for n, c in vars(act).items() if isinstance(c, type) and issubclass(c, torch.nn.Module) and n != "Module"
    )


@functools.cache
def _symbol_table() -> dict[str, tuple[str, ...]]:
    """Normalised torch/timm activation name -> spec names (every spec that claims it)."""
    table: dict[str, list[str]] = {}
    for spec in all_specs():
        for eq in spec.equivalents:
            sym = _torch_activation_symbol(eq.framework, eq.symbol)
            if sym is not None:
                table.setdefault(_normalise(sym), []).append(spec.name)
    return {k: tuple(v) for k, v in table.items()}


@functools.cache
def _class_table() -> dict[str, tuple[str, dict[str, Any]]]:
    """Normalised class name -> (spec name, fixed params) for activation module classes.

    Only names that torch, timm or transformers give an activation (from the specs' ``equivalents``,
    with the parameters the equivalent binds: transformers' ``NewGELUActivation`` is gelu with
    ``approximate='tanh'``): a user's class called ``Gaussian`` or ``Linear`` is not taken for an
    activation.
    """
    candidates: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for spec in all_specs():
        for eq in spec.equivalents:
            sym = _torch_activation_symbol(eq.framework, eq.symbol)
            if sym is not None:
                candidates.setdefault(_normalise(sym), []).append((spec.name, eq.bound))
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for key, found in candidates.items():
        # Several specs may claim one symbol (silu and swish both cite F.silu): prefer the spec
        # whose own name is the symbol, then the one without parameters.
        out[key] = sorted(found, key=lambda e: (_normalise(e[0]) != key, len(get_spec(e[0]).params), e[0]))[0]
    return out


def _param_from_attribute(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().reshape(-1)[0].item() if value.numel() == 1 else None
    return value


def _bind_from_attributes(spec: Spec, module: torch.nn.Module, fixed: Mapping[str, Any]) -> BoundActivation:
    """The spec with the parameters the module stores under the same names (torch's names)."""
    params = dict(fixed)
    aliases = {alias: p.name for p in spec.params for alias in p.aliases}  # transformers' min/max: min_val/max_val
    for attr, value in vars(module).items():
        name = _PARAM_ALIASES.get(attr, aliases.get(attr, attr))
        if name in spec.param_names:  # the instance's value over the class's defaults (``fixed``)
            params[name] = value
    for p in spec.params:  # parameters (tensors) live in _parameters, not in vars()
        if p.name in module._parameters:
            params[p.name] = module._parameters[p.name]
    params = {k: _param_from_attribute(v) for k, v in params.items()}
    params = {k: v for k, v in params.items() if v is not None or spec.param(k).nullable}
    try:
        return BoundActivation(spec, params)
    except (TypeError, ValueError):
        return BoundActivation(spec, fixed)


def _actlab_module_classes() -> tuple[type, ...]:
    from actlab.nn import Activation

    return (Activation,)


def recognise_module(module: torch.nn.Module) -> tuple[str, BoundActivation | None, str] | None:
    """(key, activation, label) when ``module`` is an activation module, else None.

    actlab's modules say what they are (``actlab_activation``): a catalog function, with learnable
    parameters at their current mean value, or a trainable layer (PReLU, PAU, APL; the gated and
    maxout layers have projections and are not activation sites) with the catalog function it
    computes now when there is one. Other modules are matched by class name against the torch,
    timm and transformers names the catalog's ``equivalents`` give (``LeakyReLU`` -> leaky_relu,
    ``QuickGELU`` -> quick_gelu, ``NewGELUActivation`` -> gelu(approximate='tanh'), timm's
    memory-efficient ``...Me`` variants too), with parameters read from the attributes of the same
    name (or the parameter's aliases: transformers' ``min``/``max``); a class that is not torch's
    own must also compute that function on a fixed probe input. torch.nn.PReLU is the site "prelu".
    """
    ident = getattr(module, "actlab_activation", None)
    if isinstance(ident, BoundActivation):
        if ident.spec.kind == "layer":
            if not getattr(module, "activation_weights", False):
                return None  # a layer with projections (GLU, maxout), not an activation site
            current = getattr(module, "activation", None)
            return ident.name, current if isinstance(current, BoundActivation) else None, repr(ident)
        return ident.name, _current_values(module, ident), repr(ident)
    inner = getattr(module, "activation", None)
    if isinstance(inner, BoundActivation):
        return inner.name, inner, repr(inner)
    if any(True for _ in module.children()):
        return None  # a block, not an activation
    cls = type(module)
    key = _normalise(cls.__name__)
    if cls.__module__.startswith("torch.nn.") and cls.__module__ != "torch.nn.modules.activation":
        return None  # torch.nn.Bilinear is a layer, whatever its name says
    if key == "prelu":  # torch.nn.PReLU (or timm's): leaky_relu with its slope while shared
        current = None
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.numel() == 1:
            try:
                current = get("leaky_relu", negative_slope=float(weight.detach()))
            except (TypeError, ValueError):
                current = None
        return key, current, f"prelu(num_parameters={getattr(module, 'num_parameters', 1)})"
    table = _class_table()
    entry = table.get(key)
    if entry is None and key.endswith("me"):
        entry = table.get(key[:-2])  # timm's memory-efficient SwishMe, MishMe, HardMishMe, ...
    if entry is None:
        return None
    spec = get_spec(entry[0])
    act = _bind_from_attributes(spec, module, entry[1])
    if cls.__module__ == "torch.nn.modules.activation":
        return spec.name, act, repr(act)  # torch's own class: its name is what it computes
    verdict = _computes(module, act)
    if verdict is False and act.params != BoundActivation(spec, entry[1]).params:
        act = BoundActivation(spec, entry[1])  # attributes of the same name that mean something else
        verdict = _computes(module, act)
    if verdict is not False:
        return spec.name, act, repr(act)
    if module._parameters:
        # a trainable activation whose stored values are not the spec's parameters (transformers'
        # XIELU keeps softplus-inverses): an activation site, with no fixed catalog function
        return spec.name, None, f"{cls.__name__} ({spec.name}, trainable)"
    return None  # named like an activation, computes something else


# A fixed probe: both signs, the origin, the tails where approximations part (gelu's tanh form
# differs from the exact one by up to 4.7e-4 near |x| = 2), and a 2-d shape for vector specs.
_PROBE = (-7.0, -4.0, -2.5, -2.0, -1.5, -1.0, -0.75, -0.5, -0.25, -0.1, 0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
_PROBE += (2.5, 3.0, 4.0, 7.0, -3.0, 0.3)


def _computes(module: torch.nn.Module, act: BoundActivation) -> bool | None:
    """Whether ``module`` computes ``act`` on a fixed input (None: not probed, its name stands).

    Calls ``forward`` itself, so no hook of the model fires and no state changes (no_grad, a
    fresh input, train/eval mode as it is)."""
    from actlab.ops.torch_ops import TORCH

    if act.spec.kind != "elementwise":
        return None  # vector specs (softmax family) are not probed: their name stands
    ref_tensor = next((t for t in list(module.parameters()) + list(module.buffers()) if t.is_floating_point()), None)
    dtype = ref_tensor.dtype if ref_tensor is not None else torch.float32
    device = ref_tensor.device if ref_tensor is not None else torch.device("cpu")
    if device.type == "meta":
        return None
    x = torch.tensor(_PROBE, dtype=torch.float64).reshape(4, 6)
    try:
        with torch.no_grad():
            out = module.forward(x.to(device=device, dtype=dtype))
            # the spec's own formula in float64 (the reference path; no kernel is built for a probe)
            expected = act.spec.forward(x, TORCH, **act.params)
    except Exception:  # noqa: BLE001 - a module that cannot run on this probe is not recognised by it
        return False
    if not isinstance(out, torch.Tensor) or out.shape != expected.shape:
        return False
    low = dtype in (torch.float16, torch.bfloat16)
    return bool(
        torch.allclose(out.detach().cpu().double(), expected, rtol=2e-2 if low else 1e-4, atol=1e-2 if low else 1e-5)
    )


def recognise(module: torch.nn.Module) -> tuple[str, dict[str, Any]] | None:
    """The catalog activation ``module`` computes, as ``(spec name, parameters)``, or None.

    Recognised: torch.nn's activation classes (exact classes, with their parameters), timm's and
    Hugging Face transformers' activation classes (``GELUActivation`` -> ``("gelu", {})``,
    ``NewGELUActivation`` -> ``("gelu", {"approximate": "tanh"})``, ``QuickGELUActivation`` ->
    ``("quick_gelu", {})``, ``ClippedGELUActivation(-10, 10)`` -> ``("clipped_gelu", {...})``, ...),
    each checked by what it computes, and actlab's modules. Trainable activations give their current
    values: torch.nn.PReLU is ``("leaky_relu", {"negative_slope": mean slope})``, an actlab module
    with learnable parameters gives their means. None for anything else (layers, blocks, a trainable
    activation with no catalog equivalent, a class named like an activation that computes something
    else). Parameters are catalog names and plain numbers/strings: ``actlab.get(name, **params)``
    rebuilds the activation.
    """
    found = recognise_module(module)
    if found is None:
        return None
    key, act, _ = found
    if act is None and key == "prelu":
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.numel() and weight.is_floating_point():
            try:
                act = get("leaky_relu", negative_slope=float(weight.detach().float().mean()))
            except (TypeError, ValueError):
                return None
    if act is None:
        return None
    return act.name, dict(act.params)


recognize = recognise  # the American spelling, for callers that use it


def _current_values(module: torch.nn.Module, ident: BoundActivation) -> BoundActivation:
    """The function with learnable parameters at their current (mean) values."""
    learnable = getattr(ident, "learnable", ())
    if not learnable:
        return ident
    params = dict(ident.params)
    for name in learnable:
        value = getattr(module, name, None)
        if isinstance(value, torch.Tensor) and value.numel():
            params[name] = float(value.detach().float().mean())
    try:
        return BoundActivation(ident.spec, params)
    except (TypeError, ValueError):  # trained out of the catalog's range
        return BoundActivation(ident.spec, {k: v for k, v in params.items() if k not in learnable})


def find_module_sites(model: torch.nn.Module) -> list[Site]:
    """Every activation module of ``model``, in registration order (``model.named_modules()``)."""
    sites = []
    for name, module in model.named_modules():
        found = recognise_module(module)
        if found is not None:
            sites.append(Site(name, module, *found))
    return sites


# ----------------------------------------------------------------------------- functional calls
@dataclass(frozen=True)
class FunctionEntry:
    spec: Spec
    name: str  # e.g. "torch.nn.functional.leaky_relu"
    inplace: bool
    builtin: bool  # no Python signature: positional parameters follow the spec's order


@functools.cache
def _function_table() -> dict[int, FunctionEntry]:
    """id(function object) -> entry, for torch / torch.nn.functional activation functions."""
    import torch.nn.functional as F

    table: dict[int, FunctionEntry] = {}
    for key, names in _symbol_table().items():
        spec = get_spec(_class_table()[key][0]) if key in _class_table() else get_spec(names[0])
        for spec_name in names:
            for eq in get_spec(spec_name).equivalents:
                sym = _torch_activation_symbol(eq.framework, eq.symbol)
                if eq.framework != "pytorch" or sym is None:
                    continue
                for namespace, prefix in ((F, "torch.nn.functional"), (torch, "torch")):
                    for suffix in ("", "_"):
                        fn = getattr(namespace, sym + suffix, None)
                        if fn is None or not callable(fn) or id(fn) in table:
                            continue
                        try:
                            inspect.signature(fn)
                            builtin = False
                        except (TypeError, ValueError):
                            builtin = True
                        table[id(fn)] = FunctionEntry(spec, f"{prefix}.{sym}{suffix}", bool(suffix), builtin)
    return table


@functools.cache
def _method_table() -> dict[str, tuple[Spec, bool]]:
    """Tensor method name -> (spec, in place), for ``x.relu()``, ``x.sigmoid_()``, ..."""
    out = {}
    for key, names in _symbol_table().items():
        spec = get_spec(_class_table()[key][0])
        for spec_name in names:
            for eq in get_spec(spec_name).equivalents:
                sym = _torch_activation_symbol(eq.framework, eq.symbol)
                if eq.framework != "pytorch" or sym is None:
                    continue
                for suffix in ("", "_"):
                    if hasattr(torch.Tensor, sym + suffix):
                        out.setdefault(sym + suffix, (spec, bool(suffix)))
    return out


def recognise_function(target: Any, method: bool = False) -> FunctionEntry | None:
    """The activation a call target computes: a function object, or a Tensor method name."""
    if method:
        found = _method_table().get(target) if isinstance(target, str) else None
        return None if found is None else FunctionEntry(found[0], f"Tensor.{target}", found[1], True)
    return _function_table().get(id(target))


@functools.cache
def _method_object_table() -> dict[int, FunctionEntry]:
    """id(torch.Tensor.<method>) -> entry: what a TorchFunctionMode receives for ``x.sigmoid()``."""
    out = {}
    for name, (spec, inplace) in _method_table().items():
        out[id(getattr(torch.Tensor, name))] = FunctionEntry(spec, f"Tensor.{name}", inplace, True)
    return out


def recognise_callable(func: Any) -> FunctionEntry | None:
    """The activation a callable computes as ``__torch_function__`` sees it (a torch /
    torch.nn.functional function, or a Tensor method object), else None."""
    return _function_table().get(id(func)) or _method_object_table().get(id(func))


def call_inplace(entry: FunctionEntry, target: Any, args: tuple, kwargs: Mapping[str, Any]) -> bool:
    """Whether the call overwrites its input (``F.relu_``, ``x.relu_()``, ``inplace=True``)."""
    if entry.inplace or kwargs.get("inplace") is True:
        return True
    if entry.builtin:
        return False
    names = list(inspect.signature(target).parameters)
    return "inplace" in names and len(args) > names.index("inplace") and args[names.index("inplace")] is True


def bind_call(entry: FunctionEntry, target: Any, args: tuple, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The catalog parameters of a call ``target(*args, **kwargs)`` (``args[0]`` is the input).

    Raises ValueError naming what cannot be mapped (a parameter computed at run time, an unknown
    keyword).
    """
    spec = entry.spec
    rest = dict(kwargs)
    rest.pop("inplace", None)
    positional = list(args[1:])
    params: dict[str, Any] = {}
    if not entry.builtin:
        sig = inspect.signature(target)
        names = [p for p in sig.parameters][1:]
        for name, value in zip(names, positional):
            params[name] = value
    else:
        for name, value in zip(spec.param_names, positional):
            params[name] = value
        if len(positional) > len(spec.param_names):
            raise ValueError(f"{len(positional)} positional arguments, {spec.name} takes {len(spec.param_names)}")
    params.update(rest)
    params.pop("inplace", None)
    params.pop("_stacklevel", None)  # F.softmax's warning depth, passed on by __torch_function__
    if params.get("dtype", 0) is None:
        params.pop("dtype")  # the default: no cast
    out = {}
    for name, value in params.items():
        name = _PARAM_ALIASES.get(name, name)
        if name not in spec.param_names:
            raise ValueError(f"argument {name!r} has no counterpart in actlab's {spec.name}")
        if isinstance(value, torch.fx.Node) or isinstance(value, torch.Tensor):
            raise ValueError(f"parameter {name!r} is computed at run time")
        out[name] = value
    return out


# ----------------------------------------------------------------------------- selection
def as_patterns(value: str | Iterable[str] | None, argument: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    try:
        patterns = tuple(value)
    except TypeError:
        raise TypeError(f"{argument} must be a module-name pattern or a list of them, got {value!r}") from None
    for p in patterns:
        if not isinstance(p, str):
            raise TypeError(f"{argument} must hold module-name patterns (str), got {p!r}")
    return patterns


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    """fnmatch-style match of a qualified name; a pattern also matches everything below it."""
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(name, p + ".*") for p in patterns)


def parse_identifier(identifier: Any) -> tuple[str, dict[str, Any]] | BoundActivation:
    """A catalog activation, or (name, params) for identifiers only ``create_activation`` knows
    (trainable ones: ``"prelu(num_parameters='channels')"``)."""
    try:
        return get(identifier)
    except UnknownActivationError:
        raise
    except (KeyError, ValueError, TypeError) as err:
        if not isinstance(identifier, str):
            raise
        try:
            name, args, kwargs = _parse_call_string(identifier)
        except ValueError:
            raise err from None
        if args:
            raise err from None
        return name.lower(), kwargs
