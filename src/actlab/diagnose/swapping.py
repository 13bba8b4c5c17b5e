"""``actlab.swap(model, "gelu")``: replace the activations of any model with catalog ones.

Activation modules are replaced where they are registered; with ``functional=True`` the model is
also traced with :mod:`torch.fx` and activation *calls* in ``forward`` (``F.relu(x)``,
``torch.tanh(x)``, ``x.relu()``) become calls of new activation modules, in a
:class:`torch.fx.GraphModule` that trains, saves (``state_dict``) and compiles like the original.
"""

from __future__ import annotations

import copy
import fnmatch
import warnings
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from actlab.nn.recognition import (
    Site,
    as_patterns,
    bind_call,
    call_inplace,
    matches,
    parse_identifier,
    recognise_callable,
    recognise_function,
    recognise_module,
)
from actlab.registry import BoundActivation

__all__ = ["swap", "SwapResult", "SwapReport", "Replacement", "NotReplaced", "trace", "CHANNELS"]

# ``prelu(num_parameters='channels')``: one slope per channel (dimension 1 of the input, as
# torch.nn.PReLU), the count read from the shapes traced with ``example_inputs``.
CHANNELS = "channels"


@dataclass(frozen=True)
class Replacement:
    name: str  # module path, or owner.function for calls ("layer1.relu", "relu#1")
    kind: str  # "module" | "function"
    old: str
    new: str


@dataclass(frozen=True)
class NotReplaced:
    name: str
    kind: str  # "module" | "function" | "forward" (the whole forward could not be traced)
    activation: str
    reason: str


@dataclass(frozen=True)
class SwapReport:
    """What :func:`swap` replaced, and what it did not with the reason."""

    replaced: tuple[Replacement, ...] = field(default=())
    not_replaced: tuple[NotReplaced, ...] = field(default=())

    @property
    def complete(self) -> bool:
        """Every selected activation was replaced."""
        return not self.not_replaced

    def __str__(self) -> str:
        lines = [f"replaced {len(self.replaced)} activation(s)"]
        lines += [f"  {r.name} [{r.kind}]: {r.old} -> {r.new}" for r in self.replaced]
        if self.not_replaced:
            lines.append(f"not replaced: {len(self.not_replaced)}")
            lines += [f"  {n.name} [{n.kind}] {n.activation}: {n.reason}" for n in self.not_replaced]
        return "\n".join(lines)


@dataclass(frozen=True)
class SwapResult:
    model: torch.nn.Module
    report: SwapReport

    def __iter__(self):  # model, report = swap(...)
        return iter((self.model, self.report))


class ActivationTracer(torch.fx.Tracer):
    """A tracer that keeps activation modules and actlab's modules as leaves (single call nodes)."""

    def is_leaf_module(self, m: torch.nn.Module, module_qualified_name: str) -> bool:
        if type(m).__module__.startswith("actlab.") or recognise_module(m) is not None:
            return True
        return super().is_leaf_module(m, module_qualified_name)


def trace(model: torch.nn.Module) -> torch.fx.GraphModule:
    """``model`` as a GraphModule, activation modules kept as leaves (raises what torch.fx raises)."""
    tracer = ActivationTracer()
    graph = tracer.trace(model)
    gm = torch.fx.GraphModule(tracer.root, graph, type(model).__name__)
    gm.training = model.training  # not gm.train(): that would reset the shared submodules' flags too
    _keep_state_dict_keys(gm, model)
    return gm


def _keep_state_dict_keys(gm: torch.nn.Module, model: torch.nn.Module) -> None:
    """The GraphModule's state_dict keeps the original's keys, so each loads into the other.

    torch.fx registers every tensor the graph reads as a buffer: tensor constants of ``forward``
    (``_tensor_constant0``), plain tensor attributes, and the original's non-persistent buffers
    all became state_dict entries that the original model refuses. They stay buffers (they move
    with ``.to()``), but ones the original's state_dict does not hold are not saved."""
    keys = set(model.state_dict().keys())
    for name, _ in gm.named_buffers():
        if name not in keys:
            owner_name, _, attr = name.rpartition(".")
            owner = gm.get_submodule(owner_name) if owner_name else gm
            owner._non_persistent_buffers_set.add(attr)


# ----------------------------------------------------------------------------- identifiers
def _is_identifier_dict(value: Mapping) -> bool:
    keys = set(value)
    return ("name" in keys and keys <= {"name", "config"}) or "class_name" in keys


