"""Functional forms of every registered activation: ``functional.gelu(x, approximate="tanh")``.

Functions are generated from the registry on first access. Every custom Function has a ``jvp``
(forward-mode AD: torch.func.jvp, jacfwd, hessian, torch.autograd.forward_ad) from the spec's
derivative or ``jvp``, and a twin without it that torch.compile traces. Normalisers take a
``where=`` boolean mask and a tuple of axes (:func:`actlab.catalog.vector.over_axes`). Each runs PyTorch's native kernel
where the spec says it is accurate (``spec.native``), and otherwise actlab's implementation:
on CPU float32/bfloat16/float16 the fused kernels (:mod:`actlab.torch.kernels`, :mod:`actlab.torch.rows`),
elsewhere a custom autograd Function whose backward uses the spec's analytic derivative and keeps
only the input, or only the output when the derivative is a function of the output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.autograd import forward_ad

from actlab import registry
from actlab.catalog import Spec
from actlab.catalog.vector import over_axes
from actlab.ops.torch_ops import TORCH
from actlab.registry import _bind_positional, all_specs, get_spec
from actlab.torch import export, kernels, rows

__all__ = ["apply", "autograd_function", "bound_call", "function_for"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def input_gradient(spec: Spec, x: torch.Tensor, grad: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """grad * f'(x) by the spec's eager derivative (torch ops, so differentiable); half precision in
    float32, rounded once."""
    if x.dtype in _LOW_PRECISION:
        return (grad.float() * spec.derivative(x.float(), TORCH, **params)).to(x.dtype)
    return grad * spec.derivative(x, TORCH, **params)


def _check_input(spec: Spec, x: Any) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{spec.name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{spec.name}: needs a floating-point tensor, got dtype {x.dtype} (convert with x.float() first)"
        )


def _compute(fn: Callable[..., Any], x: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """Half and bfloat16 are computed in float32 and rounded once: within 1 step of the correctly
    rounded value (actlab.verify.low_precision)."""
    if x.dtype in _LOW_PRECISION:
        return fn(x.float(), TORCH, **params).to(x.dtype)
    return fn(x, TORCH, **params)


# Built outside torch.compile's tracing (Dynamo cannot trace a class definition): by
# ``function_for`` and ``actlab.nn.Activation`` at construction, or by the first eager call.
_FUNCTION_CLASSES: dict[str, type] = {}
# The fused kernel's name by spec name, or None (read while tracing: a plain dict of strings).
_FUSED: dict[str, str | None] = {}
# The same Function without ``jvp`` (Dynamo cannot trace one that defines it), used while tracing.
_TRACED_CLASSES: dict[str, type] = {}


def autograd_function(spec: Spec) -> type:
    """The custom autograd Function for ``spec`` (one class per spec, cached by name)."""
    cls = _FUNCTION_CLASSES.get(spec.name)
    # A re-registered spec gets a new class; the identity check is skipped while tracing.
    if cls is None or (not torch.compiler.is_compiling() and cls.spec is not spec):
        cls = _FUNCTION_CLASSES[spec.name] = _make_autograd_function(spec)
        _TRACED_CLASSES[spec.name] = cls.traced
    return cls


def _make_autograd_function(spec: Spec) -> type:
    # The Function's methods close over plain functions and tuples only: torch.compile traces
    # them and cannot wrap a Spec object.
    names = spec.param_names
    forward_fn = spec.forward
    elementwise = spec.kind == "elementwise"
    # The fused kernel's name where this spec has one (the library is built here, outside tracing).
    fused = kernels.kernel_name(spec) if elementwise else None
    if rows.has_kernel(spec.name):
        kernels.build()  # now, outside any torch.compile trace (rows.takes needs it loaded)
    encoders = kernels.param_encoder(spec)

    if spec.kind == "elementwise":
        keep_output = spec.derivative_from_output is not None
        derivative_fn = spec.derivative_from_output if keep_output else spec.derivative
        input_derivative = spec.derivative

        def grad_input(
            saved: torch.Tensor, grad: torch.Tensor, params: dict[str, Any], kept_input: bool
        ) -> torch.Tensor:
            if kept_input and fused is not None and kernels.eligible(saved) and not torch.is_grad_enabled():
                # the fused backward: g * f'(x) in one pass (double backward takes the eager path,
                # whose ops record a graph)
                return torch.ops.actlab_kernels.backward(saved, grad, fused, encoders(params.values()))
            if saved.dtype in _LOW_PRECISION:
                # grad * f'(x) in float32, rounded once: f' rounded to half first rounds twice and
                # overflows or underflows where the product does not.
                return (grad.float() * input_derivative(saved.float(), TORCH, **params)).to(saved.dtype)
            if kept_input:  # (the fused path's double backward, or a spec without derivative_from_output)
                return grad * _compute(input_derivative, saved, params)
            return grad * _compute(derivative_fn, saved, params)

        # The Jacobian is diagonal: the tangent is scaled by f'(x) exactly as the cotangent is.
        def tangent_output(
            saved: tuple, tangent: torch.Tensor, params: dict[str, Any], kept_input: bool
        ) -> torch.Tensor:
            return grad_input(saved[0], tangent, params, kept_input)

    else:
        keep_output = spec.saves == "output"
        vjp_fn = spec.vjp

        def grad_input(
            saved: torch.Tensor, grad: torch.Tensor, params: dict[str, Any], kept_input: bool
        ) -> torch.Tensor:
            low = saved.dtype in _LOW_PRECISION
            work, g = (saved.float(), grad.float()) if low else (saved, grad)
            if low and keep_output:  # the input was kept (setup_context): y recomputed in float32
                x, y = None, forward_fn(work, TORCH, **params)
            else:
                x, y = (None, work) if keep_output else (work, None)
            gx = vjp_fn(x, y, g, TORCH, **params)
            return gx.to(saved.dtype) if low else gx

        jvp_fn = spec.jvp

        def tangent_output(
            saved: tuple, tangent: torch.Tensor, params: dict[str, Any], kept_input: bool
        ) -> torch.Tensor:
            # Forward mode gets both the input and the output (held only while the jvp runs):
            # log_softmax's tangent needs softmax(x), which exp(y) gives only to |y| ulps.
            if jvp_fn is None:
                raise NotImplementedError(f"{spec.name}: the spec has no jvp (forward-mode AD)")
            x, y = saved
            low = x.dtype in _LOW_PRECISION
            if low:  # y recomputed in float32: the half output has lost the digits the jvp needs
                x, tangent = x.float(), tangent.float()
                y = forward_fn(x, TORCH, **params)
            out = jvp_fn(x, y, tangent, TORCH, **params)
            return out.to(saved[0].dtype) if low else out

    def _keeps_input(x: torch.Tensor) -> bool:
        return not keep_output or x.dtype in _LOW_PRECISION or (fused is not None and kernels.eligible(x))

    class TracedFunction(torch.autograd.Function):
        """Forward and backward only: what torch.compile traces (Dynamo refuses a Function that
        defines ``jvp``; forward-mode AD does not run under it)."""

        generate_vmap_rule = True

        @staticmethod
        def forward(x: torch.Tensor, *values: Any) -> torch.Tensor:
            if fused is not None and kernels.eligible(x):
                return torch.ops.actlab_kernels.forward(x, fused, encoders(values))
            out = _compute(forward_fn, x, dict(zip(names, values)))
            # The input itself (linear) leaves as a copy: autograd refuses an input returned as-is
            # (and a view would need a view-returning jvp).
            return out.clone() if out is x else out

        @staticmethod
        def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
            x, *values = inputs
            ctx.values = values
            # Half precision keeps the input: f' or a vjp from an output rounded to 8 or 11 bits has
            # lost its digits (sigmoid' = y (1 - y) near 1, softmax's y (g - sum g y)). The fused
            # backward takes the input too.
            ctx.kept_input = _keeps_input(x)
            ctx.save_for_backward(x if ctx.kept_input else output)

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> tuple:
            (saved,) = ctx.saved_tensors
            params = dict(zip(names, ctx.values))
            return (grad_input(saved, grad, params, ctx.kept_input), *([None] * len(ctx.values)))

    class SpecFunction(TracedFunction):
        """The eager Function: also forward-mode AD (torch.func.jvp, jacfwd, hessian, forward_ad)."""

        @staticmethod
        def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
            x, *values = inputs
            ctx.values = values
            # Half precision keeps the input, as TracedFunction does (an output rounded to half has lost
            # the digits f' needs).
            ctx.kept_input = _keeps_input(x)
            saved = x if ctx.kept_input else output
            ctx.save_for_backward(saved)
            # for the jvp (PyTorch drops these after forward unless forward-mode AD is running)
            if elementwise:
                ctx.save_for_forward(saved)
            else:
                ctx.save_for_forward(x, output)

        @staticmethod
        def jvp(ctx: Any, tangent: torch.Tensor, *value_tangents: Any) -> torch.Tensor:
            # Parameters reach the Function as validated Python numbers (never tensors), so the
            # input is its only differentiable argument; learnable forms are plain torch ops.
            return tangent_output(ctx.saved_tensors, tangent, dict(zip(names, ctx.values)), ctx.kept_input)

    for cls, suffix in ((TracedFunction, "traced_function"), (SpecFunction, "function")):
        cls.__name__ = cls.__qualname__ = f"{spec.name}_{suffix}"
        cls.spec = spec
    _FUSED[spec.name] = fused
    SpecFunction.traced = TracedFunction
    return SpecFunction


def _function(spec: Spec) -> Any:
    """The Function's ``apply`` for this call: the traced variant while torch.compile traces."""
    if export.exporting():  # torch.export, ONNX, jit.trace: plain ATen ops (actlab.torch.export)
        return export.plain_call(spec)
    if torch.compiler.is_compiling():
        if spec.name not in _TRACED_CLASSES:  # normally built at construction or by an eager call
            autograd_function(spec)
        traced = _TRACED_CLASSES[spec.name].apply
        forward_fn, names = spec.forward, spec.param_names
        fused = _FUSED.get(spec.name)
        encoders = kernels.param_encoder(spec)

        def call(x: torch.Tensor, *values: Any) -> torch.Tensor:
            # Without a gradient to record the forward is plain ops (Dynamo mis-traces a Function
            # whose inputs do not require grad, and there is nothing to save).
            if torch.is_grad_enabled() and x.requires_grad:
                return traced(x, *values)
            if fused is not None and kernels.eligible(x):
                return torch.ops.actlab_kernels.forward(x, fused, encoders(values))
            return _compute(forward_fn, x, dict(zip(names, values)))

        return call
    return _eager_call(spec)


