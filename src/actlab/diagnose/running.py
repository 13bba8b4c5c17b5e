"""Run a model a few steps under :func:`actlab.watch` and return its report: the loop behind
``actlab diagnose``, for any model a practitioner has, including ones whose forward returns a
tuple, a dict or a dataclass (transformers' ``ModelOutput``).

How an output becomes a loss, the way users of those libraries expect:

- the model's own loss when it returns one (``output.loss`` or ``output["loss"]``, a scalar):
  transformers' models do when given ``labels``, which are passed as ``labels=`` to any model
  whose forward takes them (or sit in a dict batch);
- otherwise the first tensor of the output (depth first: ``(logits, aux)`` -> logits, a
  ``ModelOutput`` without loss -> logits): cross-entropy against integer labels, mean squared
  error against float ones, and without labels the probe loss mean(output**2) / 2, which sends a
  gradient through every site;
- an output with no floating-point tensor is an :class:`OutputError` naming what came back.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from actlab.diagnose.report import DiagnosisReport

__all__ = ["diagnose", "model_loss", "output_loss", "OutputError", "describe"]


class OutputError(ValueError):
    """The model's output holds nothing a loss can be computed from; the message says what it held."""


def describe(value: Any, depth: int = 0) -> str:
    """A short description of what a model returned: ``SequenceClassifierOutput(logits: Tensor(2, 2))``."""
    if isinstance(value, torch.Tensor):
        return f"Tensor({', '.join(map(str, value.shape))}; {str(value.dtype).removeprefix('torch.')})"
    if depth >= 2:
        return type(value).__name__
    if isinstance(value, dict):
        inner = ", ".join(f"{k}: {describe(v, depth + 1)}" for k, v in list(value.items())[:6])
        return f"{type(value).__name__}({inner})"
    if isinstance(value, (tuple, list)):
        inner = ", ".join(describe(v, depth + 1) for v in value[:6])
        return f"{type(value).__name__}({inner}{', ...' if len(value) > 6 else ''})"
    if hasattr(value, "__dataclass_fields__"):
        fields = list(value.__dataclass_fields__)[:6]
        inner = ", ".join(f"{f}: {describe(getattr(value, f, None), depth + 1)}" for f in fields)
        return f"{type(value).__name__}({inner})"
    return type(value).__name__


def _first_tensor(value: Any, path: str = "", depth: int = 0) -> tuple[torch.Tensor | None, str]:
    """The first tensor of an output, depth first, and where it was (``.logits``, ``[0]``)."""
    if isinstance(value, torch.Tensor):
        return value, path
    if depth > 6:
        return None, path
    if isinstance(value, dict):
        items: Any = ((f".{k}" if isinstance(k, str) and k.isidentifier() else f"[{k!r}]", v) for k, v in value.items())
    elif isinstance(value, (tuple, list)):
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    elif hasattr(value, "__dataclass_fields__"):
        items = ((f".{f}", getattr(value, f, None)) for f in value.__dataclass_fields__)
    else:
        return None, path
    for key, item in items:
        found, where = _first_tensor(item, path + key, depth + 1)
        if found is not None:
            return found, where
    return None, path


def _own_loss(output: Any) -> torch.Tensor | None:
    loss = output.get("loss") if isinstance(output, dict) else getattr(output, "loss", None)
    return loss if isinstance(loss, torch.Tensor) and loss.numel() == 1 and loss.is_floating_point() else None