class _Target:
    """What to build: a catalog activation, or a name + params for ``create_activation``."""

    def __init__(self, identifier: Any, argument: str):
        self.identifier = identifier
        # a drop-in class (actlab.nn.GELU): built per site, with the replaced torch module's own
        # arguments where it is the class of the same name (torch.nn.LeakyReLU(0.2, inplace=True));
        # their base actlab.nn.TorchNamed: each module's own counterpart (nn.ReLU -> actlab.nn.ReLU)
        self.module_class = identifier if _is_drop_in_class(identifier) else None
        if self.module_class is not None:
            self.bound, self.name, self.params, self.per_channel, self.adds_parameters = None, None, {}, False, False
            return
        try:
            parsed = parse_identifier(identifier)
        except (KeyError, ValueError, TypeError) as err:
            raise type(err)(f"{argument}: {err}") from None
        self.bound = parsed if isinstance(parsed, BoundActivation) else None
        self.name, self.params = (None, {}) if self.bound is not None else parsed
        self.per_channel = any(v == CHANNELS for v in self.params.values())
        try:
            probe = self.build(channels=1)  # refuse a bad target before anything changes
        except (KeyError, ValueError, TypeError) as err:
            raise type(err)(f"{argument}: cannot build an activation from {identifier!r}: {err}") from None
        self.adds_parameters = any(True for _ in probe.parameters())

    def label(self, channels: int | None = None) -> str:
        if self.module_class is not None:
            return f"actlab.nn.{self.module_class.__name__}"  # (TorchNamed: the same-named class)
        if self.bound is not None:
            return repr(self.bound)
        params = {k: (channels if v == CHANNELS and channels is not None else v) for k, v in self.params.items()}
        inner = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"{self.name}({inner})" if inner else self.name

    def build(self, channels: int | None, old: torch.nn.Module | None = None) -> torch.nn.Module | None:
        """The new module (None: ``TorchNamed`` and ``old`` has no class of its name in actlab.nn)."""
        if self.module_class is not None:
            from actlab.nn.torch_named import TorchNamed, arguments_of, counterpart

            cls = counterpart(old) if self.module_class is TorchNamed else self.module_class
            return None if cls is None else cls(**arguments_of(old, cls))
        if self.bound is not None:
            return _create(self.bound)
        params = {k: (channels if v == CHANNELS else v) for k, v in self.params.items()}
        return _create(self.name, **params)


def _is_drop_in_class(value: Any) -> bool:
    from actlab.nn.torch_named import TorchNamed

    return isinstance(value, type) and issubclass(value, TorchNamed)


def _create(identifier: Any, **params: Any) -> torch.nn.Module:
    from actlab.nn import create_activation

    return create_activation(identifier, **params)


class _Selector:
    """A ``replace=`` entry or mapping key: a bare name matches the activation whatever its
    parameters; a call string or dict matches those parameters exactly."""

    def __init__(self, identifier: Any, argument: str):
        try:
            parsed = parse_identifier(identifier)
        except (KeyError, ValueError, TypeError) as err:
            raise type(err)(f"{argument}: {err}") from None
        bare = isinstance(identifier, str) and "(" not in identifier
        if isinstance(parsed, BoundActivation):
            self.name, self.exact = parsed.name, (None if bare else parsed)
        else:
            self.name, self.exact = parsed[0], None
        self.text = repr(identifier) if not isinstance(identifier, str) else identifier

    def matches(self, key: str, activation: BoundActivation | None) -> bool:
        if self.exact is not None:
            return activation == self.exact
        return key == self.name


def _plan(
    to: Any, replace: Any
) -> tuple[list[tuple[_Selector | None, _Target]], bool]:  # (selector -> target pairs, explicit)
    if isinstance(to, Mapping) and not _is_identifier_dict(to):
        if replace is not None:
            raise ValueError("swap: give either a mapping `to` ({'relu': 'gelu', ...}) or `replace=`, not both")
        if not to:
            raise ValueError("swap: the mapping `to` is empty; map activation names to their replacements")
        return [(_Selector(k, f"to (key {k!r})"), _Target(v, f"to[{k!r}]")) for k, v in to.items()], True
    target = _Target(to, "to")
    if replace is None:
        return [(None, target)], False
    keys = [replace] if isinstance(replace, (str, Mapping, BoundActivation)) else list(replace)
    if not keys:
        raise ValueError("swap: replace= is empty; give activation names (e.g. 'relu') or None for all")
    return [(_Selector(k, "replace"), target) for k in keys], True


def _choose_for_call(
    plan: list[tuple[_Selector | None, _Target]],
    name: str,
    act: BoundActivation,
    explicit: bool,
    not_replaced: list[NotReplaced],
) -> _Target | None:
    """What replaces the functional call ``name`` computing ``act`` (None: leave it): a vector
    activation (softmax, ...) is swapped only when ``replace=`` names it, and is listed otherwise."""
    if act.spec.kind != "elementwise" and not explicit:
        reason = "a vector activation: name it in replace= to swap it"
        not_replaced.append(NotReplaced(name, "function", repr(act), reason))
        return None
    return _choose(plan, act.spec.name, act)


def _choose(plan: list[tuple[_Selector | None, _Target]], key: str, act: BoundActivation | None) -> _Target | None:
    for selector, target in plan:
        if selector is None or selector.matches(key, act):
            return target
    return None


# ----------------------------------------------------------------------------- placement
def _set_submodule(root: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, module)