# Per spec: the eager call (see _eager_call), rebuilt when the spec's Function is.
_EAGER_CALLS: dict[str, Callable[..., torch.Tensor]] = {}


def _eager_call(spec: Spec) -> Callable[..., torch.Tensor]:
    """The eager call of ``spec``'s Function without per-call overhead: the fused forward alone where
    nothing needs a graph, and the Function's C++ ``apply`` otherwise (``Function.apply`` itself binds
    the arguments with ``inspect.signature`` on every call, ~20 us; it stays for functorch transforms)."""
    cls = autograd_function(spec)
    call = _EAGER_CALLS.get(spec.name)
    if call is not None and call.function is cls:
        return call
    fused = _FUSED.get(spec.name)
    encode = kernels.param_encoder(spec)
    base_apply = super(torch.autograd.Function, cls).apply  # torch._C._FunctionBase.apply
    public_apply = cls.apply
    forward_op = torch.ops.actlab_kernels.forward.default if fused is not None else None
    # the fused forward with its backward in C++ (actlab_kernels::apply)
    train_op = torch.ops.actlab_kernels.apply.default if fused is not None else None

    def call(x: torch.Tensor, *values: Any) -> torch.Tensor:
        if torch._C._are_functorch_transforms_active():
            return public_apply(x, *values)
        if forward_op is not None and kernels.eligible(x) and forward_ad._current_level < 0:  # no dual tensors
            if x.requires_grad and torch.is_grad_enabled():
                return train_op(x, fused, encode(values))
            return forward_op(x, fused, encode(values))
        return base_apply(x, *values)

    call.function = cls
    _EAGER_CALLS[spec.name] = call
    return call


