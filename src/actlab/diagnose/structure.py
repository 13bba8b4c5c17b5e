"""What a site *is* in its model, for findings that judge it fairly (:mod:`actlab.diagnose.report`).

- **Gates**: a bounded, not zero-centred site (sigmoid, hard_sigmoid) whose output is multiplied by
  another tensor of the network (squeeze-excitation, GLU, LSTM gates, x * sigmoid(x)). A gate is
  meant to sit between its bounds (a sigmoid gate near 0.5 passes half the signal), so "not
  zero-centred" and "shifted" do not apply to it. Found in the
  autograd graph of one forward with gradients enabled: a ``mul`` node with the site's output among
  its inputs (through views, expands, slices and splits) and a second input that is part of the graph
  (a product with a constant or a mask is not a gate).
- **Residual sums**: a site whose input was made by adding two tensors of the graph (``out + shortcut``):
  its input mean is the skip path's, not a layer's bias.
- **Model facts** (:func:`model_facts`): multiplicative parameters that are exactly zero (a
  zero-initialised last norm of a residual branch, a zero-initialised projection or layer scale) —
  they stop the gradient upstream, the likely cause of sites whose gradient is exactly zero — and
  whether every linear and convolution layer still has PyTorch's default initialisation (only then
  is ``actlab.init.init_`` advice given: a model with an architecture-specific init already chose one).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from actlab.diagnose.report import ModelFacts

__all__ = ["model_facts", "see_input", "see_output", "mark_gates", "output_tensors"]

# Autograd nodes that only select or reshape their one input: a gate may pass through them before
# its product (``sigmoid(s).view(b, c, 1, 1).expand_as(x) * x``; LSTM gates split from one sigmoid).
_PASS_THROUGH = (
    "View",
    "UnsafeView",
    "Expand",
    "Unsqueeze",
    "Squeeze",
    "Reshape",
    "Permute",
    "Transpose",
    "TBackward",
    "Clone",
    "ToCopy",
    "Split",
    "Slice",
    "Select",
    "Unbind",
    "Chunk",
)
_MAX_NODES = 200_000  # a bound on the walk; graphs of real models have a few thousand nodes


def _name(node: Any) -> str:
    return type(node).__name__


def _through_views(node: Any) -> Any:
    for _ in range(64):
        if node is None or not _name(node).startswith(_PASS_THROUGH):
            return node
        inputs = [n for n, _ in node.next_functions if n is not None]
        if len(inputs) != 1:
            return node
        node = inputs[0]
    return node


def see_input(stats: Any, x: torch.Tensor) -> None:
    """Note whether the site's input is a sum of two tensors of the graph (a residual addition)."""
    if getattr(stats, "sum_input", None) is not None or x.grad_fn is None:
        return
    node = x.grad_fn
    stats.sum_input = _name(node) == "AddBackward0" and all(n is not None for n, _ in node.next_functions)


def see_output(stats: Any, y: torch.Tensor) -> None:
    """Keep the node that made the site's output until the end of this forward (see :func:`mark_gates`)."""
    if getattr(stats, "gated", None) is None and y.grad_fn is not None:
        stats.node = y.grad_fn


def output_tensors(value: Any, depth: int = 0) -> list[torch.Tensor]:
    """The tensors in a model's output: a tensor, or tuples, lists, dicts and dataclasses of them."""
    if isinstance(value, torch.Tensor):
        return [value]
    if depth > 6:
        return []
    if isinstance(value, dict):
        items: Iterable[Any] = value.values()
    elif isinstance(value, (tuple, list)):
        items = value
    elif hasattr(value, "__dataclass_fields__"):
        items = (getattr(value, f, None) for f in value.__dataclass_fields__)
    else:
        return []
    return [t for item in items for t in output_tensors(item, depth + 1)]


def mark_gates(output: Any, stats: Iterable[Any]) -> None:
    """At the end of a forward: decide ``gated`` for every site whose output node was kept, by walking
    the autograd graph from the model's output once; the kept nodes are released either way."""
    waiting = {id(s.node): s for s in stats if getattr(s, "node", None) is not None}
    if not waiting:
        return
    roots = [t.grad_fn for t in output_tensors(output) if t.grad_fn is not None]
    if not roots:  # no graph to read (an output without gradients): release, decide on a later pass
        for s in waiting.values():
            s.node = None
        return
    gated: set[int] = set()
    seen: set[int] = set()
    todo = list(roots)
    while todo and len(seen) < _MAX_NODES:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        inputs = [n for n, _ in node.next_functions if n is not None]
        if _name(node) == "MulBackward0" and len(node.next_functions) == 2 and len(inputs) == 2:
            for n in inputs:
                gated.add(id(_through_views(n)))
        todo.extend(inputs)
    for key, s in waiting.items():
        # Decided once: a site the output does not depend on is no gate either. The gate is the
        # factor in a [0, 1]-like range (sigmoid, hard_sigmoid), not the signal it scales: a ReLU
        # output multiplied by a gate is still a ReLU site.
        s.gated = key in gated and getattr(s, "bounded", False) and not getattr(s, "zero_centered", True)
        s.node = None  # never keep a graph alive beyond its forward


def _is_default_init(weight: torch.Tensor) -> bool:
    """PyTorch's default for Linear and ConvNd: kaiming_uniform_(a=sqrt(5)), i.e. uniform on
    [-1/sqrt(fan_in), 1/sqrt(fan_in)] with standard deviation 1/sqrt(3 fan_in)."""
    w = weight.detach()
    if w.dim() < 2 or w.numel() == 0:
        return False
    fan_in = w[0].numel()
    bound = 1.0 / math.sqrt(fan_in)
    if float(w.abs().max()) > bound * (1 + 1e-6):
        return False
    if w.numel() < 64:  # too few values for a standard deviation to say anything
        return True
    std = float(w.double().std())
    return abs(std - bound / math.sqrt(3)) <= 0.15 * bound / math.sqrt(3)


_SCALE_NAMES = ("gamma", "scale", "layer_scale", "ls")


def model_facts(model: torch.nn.Module) -> ModelFacts:
    """The zero multiplicative parameters of ``model`` and whether its layers have PyTorch's default init."""
    zero: list[str] = []
    layers = default = 0
    scaled = (torch.nn.Linear, torch.nn.modules.conv._ConvNd, torch.nn.modules.batchnorm._NormBase)
    scaled += (torch.nn.LayerNorm, torch.nn.GroupNorm) + ((torch.nn.RMSNorm,) if hasattr(torch.nn, "RMSNorm") else ())
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            layers += 1
            default += _is_default_init(module.weight)
        for pname, p in module.named_parameters(recurse=False):
            scale = (pname == "weight" and isinstance(module, scaled)) or pname.lower() in _SCALE_NAMES
            if scale and p.numel() and p.is_floating_point() and not bool(p.detach().any()):
                zero.append(f"{name}.{pname}" if name else pname)
    return ModelFacts(zero_scales=tuple(zero), default_init=layers > 0 and default == layers)