def _place(new: torch.nn.Module, old: torch.nn.Module | None, like: torch.Tensor | None, training: bool) -> None:
    """Give ``new`` the device, floating dtype and train/eval mode of what it replaces."""
    ref = None
    if old is not None:
        ref = next((t for t in list(old.parameters()) + list(old.buffers()) if t.is_floating_point()), None)
    if ref is None:
        ref = like
    if ref is not None:
        new.to(device=ref.device)
        if any(t.is_floating_point() for t in list(new.parameters()) + list(new.buffers())):
            new.to(dtype=ref.dtype)
    new.train(training)


def _first_tensor(model: torch.nn.Module) -> torch.Tensor | None:
    return next((t for t in list(model.parameters()) + list(model.buffers()) if t.is_floating_point()), None)


def _record_inputs(
    model: torch.nn.Module, modules: list[torch.nn.Module], example_inputs: Any
) -> dict[int, tuple[torch.Tensor, set[tuple[int, ...]]]]:
    """id(module) -> (an empty tensor with the device/dtype of its input, the input shapes seen),
    from a forward on ``example_inputs`` in eval mode under no_grad (nothing in the model changes:
    train flags are restored, BatchNorm statistics are not updated)."""
    seen: dict[int, tuple[torch.Tensor, set[tuple[int, ...]]]] = {}
    handles = []

    def hook(module: torch.nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], torch.Tensor):
            like = torch.empty(0, dtype=args[0].dtype, device=args[0].device)
            seen.setdefault(id(module), (like, set()))[1].add(tuple(args[0].shape))

    for m in modules:
        handles.append(m.register_forward_pre_hook(hook))
    _run_eval(model, example_inputs)
    for h in handles:
        h.remove()
    return seen


class _Inputs:
    """The model's example inputs: positional and keyword arguments."""

    def __init__(self, args: tuple, kwargs: Mapping[str, Any] | None = None):
        self.args, self.kwargs = args, dict(kwargs or {})


def _run_eval(model: torch.nn.Module, inputs: _Inputs) -> None:
    flags = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.no_grad():
            model(*inputs.args, **inputs.kwargs)
    finally:
        for m, flag in flags.items():
            m.training = flag


def _as_inputs(example_inputs: Any) -> _Inputs | None:
    if example_inputs is None:
        return None
    if isinstance(example_inputs, torch.Tensor):
        return _Inputs((example_inputs,))
    if isinstance(example_inputs, (tuple, list)):
        return _Inputs(tuple(example_inputs))
    if isinstance(example_inputs, Mapping) and all(isinstance(k, str) for k in example_inputs):
        return _Inputs((), example_inputs)
    raise TypeError(
        "example_inputs must be a tensor, a tuple of the model's positional inputs or a dict of its keyword "
        f"inputs ({{'input_ids': ids}}), got {type(example_inputs).__name__}"
    )


def _dummy_inputs(model: torch.nn.Module) -> _Inputs | None:
    """transformers' models carry ``dummy_inputs`` (a dict of small tensors) for exactly this."""
    try:
        dummy = getattr(model, "dummy_inputs", None)
    except Exception:  # noqa: BLE001 - a property that fails is no inputs
        return None
    if isinstance(dummy, Mapping) and dummy and all(isinstance(v, torch.Tensor) for v in dummy.values()):
        device = _first_tensor(model)
        return _Inputs((), {k: v.to(device.device) if device is not None else v for k, v in dummy.items()})
    return None


def _channels(shapes: set[tuple[int, ...]], dim: int = 1) -> tuple[int | None, str]:
    sizes = {s[dim] for s in shapes if len(s) > dim}
    if not sizes:
        return None, f"no input with a dimension {dim} was seen (shapes {sorted(shapes)})"
    if len(sizes) > 1:
        return None, f"called with {len(sizes)} different channel counts {sorted(sizes)}"
    return sizes.pop(), ""


