"""Drop-in classes under PyTorch's (and timm's) names: ``actlab.nn.GELU(approximate="tanh")``,
``actlab.nn.ReLU(inplace=True)``, ``actlab.nn.QuickGELU()``, for ``act_layer=actlab.nn.GELU``.

Generated from the specs' ``equivalents``: every class name a PyTorch, timm or Keras equivalent gives
(its symbol's last component, or a capitalised lookup name: ``"ELU"``), PyTorch's first
(timm's SquaredReLU and QuickGELU come from timm's equivalents). A PyTorch
class takes PyTorch's own constructor signature (read from ``torch.nn``); a timm or Keras one takes
the spec's parameters the equivalent leaves free, with the equivalent's defaults. Arguments map to
the spec's parameters by name or alias (``dim`` -> ``axis``); an argument with no counterpart
(Hardtanh's deprecated ``min_value``) is accepted at its default only and refused otherwise.

Every class also takes ``inplace`` (timm builds activations with ``act_layer(inplace=True)``):
where the function allows it (:mod:`actlab.torch.inplace`) the output is written into the input
and only it is kept for backward; elsewhere (GELU, SiLU, Mish, Hardswish, ...) the result is a new
tensor and the input is left as it is. PyTorch's own ``SiLU``/``Mish``/``Hardswish(inplace=True)``
write into the input but keep a clone of it for backward, so neither form saves memory there.

A name that ``actlab.nn`` already uses for its own class (``GLU``, ``RReLU``, ``Swish``,
``StarReLU``: ``KEPT``) keeps that class.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from actlab.nn import activation, blocks, gated, recurrent, trainable
from actlab.nn.activation import Activation
from actlab.registry import all_specs, get_spec
from actlab.torch import inplace as inplace_mod

# Whose signature wins when several peers give one name: PyTorch's (drop-in for torch.nn).
PEERS = ("pytorch", "timm", "keras")
_OWN = {n for m in (activation, trainable, gated, recurrent, blocks) for n in m.__all__}
_EMPTY = inspect.Parameter.empty


def _class_like(name: str) -> bool:
    return name.isidentifier() and name[0].isupper()


def _class_names(spec: Any, eq: Any) -> list[str]:
    """Class names an equivalent gives: capitalised lookup names (``"ELU"``), and the symbol's last
    component (``timm.layers.QuickGELU``). For a vector function only the lookup names: a peer
    class of one without a lookup name is a gated MLP block with projections (timm's GluMlp,
    SwiGLUPacked), not a drop-in activation."""
    names = [n for n in eq.names if _class_like(n)]
    last = eq.symbol.rsplit(".", 1)[-1]
    if "(" not in eq.symbol and _class_like(last) and last not in names and (eq.names or spec.kind == "elementwise"):
        names.insert(0, last)
    return names


class TorchNamed(Activation):
    """Base of the generated drop-in classes: an :class:`Activation` built from the peer's
    constructor arguments (``peer``: the peer class, ``spec_name``, ``fixed``: what its name binds)."""

    peer = ""
    spec_name = ""
    fixed: dict[str, Any] = {}
    __signature__ = inspect.Signature()

    def __init__(self, *args: Any, **kwargs: Any):
        cls = type(self)
        sig = cls.__signature__
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError as err:
            raise TypeError(f"{cls.__name__}{sig}: {err}") from None
        bound.apply_defaults()
        spec = get_spec(cls.spec_name)
        params, inplace, named = dict(cls.fixed), False, {}
        for name, value in bound.arguments.items():
            p = sig.parameters[name]
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue  # torch.nn.Identity takes and ignores any arguments
            if name == "inplace":
                inplace = inplace_mod.validate_flag(value, cls.__name__)
                continue
            canonical = next(iter(spec.canonical_names({name: value})))
            if canonical in spec.param_names:
                params[canonical] = value
                named[canonical] = name
            elif value is not p.default and value != p.default:
                raise TypeError(
                    f"{cls.__name__}: {name}={value!r} has no counterpart in actlab's {spec.name} "
                    f"(parameters: {', '.join(spec.param_names) or 'none'}); leave it at its default {p.default!r}"
                )
        try:
            super().__init__(spec.name, **params)
        except (TypeError, ValueError) as err:
            renamed = ", ".join(f"{theirs} is actlab's {ours}" for ours, theirs in named.items() if ours != theirs)
            hint = f" ({renamed})" if renamed else ""
            raise type(err)(f"{cls.__name__}: {err}{hint}") from None
        self.inplace = inplace
        # where in place is impossible the output is a new tensor (documented; PyTorch clones the input)
        self._inplace_rule = inplace_mod.inplace_rule(spec, self.activation.params)[0] if inplace else None
        self._arguments = {
            k: v
            for k, v in bound.arguments.items()
            if sig.parameters[k].kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
            and (k == "inplace" and v or k != "inplace" and not _same(v, sig.parameters[k].default))
        }

    @property
    def inplace_effective(self) -> bool:
        """True where ``inplace=True`` really writes into the input (see the module docstring)."""
        return self._inplace_rule is not None

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._arguments.items())


def arguments_of(module: torch.nn.Module | None, cls: type) -> dict[str, Any]:
    """The constructor arguments of ``cls`` that ``module`` (a torch module being replaced) holds:
    all of them when it is the class of the same name (PyTorch stores each under its own name:
    ``negative_slope``, ``inplace``, ``dim``), else only ``inplace`` where both take it."""
    if module is None:
        return {}
    names = [n for n, p in cls.__signature__.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if type(module).__name__ != cls.__name__:
        names = [n for n in names if n == "inplace"]
    return {n: getattr(module, n) for n in names if n in vars(module)}


def counterpart(module: torch.nn.Module | None) -> type | None:
    """The generated class of ``module``'s class name, where ``module`` computes that class's
    function (as actlab recognises it: torch's classes by name, others also by a probe)."""
    from actlab.nn.recognition import recognise_module

    cls = CLASSES.get(type(module).__name__) if module is not None else None
    if cls is None or isinstance(module, Activation):
        return None
    found = recognise_module(module)
    return cls if found is not None and found[1] is not None and found[1].name == cls.spec_name else None


def _same(value: Any, default: Any) -> bool:
    try:
        return value is default or (type(value) is type(default) and bool(value == default))
    except Exception:  # noqa: BLE001 - a value that cannot be compared is shown
        return False


def _torch_signature(name: str) -> inspect.Signature | None:
    cls = getattr(torch.nn, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        return None
    # A class without an __init__ of its own (Sigmoid, Tanh) takes no arguments: Module.__init__'s
    # (*args, **kwargs) refuses them.
    sig = inspect.Signature() if cls.__init__ is torch.nn.Module.__init__ else inspect.signature(cls)
    params = list(sig.parameters.values())
    if "inplace" not in sig.parameters and not any(p.kind == p.VAR_KEYWORD for p in params):
        params.append(inspect.Parameter("inplace", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=bool))
    return sig.replace(parameters=params, return_annotation=_EMPTY)


def _spec_signature(spec: Any, fixed: dict[str, Any]) -> inspect.Signature:
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter(p.name, kind, default=p.default) for p in spec.params if p.name not in fixed]
    params.append(inspect.Parameter("inplace", kind, default=False, annotation=bool))
    return inspect.Signature(params)


def _generate() -> tuple[dict[str, type], dict[str, str]]:
    classes: dict[str, type] = {}
    kept: dict[str, str] = {}
    for framework in PEERS:
        for spec in all_specs():
            if spec.kind == "layer":
                continue
            for eq in spec.equivalents:
                if eq.framework != framework:
                    continue
                for name in _class_names(spec, eq):
                    if name in classes or name in kept:
                        continue
                    if name in _OWN:
                        kept[name] = spec.name
                        continue
                    sig = _torch_signature(name) if framework == "pytorch" else _spec_signature(spec, eq.bound)
                    if sig is None:
                        continue  # PyTorch has no such class (a lookup name only)
                    peer = f"torch.nn.{name}" if framework == "pytorch" else eq.symbol
                    classes[name] = _make_class(name, spec, eq, sig, peer)
    return classes, kept


def _make_class(name: str, spec: Any, eq: Any, sig: inspect.Signature, peer: str) -> type:
    fixed = eq.bound
    doc = (
        f"Drop-in for ``{peer}``: actlab's ``{spec.name}``"
        + (f" with {', '.join(f'{k}={v!r}' for k, v in fixed.items())}" if fixed else "")
        + f". Signature {name}{sig}."
        + (f"\n\nDifferences from {eq.framework}: {eq.differences}" if eq.differences else "")
    )
    attrs = {
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": doc,
        "__signature__": sig,
        "peer": peer,
        "spec_name": spec.name,
        "fixed": fixed,
    }
    return type(name, (TorchNamed,), attrs)


CLASSES, KEPT = _generate()
globals().update(CLASSES)
__all__ = sorted(CLASSES) + ["TorchNamed"]