def _unwrapped(op: Any) -> Callable[..., Any]:
    return getattr(op, "_op", op)


def bound_call(spec: Spec, params: dict[str, Any]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x -> apply(spec, x, params)`` for already-validated ``params``, with everything that does not
    depend on ``x`` done once, here: the parameter values and their kernel encoding, the Function, the
    operators. What ``actlab.nn.Activation`` and each distinct functional call run per tensor.

    Elementwise deterministic specs get the prebuilt closure; the others (normalisers, stochastic
    ones) call :func:`apply`, except the row kernels (:func:`actlab.torch.rows.bound_call`). While
    torch.compile traces, the closure calls :func:`apply` too."""
    if rows.has_kernel(spec.name):  # the row kernels: actlab_kernels::row_apply, its backward in C++
        return rows.bound_call(spec, params, lambda x: apply(spec, x, params))
    if spec.kind != "elementwise" or spec.train_forward is not None or spec.masked is not None:
        return lambda x: apply(spec, x, params)
    values = tuple(params[n] for n in spec.param_names)
    cls = autograd_function(spec)
    fused = _FUSED.get(spec.name)
    native = spec.torch_native if spec.native else None
    # the kernel and its encoded parameters bound once in C++: the operators take (x, index)
    bound = torch.ops.actlab_kernels.bind(fused, kernels.param_encoder(spec)(values)) if fused is not None else None
    base_apply = super(torch.autograd.Function, cls).apply  # torch._C._FunctionBase.apply
    public_apply = cls.apply
    # the operators' C++ callables (OpOverload.__call__ adds a Python frame)
    forward_op = _unwrapped(torch.ops.actlab_kernels.forward.bound) if fused is not None else None
    train_op = _unwrapped(torch.ops.actlab_kernels.apply.bound) if fused is not None else None
    # module attributes read per call (kernels.use() and a failed load change them), and the
    # functions looked up once
    state = kernels.__dict__
    fused_dtypes = frozenset(kernels.DTYPES)
    low = frozenset(_LOW_PRECISION)
    tensor = torch.Tensor
    compiling = torch.compiler.is_compiling
    jit_tracing = torch._C._is_tracing  # torch.jit.trace, the TorchScript ONNX exporter
    transforms_active = torch._C._are_functorch_transforms_active
    grad_enabled = torch.is_grad_enabled

    def call(x: torch.Tensor) -> torch.Tensor:
        if compiling() or jit_tracing():  # traced: the general path (apply routes export to plain ops)
            return apply(spec, x, params)
        if not isinstance(x, tensor) or not x.is_floating_point():
            _check_input(spec, x)
        if native is not None and x.dtype not in low:
            return native(x, torch, **params)
        if transforms_active():  # vmap, grad, jvp: the Function with its vmap rule and jvp
            return public_apply(x, *values)
        if (
            fused is not None
            and (x.is_cpu or (x.is_cuda and state["_cuda_ready"]))
            and x.dtype in fused_dtypes
            and state["_enabled"]
            and state["_loaded"] is True
            and forward_ad._current_level < 0  # no dual tensors: the Function carries the jvp
        ):
            if x.requires_grad and grad_enabled():
                return train_op(x, bound)
            return forward_op(x, bound)
        return base_apply(x, *values)

    call.__name__ = call.__qualname__ = f"{spec.name}_call"
    return call


def apply(
    spec: Spec,
    x: torch.Tensor,
    params: dict[str, Any],
    *,
    training: bool = False,
    generator: Any = None,
    where: Any = None,
) -> torch.Tensor:
    """Evaluate ``spec`` with already-validated ``params`` on a tensor.

    ``where``: a boolean mask for the normalisers (``spec.masked``: softmax family, sparsemax,
    entmax), which also take a tuple of axes and 0-d and empty inputs."""
    _check_input(spec, x)
    if spec.masked is not None and spec.kind == "vector":
        if rows.takes(spec.name, x, params["axis"], where) and not export.exporting():  # the row-fused normalisers
            return rows.fused(spec.name, x, params["axis"])
        fn = _function(spec)
        names = spec.param_names

        def single(t: torch.Tensor, axis: int) -> torch.Tensor:
            return fn(t, *(axis if n == "axis" else params[n] for n in names))

        return over_axes(single, x, TORCH, params["axis"], where, spec.masked, spec.name)
    if where is not None:
        raise TypeError(f"{spec.name}: where= is accepted by the normalisers only (softmax family, sparsemax, entmax)")
    if training and spec.train_forward is not None:
        return spec.train_forward(x, torch, generator=generator, **params)
    # PyTorch's half/bfloat16 kernels are not all within 1 ulp (sigmoid's and tanh's backward use
    # the rounded output, exp's rounds grad * exp(x) twice, erf's forward): actlab's own path there.
    # (exporting: the spec's own forward, which ONNX_OPS keeps accurate; F.logsigmoid exports as Log(Sigmoid))
    if spec.native and spec.torch_native is not None and x.dtype not in _LOW_PRECISION and not export.exporting():
        return spec.torch_native(x, torch, **params)
    if spec.kind == "vector":
        params = {**params, "axis": _normalise_axis(spec, x, params["axis"])}
        pieces = params.get("pieces", 1)  # (maxout)
        if rows.takes(spec.name, x, params["axis"], None, pieces) and not export.exporting():  # gated, crelu, maxout
            return rows.fused(spec.name, x, params["axis"], pieces)
    return _function(spec)(x, *(params[n] for n in spec.param_names))


def _normalise_axis(spec: Spec, x: torch.Tensor, axis: int) -> int:
    ndim = max(x.dim(), 1)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{spec.name}: axis {axis} is out of range for a tensor of shape {tuple(x.shape)}")
    return axis % ndim


_RESOLVED_PER_FUNCTION = 256
# keywords of the call, not parameters: the in-place and memory-saving forms (not the bound fast call)
_MODE_KEYWORDS = ("inplace", "memory", "bits")
_PLAIN = (int, float, str, bool, type(None))


def _call_key(args: tuple, kwargs: dict[str, Any]) -> tuple | None:
    """A hashable key for a call's parameters, or None where a value is not a plain literal."""
    if not args and not kwargs:
        return ()
    items = [(i, type(v), v) for i, v in enumerate(args)] + [(k, type(v), v) for k, v in sorted(kwargs.items())]
    if any(t not in _PLAIN for _, t, _ in items):
        return None
    if any(t is float and v != v for _, t, v in items):  # NaN != NaN: never found, never stored
        return None
    return tuple(items)


# function_for's results by spec identity (a frozen Spec hashes all its fields: ~10 us a call).
_FUNCTIONS: dict[int, tuple[Spec, Callable[..., torch.Tensor]]] = {}


def function_for(spec: Spec) -> Callable[..., torch.Tensor]:
    """The public functional form of ``spec``: ``f(x, *params, **params)``."""
    known = _FUNCTIONS.get(id(spec))
    if known is not None and known[0] is spec:
        return known[1]
    fn = _make_function(spec)
    _FUNCTIONS[id(spec)] = (spec, fn)
    return fn


def _make_function(spec: Spec) -> Callable[..., torch.Tensor]:
    stochastic = spec.train_forward is not None
    autograd_function(spec)

    # The bound call per distinct call (the values with their exact types, so 1, 1.0 and True stay
    # apart): validating and encoding parameters costs ~10 us, the op on a small tensor a few.
    calls: dict[tuple, Callable[[torch.Tensor], torch.Tensor]] = {}
    # validated parameters per distinct call, for the calls with inplace= or memory=
    resolved: dict[tuple, dict[str, Any]] = {}
    # keywords that are not parameters: passed through to apply
    extras = ("where", "training", "generator") if stochastic else ("where",)

    def activation(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if not kwargs or not any(k in kwargs for k in extras + _MODE_KEYWORDS):
            key = _call_key(args, kwargs)
            call = calls.get(key) if key is not None else None
            if call is not None:
                return call(x)
            if key is not None and not torch.compiler.is_compiling():  # (built eagerly, traced when called)
                call = bound_call(spec, spec.resolve_params(**_bind_positional(spec, args, kwargs)))
                if len(calls) < _RESOLVED_PER_FUNCTION:
                    calls[key] = call
                return call(x)
        inplace = kwargs.pop("inplace", False)
        memory, bits = kwargs.pop("memory", "exact"), kwargs.pop("bits", None)
        extra = {k: kwargs.pop(k) for k in extras if k in kwargs}
        key = _call_key(args, kwargs)
        params = resolved.get(key) if key is not None else None
        if params is None:
            params = spec.resolve_params(**_bind_positional(spec, args, kwargs))
            if key is not None and len(resolved) < _RESOLVED_PER_FUNCTION:
                resolved[key] = params
        if inplace is not False and (memory != "exact" or bits is not None):
            raise ValueError(f"{spec.name}: inplace=True keeps the output and memory={memory!r} a code: choose one")
        if inplace is not False:  # output written into x, only it kept (actlab.torch.inplace)
            from actlab.torch import inplace as inplace_mod

            if inplace_mod.validate_flag(inplace, spec.name):
                rule = inplace_mod.check_inplace(spec, params, spec.name)  # elementwise only
                if extra.get("where") is not None:
                    raise TypeError(f"{spec.name}: where= is accepted by the normalisers only")
                return inplace_mod.apply_inplace(spec, x, params, rule)
        if memory != "exact" or bits is not None:  # actlab.torch.memory: validated once, then cached
            from actlab.torch.memory import memory_function

            call = memory_function(spec, params, memory, bits)
            if call is not None and extra.get("where") is None:
                return call(x)
        return apply(spec, x, params, **extra)

    activation.__name__ = activation.__qualname__ = spec.name
    signature = ", ".join(
        [f"{p.name}={p.default!r}" for p in spec.params]
        + (["where=None"] if spec.masked else [])
        + (["inplace=False"] if spec.kind == "elementwise" else [])
        + ["memory='exact'", "bits=None"]
    )
    activation.__doc__ = (
        f"{spec.name}(x, {signature})\n\n{spec.summary}" if signature else f"{spec.name}(x)\n\n{spec.summary}"
    )
    return activation


# Attribute lookups (``F.gelu``) by name: the spec and its function, while the name still maps to it.
_BY_ATTRIBUTE: dict[str, tuple[Spec, Callable[..., torch.Tensor]]] = {}


def __getattr__(name: str) -> Callable[..., torch.Tensor]:
    if name.startswith("__"):
        raise AttributeError(name)
    known = _BY_ATTRIBUTE.get(name)
    if known is not None and registry._BY_NAME.get(known[0].name) is known[0]:  # not re-registered since
        return known[1]
    try:
        spec = get_spec(name)
    except KeyError as err:
        raise AttributeError(str(err)) from None
    fn = function_for(spec)
    _BY_ATTRIBUTE[name] = (spec, fn)
    return fn


def __dir__() -> list[str]:
    return sorted(set(__all__) | {s.name for s in all_specs()})