# ----------------------------------------------------------------------------- swap
def swap(
    model: torch.nn.Module,
    to: Any,
    *,
    replace: Any = None,
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    functional: bool = False,
    inplace: bool = True,
    example_inputs: Any = None,
) -> SwapResult:
    """Replace the activations of ``model`` with ``to`` (any identifier ``actlab.nn.create_activation``
    accepts), or selectively with a mapping ``{"relu": "gelu", "tanh": "softsign"}``.

    >>> import torch, actlab
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    >>> model, report = actlab.swap(model, "gelu")
    >>> model[1]
    Activation(gelu)

    ``replace``: which activations to replace (a name matches any parameters, a call string
    exactly those), default every elementwise one; vector activations (softmax, glu) only when
    named. ``include``/``exclude``: module-name patterns (fnmatch; a pattern also covers what is
    below it). ``inplace=False`` works on a deep copy. ``functional=True`` also rewrites
    activation calls in ``forward`` by tracing with torch.fx and returns a GraphModule; a
    forward torch.fx cannot trace (transformers' models, data-dependent control flow) has its
    calls replaced at call time instead (the model stays itself; its ``forward`` runs under a
    TorchFunctionMode that routes the chosen calls to new modules registered on their owners),
    found by one forward on ``example_inputs`` (a tensor, a tuple, or a dict of keyword inputs;
    transformers' ``dummy_inputs`` by default); without inputs that forward is reported, with a
    warning, and only the modules are swapped. Functional calls are replaced by default only
    where they follow a learned layer (the output of a module with weights, or of
    ``F.linear``/``conv``/``matmul`` with a parameter, through shape operations, bias additions,
    dropout and other activations): the activations of MLPs and convolutions. Every other
    candidate (an attention-bias sigmoid, a gate, a softmax) is listed in the report and swapped
    only when ``include=`` names the site itself (``"blocks.0.attn.sigmoid"``,
    ``"*.sigmoid"``). ``"prelu(num_parameters='channels')"`` makes one slope per channel
    (dimension 1, as torch.nn.PReLU), sized from ``example_inputs`` (required then).

    Each new module gets the device and dtype of what it replaces (or of the tensors flowing
    there) and the train/eval mode of the model. Returns ``SwapResult(model, report)``.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"swap() needs a torch.nn.Module, got {type(model).__name__}")
    plan, explicit = _plan(to, replace)
    inc, exc = as_patterns(include, "include"), as_patterns(exclude, "exclude")
    if not isinstance(functional, bool):
        raise TypeError(f"functional must be True or False, got {functional!r}")
    inputs = _as_inputs(example_inputs)
    if inputs is None and any(t.per_channel for _, t in plan):
        raise ValueError(
            f"swap: num_parameters={CHANNELS!r} sizes each new module from the traced shapes; "
            "pass example_inputs=(x,) with inputs the model accepts"
        )
    _refuse_distributed(model, plan, functional)
    if functional and any(t.module_class is not None and t.module_class.__name__ == "TorchNamed" for _, t in plan):
        raise ValueError("swap: actlab.nn.TorchNamed maps modules to their same-named classes; calls have none")
    target_model = model if inplace else copy.deepcopy(model)

    def selected(name: str) -> bool:
        return (inc is None or matches(name, inc)) and not (exc is not None and matches(name, exc))

    def named(name: str) -> bool:  # include= names this call site itself (not only a module above it)
        return inc is not None and any(fnmatch.fnmatchcase(name, p) for p in inc)

    replaced: list[Replacement] = []
    not_replaced: list[NotReplaced] = []
    sites = _module_sites_all_paths(target_model)
    inputs_seen = _record_inputs(target_model, [s.module for s in sites], inputs) if inputs is not None else {}
    new_for: dict[int, torch.nn.Module] = {}  # a module registered twice is replaced by one module
    result_model = target_model
    for site in sites:
        if not selected(site.name):
            continue
        if not site.elementwise and not explicit:
            not_replaced.append(
                NotReplaced(site.name, "module", site.label, "a vector activation: name it in replace= to swap it")
            )
            continue
        target = _choose(plan, site.key, site.activation)
        if target is None:
            continue
        new = new_for.get(id(site.module))
        if new is None:
            channels = None
            like, shapes = inputs_seen.get(id(site.module), (_first_tensor(target_model), set()))
            if target.per_channel:
                channels, why = _channels(shapes)
                if channels is None:
                    not_replaced.append(NotReplaced(site.name, "module", site.label, f"cannot size per channel: {why}"))
                    continue
            new = target.build(channels, site.module)
            if new is None:
                not_replaced.append(NotReplaced(site.name, "module", site.label, "actlab.nn has no class of its name"))
                continue
            _place(new, site.module, like, site.module.training)
            new_for[id(site.module)] = new
        if site.name:
            _set_submodule(target_model, site.name, new)
        else:
            result_model = new  # the model is itself an activation
        replaced.append(Replacement(site.name, "module", site.label, _label(new)))
    functional_found = False
    if functional and result_model is target_model:
        result_model, functional_found = _swap_calls(
            target_model, plan, explicit, selected, named, inputs, replaced, not_replaced
        )
    if not replaced and not not_replaced and not sites and not functional_found:
        hint = "" if functional else "; if forward calls F.relu/torch.tanh/x.sigmoid() directly, pass functional=True"
        raise ValueError(f"swap: {type(model).__name__} has no activation modules to replace{hint}")
    return SwapResult(result_model, SwapReport(tuple(replaced), tuple(not_replaced)))


def _refuse_distributed(model: torch.nn.Module, plan: list[tuple[_Selector | None, _Target]], functional: bool) -> None:
    """DistributedDataParallel registers the parameters it keeps in sync when it is built: a swap
    inside it that adds parameters (prelu) would leave them unsynchronised (each rank trains its
    own copy and they drift apart silently), and a functional swap would replace the wrapper."""
    ddp = torch.nn.parallel.DistributedDataParallel
    wrapped = next((name for name, m in model.named_modules() if isinstance(m, ddp)), None)
    if wrapped is None:
        return
    where = "the model" if not wrapped else f"{wrapped!r}"
    adds = [t.label() for _, t in plan if t.adds_parameters]
    if adds:
        why = f"{', '.join(adds)} adds parameters that DistributedDataParallel would not synchronise"
    elif functional:
        why = "functional=True rebuilds the model and would drop the DistributedDataParallel wrapper"
    else:
        return  # parameter-free modules inside the wrapper: nothing to synchronise
    raise ValueError(
        f"swap: {where} is wrapped in DistributedDataParallel and {why}; swap before wrapping: "
        "model, report = actlab.swap(model, ...), then DistributedDataParallel(model, ...) "
        "(for a wrapped model, swap ddp.module and wrap it again)"
    )


def _label(module: torch.nn.Module) -> str:
    inner = getattr(module, "actlab_activation", None)
    if isinstance(inner, BoundActivation):
        return repr(inner)
    extra = module.extra_repr()
    return f"{type(module).__name__}({extra})"


def _module_sites_all_paths(model: torch.nn.Module) -> list[Site]:
    """Activation modules at every path they are registered under (a shared one at each)."""
    sites = []
    for name, module in model.named_modules(remove_duplicate=False):
        found = recognise_module(module)
        if found is not None:
            sites.append(Site(name, module, *found))
    return sites


def _owner(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack")
    return next(reversed(stack)) if stack else ""


def _swap_calls(
    model: torch.nn.Module,
    plan: list[tuple[_Selector | None, _Target]],
    explicit: bool,
    selected: Any,
    named: Any,
    inputs: _Inputs | None,
    replaced: list[Replacement],
    not_replaced: list[NotReplaced],
) -> tuple[torch.nn.Module, bool]:
    """Trace ``model`` and turn its activation calls into modules; (model, found any call).

    Where torch.fx cannot trace the forward, the calls are replaced at call time instead
    (:class:`_CallSwap`), found by running the model once on ``inputs`` (or the model's own
    ``dummy_inputs``, as transformers' models have)."""
    try:
        gm = trace(model)
    except Exception as err:  # fx raises TraceError, TypeError, NotImplementedError, ...
        inputs = inputs if inputs is not None else _dummy_inputs(model)
        if inputs is not None:
            return _swap_calls_at_call_time(model, plan, explicit, selected, named, inputs, replaced, not_replaced)
        reason = (
            f"torch.fx cannot trace {type(model).__name__}.forward ({type(err).__name__}: {err}); "
            "activation calls in forward were not replaced (activation modules were). Data-dependent "
            "control flow is the usual cause: pass example_inputs= (inputs the model accepts) to replace "
            "the calls at call time instead, move the activations into modules, or wrap the untraceable "
            "part with torch.fx.wrap"
        )
        warnings.warn(reason, stacklevel=3)
        not_replaced.append(NotReplaced(type(model).__name__, "forward", "", reason))
        return model, False
    graph = gm.graph
    calls = []
    for node in graph.nodes:
        entry = None
        if node.op == "call_function":
            entry = recognise_function(node.target)
        elif node.op == "call_method":
            entry = recognise_function(node.target, method=True)
        if entry is not None:
            calls.append((node, entry))
    if not calls:
        return model, False
    needs_shapes = any(t.per_channel for _, t in plan)
    if needs_shapes:
        from torch.fx.passes.shape_prop import ShapeProp

        flags = {m: m.training for m in gm.modules()}
        try:
            gm.eval()
            with torch.no_grad():
                if not inputs.kwargs:  # ShapeProp takes positional inputs only
                    ShapeProp(gm).propagate(*inputs.args)
        finally:
            for m, flag in flags.items():
                m.training = flag
    order = {node: i for i, node in enumerate(graph.nodes)}
    counts: dict[str, int] = {}
    like = _first_tensor(model)
    after_layer = _after_learned_layer_fx(gm)
    for node, entry in calls:
        owner = _owner(node)
        short = entry.name.rsplit(".", 1)[-1].rstrip("_")
        base = f"{owner}.{short}" if owner else short
        k = counts.get(base, 0)
        counts[base] = k + 1
        name = base if k == 0 else f"{base}#{k}"
        if not selected(name):
            continue
        source = f"{entry.name}(...)"
        try:
            params = bind_call(entry, node.target, node.args, node.kwargs) if node.op == "call_function" else {}
            if node.op == "call_method" and (len(node.args) > 1 or node.kwargs):
                raise ValueError("a tensor method called with arguments")
            act = BoundActivation(entry.spec, params)
        except (TypeError, ValueError) as err:
            not_replaced.append(NotReplaced(name, "function", source, f"cannot read its parameters: {err}"))
            continue
        target = _choose_for_call(plan, name, act, explicit, not_replaced)
        if target is None:
            continue
        x = node.args[0]
        if not isinstance(x, torch.fx.Node):
            not_replaced.append(NotReplaced(name, "function", repr(act), "its input is not a traced tensor"))
            continue
        inplace = node.op == "call_function" and call_inplace(entry, node.target, node.args, node.kwargs)
        if (inplace or entry.inplace) and any(u is not node and order[u] > order[node] for u in x.users):
            reason = "an in-place call whose input is used again afterwards (a module would not change it)"
            not_replaced.append(NotReplaced(name, "function", repr(act), reason))
            continue
        if x not in after_layer and not named(name):
            not_replaced.append(NotReplaced(name, "function", repr(act), _NOT_AFTER_LAYER.format(name=name)))
            continue
        channels = None
        meta = x.meta.get("tensor_meta")
        if target.per_channel:
            shape = tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None
            channels, why = _channels({shape} if shape is not None else set())
            if channels is None:
                not_replaced.append(NotReplaced(name, "function", repr(act), f"cannot size per channel: {why}"))
                continue
        new = target.build(channels)
        flowing = like
        if meta is not None and hasattr(meta, "dtype"):
            flowing = torch.empty(0, dtype=meta.dtype, device=like.device if like is not None else "cpu")
        _place(new, None, flowing, model.training)
        attr = _free_name(gm, f"swapped_{base.replace('.', '_').replace('#', '_')}")
        gm.add_submodule(attr, new)
        with graph.inserting_after(node):
            call = graph.call_module(attr, (x,))
        call.meta = dict(node.meta)
        if node in after_layer:
            after_layer.add(call)  # the next call reads the new module's output
        node.replace_all_uses_with(call)
        graph.erase_node(node)
        replaced.append(Replacement(name, "function", repr(act), _label(new)))
    graph.lint()
    gm.recompile()
    return gm, True


def _free_name(gm: torch.nn.Module, base: str) -> str:
    name, i = base, 1
    while hasattr(gm, name):
        name, i = f"{base}_{i}", i + 1
    return name


# ----------------------------------------------------------------------------- which calls follow a layer
_NOT_AFTER_LAYER = (
    "does not follow a learned layer (an attention bias, a gate or a normaliser rather than a layer's "
    "activation): name it in include= to swap it, e.g. include=[{name!r}]"
)


def _op_name(target: Any) -> str:
    """A torch function, Tensor method or operator, by a plain name: ``__getitem__`` -> getitem."""
    name = target if isinstance(target, str) else getattr(target, "__name__", "")
    return name.strip("_").replace("_", "").lower()


# Operations whose output is a learned layer's output when a parameter is among their arguments.
_LAYER_OPS = frozenset(
    "linear bilinear conv1d conv2d conv3d convtranspose1d convtranspose2d convtranspose3d addmm matmul rmatmul mm "
    "bmm baddbmm einsum layernorm batchnorm groupnorm instancenorm rmsnorm".split()
)
# Operations that keep a layer's output a layer's output: shape changes that keep its layout, bias
# and residual additions, scaling, casts, dropout. Indexing with a tensor (a gather, as a
# relative-position bias table lookup) does not.
_PASS_OPS = frozenset(
    "view viewas reshape flatten unflatten permute transpose t contiguous chunk split tensorsplit unbind narrow "
    "getitem to float half bfloat16 double typeas add radd iadd sub rsub isub mul rmul imul div truediv "
    "squeeze unsqueeze dropout dropout1d dropout2d dropout3d alphadropout clone pad movedim expand expandas".split()
)


def _is_activation_module(m: torch.nn.Module) -> bool:
    return type(m).__module__.startswith("actlab.") or recognise_module(m) is not None


def _is_learned_layer(m: torch.nn.Module) -> bool:
    """A module with weights of its own (Linear, Conv, transformers' Conv1D, norms), also where a
    parametrization (weight_norm, spectral_norm) holds them."""
    own = any(p is not None for p in m._parameters.values()) or "parametrizations" in m._modules
    return own and not _is_activation_module(m)


def _has_tensor_index(value: Any) -> bool:
    if isinstance(value, (torch.Tensor, torch.fx.Node)):
        return True
    return isinstance(value, (tuple, list)) and any(_has_tensor_index(v) for v in value)


def _after_learned_layer_fx(gm: torch.fx.GraphModule) -> set[torch.fx.Node]:
    """The graph's nodes whose value is a learned layer's output (see :data:`_PASS_OPS`)."""
    params = dict(gm.named_parameters())
    out: set[torch.fx.Node] = set()
    for node in gm.graph.nodes:
        args = [a for a in node.all_input_nodes]
        if node.op == "call_module":
            m = gm.get_submodule(node.target)
            if _is_activation_module(m):
                learned = bool(args) and args[0] in out
            else:
                learned = _is_learned_layer(m)
        elif node.op in ("call_function", "call_method"):
            name = _op_name(node.target)
            entry = recognise_function(node.target, method=node.op == "call_method")
            if entry is not None:
                learned = bool(node.args) and node.args[0] in out
            elif name in _LAYER_OPS:
                learned = any(a.op == "get_attr" and a.target in params for a in args)
            elif name == "getitem" and len(node.args) > 1 and _has_tensor_index(node.args[1]):
                learned = False
            else:
                learned = name in _PASS_OPS and any(a in out for a in args)
        else:
            learned = False
        if learned:
            out.add(node)
    return out


# ----------------------------------------------------------------------------- call-time swap
class _Tags:
    """Tensors that are a learned layer's output, by identity (a weak reference per tensor)."""

    def __init__(self) -> None:
        self._refs: dict[int, weakref.ref] = {}

    def add(self, value: Any) -> None:
        for t in _tensors(value):
            self._refs[id(t)] = weakref.ref(t)

    def __contains__(self, t: Any) -> bool:
        ref = self._refs.get(id(t))
        return ref is not None and ref() is t


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


@dataclass
class _FoundCall:
    name: str
    owner: str
    entry: Any
    activation: BoundActivation | None
    error: str  # why its parameters cannot be read ("" when they can)
    inplace: bool
    after_layer: bool
    like: torch.Tensor
    shapes: set[tuple[int, ...]]


class _OwnerStack:
    """The qualified name of the module whose forward is running, from global module hooks that
    live only while the root's forward runs. Inside an activation module nothing is a call site."""

    INSIDE = object()

    def __init__(self, root: torch.nn.Module, activation_names: set[str]):
        self.names = {id(m): n for n, m in root.named_modules()}
        self.activation_ids = {id(m) for n, m in root.named_modules() if n in activation_names}
        self.stack: list[Any] = [""]
        self.counts: dict[str, int] = {}

    def push(self, module: torch.nn.Module) -> None:
        top = self.stack[-1]
        if top is self.INSIDE or id(module) in self.activation_ids:
            self.stack.append(self.INSIDE)
        else:
            self.stack.append(self.names.get(id(module), top))

    def pop(self) -> None:
        if len(self.stack) > 1:
            self.stack.pop()

    def site(self, entry: Any) -> str | None:
        """The next call site's name (``owner.sigmoid``, ``owner.sigmoid#1``), None inside an activation."""
        owner = self.stack[-1]
        if owner is self.INSIDE:
            return None
        short = entry.name.rsplit(".", 1)[-1].rstrip("_")
        base = f"{owner}.{short}" if owner else short
        k = self.counts.get(base, 0)
        self.counts[base] = k + 1
        return base if k == 0 else f"{base}#{k}"


class _Discover(torch.overrides.TorchFunctionMode):
    """Records every activation call of one forward, and whether its input follows a learned layer."""

    def __init__(self, owners: _OwnerStack, tags: _Tags):
        super().__init__()
        self.owners, self.tags, self.found = owners, tags, []

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        entry = recognise_callable(func)
        x = args[0] if args else None
        if entry is not None:
            name = self.owners.site(entry)
            if name is not None and isinstance(x, torch.Tensor):
                self._record(name, entry, func, args, kwargs)
            if x in self.tags:
                self.tags.add(out)
            return out
        op = _op_name(func)
        if op in _LAYER_OPS:
            flat = list(args) + list(kwargs.values())
            if any(isinstance(a, torch.nn.Parameter) for a in flat):
                self.tags.add(out)
        elif op == "getitem" and len(args) > 1 and _has_tensor_index(args[1]):
            pass
        elif op in _PASS_OPS and any(t in self.tags for a in args for t in _tensors(a)):
            self.tags.add(out)
        return out

    def _record(self, name: str, entry: Any, func: Any, args: tuple, kwargs: dict) -> None:
        x = args[0]
        error, act = "", None
        try:
            method = entry.name.startswith("Tensor.")
            if method and (len(args) > 1 or kwargs):
                raise ValueError("a tensor method called with arguments")
            act = BoundActivation(entry.spec, {} if method else bind_call(entry, func, args, kwargs))
        except (TypeError, ValueError) as err:
            error = str(err)
        inplace = entry.inplace or (not entry.name.startswith("Tensor.") and call_inplace(entry, func, args, kwargs))
        like = torch.empty(0, dtype=x.dtype, device=x.device)
        prior = next((f for f in self.found if f.name == name), None)
        if prior is not None:
            prior.shapes.add(tuple(x.shape))
            return
        self.found.append(
            _FoundCall(name, self.owners.stack[-1], entry, act, error, inplace, x in self.tags, like, {tuple(x.shape)})
        )


def _discover_calls(model: torch.nn.Module, inputs: _Inputs) -> list[_FoundCall]:
    from torch.nn.modules import module as module_hooks

    activation_names = {n for n, m in model.named_modules() if _is_activation_module(m)}
    owners, tags = _OwnerStack(model, activation_names), _Tags()

    def pre(module: torch.nn.Module, args: Any) -> None:
        owners.push(module)

    def post(module: torch.nn.Module, args: Any, output: Any) -> None:
        owners.pop()
        if _is_learned_layer(module) or (args and isinstance(args[0], torch.Tensor) and args[0] in tags):
            tags.add(output)

    mode = _Discover(owners, tags)
    handles = [module_hooks.register_module_forward_pre_hook(pre)]
    handles.append(module_hooks.register_module_forward_hook(post, always_call=True))
    try:
        with mode:
            _run_eval(model, inputs)
    finally:
        for h in handles:
            h.remove()
    return mode.found


class _CallSwap:
    """Installed as the model's ``forward`` by a call-time swap: runs the class's forward with the
    chosen activation calls (by site name) going to the new modules registered on their owners.

    Entered inside ``forward`` (after every forward pre-hook), so a ``watch`` opened later sees
    the new modules, not the replaced calls. A plain picklable object reached only through the
    model's ``forward`` attribute: deepcopy, torch.save and ``state_dict`` (new modules without
    parameters add no keys) work as for the original model."""

    def __init__(self, root: torch.nn.Module, routes: dict[str, tuple[str, str]]):
        self.root = root
        self.routes = routes  # site name -> (owner module name, attribute of the new module)
        self.activation_names = {n for n, m in root.named_modules() if _is_activation_module(m)}
        self.activation_names |= {f"{o}.{a}" if o else a for o, a in routes.values()}
        self._depth = 0

    def __getstate__(self) -> dict:
        return {"root": self.root, "routes": self.routes, "activation_names": self.activation_names}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._depth = 0

    @property
    def __signature__(self) -> Any:  # what callers inspecting model.forward (transformers) expect
        import inspect

        return inspect.signature(type(self.root).forward.__get__(self.root))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        forward = type(self.root).forward
        if self._depth:  # the model calls itself: one scope
            return forward(self.root, *args, **kwargs)
        from torch.nn.modules import module as module_hooks

        owners = _OwnerStack(self.root, self.activation_names)

        def pre(m: torch.nn.Module, a: Any) -> None:
            owners.push(m)

        def post(m: torch.nn.Module, a: Any, o: Any) -> None:
            owners.pop()

        handles = [module_hooks.register_module_forward_pre_hook(pre)]
        handles.append(module_hooks.register_module_forward_hook(post, always_call=True))
        self._depth += 1
        try:
            with _RouteCalls(self, owners):
                return forward(self.root, *args, **kwargs)
        finally:
            self._depth -= 1
            for h in handles:
                h.remove()

    def module_for(self, site: str) -> torch.nn.Module | None:
        route = self.routes.get(site)
        if route is None:
            return None
        owner, attr = route
        return getattr(self.root.get_submodule(owner) if owner else self.root, attr)


class _RouteCalls(torch.overrides.TorchFunctionMode):
    def __init__(self, swap: _CallSwap, owners: _OwnerStack):
        super().__init__()
        self.swap, self.owners = swap, owners

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        entry = recognise_callable(func)
        if entry is not None and args and isinstance(args[0], torch.Tensor):
            name = self.owners.site(entry)
            new = None if name is None else self.swap.module_for(name)
            if new is not None:
                return new(args[0])
        return func(*args, **kwargs)


def _swap_calls_at_call_time(
    model: torch.nn.Module,
    plan: list[tuple[_Selector | None, _Target]],
    explicit: bool,
    selected: Any,
    named: Any,
    inputs: _Inputs,
    replaced: list[Replacement],
    not_replaced: list[NotReplaced],
) -> tuple[torch.nn.Module, bool]:
    """Replace the activation calls of a forward fx cannot trace, at call time (see :class:`_CallSwap`)."""
    router = model.__dict__.get("forward")
    router = router if isinstance(router, _CallSwap) else None
    try:
        if router is not None:  # swapped at call time before: discover the original calls and names
            del model.__dict__["forward"]
        try:
            found = _discover_calls(model, inputs)
        finally:
            if router is not None:
                model.forward = router
    except Exception as err:  # noqa: BLE001 - the user's model on the user's inputs
        reason = (
            f"{type(model).__name__} did not run on the example inputs ({type(err).__name__}: {err}); "
            "activation calls in forward were not replaced (activation modules were): pass example_inputs= "
            "the model accepts (a tensor, a tuple, or a dict of keyword inputs)"
        )
        warnings.warn(reason, stacklevel=4)
        not_replaced.append(NotReplaced(type(model).__name__, "forward", "", reason))
        return model, False
    routes: dict[str, tuple[str, str]] = {}
    for call in found:
        name = call.name
        if not selected(name) or (router is not None and name in router.routes):
            continue  # an earlier swap's new module is a module site now (swapped above if chosen)
        source = f"{call.entry.name}(...)"
        if call.activation is None:
            not_replaced.append(NotReplaced(name, "function", source, f"cannot read its parameters: {call.error}"))
            continue
        act = call.activation
        target = _choose_for_call(plan, name, act, explicit, not_replaced)
        if target is None:
            continue
        if call.inplace:
            reason = "an in-place call (replaced only where torch.fx can trace the forward)"
            not_replaced.append(NotReplaced(name, "function", repr(act), reason))
            continue
        if not call.after_layer and not named(name):
            not_replaced.append(NotReplaced(name, "function", repr(act), _NOT_AFTER_LAYER.format(name=name)))
            continue
        channels = None
        if target.per_channel:
            channels, why = _channels(call.shapes)
            if channels is None:
                not_replaced.append(NotReplaced(name, "function", repr(act), f"cannot size per channel: {why}"))
                continue
        owner = model.get_submodule(call.owner) if call.owner else model
        new = target.build(channels)
        _place(new, None, call.like, owner.training)
        short = name.rsplit(".", 1)[-1].replace("#", "_")
        attr = _free_name(owner, f"swapped_{short}")
        owner.add_module(attr, new)
        routes[name] = (call.owner, attr)
        replaced.append(Replacement(name, "function", repr(act), _label(new)))
    if routes:
        if router is not None:  # one router with all routes
            router.routes.update(routes)
            router.activation_names |= _CallSwap(model, routes).activation_names
        else:
            model.forward = _CallSwap(model, routes)
    return model, bool(found)
