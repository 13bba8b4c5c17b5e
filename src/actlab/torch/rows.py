"""The row-fused fast path of the vector activations: one C++ pass per row forward and one backward,
at the accuracy of actlab's eager code.

- softmax, log_softmax, softmin (``csrc/rows.cpp``): sums and the final division in double, the
  maximum's own log_softmax output kept, the dominant entry's vjp without cancellation;
- sparsemax, entmax15 (``csrc/rows.cpp``): the eager sort-based threshold over the entries that can
  be in the support, in double; the vjp from the output's support (saves the output);
- the gated units glu, reglu, geglu, swiglu, gtu, bilinear (``csrc/rows_gated.h`` and the generated
  ``rows_gated.cpp``, :func:`sources`): ``fA(a) * fB(b)`` over the halves with the gates' own
  elementwise kernels (the catalog's sigmoid, gelu, silu, tanh, relu :class:`~actlab.catalog.Kernel`),
  both halves' gradients in one pass (saves the input);
- crelu and maxout (``csrc/rows.cpp``): one pass each way, exact in every dtype (saves the input);
  they have no traced Function, so torch.compile traces their eager code.

:func:`actlab.torch.functional.apply` takes it for CPU float32/bfloat16/float16 tensors (the fused
kernels switched on and loaded: :func:`actlab.torch.kernels.eligible`) along one int axis without a
``where=`` mask. Everything else (float64, masks, tuple axes, 0-d and empty inputs, forward-mode AD,
functorch transforms) keeps the eager path, and so does a backward that records a graph (double
backward): it runs the spec's vjp, whose torch ops autograd can differentiate. An odd split axis
(gated units) also takes the eager path, which raises its ValueError.

Eagerly, a call is one operator, ``actlab_kernels::row_apply(x, dim, id)`` (``csrc/rows.cpp``): the
kernel bound once by :func:`bind`, its backward a C++ autograd node (``ActlabRowBackward``) that keeps
what the Functions below keep, so a small call costs what PyTorch's op costs; :func:`bound_call` is
the per-call closure of the functional form and of ``actlab.nn.Activation``. torch.compile traces
the autograd Functions below instead (their forward and backward operators have fakes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch.autograd import forward_ad

from actlab.torch import kernels

__all__ = [
    "ROW_KERNELS",
    "SPARSE_KERNELS",
    "GATED_KERNELS",
    "EAGER_ONLY_KERNELS",
    "has_kernel",
    "takes",
    "fused",
    "bind",
    "bound_call",
    "sources",
]

# The specs with a row kernel, by name: (log, negate) of actlab_kernels::softmax_forward/backward.
ROW_KERNELS: dict[str, tuple[bool, bool]] = {
    "softmax": (False, False),
    "log_softmax": (True, False),
    "softmin": (False, True),  # softmax(-x); its vjp is minus softmax's
}
# sparsemax and entmax15 (actlab_kernels::sparse_forward/backward): the value is ``entmax``.
SPARSE_KERNELS: dict[str, bool] = {"sparsemax": False, "entmax15": True}


class Gate(NamedTuple):
    """An elementwise gate of a gated unit: the spec whose Kernel computes it, the parameter values it
    runs with, and (where f' has a root that its formula cancels at) the catalog.vector Taylor
    series that the eager code takes there: the prefix of ``_<X>_ROOT/_RADIUS/_SERIES``."""

    spec: str
    params: dict[str, Any]
    series: str | None = None


# The gated units: (gate of a, gate of b), None for the identity: out = fA(a) * fB(b), as
# catalog.vector's _glu, _reglu, ... compute them.
GATED_KERNELS: dict[str, tuple[Gate | None, Gate | None]] = {
    "glu": (None, Gate("sigmoid", {})),
    "reglu": (None, Gate("relu", {})),
    "geglu": (None, Gate("gelu", {"approximate": "none"}, "_GELU")),  # the exact-erf gelu, as the spec's Phi
    "swiglu": (None, Gate("silu", {}, "_SILU")),
    "gtu": (Gate("tanh", {}), Gate("sigmoid", {})),
    "bilinear": (None, None),
}
# The kernels run by actlab_kernels::row_apply only (no traced Function), by their RowKind in
# csrc/rows.cpp: crelu ([relu(x), relu(-x)], the axis doubles), maxout (groups of `pieces`).
EAGER_ONLY_KERNELS: dict[str, int] = {"crelu": 3, "maxout": 4}
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def has_kernel(name: str) -> bool:
    """Whether the vector spec ``name`` has a row kernel (whether or not the library is loaded)."""
    return name in ROW_KERNELS or name in SPARSE_KERNELS or name in GATED_KERNELS or name in EAGER_ONLY_KERNELS


def takes(name: str, x: torch.Tensor, axis: Any, where: Any, pieces: int = 1) -> bool:
    """Whether the call ``name(x, axis, where)`` (maxout: with ``pieces``) runs the row kernel."""
    if not has_kernel(name) or where is not None or not isinstance(axis, int):
        return False
    if not isinstance(x, torch.Tensor) or x.numel() == 0 or not -x.dim() <= axis < x.dim():
        return False  # 0-d, empty, or an axis out of range (the eager path says so)
    if name in GATED_KERNELS and x.shape[axis] % 2:
        return False  # an odd split: the eager path raises its ValueError
    if name in EAGER_ONLY_KERNELS and (torch.compiler.is_compiling() or x.shape[axis] % pieces):
        return False  # no traced Function: torch.compile traces the eager code (which also raises)
    if not torch.compiler.is_compiling():
        if torch._C._are_functorch_transforms_active() or forward_ad._current_level >= 0:
            return False  # vmap/jvp/forward-mode AD: the eager Function (it has the jvp)
        kernels.build()
    return kernels.eligible(x) and x.device.type == "cpu"  # the row kernels: CPU only (CUDA: eager)


def _vjp_eager(name: str, y: torch.Tensor, grad: torch.Tensor, dim: int) -> torch.Tensor:
    """The spec's own vjp from the output, in torch ops (differentiable: double backward)."""
    from actlab.ops.torch_ops import TORCH
    from actlab.registry import get_spec

    return get_spec(name).vjp(None, y, grad, TORCH, dim)


class RowFunction(torch.autograd.Function):
    """softmax/log_softmax/softmin through the row kernel; saves the output (float32) or the input
    (half and bfloat16, whose rounded output has lost the digits the vjp needs: the backward
    recomputes the float32 output from it, as the eager path does)."""

    @staticmethod
    def forward(x: torch.Tensor, dim: int, log: bool, negate: bool, name: str) -> torch.Tensor:
        return torch.ops.actlab_kernels.softmax_forward(x, dim, log, negate)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, ctx.dim, ctx.log, ctx.negate, ctx.name = inputs
        ctx.low = x.dtype in _LOW_PRECISION
        ctx.save_for_backward(x if ctx.low else output)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        (saved,) = ctx.saved_tensors
        dim, log, negate = ctx.dim, ctx.log, ctx.negate
        if torch.is_grad_enabled():  # create_graph=True: the eager vjp records the graph
            if ctx.low:
                y = RowFunction.apply(saved.float(), dim, log, negate, ctx.name)
                gx = _vjp_eager(ctx.name, y, grad.float(), dim).to(saved.dtype)
            else:
                gx = _vjp_eager(ctx.name, saved, grad, dim)
        elif ctx.low:
            y = torch.ops.actlab_kernels.softmax_forward(saved.float(), dim, log, negate)
            gx = torch.ops.actlab_kernels.softmax_backward(y, grad.float(), dim, log, negate).to(saved.dtype)
        else:
            gx = torch.ops.actlab_kernels.softmax_backward(saved, grad, dim, log, negate)
        return gx, None, None, None, None


def _vjp_from_input(name: str, x: torch.Tensor, grad: torch.Tensor, dim: int, *params: Any) -> torch.Tensor:
    """The spec's vjp from its input in torch ops (differentiable: double backward); half precision in
    float32. ``params``: the parameters after the axis (maxout's pieces)."""
    from actlab.ops.torch_ops import TORCH
    from actlab.registry import get_spec

    vjp = get_spec(name).vjp
    if x.dtype in _LOW_PRECISION:
        return vjp(x.float(), None, grad.float(), TORCH, dim, *params).to(x.dtype)
    return vjp(x, None, grad, TORCH, dim, *params)


class GatedFunction(torch.autograd.Function):
    """A gated unit through the fused kernel; saves the input only."""

    @staticmethod
    def forward(x: torch.Tensor, dim: int, name: str) -> torch.Tensor:
        return torch.ops.actlab_kernels.gated_forward(x, dim, name)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, ctx.dim, ctx.name = inputs
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        (x,) = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: the eager vjp records the graph
            return _vjp_from_input(ctx.name, x, grad, ctx.dim), None, None
        return torch.ops.actlab_kernels.gated_backward(x, grad, ctx.dim, ctx.name), None, None


class SparseFunction(torch.autograd.Function):
    """sparsemax/entmax15 through the row kernel; saves the output (float32) or the input (half and
    bfloat16: the backward recomputes the float32 output from it, as the eager path does)."""

    @staticmethod
    def forward(x: torch.Tensor, dim: int, entmax: bool, name: str) -> torch.Tensor:
        return torch.ops.actlab_kernels.sparse_forward(x, dim, entmax)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, ctx.dim, ctx.entmax, ctx.name = inputs
        ctx.low = x.dtype in _LOW_PRECISION
        ctx.save_for_backward(x if ctx.low else output)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple:
        (saved,) = ctx.saved_tensors
        dim, entmax = ctx.dim, ctx.entmax
        if torch.is_grad_enabled():  # create_graph=True: the eager vjp records the graph
            if ctx.low:
                y = SparseFunction.apply(saved.float(), dim, entmax, ctx.name)
                gx = _vjp_eager(ctx.name, y, grad.float(), dim).to(saved.dtype)
            else:
                gx = _vjp_eager(ctx.name, saved, grad, dim)
        elif ctx.low:
            y = torch.ops.actlab_kernels.sparse_forward(saved.float(), dim, entmax)
            gx = torch.ops.actlab_kernels.sparse_backward(y, grad.float(), dim, entmax).to(saved.dtype)
        else:
            gx = torch.ops.actlab_kernels.sparse_backward(saved, grad, dim, entmax)
        return gx, None, None, None


# row_bind's kinds (csrc/rows.cpp RowKind; EAGER_ONLY_KERNELS hold their own)
_SOFTMAX, _SPARSE, _GATED = 0, 1, 2
# (name, pieces) -> the bound index of actlab_kernels::row_apply (filled by bind; read per call)
_BOUND: dict[tuple[str, int], int] = {}


def bind(name: str, pieces: int = 1) -> int:
    """The index under which ``actlab_kernels::row_apply`` runs the row kernel ``name`` (maxout: with
    ``pieces`` per group), bound once per process; the library must be loaded."""
    ident = _BOUND.get((name, pieces))
    if ident is None:
        if name in GATED_KERNELS:
            kind, flag, negate = _GATED, False, False
        elif name in SPARSE_KERNELS:
            kind, flag, negate = _SPARSE, SPARSE_KERNELS[name], False
        elif name in EAGER_ONLY_KERNELS:
            kind, flag, negate = EAGER_ONLY_KERNELS[name], False, False
        else:
            kind, (flag, negate) = _SOFTMAX, ROW_KERNELS[name]
        ident = torch.ops.actlab_kernels.row_bind(name, kind, flag, negate, pieces)
        _BOUND[name, pieces] = ident
    return ident


def bound_call(spec: Any, params: dict[str, Any], fallback: Any) -> Any:
    """``x -> fallback(x)`` for a row-kernel spec with validated ``params``, running
    ``actlab_kernels::row_apply`` directly where :func:`takes` would take the kernel (checked here with
    what is bound once: the axis, the tables, the functions). Anything else, and every call while
    torch.compile or a tracer records, goes to ``fallback`` (:func:`actlab.torch.functional.apply`)."""
    name, axis, pieces = spec.name, params.get("axis"), params.get("pieces", 1)
    if not has_kernel(name) or not isinstance(axis, int) or isinstance(axis, bool) or not isinstance(pieces, int):
        return fallback
    split = 2 if name in GATED_KERNELS else pieces  # the axis must divide by this (else: the eager error)
    # module attributes read per call (kernels.use() and a failed load change them), functions once
    state = kernels.__dict__
    dtypes = frozenset(kernels.DTYPES)
    tensor = torch.Tensor
    compiling = torch.compiler.is_compiling
    jit_tracing = torch._C._is_tracing
    transforms_active = torch._C._are_functorch_transforms_active
    bound: list = []  # [the operator's C++ callable, the index]: on the first call the library is loaded

    def call(x: torch.Tensor) -> Any:
        if (
            not compiling()  # traced (torch.compile, export, jit.trace): the general path
            and not jit_tracing()
            and isinstance(x, tensor)
            and x.is_cpu
            and x.dtype in dtypes
            and state["_enabled"]
            and state["_loaded"] is True
            and forward_ad._current_level < 0  # no dual tensors: the eager Function has the jvp
            and not transforms_active()
        ):
            n = x.dim()
            if -n <= axis < n and x.numel() and not x.shape[axis] % split:
                if not bound:  # (OpOverload.__call__ adds a Python frame: its _op is the C++ callable)
                    bound[:] = [torch.ops.actlab_kernels.row_apply.default._op, bind(name, pieces)]
                return bound[0](x, axis, bound[1])
        return fallback(x)

    call.__name__ = call.__qualname__ = f"{name}_call"
    return call


def fused(name: str, x: torch.Tensor, axis: int, pieces: int = 1) -> torch.Tensor:
    """``name`` (see :func:`has_kernel`) of ``x`` along ``axis`` by the row kernel (see :func:`takes`)."""
    dim = axis % x.dim()
    if not torch.compiler.is_compiling():  # one operator, its backward a C++ autograd node
        return torch.ops.actlab_kernels.row_apply(x, dim, bind(name, pieces))
    # traced: the Functions (Dynamo traces their forward and backward operators through the fakes)
    grad = x.requires_grad and torch.is_grad_enabled()
    # nothing to record: the kernel alone (Dynamo also mis-traces a Function whose input needs no grad)
    if name in GATED_KERNELS:
        return GatedFunction.apply(x, dim, name) if grad else torch.ops.actlab_kernels.gated_forward(x, dim, name)
    if name in SPARSE_KERNELS:
        entmax = SPARSE_KERNELS[name]
        if grad:
            return SparseFunction.apply(x, dim, entmax, name)
        return torch.ops.actlab_kernels.sparse_forward(x, dim, entmax)
    log, negate = ROW_KERNELS[name]
    if x.requires_grad and torch.is_grad_enabled():
        return RowFunction.apply(x, dim, log, negate, name)
    # nothing to record: the kernel alone (Dynamo also mis-traces a Function whose input needs no grad)
    return torch.ops.actlab_kernels.softmax_forward(x, dim, log, negate)


# ----------------------------------------------------------------------------- build
def _series_source(prefix: str | None) -> str:
    """f' near its root as the catalog's Taylor series (catalog.vector._root_series), in float as the
    eager float32 code evaluates it, with the terms below 2^-30 of the first over the radius dropped."""
    if prefix is None:
        return "static constexpr bool has_series = false;"
    from actlab.catalog import vector

    root = getattr(vector, f"{prefix}_ROOT")
    radius = float(getattr(vector, f"{prefix}_RADIUS"))
    coeffs = list(getattr(vector, f"{prefix}_SERIES"))
    while len(coeffs) > 2 and abs(coeffs[-1]) * radius ** (len(coeffs) - 1) < 2.0**-30 * abs(coeffs[0]):
        coeffs.pop()

    def f(v: float) -> str:
        return f"{v!r}f"

    horner = f"V q = d * {f(coeffs[-1])} + {f(coeffs[-2])};\n    " + "\n    ".join(
        f"q = q * d + {f(c)};" for c in reversed(coeffs[:-2])
    )
    return f"""static constexpr bool has_series = true;
  // lanes within {radius} of f''s root {root[0]!r} (mask) and the series there ({len(coeffs)} terms);
  // the argument is clamped so that the other lanes stay finite
  static Vf near(const Vf& b) {{ return abs(b - {f(root[0])}) < {f(radius)}; }}
  static Vf series(const Vf& b) {{
    using V = Vf;
    const V bs = min(max(b, {f(root[0] - radius)}), {f(root[0] + radius)});
    const V d = ((bs - {f(root[0])}) - {f(root[1])}) - {f(root[2])};
    {horner}
    return q * d;
  }}"""


def _gate_struct(ident: str, gate: Gate) -> str:
    """A gate for csrc/rows_gated.h from an elementwise spec's Kernel (the bodies as kernels.py
    generates them, with the parameter values fixed)."""
    import math

    from actlab.registry import get_spec

    spec_name = gate.spec
    spec = get_spec(spec_name)
    k = spec.kernel
    if k is None or spec.kind != "elementwise":
        raise ValueError(f"rows: gate {spec_name!r} has no elementwise Kernel")
    params = spec.resolve_params(**gate.params)
    encoded = kernels.param_encoder(spec)(params[n] for n in spec.param_names)
    prm = ", ".join("std::numeric_limits<double>::quiet_NaN()" if math.isnan(v) else repr(float(v)) for v in encoded)
    return f"""
// {spec_name} {params}: {spec.summary}
struct {ident} {{
  static constexpr bool has_fast = {"true" if k.fast_where is not None else "false"};
  static constexpr bool always_fast = false;
  static inline const double prm[kMaxParams] = {{{prm}}};
  {_series_source(gate.series)}
{kernels.kernel_structs(spec)}
}};
"""


def sources() -> dict[str, str]:
    """The gated units' C++ (added to the library by :func:`actlab.torch.kernels._all_sources`): the
    static loops (csrc/rows_gated.h) and one generated file with the gates and the operators."""
    gates: dict[tuple, str] = {}
    structs = []

    def key(gate: Gate) -> tuple:
        return gate.spec, tuple(sorted(gate.params.items())), gate.series

    for pair in GATED_KERNELS.values():
        for gate in pair:
            if gate is not None and key(gate) not in gates:
                gates[key(gate)] = f"gate_{len(gates)}_{kernels._identifier(gate.spec)}"
                structs.append(_gate_struct(gates[key(gate)], gate))

    def gate_type(gate: Gate | None) -> str:
        return "Identity" if gate is None else gates[key(gate)]

    entries = ",\n      ".join(
        f'{{"{name}", make_gated<{gate_type(a)}, {gate_type(b)}>()}}' for name, (a, b) in GATED_KERNELS.items()
    )
    text = f"""// Generated by actlab.torch.rows from the gate specs' Kernel fields: do not edit.
#include "rows_gated.h"

namespace actlab_k {{
namespace gated {{
{"".join(structs)}
const GatedEntry& lookup(c10::string_view name) {{
  static const std::unordered_map<std::string, GatedEntry> entries = {{
      {entries}}};
  auto it = entries.find(std::string(name));
  TORCH_CHECK(it != entries.end(), "actlab_kernels: no gated kernel named '", std::string(name), "'");
  return it->second;
}}
}}  // namespace gated
}}  // namespace actlab_k

TORCH_LIBRARY_FRAGMENT(actlab_kernels, m) {{
  m.def("gated_forward(Tensor x, int dim, str name) -> Tensor");
  m.def("gated_backward(Tensor x, Tensor grad, int dim, str name) -> Tensor");
}}

TORCH_LIBRARY_IMPL(actlab_kernels, CPU, m) {{
  m.impl("gated_forward", &actlab_k::gated::forward_op);
  m.impl("gated_backward", &actlab_k::gated::backward_op);
}}
"""
    csrc = Path(__file__).with_name("csrc")
    return {"rows_gated.h": (csrc / "rows_gated.h").read_text(), "rows_gated.cpp": text}


def register_fakes() -> None:
    """Shapes for torch.compile/export (fake tensors) of the sparse, gated and bound operators, and
    row_apply's create_graph backward; called by :func:`actlab.torch.kernels.build` once the library
    is loaded."""

    @torch.library.register_fake("actlab_kernels::sparse_forward")
    def _sparse_forward_fake(x: torch.Tensor, dim: int, entmax: bool = False) -> torch.Tensor:
        # as the kernel leaves it: laid out with ``dim`` last
        return x.movedim(dim, -1).new_empty(x.movedim(dim, -1).shape).movedim(-1, dim)

    @torch.library.register_fake("actlab_kernels::sparse_backward")
    def _sparse_backward_fake(y: torch.Tensor, grad: torch.Tensor, dim: int, entmax: bool = False) -> torch.Tensor:
        return y.movedim(dim, -1).new_empty(y.movedim(dim, -1).shape).movedim(-1, dim)

    @torch.library.register_fake("actlab_kernels::gated_forward")
    def _gated_forward_fake(x: torch.Tensor, dim: int, name: str) -> torch.Tensor:
        shape = list(x.shape)
        dim = dim % x.dim()
        shape[dim] = shape[dim] // 2
        return x.new_empty(shape)  # contiguous, as the kernel's

    @torch.library.register_fake("actlab_kernels::gated_backward")
    def _gated_backward_fake(x: torch.Tensor, grad: torch.Tensor, dim: int, name: str) -> torch.Tensor:
        return x.new_empty(x.shape)

    @torch.library.register_fake("actlab_kernels::row_apply")
    def _row_apply_fake(x: torch.Tensor, dim: int, ident: int) -> torch.Tensor:
        name, pieces = next(key for key, i in _BOUND.items() if i == ident)
        if name in GATED_KERNELS:
            return _gated_forward_fake(x, dim, name)
        if name in EAGER_ONLY_KERNELS:  # crelu doubles the axis, maxout divides it by pieces
            shape = list(x.shape)
            shape[dim % x.dim()] = shape[dim % x.dim()] * 2 if name == "crelu" else shape[dim % x.dim()] // pieces
            return x.new_empty(shape)  # contiguous, as the kernel's
        return _sparse_forward_fake(x, dim % x.dim())

    # The C++ backward of row_apply calls this under create_graph: the spec's vjp in torch ops, which
    # record a graph (double backward); half precision from the float32 output recomputed from x.
    @torch.library.impl("actlab_kernels::row_eager_grad", "CompositeImplicitAutograd")
    def _row_eager_grad(saved: torch.Tensor, grad: torch.Tensor, dim: int, name: str, size: int = 1) -> torch.Tensor:
        if name in GATED_KERNELS or name in EAGER_ONLY_KERNELS:  # the input was kept
            return _vjp_from_input(name, saved, grad, dim, *([size] if name == "maxout" else []))
        if saved.dtype in _LOW_PRECISION:  # the input was kept: y again, differentiably, in float32
            y = fused(name, saved.float(), dim)
            return _vjp_eager(name, y, grad.float(), dim).to(saved.dtype)
        return _vjp_eager(name, saved, grad, dim)
