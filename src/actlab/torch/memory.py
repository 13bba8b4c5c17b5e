"""Memory modes: what an elementwise activation keeps for its backward.

``memory=`` (keyword-only on ``actlab.nn.Activation``, ``create_activation`` and the functional forms):

- ``"exact"`` (default): the input (or output) tensor, the exact derivative.
- ``"mask"``: piecewise-linear functions (relu, leaky_relu, hard_tanh, ...): a bit-packed code per
  element naming the segment's slope, 1 bit for up to two distinct slopes, 2 bits for up to four;
  the gradient is exactly the exact mode's. Eligibility comes from the spec: its ``kinks`` at the
  given parameters split the line into segments, and the spec's derivative must be constant on each
  (checked numerically on a dense grid, with the forward linear there too). A kink point itself gets
  the code of the derivative the spec returns there (relu'(0) = 0, leaky_relu'(0) = slope), so the
  kink conventions match ``exact``. The gradient is grad * slope, bit for bit actlab's own backward;
  PyTorch's backward (the exact mode's for native specs in float32/float64) writes +0 where the
  slope is 0, so a zero gradient's sign may differ there. Float32 inputs of native specs compare
  with the kinks rounded to float32, as PyTorch's ops do; a slope that is no float (0.2) is
  multiplied in the precision the exact mode uses for that dtype (found once on a probe).
- ``"fewbit"`` with ``bits=1..4``: every other (smooth) elementwise function: the code is the number
  of breakpoints <= x, and the backward is grad * levels[code] (Novikov et al., "Few-Bit Backward",
  ICML 2023), with the table from :func:`actlab.torch.fewbit.fewbit_table` (cached per spec,
  parameters and bits).

Codes are packed 8 elements to ``bits`` bytes (``ceil(n / 8) * bits`` bytes for n elements) by the
fused C++ kernels (csrc/memory.cpp: f(x) and the codes in one pass over x), with a torch-ops form
for other devices and where the kernels are off. Only the packed uint8 tensor is saved for backward.
Without a gradient to record (``torch.no_grad()``, an input without ``requires_grad``) the call is
the exact mode's forward and no code is computed.

NaN inputs: every comparison is false, so a NaN element gets the left-most segment's (mask) or the
first level's (fewbit) code: its gradient is finite where the exact mode's is NaN (the output is
NaN there, so a NaN usually reaches the gradient through the loss anyway).
Double backward: ``mask`` has the exact one (the gradient is linear in grad, f'' = 0 between the
kinks); ``fewbit`` refuses it with an error (its derivative is an approximation).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from actlab.catalog import Spec
from actlab.torch import kernels

__all__ = ["MODES", "Plan", "resolve", "memory_function", "piecewise_linear", "mask_eligible", "clear_cache"]

MODES = ("exact", "mask", "fewbit")
FEWBIT_BITS = (1, 2, 3, 4)
_LOW = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class Plan:
    """What a memory mode keeps and how it turns codes back into derivatives."""

    name: str
    mode: str  # "mask" or "fewbit"
    bits: int
    breakpoints: tuple[float, ...]  # sorted
    lut: tuple[int, ...]  # mask: code by p = #(t < x) + #(t <= x); fewbit: empty (code = #(t <= x))
    table: tuple[float, ...]  # the derivative by code (2**bits values)

    @property
    def lossy(self) -> bool:
        return self.mode == "fewbit"


# ----------------------------------------------------------------------------- eligibility
def _grid() -> np.ndarray:
    powers = 2.0 ** np.arange(-126, 128)
    pos = np.concatenate([powers, 1.5 * powers[:-1], [np.finfo(np.float32).max]])
    return np.unique(np.concatenate([np.linspace(-64.0, 64.0, 4097), pos, -pos, [0.0]]))


_GRID = _grid()


def _segment_points(a: float, b: float) -> np.ndarray:
    inside = _GRID[(_GRID > a) & (_GRID < b)]
    extra = []
    for end, toward in ((a, b), (b, a)):
        if math.isfinite(end):
            near = end
            for _ in range(2):  # the two doubles next to the kink
                near = math.nextafter(near, toward)
                extra.append(near)
            extra.append(end + (toward - end) * 1e-3 if math.isfinite(toward) else end + math.copysign(1e-3, toward))
    if math.isfinite(a) and math.isfinite(b):
        extra += [a + (b - a) * f for f in (0.25, 0.5, 0.75)]
    pts = np.concatenate([inside, np.array(extra, dtype=np.float64)])
    return np.unique(pts[(pts > a) & (pts < b)])


def piecewise_linear(spec: Spec, params: dict[str, Any]) -> tuple[list[float], list[float], list[float]] | None:
    """``(kinks, slopes, kink_derivatives)`` when ``spec`` is piecewise linear at ``params``: its
    derivative is one constant on each segment between its (finite) kinks, and the forward is linear
    there; None otherwise. ``slopes[s]`` is segment s's derivative (s = 0 left of the first kink),
    ``kink_derivatives[j]`` the derivative the spec returns exactly at kink j."""
    from actlab.ops.numpy_ops import apply as np_forward
    from actlab.ops.numpy_ops import apply_derivative

    if spec.kind != "elementwise" or spec.derivative is None:
        return None
    kinks = sorted({float(t) for t, _ in spec.kink_points(params)})
    edges = [-math.inf, *kinks, math.inf]
    slopes: list[float] = []
    for a, b in zip(edges[:-1], edges[1:]):
        pts = _segment_points(a, b)
        if pts.size == 0:  # two adjacent doubles: no input lies between them
            slopes.append(0.0)
            continue
        d = apply_derivative(spec, pts, params)
        s = d[pts.size // 2]
        if not np.isfinite(s) or not np.all(d == s):
            return None
        f = np_forward(spec, pts, params)
        x0, f0 = pts[pts.size // 2], f[pts.size // 2]
        with np.errstate(all="ignore"):
            rise = s * (pts - x0)
            ok = np.isfinite(f) & np.isfinite(rise)
            err = np.abs(f - f0 - rise)
            scale = np.abs(f) + abs(f0) + np.abs(rise)
        if not np.isfinite(f0) or np.any(err[ok] > 1e-9 * scale[ok] + 1e-300):
            return None
        slopes.append(float(s))
    at_kinks = [float(v) for v in apply_derivative(spec, np.array(kinks, dtype=np.float64), params)] if kinks else []
    return kinks, slopes, at_kinks


def _key(value: float) -> str:
    return repr(float(value))  # exact, and NaN equals NaN


def _mask_plan(spec: Spec, params: dict[str, Any]) -> Plan | str:
    """The mask plan, or why there is none."""
    found = piecewise_linear(spec, params)
    if found is None:
        return "not piecewise-linear"
    kinks, slopes, at_kinks = found
    codes: dict[str, int] = {}
    values: list[float] = []
    for v in [*slopes, *at_kinks]:
        if _key(v) not in codes:
            codes[_key(v)] = len(values)
            values.append(v)
    if len(values) > 4:
        return f"piecewise-linear with {len(values)} distinct slopes (mask keeps at most 4, in 2 bits)"
    bits = 1 if len(values) <= 2 else 2
    lut = []
    for p in range(2 * len(kinks) + 1):
        lut.append(codes[_key(slopes[p // 2])] if p % 2 == 0 else codes[_key(at_kinks[(p - 1) // 2])])
    table = tuple(values) + (0.0,) * (2**bits - len(values))
    return Plan(spec.name, "mask", bits, tuple(kinks), tuple(lut), table)


def mask_eligible(spec: Spec, params: dict[str, Any] | None = None) -> bool:
    """Whether ``memory="mask"`` accepts ``spec`` at ``params`` (default: its defaults)."""
    if spec.kind != "elementwise" or spec.train_forward is not None:
        return False
    return isinstance(_mask_plan(spec, spec.resolve_params() if params is None else params), Plan)


_MASK_NAMES: list[str] | None = None


def _mask_names() -> list[str]:
    global _MASK_NAMES
    if _MASK_NAMES is None:
        from actlab.registry import all_specs

        _MASK_NAMES = [s.name for s in all_specs() if mask_eligible(s)]
    return _MASK_NAMES


def _fewbit_plan(spec: Spec, params: dict[str, Any], bits: int) -> Plan:
    try:
        fewbit = importlib.import_module("actlab.torch.fewbit")
    except ImportError as err:
        raise ImportError(f"memory='fewbit' needs the few-bit tables of actlab.torch.fewbit ({err})") from None
    tab = fewbit.fewbit_table(spec, dict(params), bits)
    b = np.asarray(tab.breakpoints, dtype=np.float64)
    levels = np.asarray(tab.levels, dtype=np.float64)
    if b.shape != (2**bits - 1,) or levels.shape != (2**bits,):
        raise ValueError(
            f"{spec.name}: a {bits}-bit few-bit table needs {2**bits - 1} breakpoints and {2**bits} levels; "
            f"got {b.size} and {levels.size}"
        )
    if np.any(np.isnan(b)) or np.any(np.diff(b) < 0):
        raise ValueError(f"{spec.name}: the few-bit table's breakpoints must be sorted numbers")
    return Plan(spec.name, "fewbit", bits, tuple(map(float, b)), (), tuple(map(float, levels)))


# ----------------------------------------------------------------------------- validation
def _params_key(params: dict[str, Any]) -> tuple:
    return tuple((k, type(v).__name__, repr(v)) for k, v in sorted(params.items()))


_PLANS: dict[tuple, Plan] = {}
_CALLS: dict[tuple, Callable[[torch.Tensor], torch.Tensor]] = {}


def clear_cache() -> None:
    """Forget the plans and their few-bit tables (a test that swaps ``fewbit_table`` calls this)."""
    global _MASK_NAMES
    _PLANS.clear()
    _CALLS.clear()
    _MASK_NAMES = None


def _not_while_compiling(spec: Spec, memory: str) -> None:
    if torch.compiler.is_compiling():  # the plan's NumPy checks and its Function cannot be traced
        raise RuntimeError(
            f"{spec.name}(..., memory={memory!r}) is first called inside torch.compile: call it once outside "
            f"(or use actlab.nn.Activation({spec.name!r}, memory={memory!r}), which prepares it at construction)"
        )


def resolve(spec: Spec, params: dict[str, Any], memory: Any = "exact", bits: Any = None) -> Plan | None:
    """Validate a memory mode for ``spec`` at (validated) ``params``: the plan, or None for "exact".
    A ValueError names what is wrong and what is allowed."""
    if not isinstance(memory, str) or memory not in MODES:
        raise ValueError(f"memory must be one of {', '.join(map(repr, MODES))}; got {memory!r}")
    if bits is not None and memory != "fewbit":
        why = "its code width follows the number of slopes" if memory == "mask" else "it keeps the full input"
        raise ValueError(f"bits= is the code width of memory='fewbit'; memory={memory!r} takes no bits ({why})")
    if memory == "exact":
        return None
    if memory == "fewbit" and (isinstance(bits, bool) or not isinstance(bits, int) or bits not in FEWBIT_BITS):
        raise ValueError(f"memory='fewbit' needs bits=1, 2, 3 or 4 (bits kept per element); got bits={bits!r}")
    key = (spec.name, id(spec), _params_key(params), memory, bits)
    plan = _PLANS.get(key)
    if plan is not None:
        return plan
    _not_while_compiling(spec, memory)
    if spec.kind != "elementwise":
        raise ValueError(
            f"{spec.name} is a {spec.kind} function: memory={memory!r} is for elementwise functions "
            f"(use memory='exact')"
        )
    if spec.train_forward is not None:
        raise ValueError(
            f"{spec.name} is random in training: memory={memory!r} needs a deterministic function (use memory='exact')"
        )
    from actlab.verify.samples import sample_label

    where = "its defaults" if not spec.non_default(params) else sample_label(spec, params)
    mask = _mask_plan(spec, params)
    if memory == "mask":
        if not isinstance(mask, Plan):
            raise ValueError(
                f"memory='mask' needs a piecewise-linear function (constant slopes between kinks); {spec.name} is "
                f"{mask} at {where}: use memory='fewbit' with bits=1..4 (an approximate derivative). "
                f"Functions that allow mask (at their defaults): {', '.join(_mask_names())}"
            )
        plan = mask
    else:
        if isinstance(mask, Plan):
            raise ValueError(
                f"{spec.name} is piecewise-linear at {where}: use memory='mask' (its exact gradient in "
                f"{mask.bits} bit{'s' if mask.bits > 1 else ''} per element); fewbit approximates smooth functions"
            )
        plan = _fewbit_plan(spec, params, bits)
    _PLANS[key] = plan
    return plan


# ----------------------------------------------------------------------------- the torch side
_registered = False


def _register_fakes() -> None:
    """Shapes of the memory operators for torch.compile (fake tensors); once, after the build."""
    global _registered
    if _registered or not kernels.build():
        return
    _registered = True

    @torch.library.register_fake("actlab_kernels::mem_codes")
    def _codes_fake(x: torch.Tensor, t: list, lut: list, bits: int) -> torch.Tensor:
        return x.new_empty(((x.numel() + 7) // 8 * bits,), dtype=torch.uint8)

    @torch.library.register_fake("actlab_kernels::mem_forward")
    def _forward_fake(x: torch.Tensor, name: str, params: list, t: list, lut: list, bits: int) -> tuple:
        return x.new_empty(x.shape), x.new_empty(((x.numel() + 7) // 8 * bits,), dtype=torch.uint8)

    @torch.library.register_fake("actlab_kernels::mem_scale")
    def _scale_fake(
        codes: torch.Tensor, grad: torch.Tensor, table: list, bits: int, wide: bool = False
    ) -> torch.Tensor:
        return grad.new_empty(grad.shape)


def torch_codes(x: torch.Tensor, breakpoints: tuple, lut: tuple, bits: int) -> torch.Tensor:
    """The packed codes by torch ops (any device; the kernels' layout)."""
    flat = x.reshape(-1, 1)
    t = torch.tensor(breakpoints, dtype=torch.float64, device=x.device)
    code = (flat >= t).sum(1)  # float vs float64 compares in float64: exact
    if lut:
        code = torch.tensor(lut, dtype=torch.int64, device=x.device)[code + (flat > t).sum(1)]
    n = code.numel()
    code = torch.nn.functional.pad(code, (0, (-n) % 8)).view(-1, 8).to(torch.int32)
    word = (code << (bits * torch.arange(8, device=x.device, dtype=torch.int32))).sum(1, dtype=torch.int32)
    shifts = 8 * torch.arange(bits, device=x.device, dtype=torch.int32)
    return ((word.unsqueeze(1) >> shifts) & 255).to(torch.uint8).reshape(-1)


def torch_scale(codes: torch.Tensor, grad: torch.Tensor, table: tuple, bits: int, wide: bool = False) -> torch.Tensor:
    """grad * table[code] by torch ops: in float for float32/half grads (``wide``: in double, rounded to
    float and then to the grad's dtype), as the kernel."""
    n = grad.numel()
    b = codes.view(-1, bits).to(torch.int32)
    word = (b << (8 * torch.arange(bits, device=grad.device, dtype=torch.int32))).sum(1, dtype=torch.int32)
    code = (word.unsqueeze(1) >> (bits * torch.arange(8, device=grad.device, dtype=torch.int32))) & (2**bits - 1)
    code = code.reshape(-1)[:n].long()
    work = torch.float64 if grad.dtype == torch.float64 or wide else torch.float32
    values = torch.tensor(table, dtype=work, device=grad.device)[code].view(grad.shape)
    out = grad.to(work) * values
    return out if grad.dtype == torch.float64 else out.float().to(grad.dtype)


def memory_function(
    spec: Spec, params: dict[str, Any], memory: Any = "exact", bits: Any = None
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The call ``x -> f(x)`` keeping only codes for backward, or None for ``memory="exact"``;
    validated (and its Function built) here, once per spec, parameters and mode."""
    plan = resolve(spec, params, memory, bits)
    if plan is None:
        return None
    key = (spec.name, id(spec), _params_key(params), plan)
    call = _CALLS.get(key)
    if call is None:
        _not_while_compiling(spec, memory)
        call = _CALLS[key] = _make_call(spec, params, plan)
    return call


def _make_call(spec: Spec, params: dict[str, Any], plan: Plan) -> Callable[[torch.Tensor], torch.Tensor]:
    from actlab.torch.functional import _check_input, _compute

    kernels.build()
    _register_fakes()
    # Everything the Function's methods use is plain data or a plain function (torch.compile traces them).
    forward_fn, native = spec.forward, spec.torch_native if spec.native else None
    values = [params[n] for n in spec.param_names]
    kw = dict(params)
    name = kernels.kernel_name(spec)
    encoded = kernels.param_encoder(spec)(values)
    fused_dtypes = tuple(d for d in kernels.DTYPES if name is not None and kernels.has_kernel(spec, d))
    kernel_dtypes = tuple(kernels.DTYPES) if name is not None else ()
    t, lut, bits, table = list(plan.breakpoints), list(plan.lut), plan.bits, list(plan.table)
    # PyTorch's own ops (the exact mode's float32 path of native specs) compare x with the parameters
    # rounded to float32: so do the codes there, and the segments agree bit for bit.
    with np.errstate(over="ignore"):
        t32 = [float(np.float32(v)) for v in t]
    lossy, mode = plan.lossy, plan.mode
    label = spec.name

    def exact_forward(x: torch.Tensor) -> torch.Tensor:
        # what the exact mode's forward computes, bit for bit
        if native is not None and x.dtype not in _LOW:
            return native(x, torch, **kw)
        if name is not None and x.dtype in kernel_dtypes and kernels.eligible(x):
            return torch.ops.actlab_kernels.forward(x, name, encoded)
        out = _compute(forward_fn, x, kw)
        return out.clone() if out is x else out

    def forward_codes(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        at = t32 if mode == "mask" and native is not None and x.dtype == torch.float32 else t
        if x.device.type == "cpu" and kernels.enabled() and kernels.available():
            if x.dtype in fused_dtypes and kernels.eligible(x):  # f and the codes in one pass
                return torch.ops.actlab_kernels.mem_forward(x, name, encoded, at, lut, bits)
            return exact_forward(x), torch.ops.actlab_kernels.mem_codes(x, at, lut, bits)
        return exact_forward(x), torch_codes(x, tuple(at), tuple(lut), bits)

    # dtypes whose exact gradient is g * f' in double rounded once (the kernels' double form, where a
    # parameter keeps the float form off): found by _probe_products below
    wide_dtypes: list[torch.dtype] = []

    def scale(codes: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        wide = grad.dtype in wide_dtypes
        if grad.device.type == "cpu" and kernels.enabled() and kernels.available():
            return torch.ops.actlab_kernels.mem_scale(codes, grad, table, bits, wide)
        return torch_scale(codes, grad, tuple(table), bits, wide)

    class Scale(torch.autograd.Function):
        """grad -> grad * table[code]: linear in grad, its own adjoint (the mask's double backward)."""

        @staticmethod
        def forward(ctx: Any, grad: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(codes)
            return scale(codes, grad)

        @staticmethod
        def backward(ctx: Any, gg: torch.Tensor) -> tuple:
            (codes,) = ctx.saved_tensors
            return Scale.apply(gg, codes), None

    class MemoryFunction(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            y, codes = forward_codes(x)
            ctx.save_for_backward(codes)  # the only tensor kept
            return y

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            (codes,) = ctx.saved_tensors
            if torch.is_grad_enabled():  # create_graph: a differentiable backward
                if lossy:
                    raise RuntimeError(
                        f"{label}: memory='fewbit' keeps only a {bits}-bit code of the input, so its gradient "
                        f"cannot be differentiated again (double backward, create_graph=True); use memory='exact'"
                    )
                return Scale.apply(grad, codes)
            return scale(codes, grad)

    MemoryFunction.__name__ = MemoryFunction.__qualname__ = f"{label}_{mode}{bits}_function"
    apply = MemoryFunction.apply

    def call(x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and isinstance(x, torch.Tensor) and x.requires_grad:
            _check_input(spec, x)
            return apply(x)
        _check_input(spec, x)
        return exact_forward(x)  # nothing to keep: no codes

    call.plan = plan
    if mode == "mask" and any(float(np.float32(v)) != v for v in table if math.isfinite(v)):
        _probe_products(spec, params, plan, call, wide_dtypes)
    return call


def _probe_products(spec: Spec, params: dict[str, Any], plan: Plan, call: Any, wide: list) -> None:
    """A slope that is no float (0.2, 1/6) makes g * slope depend on the precision of the product: the
    exact mode multiplies in float on the kernels' float form and PyTorch's ops, in double on the
    kernels' double form (where a parameter rules the float form out). Per dtype, the product the
    exact mode uses is found once on a probe (one point in each segment, seeded gradients)."""
    from actlab.torch.functional import function_for

    edges = [-math.inf, *plan.breakpoints, math.inf]
    points = []
    for a, b in zip(edges[:-1], edges[1:]):
        if math.isinf(a) and math.isinf(b):
            points.append(1.0)
        elif math.isinf(a):
            points.append(b - 1.0 - abs(b))
        elif math.isinf(b):
            points.append(a + 1.0 + abs(a))
        else:
            points.append(a + (b - a) / 2)
    exact = function_for(spec)
    gen = torch.Generator().manual_seed(0)
    base = torch.tensor(points * 16, dtype=torch.float64)
    grad = torch.randn(base.shape, generator=gen, dtype=torch.float64)
    for dtype in kernels.DTYPES:
        x, g = base.to(dtype), grad.to(dtype)
        results = []
        for fn in (lambda t: exact(t, **params), call):
            xr = x.clone().requires_grad_()
            (gx,) = torch.autograd.grad(fn(xr), xr, g)
            results.append(gx)
        if not torch.equal(results[0], results[1]):
            wide.append(dtype)
            xr = x.clone().requires_grad_()
            (gx,) = torch.autograd.grad(call(xr), xr, g)
            if not torch.equal(results[0], gx):  # neither: keep the float product
                wide.remove(dtype)
