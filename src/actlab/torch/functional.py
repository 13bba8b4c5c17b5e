"""Functional forms of every registered activation: ``functional.gelu(x, approximate="tanh")``.

Functions are generated from the registry on first access. Each runs PyTorch's native kernel
where the spec says it is accurate (``spec.native``), and otherwise actlab's implementation
through a custom autograd Function whose backward uses the spec's analytic derivative and keeps
only the input, or only the output when the derivative is a function of the output.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from actlab.catalog import Spec
from actlab.ops.torch_ops import TORCH
from actlab.registry import _bind_positional, all_specs, get_spec

__all__ = ["apply", "function_for"]

_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _check_input(spec: Spec, x: Any) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{spec.name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"{spec.name}: needs a floating-point tensor, got dtype {x.dtype} (convert with x.float() first)"
        )


def _compute(fn: Callable[..., Any], x: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """Half and bfloat16 are computed in float32 and rounded once, as PyTorch's own kernels do."""
    if x.dtype in _LOW_PRECISION:
        return fn(x.float(), TORCH, **params).to(x.dtype)
    return fn(x, TORCH, **params)


@functools.cache
def _autograd_function(spec: Spec) -> type:
    names = spec.param_names

    if spec.kind == "elementwise":
        from_output = spec.derivative_from_output is not None

        class Elementwise(torch.autograd.Function):
            generate_vmap_rule = True

            @staticmethod
            def forward(x: torch.Tensor, *values: Any) -> torch.Tensor:
                return _compute(spec.forward, x, dict(zip(names, values)))

            @staticmethod
            def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
                x, *values = inputs
                ctx.values = values
                ctx.save_for_backward(output if from_output else x)

            @staticmethod
            def backward(ctx: Any, grad: torch.Tensor) -> tuple:
                (saved,) = ctx.saved_tensors
                params = dict(zip(names, ctx.values))
                fn = spec.derivative_from_output if from_output else spec.derivative
                return (grad * _compute(fn, saved, params), *([None] * len(ctx.values)))

        Elementwise.__name__ = Elementwise.__qualname__ = f"{spec.name}_function"
        return Elementwise

    saves_output = spec.saves == "output"

    class Vector(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(x: torch.Tensor, *values: Any) -> torch.Tensor:
            return _compute(spec.forward, x, dict(zip(names, values)))

        @staticmethod
        def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
            x, *values = inputs
            ctx.values = values
            ctx.save_for_backward(output if saves_output else x)

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> tuple:
            (saved,) = ctx.saved_tensors
            params = dict(zip(names, ctx.values))
            x, y = (None, saved) if saves_output else (saved, None)
            if saved.dtype in _LOW_PRECISION:
                x = None if x is None else x.float()
                y = None if y is None else y.float()
                gx = spec.vjp(x, y, grad.float(), TORCH, **params).to(saved.dtype)
            else:
                gx = spec.vjp(x, y, grad, TORCH, **params)
            return (gx, *([None] * len(ctx.values)))

    Vector.__name__ = Vector.__qualname__ = f"{spec.name}_function"
    return Vector


def apply(
    spec: Spec, x: torch.Tensor, params: dict[str, Any], *, training: bool = False, generator: Any = None
) -> torch.Tensor:
    """Evaluate ``spec`` with already-validated ``params`` on a tensor."""
    _check_input(spec, x)
    if training and spec.train_forward is not None:
        return spec.train_forward(x, torch, generator=generator, **params)
    if spec.native and spec.torch_native is not None:
        return spec.torch_native(x, torch, **params)
    if spec.kind == "vector":
        params = {**params, "axis": _normalise_axis(spec, x, params["axis"])}
    return _autograd_function(spec).apply(x, *(params[n] for n in spec.param_names))


def _normalise_axis(spec: Spec, x: torch.Tensor, axis: int) -> int:
    ndim = max(x.dim(), 1)
    if not -ndim <= axis < ndim:
        raise ValueError(f"{spec.name}: axis {axis} is out of range for a tensor of shape {tuple(x.shape)}")
    return axis % ndim


@functools.cache
def function_for(spec: Spec) -> Callable[..., torch.Tensor]:
    """The public functional form of ``spec``: ``f(x, *params, **params)``."""
    stochastic = spec.train_forward is not None

    def activation(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        extra = {}
        if stochastic:
            extra = {"training": kwargs.pop("training", False), "generator": kwargs.pop("generator", None)}
        params = spec.resolve_params(**_bind_positional(spec, args, kwargs))
        return apply(spec, x, params, **extra)

    activation.__name__ = activation.__qualname__ = spec.name
    signature = ", ".join(f"{p.name}={p.default!r}" for p in spec.params)
    activation.__doc__ = (
        f"{spec.name}(x, {signature})\n\n{spec.summary}" if signature else f"{spec.name}(x)\n\n{spec.summary}"
    )
    return activation


def __getattr__(name: str) -> Callable[..., torch.Tensor]:
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        spec = get_spec(name)
    except KeyError as err:
        raise AttributeError(str(err)) from None
    return function_for(spec)


def __dir__() -> list[str]:
    return sorted(set(__all__) | {s.name for s in all_specs()})
