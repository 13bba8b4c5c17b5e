"""A fused gated MLP ``down(act(gate(x)) * up(x))`` whose backward keeps less than the composition.

The composition ``down(F.silu(gate(x)) * up(x))`` keeps four hidden-sized tensors for backward
(g = gate(x), silu(g), u = up(x) and the product h) besides x. One autograd Function here computes
the whole block and keeps, by ``recompute``:

- ``"elementwise"``: x, g and u; backward recomputes act(g), act'(g) and h from g (as Liger's fused
  SwiGLU/GEGLU do). Same matmuls as the composition.
- ``"projections"``: x only; backward recomputes g and u too (two more matmuls, ~2/9 more flops).
- ``fewbit=k`` (with ``"elementwise"``): x, u, act(g) and a k-bit code of g (packed in uint8)
  instead of g; backward uses the piecewise-constant derivative of
  :func:`actlab.torch.fewbit.fewbit_table`. The forward value act(g) is still needed (for up's
  and down's gradients), so this keeps act(g) where ``"elementwise"`` keeps g: the same size plus
  the code, and an approximate gradient. It saves nothing over ``"elementwise"``.

Backward (and the forward's hidden product) run over blocks of ``CHUNK_ROWS`` tokens, so what
backward allocates besides the gradients is a few blocks, not a few hidden-sized tensors: the
lower peak comes from this as much as from what is kept. The activation is actlab's accurate
elementwise path: PyTorch's op where the spec says it is accurate (``spec.native``), else the
fused kernels (CPU float32/bfloat16/float16), else the spec's eager forward and derivative.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from actlab.catalog import Spec
from actlab.ops.torch_ops import TORCH
from actlab.torch import kernels

__all__ = ["RECOMPUTE", "CHUNK_ROWS", "gated_mlp_function", "pack_codes", "unpack_codes"]

RECOMPUTE = ("elementwise", "projections")
# Tokens per block in backward: large enough that the matmuls stay efficient, small enough that the
# block temporaries (a few CHUNK_ROWS x hidden tensors) are a fraction of one hidden-sized tensor.
CHUNK_ROWS = 128
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def _code_width(bits: int) -> int:
    """Bits per packed code: 1, 2 or 4 (3-bit codes take 4 bits: two per byte)."""
    return 1 << math.ceil(math.log2(bits)) if bits > 1 else 1


def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Codes in [0, 2**bits) along the last axis packed 8 // width per uint8 (width 1, 2 or 4 bits):
    shape (..., n) -> (..., ceil(n / per)), code j of a byte in bits [j width, (j + 1) width)."""
    width = _code_width(bits)
    per = 8 // width
    n = codes.shape[-1]
    pad = (-n) % per
    c = codes.to(torch.uint8)
    if pad:
        c = F.pad(c, (0, pad))
    c = c.reshape(*c.shape[:-1], -1, per)
    shifts = torch.arange(0, 8, width, dtype=torch.uint8, device=c.device)
    return (c << shifts).sum(-1, dtype=torch.uint8)


def unpack_codes(packed: torch.Tensor, bits: int, n: int) -> torch.Tensor:
    """The inverse of :func:`pack_codes`: (..., m) uint8 -> (..., n) codes (int64, for indexing)."""
    width = _code_width(bits)
    shifts = torch.arange(0, 8, width, dtype=torch.uint8, device=packed.device)
    codes = (packed.unsqueeze(-1) >> shifts) & ((1 << width) - 1)
    return codes.reshape(*packed.shape[:-1], -1)[..., :n].long()