def output_loss(output: Any, target: torch.Tensor | None = None) -> torch.Tensor:
    """The scalar loss of one forward's ``output`` (see the module's docstring for the rules)."""
    loss = _own_loss(output)
    if loss is not None:
        return loss.reshape(())
    out, where = _first_tensor(output)
    if out is None:
        raise OutputError(
            f"the model returned {describe(output)}, which holds no tensor to compute a loss from: return a "
            "tensor, or a tuple, dict or dataclass (such as transformers' ModelOutput) whose first tensor is "
            "the output"
        )
    if not out.is_floating_point():
        raise OutputError(
            f"the first tensor the model returned (output{where}, {describe(out)}) is not floating point, so no "
            f"gradient flows back through it: return the logits first (the model returned {describe(output)})"
        )
    if target is None:
        return out.float().pow(2).mean() / 2  # a probe: every site gets a gradient
    if not target.is_floating_point() and out.dim() >= 2:
        if out.dim() > 2 and tuple(target.shape) == tuple(out.shape[:-1]):  # (N, T, classes) with (N, T) labels
            return F.cross_entropy(out.flatten(0, -2), target.flatten())
        return F.cross_entropy(out, target)
    return F.mse_loss(out, target.reshape(out.shape).to(out.dtype))


def _takes_labels(model: torch.nn.Module) -> bool:
    try:
        return "labels" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def model_loss(model: torch.nn.Module, x: Any, y: torch.Tensor | None = None) -> torch.Tensor:
    """Run ``model`` on one batch and reduce what it returns to a scalar loss.

    ``x`` is a tensor, or a dict of keyword arguments (as a tokenizer returns; a ``labels`` entry
    there counts as labels given); ``y`` the labels or targets, or None.
    """
    if isinstance(x, dict):
        kwargs = dict(x)
        if y is not None and "labels" not in kwargs and _takes_labels(model):
            kwargs["labels"] = y
        output = model(**kwargs)
        target = kwargs.get("labels") if y is None else y
    elif y is not None and _takes_labels(model):
        output, target = model(x, labels=y), y
    else:
        output, target = model(x), y
    return output_loss(output, target)


def _batches(data: Any, labels: Any) -> Iterator[tuple[Any, Any]]:
    return itertools.repeat((data, labels))


def run_steps(
    model: torch.nn.Module,
    batches: Iterator[tuple[Any, Any]],
    steps: int,
    lr: float = 0.0,
    watcher: Any = None,
    on_error: Callable[[Exception, Any], Exception] | None = None,
) -> DiagnosisReport:
    """``steps`` forward and backward passes of ``model`` on ``batches`` under ``watcher`` (default
    ``actlab.watch(model)``), an SGD step after each when ``lr`` > 0; the report. ``on_error(err, x)``
    turns an exception the model raised on batch ``x`` into the one to raise (the CLI's message)."""
    from actlab.diagnose.monitor import watch

    w = watch(model) if watcher is None else watcher
    optimizer = torch.optim.SGD(model.parameters(), lr=lr) if lr > 0 else None
    model.train()
    with w:
        for _ in range(steps):
            x, y = next(batches)
            model.zero_grad(set_to_none=True)
            try:
                model_loss(model, x, y).backward()
            except OutputError:
                raise
            except Exception as err:
                if on_error is None:
                    raise
                raise on_error(err, x) from None
            if optimizer is not None:
                optimizer.step()
    return w.report()


def diagnose(
    model: torch.nn.Module,
    inputs: Any,
    labels: torch.Tensor | None = None,
    *,
    steps: int = 1,
    lr: float = 0.0,
    **watch_options: Any,
) -> DiagnosisReport:
    """The activation health of ``model`` over ``steps`` forward and backward passes on one batch.

    >>> import torch, actlab
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> report = actlab.diagnose.diagnose(model, torch.randn(32, 8), torch.randint(0, 3, (32,)))
    >>> [s.name for s in report.sites]
    ['1']

    ``inputs``: a tensor, or a dict of keyword arguments (a tokenizer's batch). ``labels``: passed
    as ``labels=`` to models that take it (transformers' models; their ``.loss`` is used), else
    compared with the output's first tensor (cross-entropy for integer labels, MSE for float);
    without labels a probe loss mean(output**2) / 2. ``lr`` > 0 takes SGD steps (training); the
    default 0 only measures. ``watch_options`` go to :func:`actlab.watch`.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not lr >= 0 or lr == float("inf"):
        raise ValueError(f"lr must be a finite number >= 0, got {lr!r}")
    from actlab.diagnose.monitor import watch

    return run_steps(model, _batches(inputs, labels), steps, lr, watch(model, **watch_options))