def _accumulate(acc: torch.Tensor | None, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """acc + a @ b, in place (a @ b alone for the first block)."""
    return a @ b if acc is None else acc.addmm_(a, b)


# One Function class per (spec, parameter values): its methods close over plain functions and
# tuples only (torch.compile traces them and cannot wrap a Spec object).
_CLASSES: dict[tuple, type] = {}


def gated_mlp_function(spec: Spec, params: dict[str, Any]) -> type:
    """The autograd Function computing ``down(act(gate(x)) * up(x))`` for the elementwise ``spec``.

    ``apply(x, w_gate, w_up, w_down, b_gate, b_up, b_down, recompute, breakpoints, levels, bits)``:
    biases may be None; ``breakpoints``/``levels`` (tensors) and ``bits`` select the few-bit mode
    (None/None/0 otherwise).
    """
    values = tuple(params[n] for n in spec.param_names)
    key = (spec.name, id(spec), values)
    cls = _CLASSES.get(key)
    if cls is None or (not torch.compiler.is_compiling() and cls.spec is not spec):
        cls = _CLASSES[key] = _make_function(spec, params)
    return cls


def _make_function(spec: Spec, params: dict[str, Any]) -> type:
    if spec.kind != "elementwise":
        raise ValueError(f"gated MLP: the activation must be elementwise, got {spec.name!r} ({spec.kind})")
    params = dict(params)
    fused = kernels.kernel_name(spec)  # builds the library now, outside any trace
    encoded = kernels.param_encoder(spec)(tuple(params[n] for n in spec.param_names))
    forward_fn, derivative_fn = spec.forward, spec.derivative
    native = spec.torch_native if spec.native else None

    def act(g: torch.Tensor) -> torch.Tensor:
        if native is not None and g.dtype not in _LOW_PRECISION:
            return native(g, torch, **params)
        if fused is not None and kernels.eligible(g):
            return torch.ops.actlab_kernels.forward(g, fused, encoded)
        if g.dtype in _LOW_PRECISION:  # in float32, rounded once
            return forward_fn(g.float(), TORCH, **params).to(g.dtype)
        return forward_fn(g, TORCH, **params)

    def act_grad(g: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """grad * act'(g)."""
        if fused is not None and kernels.eligible(g):
            return torch.ops.actlab_kernels.backward(g, grad, fused, encoded)
        if g.dtype in _LOW_PRECISION:
            return (grad.float() * derivative_fn(g.float(), TORCH, **params)).to(g.dtype)
        return grad * derivative_fn(g, TORCH, **params)

    def blocks(n: int) -> list[tuple[int, int]]:
        return [(i, min(i + CHUNK_ROWS, n)) for i in range(0, n, CHUNK_ROWS)]

    class GatedMLPFunction(torch.autograd.Function):
        @staticmethod
        def forward(
            ctx: Any,
            x: torch.Tensor,
            w_gate: torch.Tensor,
            w_up: torch.Tensor,
            w_down: torch.Tensor,
            b_gate: torch.Tensor | None,
            b_up: torch.Tensor | None,
            b_down: torch.Tensor | None,
            recompute: str,
            breakpoints: torch.Tensor | None,
            levels: torch.Tensor | None,
            bits: int,
        ) -> torch.Tensor:
            x2 = x.reshape(-1, x.shape[-1])
            n = x2.shape[0]
            keep_u = recompute == "elementwise"
            keep_g = keep_u and not bits  # (few-bit: g one block at a time, its code kept)
            g = F.linear(x2, w_gate, b_gate) if keep_g else None
            u = F.linear(x2, w_up, b_up) if keep_u else None
            s_all = torch.empty_like(u) if bits else None
            codes = x2.new_empty((n, -(-w_gate.shape[0] * _code_width(bits) // 8)), dtype=torch.uint8) if bits else None
            y = x2.new_empty(n, w_down.shape[0])
            for i, j in blocks(n):
                gb = g[i:j] if keep_g else F.linear(x2[i:j], w_gate, b_gate)
                ub = u[i:j] if keep_u else F.linear(x2[i:j], w_up, b_up)
                s = act(gb)
                if s is gb:  # an identity activation: never write into g
                    s = s.clone()
                if bits:
                    s_all[i:j] = s
                    codes[i:j] = pack_codes(torch.bucketize(gb, breakpoints, out_int32=True, right=True), bits)
                y[i:j] = s.mul_(ub) @ w_down.t()
                del s, gb, ub  # (the next block's temporaries reuse the memory)
            if b_down is not None:
                y += b_down
            if bits:
                kept: tuple = (s_all, u, codes)
            else:
                kept = (g, u) if keep_g else ()
            ctx.recompute, ctx.bits, ctx.hidden = recompute, bits, w_gate.shape[0]
            ctx.save_for_backward(x, w_gate, w_up, w_down, b_gate, b_up, levels, *kept)
            return y.reshape(*x.shape[:-1], w_down.shape[0])

        @staticmethod
        def backward(ctx: Any, grad_y: torch.Tensor) -> tuple:
            if torch.is_grad_enabled():  # create_graph=True: the in-place products below record no graph
                raise RuntimeError(
                    "gated MLP: double backward (create_graph=True) is not supported; use the composed form "
                    "down(act(gate(x)) * up(x)) (or the gated layers without recompute=) for higher derivatives"
                )
            x, w_gate, w_up, w_down, b_gate, b_up, levels, *kept = ctx.saved_tensors
            need = ctx.needs_input_grad
            x2 = x.reshape(-1, x.shape[-1])
            n = x2.shape[0]
            gy = grad_y.reshape(n, w_down.shape[0])
            gx = torch.empty_like(x2) if need[0] else None
            # the weight gradients: the first block's product, then accumulated in place (no zero fill)
            dw_gate = dw_up = dw_down = db_gate = db_up = None
            # Per block, at most three hidden-sized block temporaries live at once: (gh, s, h), then
            # (gh, gu, gg); every product that can is formed in place.
            for i, j in blocks(n):
                xb, gyb = x2[i:j], gy[i:j]
                gh = gyb @ w_down  # d loss / d h
                if ctx.bits:
                    s_all, u_all, codes = kept
                    s, ub = s_all[i:j], u_all[i:j]
                else:
                    if ctx.recompute == "elementwise":
                        gb, ub = kept[0][i:j], kept[1][i:j]
                    else:
                        gb, ub = F.linear(xb, w_gate, b_gate), F.linear(xb, w_up, b_up)
                    s = act(gb)
                if need[3]:
                    dw_down = _accumulate(dw_down, gyb.t(), s * ub)
                # gu = gh * act(g): in place where s is this block's own recomputed tensor
                gu = gh * s if ctx.bits or s is gb else s.mul_(gh)
                gh.mul_(ub)
                if ctx.bits:
                    gg = gh.mul_(levels[unpack_codes(codes[i:j], ctx.bits, ctx.hidden)])
                else:
                    gg = act_grad(gb, gh)
                    del gb
                del gh, s, ub
                if need[1]:
                    dw_gate = _accumulate(dw_gate, gg.t(), xb)
                if need[2]:
                    dw_up = _accumulate(dw_up, gu.t(), xb)
                if need[4]:
                    db_gate = gg.sum(0) if db_gate is None else db_gate.add_(gg.sum(0))
                if need[5]:
                    db_up = gu.sum(0) if db_up is None else db_up.add_(gu.sum(0))
                if gx is not None:
                    gx[i:j] = torch.addmm(gg @ w_gate, gu, w_up)
                del gg, gu
            if n == 0:  # no tokens: zero gradients
                dw_gate, dw_up, dw_down = (
                    torch.zeros_like(w) if k else None for w, k in zip((w_gate, w_up, w_down), need[1:4])
                )
                db_gate, db_up = (x.new_zeros(ctx.hidden) if k else None for k in need[4:6])
            db_down = gy.sum(0) if need[6] else None
            gx = gx.reshape(x.shape) if gx is not None else None
            return gx, dw_gate, dw_up, dw_down, db_gate, db_up, db_down, None, None, None, None

    GatedMLPFunction.__name__ = GatedMLPFunction.__qualname__ = f"{spec.name}_gated_mlp_function"
    GatedMLPFunction.spec = spec
    return GatedMLPFunction
