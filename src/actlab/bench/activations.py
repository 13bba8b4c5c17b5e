"""``actlab bench [NAMES]``: activations against ``clone()``, PyTorch's op, the naive SymPy composition,
actlab's accurate eager path and actlab's fast path, measured in one process, in the same run.

For each activation, on one tensor (16 Mi = 2**24 float32 elements, x ~ N(0, 3²), seeded, by default):

* **time**: the median forward time and forward+backward time of every path, in interleaved rounds
  (each round times every path once, each just after a clone, so drift of a shared machine affects
  all of them alike), after warm-up calls. Forward: the input does not require grad. Forward+backward: ``y = f(x)`` then
  ``torch.autograd.grad(y, x, g)`` with a fixed random ``g`` (no ``.sum()``, no gradient accumulation).
  Ratios (``× clone``) divide by the median time of ``x.clone()``, timed just before every path
  in every round (so the reference samples the same moments of a shared machine): one
  clone reads 4 and writes 4 bytes per float32 element, so the ratios count bytes moved: an
  out-of-place forward cannot go below 1, a forward+backward below 2.5 (read x, write y; read g
  and the saved tensor, write the gradient). The clone row's own forward+backward goes through
  ``CloneBackward`` (which passes the gradient through) and is shown for completeness.
* **small**: microseconds per call on a 64×256 tensor (forward, and forward+backward), many calls
  per sample: the per-call overhead that dominates small layers.
* **memory**: bytes saved for backward per input element (every tensor the autograd graph keeps,
  counted once per storage through ``torch.autograd.graph.saved_tensors_hooks``, the input included
  when it is kept), and the peak memory the forward allocates (its output included), as a multiple
  of the output's size. On CPU the peak is the running sum of the allocation and free events that
  ``torch.profiler.profile(profile_memory=True)`` records for that one call (the CPU allocator has
  no other counter); on CUDA it is ``torch.cuda.max_memory_allocated`` above the memory in use
  before the call. The same pass counts the ATen operators each path dispatches forward and
  backward (a ``TorchDispatchMode``, on the small tensor).
* **block** (``--block``): one training step (forward, MSE loss, backward; no optimizer step) of a
  transformer MLP block, Linear 192→768, activation, Linear 768→192, on 64×197×192 tokens, with
  ``actlab.nn.Activation(name)`` against the PyTorch module: the ``torch.nn`` class named by the
  spec's PyTorch equivalent when it takes the spec's parameters and computes what
  ``spec.torch_native`` computes, otherwise a module calling ``spec.torch_native``; n/a where the
  spec has no PyTorch form.

Paths: ``clone`` the reference; ``torch`` the spec's ``torch_native`` (PyTorch's op; for a few
specs the composition a peer library uses); ``sympy`` the spec's SymPy definition translated
node by node into torch ops, autograd doing the backward (n/a where a SymPy function has no torch
counterpart); ``eager`` actlab's accurate eager path (``actlab.torch.kernels.use(False)``); ``fast``
actlab's fused fast path (``use(True)``, n/a where the spec has no kernel for this dtype and
device, or where the kernels did not load). actlab's paths are called through the public
functional form, ``actlab.torch.functional.<name>(x, **params)``, as a user calls them.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from actlab._json import json_safe

FORMATS = ("table", "json", "csv", "md")
DTYPES = ("float32", "bfloat16", "float16", "float64")
PATHS = ("clone", "torch", "sympy", "eager", "fast")
PARTS = ("time", "small", "memory", "block")
VIEWS = ("paths", "summary", "block")
DEFAULT_SIZE = 2**24  # "16M" elements
SMALL_SHAPE = (64, 256)
BLOCK_DIMS = (192, 768)  # model width, hidden width
BLOCK_INPUT = (64, 197, 192)  # ViT-tiny: batch 64, 197 tokens


# The targets of issue #11 ("Numbers to reach"), checked in the summary's "misses" column (a figure
# that is n/a misses nothing): (summary key, limit, label). Saved bytes: at most one tensor of the
# input's size (the limit is in elements).
TARGETS = (
    ("fwdbwd_x_clone", 3.5, "f+b>3.5×clone"),
    ("fwdbwd_x_torch", 1.05, "f+b>1.05×torch"),
    ("small_fwdbwd_x_torch", 1.05, "small>1.05×torch"),
    ("saved_bytes_per_element", 1.0, "saved>1 tensor"),
    ("peak_x_output", 1.1, "peak>1.1×out"),
    ("block_step_x_torch", 1.03, "block>1.03×torch"),
)
_ITEMSIZE = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}


class BenchError(ValueError):
    """A benchmark that cannot run as asked (no CUDA, an activation it cannot measure)."""


# ----------------------------------------------------------------------------- records
@dataclass
class PathResult:
    """One path's figures for one activation; NaN (shown "n/a") where not measured, with ``note``."""

    path: str
    clone_ms: float = math.nan  # the reference: median of the clones timed before every path, every round
    fwd_ms: float = math.nan
    fwdbwd_ms: float = math.nan
    fwd_x_clone: float = math.nan
    fwdbwd_x_clone: float = math.nan
    small_fwd_us: float = math.nan
    small_fwdbwd_us: float = math.nan
    saved_bytes_per_element: float = math.nan
    peak_x_output: float = math.nan
    aten_ops_fwd: int | None = None
    aten_ops_bwd: int | None = None
    samples: int = 0  # timed rounds behind the 16M medians
    note: str = ""


@dataclass
class BlockResult:
    """The MLP block's training step with actlab's module and with PyTorch's (medians, ms)."""

    torch_module: str | None
    torch_fwd_ms: float = math.nan
    torch_step_ms: float = math.nan
    actlab_fwd_ms: float = math.nan
    actlab_step_ms: float = math.nan
    step_x_torch: float = math.nan
    note: str = ""


@dataclass
class ActivationResult:
    activation: str  # the identifier, as actlab.get resolves it (a call string when not default)
    name: str  # the spec's name
    params: dict[str, Any]
    default_path: str  # the path actlab takes by default: "fast" where a kernel exists, else "eager"
    paths: list[PathResult] = field(default_factory=list)
    block: BlockResult | None = None

    def path(self, name: str) -> PathResult:
        """The figures of one path (an empty record where the path was not measured)."""
        return next((p for p in self.paths if p.path == name), PathResult(name, note="not measured"))


@dataclass
class BenchResult:
    setting: dict[str, Any]
    activations: list[ActivationResult]

    def to_dict(self) -> dict[str, Any]:
        return {"setting": dict(self.setting), "activations": [asdict(a) for a in self.activations]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        """The result ``to_dict`` (or ``--format json``) wrote; JSON's null is NaN again."""

        def record(kind: type, fields: dict[str, Any]) -> Any:
            known = kind.__dataclass_fields__
            return kind(**{k: (math.nan if v is None and known[k].type == "float" else v) for k, v in fields.items()})

        try:
            acts = [
                ActivationResult(
                    **{
                        **a,
                        "paths": [record(PathResult, p) for p in a["paths"]],
                        "block": None if a.get("block") is None else record(BlockResult, a["block"]),
                    }
                )
                for a in data["activations"]
            ]
            return cls(setting=dict(data["setting"]), activations=acts)
        except (KeyError, TypeError) as err:
            raise BenchError(f"not the JSON of actlab bench activations: {err}") from None

    def path_rows(self) -> list[dict[str, Any]]:
        """One row per (activation, path)."""
        return [{"activation": a.activation, **asdict(p)} for a in self.activations for p in a.paths]

    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per activation: actlab's default path against clone() and against PyTorch's op."""
        rows = []
        for a in self.activations:
            mine, torch_ = a.path(a.default_path), a.path("torch")
            block = a.block or BlockResult(None)
            rows.append(
                {
                    "activation": a.activation,
                    "actlab_path": a.default_path,
                    "fwdbwd_x_clone": mine.fwdbwd_x_clone,
                    "torch_fwdbwd_x_clone": torch_.fwdbwd_x_clone,
                    "fwdbwd_x_torch": _ratio(mine.fwdbwd_ms, torch_.fwdbwd_ms),
                    "small_fwdbwd_x_torch": _ratio(mine.small_fwdbwd_us, torch_.small_fwdbwd_us),
                    "saved_bytes_per_element": mine.saved_bytes_per_element,
                    "peak_x_output": mine.peak_x_output,
                    "block_step_x_torch": block.step_x_torch,
                }
            )
            itemsize = _ITEMSIZE.get(self.setting.get("dtype", "float32"), 4)
            rows[-1]["misses"] = ", ".join(
                label
                for key, limit, label in TARGETS
                if rows[-1][key] > (limit * itemsize if key == "saved_bytes_per_element" else limit)
            )
        return rows

    def block_rows(self) -> list[dict[str, Any]]:
        return [{"activation": a.activation, **asdict(a.block)} for a in self.activations if a.block is not None]


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 and math.isfinite(a) and math.isfinite(b) else math.nan


# ----------------------------------------------------------------------------- resolving names
def resolve(names: Sequence[str] | None) -> list[Any]:
    """``names`` as bound activations; every elementwise activation of the registry when empty.

    Raises actlab's UnknownActivationError (with close matches) for an unknown name, and
    BenchError for a layer or an activation with learnable parameters.
    """
    from actlab.registry import BoundActivation, all_specs, get

    if not names:
        return [BoundActivation(spec) for spec in all_specs("elementwise")]
    out = []
    for name in names:
        act = get(name)
        if not isinstance(act, BoundActivation):
            raise BenchError(f"{name!r} is not a registered activation")
        if act.spec.kind == "layer":
            raise BenchError(f"{act.name} is a layer with trained weights; bench measures activation functions")
        if act.learnable:
            raise BenchError(f"{act!r}: bench measures fixed parameters; drop 'learnable'")
        out.append(act)
    return out


# ----------------------------------------------------------------------------- the fast-path switch
def _kernels() -> Any:
    """``actlab.torch.kernels`` where it exists (the fused fast path), else None."""
    try:
        from actlab.torch import kernels
    except ImportError:
        return None
    return kernels


def _has_kernel(kernels: Any, spec: Any, dtype: Any, device: Any) -> bool:
    if kernels is None:
        return False
    try:
        if not kernels.available():
            return False
        if spec.kind == "vector":  # the row kernels (actlab.torch.rows): CPU float32/bfloat16/float16
            from actlab.torch import rows

            return rows.has_kernel(spec.name) and dtype in kernels.DTYPES and device.type == "cpu"
        accepted = inspect.signature(kernels.has_kernel).parameters
        extra = {k: v for k, v in (("dtype", dtype), ("device", device)) if k in accepted}
        return bool(kernels.has_kernel(spec, **extra))
    except Exception:  # a loader that failed in a way we do not know: no fast path, not a crash
        return False


def _switch(kernels: Any, enabled: bool) -> Callable[[], Any]:
    if kernels is None:
        return contextlib.nullcontext
    return lambda: kernels.use(enabled)


# ----------------------------------------------------------------------------- the naive composition
class NoTorchCounterpart(Exception):
    """A SymPy function with no torch counterpart (the naive path is n/a)."""


def _unary(name: str) -> Callable[..., Any]:
    return lambda torch, a: getattr(torch, name)(_as_tensor(torch, a))


# SymPy function (class name) -> torch composition. Keyed by SymPy's function names, not by
# activation: the catalog's own SymPy helpers (exponential.py) are written out as what they mean.
_SYMPY_TORCH: dict[str, Callable[..., Any]] = {
    **{n: _unary(n) for n in ("exp", "log", "expm1", "log1p", "sin", "cos", "tan", "tanh", "sinh", "cosh")},
    **{n: _unary(n) for n in ("erf", "erfc", "sqrt", "sign", "floor")},
    "atan": _unary("atan"),
    "asinh": _unary("asinh"),
    "acosh": _unary("acosh"),
    "atanh": _unary("atanh"),
    "asin": _unary("asin"),
    "acos": _unary("acos"),
    "ceiling": _unary("ceil"),
    "Abs": _unary("abs"),
    "exp_neg_exp": lambda torch, u: torch.exp(-torch.exp(_as_tensor(torch, u))),  # e^(-e^u)
    "cloglog": lambda torch, u: 1 - torch.exp(-torch.exp(_as_tensor(torch, u))),  # 1 - e^(-e^u)
}


def _as_tensor(torch: Any, value: Any) -> Any:
    return value if isinstance(value, torch.Tensor) else torch.tensor(float(value))


def sympy_to_torch(expr: Any, x: Any) -> Callable[[Any], Any]:
    """The SymPy expression ``expr`` in the symbol ``x`` as a function of a tensor, composed of
    torch ops node by node (Piecewise as nested ``torch.where``), so that autograd differentiates
    it. Raises NoTorchCounterpart naming a function torch lacks. Nothing is eval-ed."""
    import operator

    import sympy
    import torch

    relations = {
        sympy.StrictLessThan: operator.lt,
        sympy.LessThan: operator.le,
        sympy.StrictGreaterThan: operator.gt,
        sympy.GreaterThan: operator.ge,
        sympy.Eq: operator.eq,
        sympy.Ne: operator.ne,
    }

    def build(node: Any) -> Callable[[Any], Any]:
        if node == x:
            return lambda t: t
        if node.is_Number or node in (sympy.pi, sympy.E) or (node.is_number and not node.free_symbols):
            if node is sympy.true or node is sympy.false:
                value = bool(node)
                return lambda t: value
            c = float(node)
            return lambda t: c
        if node is sympy.true or node is sympy.false:
            value = bool(node)
            return lambda t: value
        if isinstance(node, sympy.Add):
            parts = [build(a) for a in node.args]

            def add(t: Any) -> Any:
                acc = parts[0](t)
                for p in parts[1:]:
                    acc = acc + p(t)
                return acc

            return add
        if isinstance(node, sympy.Mul):
            parts = [build(a) for a in node.args]

            def mul(t: Any) -> Any:
                acc = parts[0](t)
                for p in parts[1:]:
                    acc = acc * p(t)
                return acc

            return mul
        if isinstance(node, sympy.Pow):
            base, power = build(node.base), node.exp
            if power == sympy.Rational(1, 2):
                return lambda t: torch.sqrt(_as_tensor(torch, base(t)))
            if power.is_number:
                e = float(power)
                return lambda t: base(t) ** e
            exponent = build(power)
            return lambda t: base(t) ** exponent(t)
        if isinstance(node, sympy.Piecewise):
            pairs = [(build(e), build(c)) for e, c in node.args]

            def piecewise(t: Any) -> Any:
                out = None
                for value, cond in reversed(pairs):
                    c = cond(t)
                    if isinstance(c, bool):
                        out = value(t) if c else out
                        continue
                    v = value(t)
                    out = v if out is None else torch.where(c, v, out)
                if out is None:
                    raise NoTorchCounterpart("a Piecewise with no branch that applies")
                return out

            return piecewise
        if type(node) in relations:
            op, lhs, rhs = relations[type(node)], build(node.lhs), build(node.rhs)
            return lambda t: op(lhs(t), rhs(t))
        if isinstance(node, (sympy.And, sympy.Or)):
            parts = [build(a) for a in node.args]
            combine = torch.logical_and if isinstance(node, sympy.And) else torch.logical_or

            def logical(t: Any) -> Any:
                acc = parts[0](t)
                for p in parts[1:]:
                    acc = combine(acc, p(t))
                return acc

            return logical
        if isinstance(node, (sympy.Max, sympy.Min)):
            parts = [build(a) for a in node.args]
            pick = torch.maximum if isinstance(node, sympy.Max) else torch.minimum

            def extremum(t: Any) -> Any:
                values = [p(t) for p in parts]
                acc = values[0]
                for v in values[1:]:
                    if not isinstance(acc, torch.Tensor) and not isinstance(v, torch.Tensor):
                        acc = max(acc, v) if isinstance(node, sympy.Max) else min(acc, v)
                        continue
                    ref = acc if isinstance(acc, torch.Tensor) else v
                    acc = pick(
                        acc if isinstance(acc, torch.Tensor) else ref.new_tensor(acc),
                        v if isinstance(v, torch.Tensor) else ref.new_tensor(v),
                    )
                return acc

            return extremum
        fn = _SYMPY_TORCH.get(type(node).__name__)
        if fn is None or len(node.args) != 1:
            raise NoTorchCounterpart(f"no torch counterpart for SymPy's {type(node).__name__}")
        arg = build(node.args[0])

        def apply(t: Any) -> Any:
            a = arg(t)
            if not isinstance(a, torch.Tensor):
                a = t.new_tensor(a)
            return fn(torch, a)

        return apply

    return build(expr)


# ----------------------------------------------------------------------------- measuring helpers
def _count_saved(fn: Callable[[Any], Any], x: Any) -> tuple[Any, int]:
    """``fn(x)`` and the bytes of every tensor autograd saved for backward, once per storage."""
    import torch

    storages: dict[tuple[int, str], int] = {}

    def pack(t: Any) -> Any:
        st = t.untyped_storage()
        storages[(st.data_ptr(), str(t.device))] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn(x)
    return y, sum(storages.values())


def saved_bytes_per_element(fn: Callable[[Any], Any], x: Any) -> float:
    """Bytes autograd keeps for the backward of ``fn(x)`` (x requires grad), per element of ``x``:
    every saved tensor counted once per storage, the input included when it is kept."""
    x = x.detach().requires_grad_(True)
    _, nbytes = _count_saved(fn, x)
    return nbytes / max(1, x.numel())


def _cpu_peak_bytes(run: Callable[[], Any]) -> tuple[Any, float]:
    """``run()`` and the peak of allocated minus freed bytes during it (torch.profiler memory events)."""
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _quiet_stderr():
        prof.start()
    try:
        out = run()
    finally:
        with _quiet_stderr():
            prof.stop()
    try:
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
        events.sort(key=lambda e: e.start_ns())
        level = peak = 0
        for e in events:
            level += e.nbytes()
            peak = max(peak, level)
    except Exception:  # a profiler whose private event API moved: no figure rather than a wrong one
        return out, math.nan
    return out, float(peak)


@contextlib.contextmanager
def _quiet_stderr() -> Any:
    """File descriptor 2 to /dev/null: Kineto prints "USDT ... profiler_start/stop" there from C++
    whenever a profiler starts or stops (KINETO_LOG_LEVEL is read once, when torch.profiler is first
    imported), which would interleave with the progress lines. Only around start and stop."""
    import os

    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2: nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _cuda_peak_bytes(run: Callable[[], Any]) -> tuple[Any, float]:
    import torch

    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = run()
    torch.cuda.synchronize()
    return out, float(torch.cuda.max_memory_allocated() - base)


def _count_aten(fn: Callable[[Any], Any], x: Any, g: Any) -> tuple[int, int]:
    """ATen operators dispatched by the forward (x requiring grad) and by the backward."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            self.n += 1
            return func(*args, **(kwargs or {}))

    x = x.detach().requires_grad_(True)
    with Count() as fwd:
        y = fn(x)
    if g is None or not y.requires_grad:
        return fwd.n, 0
    with Count() as bwd:
        torch.autograd.grad(y, x, g)
    return fwd.n, bwd.n


# ----------------------------------------------------------------------------- measure
def _parse_dtype(dtype: str) -> Any:
    import torch

    if dtype not in DTYPES:
        raise BenchError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    return getattr(torch, dtype)


@dataclass
class _Path:
    name: str
    fn: Callable[[Any], Any] | None  # None: n/a, ``note`` says why
    context: Callable[[], Any] = contextlib.nullcontext
    note: str = ""
    backward: bool = True  # False: the forward runs, its backward raises (torch.heaviside)


def _paths(act: Any, kernels: Any, dtype: Any, device: Any, wanted: Iterable[str]) -> list[_Path]:
    import torch

    from actlab.torch.functional import function_for

    spec, params = act.spec, dict(act.params)
    given = spec.non_default(params)
    public = function_for(spec)
    wanted = set(wanted)
    out = [_Path("clone", lambda t: t.clone())]
    if "torch" in wanted:
        if spec.torch_native is None:
            out.append(_Path("torch", None, note="PyTorch has no op for it"))
        else:
            native = spec.torch_native
            out.append(_Path("torch", lambda t: native(t, torch, **params)))
    if "sympy" in wanted:
        if spec.definition is None:
            out.append(_Path("sympy", None, note="no SymPy definition (a row oracle)"))
        else:
            try:
                out.append(_Path("sympy", sympy_to_torch(spec.sympy_definition(**params), _symbol())))
            except NoTorchCounterpart as err:
                out.append(_Path("sympy", None, note=str(err)))
    if "eager" in wanted:
        out.append(_Path("eager", lambda t: public(t, **given), _switch(kernels, False)))
    if "fast" in wanted:
        if kernels is None:
            out.append(_Path("fast", None, note="actlab.torch.kernels is not in this version"))
        elif not _has_kernel(kernels, spec, dtype, device):
            out.append(_Path("fast", None, note=_no_kernel(kernels, spec, dtype, device)))
        else:
            out.append(_Path("fast", lambda t: public(t, **given), _switch(kernels, True)))
    return out


def _kernel_status(kernels: Any) -> str:
    if kernels is None:
        return "not in this version"
    if hasattr(kernels, "enabled") and not _safe(kernels.enabled):
        return "turned off (ACTLAB_KERNELS=0)"
    return "loaded" if _safe(kernels.available) else "did not load"


def _no_kernel(kernels: Any, spec: Any, dtype: Any, device: Any) -> str:
    """Why ``spec`` has no fast path here."""
    if hasattr(kernels, "enabled") and not _safe(kernels.enabled):
        return "the fast path is turned off (ACTLAB_KERNELS=0)"
    if not _safe(kernels.available):
        return "the kernels did not load in this process"
    if spec.native:
        return "actlab runs PyTorch's op (native): no kernel of its own"
    if spec.kind == "vector" or not _safe(lambda: kernels.has_kernel(spec)):
        return "no fused kernel for this activation"
    return f"no fused kernel for {str(dtype).replace('torch.', '')} on {device.type}"


def _safe(fn: Callable[[], Any]) -> bool:
    try:
        return bool(fn())
    except Exception:
        return False


def _symbol() -> Any:
    import sympy

    return sympy.Symbol("x", real=True)


def _timer(device: Any) -> Callable[[], float]:
    import torch

    if device.type == "cuda":

        def now() -> float:
            torch.cuda.synchronize(device)
            return time.perf_counter()

        return now
    return time.perf_counter


def measure(
    names: Sequence[str] | None = None,
    *,
    dtype: str = "float32",
    shape: Sequence[int] = (DEFAULT_SIZE,),
    small_shape: Sequence[int] = SMALL_SHAPE,
    threads: int = 1,
    device: str = "cpu",
    repeats: int = 7,
    warmup: int = 1,
    budget: float = 3.0,
    seed: int = 0,
    paths: Iterable[str] = PATHS,
    parts: Iterable[str] = ("time", "small", "memory"),
    block_input: Sequence[int] = BLOCK_INPUT,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Benchmark activations (identifiers; default every elementwise activation) and return the figures.

    ``budget``: seconds per path and activation after which a slow path (actlab's eager chain at 16M)
    stops being timed, once it has ``min(3, repeats)`` rounds; the medians say how many they hold.
    ``parts``: any of "time", "small", "memory", "block".
    """
    import torch

    parts = set(parts)
    unknown = parts - set(PARTS)
    if unknown:
        raise BenchError(f"unknown part(s) {sorted(unknown)}; choose from {', '.join(PARTS)}")
    paths = set(paths) | {"clone"}
    if paths - set(PATHS):
        raise BenchError(f"unknown path(s) {sorted(paths - set(PATHS))}; choose from {', '.join(PATHS)}")
    if repeats < 1 or warmup < 0 or threads < 1 or budget < 0:
        raise BenchError(
            f"need repeats >= 1, warmup >= 0, threads >= 1, budget >= 0; got {repeats}, {warmup}, {threads}, {budget}"
        )
    for label, dims in (("shape", shape), ("small shape", small_shape), ("block input", block_input)):
        if not dims or any(int(d) < 1 for d in dims):
            raise BenchError(f"{label} needs positive sizes, got {tuple(dims)}")
    if len(block_input) < 2 or block_input[-1] != BLOCK_DIMS[0]:
        raise BenchError(f"block input must end with the model width {BLOCK_DIMS[0]}, got {tuple(block_input)}")
    torch_dtype = _parse_dtype(dtype)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda: this PyTorch has no CUDA device (torch.cuda.is_available() is False)")
    if dev.type not in ("cpu", "cuda"):
        raise BenchError(f"device must be cpu or cuda, got {device!r}")
    acts = resolve(names)
    say = progress or (lambda msg: None)
    kernels = _kernels()

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        results = []
        for i, act in enumerate(acts, 1):
            say(f"[{i}/{len(acts)}] {act!r}")
            results.append(
                _measure_one(
                    act,
                    kernels,
                    torch_dtype,
                    dev,
                    tuple(shape),
                    tuple(small_shape),
                    tuple(block_input),
                    repeats,
                    warmup,
                    budget,
                    seed,
                    paths,
                    parts,
                    say,
                )
            )
    finally:
        torch.set_num_threads(previous)
    setting = {
        "dtype": dtype,
        "shape": list(shape),
        "numel": math.prod(shape),
        "small_shape": list(small_shape),
        "block_input": list(block_input),
        "device": str(dev) if dev.type == "cpu" else torch.cuda.get_device_name(dev),
        "threads": threads,
        "repeats": repeats,
        "warmup": warmup,
        "budget_s": budget,
        "seed": seed,
        "parts": sorted(parts),
        "torch": torch.__version__,
        "kernels": _kernel_status(kernels),
    }
    return BenchResult(setting=setting, activations=results)


def _measure_one(
    act: Any,
    kernels: Any,
    dtype: Any,
    dev: Any,
    shape: tuple,
    small_shape: tuple,
    block_input: tuple,
    repeats: int,
    warmup: int,
    budget: float,
    seed: int,
    wanted: set,
    parts: set,
    say: Callable[[str], None],
) -> ActivationResult:
    import torch

    candidates = _paths(act, kernels, dtype, dev, wanted)
    default = "fast" if any(p.name == "fast" and p.fn is not None for p in candidates) else "eager"
    if default == "eager" and _has_kernel(kernels, act.spec, dtype, dev):
        default = "fast"
    results = {p.name: PathResult(p.name, note=p.note) for p in candidates}
    gen = torch.Generator().manual_seed(seed)
    big = (torch.randn(shape, generator=gen, dtype=torch.float64) * 3).to(dtype=dtype, device=dev)
    small = (torch.randn(small_shape, generator=gen, dtype=torch.float64) * 3).to(dtype=dtype, device=dev)

    # A path that fails on this dtype or device (an op PyTorch lacks for bfloat16, ...) is n/a, with the reason.
    live = []
    for p in candidates:
        if p.fn is None:
            continue
        try:
            with p.context():
                y = p.fn(small)
        except Exception as err:  # noqa: BLE001 - reported in the row, the run goes on
            results[p.name].note = _why(err)
            continue
        try:
            with p.context():
                _probe(p.fn, small)
        except Exception as err:  # noqa: BLE001 - the forward is still measured
            p.backward = False
            results[p.name].note = f"no backward: {_why(err)}"
        del y
        live.append(p)

    if "time" in parts:
        say(f"    {math.prod(shape)} elements: " + ", ".join(p.name for p in live))
        _time_big(live, results, big, repeats, warmup, budget, dev, seed)
    if "small" in parts:
        _time_small(live, results, small, repeats, warmup, dev, seed)
    if "memory" in parts:
        say("    saved tensors, peak memory, ATen ops")
        _memory(live, results, big, small, dev, seed)
    block = None
    if "block" in parts:
        say(f"    MLP block {'x'.join(map(str, block_input))}")
        block = _block(act, dtype, dev, block_input, repeats, warmup, budget, seed)
    return ActivationResult(
        activation=repr(act),
        name=act.name,
        params=dict(act.params),
        default_path=default,
        paths=[results[p.name] for p in candidates],
        block=block,
    )


def _why(err: Exception) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:120]}" if text else type(err).__name__


def _probe(fn: Callable[[Any], Any], x: Any) -> None:
    import torch

    xg = x.detach().requires_grad_(True)
    y = fn(xg)
    if y.requires_grad:
        torch.autograd.grad(y, xg, torch.ones_like(y))


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def _grad_like(y: Any, seed: int) -> Any:
    import torch

    gen = torch.Generator().manual_seed(seed + 1)
    return torch.randn(y.shape, generator=gen, dtype=torch.float64).to(dtype=y.dtype, device=y.device)


def _time_big(
    live: list[_Path],
    results: dict[str, PathResult],
    x: Any,
    repeats: int,
    warmup: int,
    budget: float,
    dev: Any,
    seed: int,
) -> None:
    import torch

    now = _timer(dev)
    xg = x.detach().requires_grad_(True)
    grads: dict[str, Any] = {}

    def fwd(p: _Path) -> float:
        with p.context():
            t0 = now()
            y = p.fn(x)
            t1 = now()
        del y
        return t1 - t0

    def fwdbwd(p: _Path) -> float:
        with p.context():
            t0 = now()
            y = p.fn(xg)
            if y.requires_grad:
                torch.autograd.grad(y, xg, grads[p.name])
            t1 = now()
        del y
        return t1 - t0

    for p in live:
        with p.context(), torch.no_grad():
            grads[p.name] = _grad_like(p.fn(x), seed)
        for _ in range(warmup):
            fwd(p)
            if p.backward:
                fwdbwd(p)
    f: dict[str, list[float]] = {p.name: [] for p in live}
    fb: dict[str, list[float]] = {p.name: [] for p in live}
    # A clone is timed just before every path in every round: the reference samples the same
    # moments of a shared machine as the paths do.
    reference: dict[str, list[float]] = {p.name: [] for p in live}
    spent = dict.fromkeys(f, 0.0)
    least = min(3, repeats)
    clone = next(p for p in live if p.name == "clone")
    for round_ in range(repeats):
        for p in live:
            if p is not clone and round_ >= least and spent[p.name] > budget:
                continue
            c = fwd(clone)
            reference[p.name].append(c)
            a = fwd(p) if p is not clone else c
            b = fwdbwd(p) if p.backward else 0.0
            f[p.name].append(a)
            if p.backward:
                fb[p.name].append(b)
            spent[p.name] += a + b
    # One reference for every path of this activation: the median of all those clones. (Per path,
    # seven clones were not enough: a fresh 64 MB allocation sometimes gets huge pages and costs half,
    # so a small sample picks either mode.)
    pooled = statistics.median([c for samples in reference.values() for c in samples]) * 1e3
    for p in live:
        r = results[p.name]
        r.clone_ms = pooled
        r.fwd_ms = pooled if p is clone else statistics.median(f[p.name]) * 1e3
        r.fwdbwd_ms = _median(fb[p.name]) * 1e3
        r.fwd_x_clone = _ratio(r.fwd_ms, r.clone_ms)
        r.fwdbwd_x_clone = _ratio(r.fwdbwd_ms, r.clone_ms)
        r.samples = len(f[p.name])


def _time_small(
    live: list[_Path], results: dict[str, PathResult], x: Any, repeats: int, warmup: int, dev: Any, seed: int
) -> None:
    import torch

    now = _timer(dev)
    xg = x.detach().requires_grad_(True)
    target = 0.005  # seconds per sample: enough calls to swamp the timer's own cost

    def fwd(p: _Path, calls: int) -> float:
        fn = p.fn
        with p.context():
            t0 = now()
            for _ in range(calls):
                fn(x)
            t1 = now()
        return (t1 - t0) / calls

    def fwdbwd(p: _Path, calls: int, g: Any) -> float:
        fn = p.fn
        grad = torch.autograd.grad
        with p.context():
            t0 = now()
            for _ in range(calls):
                y = fn(xg)
                if y.requires_grad:
                    grad(y, xg, g)
            t1 = now()
        return (t1 - t0) / calls

    plan = {}
    for p in live:
        with torch.no_grad(), p.context():
            g = _grad_like(p.fn(x), seed)
        fwd(p, max(1, warmup))
        if p.backward:
            fwdbwd(p, max(1, warmup), g)
        one = max(fwd(p, 1) + (fwdbwd(p, 1, g) if p.backward else 0.0), 1e-7)
        plan[p.name] = (max(1, min(10000, int(target / one))), g)
    f: dict[str, list[float]] = {p.name: [] for p in live}
    fb: dict[str, list[float]] = {p.name: [] for p in live}
    for _ in range(repeats):
        for p in live:
            calls, g = plan[p.name]
            f[p.name].append(fwd(p, calls))
            if p.backward:
                fb[p.name].append(fwdbwd(p, calls, g))
    for p in live:
        results[p.name].small_fwd_us = statistics.median(f[p.name]) * 1e6
        results[p.name].small_fwdbwd_us = _median(fb[p.name]) * 1e6


def _memory(live: list[_Path], results: dict[str, PathResult], big: Any, small: Any, dev: Any, seed: int) -> None:
    import torch

    peak_of = _cuda_peak_bytes if dev.type == "cuda" else _cpu_peak_bytes
    for p in live:
        r = results[p.name]
        x = big.detach().requires_grad_(True)
        with p.context():
            (y, saved), peak = peak_of(lambda: _count_saved(p.fn, x))
            r.saved_bytes_per_element = saved / x.numel()
            out_bytes = y.numel() * y.element_size()
            # an output that is the input itself (linear) allocated nothing
            r.peak_x_output = 0.0 if y.data_ptr() == x.data_ptr() else _ratio(peak, out_bytes)
            del y
            with torch.no_grad():
                g = _grad_like(p.fn(small), seed)
            r.aten_ops_fwd, r.aten_ops_bwd = _count_aten(p.fn, small, g if p.backward else None)


# ----------------------------------------------------------------------------- the MLP block
def torch_module(spec: Any, params: dict[str, Any]) -> tuple[str, Any] | None:
    """PyTorch's module for ``spec`` at ``params``: the ``torch.nn`` class its PyTorch equivalent names
    when it takes these parameters and computes what ``spec.torch_native`` computes, otherwise a
    module calling ``spec.torch_native``; None where the spec has no PyTorch form."""
    import torch

    if spec.torch_native is None:
        return None
    native = spec.torch_native
    probe = torch.linspace(-8, 8, 100)
    symbols = []
    for eq in spec.equivalents:
        if eq.framework != "pytorch":
            continue
        symbols.append(eq.symbol)
        if spec.kind != "elementwise":  # a class would need its dim spelled out: the spec's call says it
            continue
        expected = native(probe, torch, **params)
        for name in eq.names:
            cls = getattr(torch.nn, name, None)
            if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
                continue
            accepted = inspect.signature(cls).parameters
            # Parameters the class lacks must be at their defaults; the probe below checks the function.
            if any(k not in accepted for k in spec.non_default(params)):
                continue
            changed = spec.non_default(params)
            # Every parameter it takes, else only the non-default ones (softplus' threshold=None is
            # the class's own default 20 in torch_native): the probe decides.
            for kwargs in ({k: v for k, v in params.items() if k in accepted}, changed):
                try:
                    module = cls(**kwargs)
                    same = torch.allclose(module(probe), expected, rtol=1e-6, atol=0, equal_nan=True)
                except Exception:  # noqa: BLE001 - not this class; the wrapper below is still PyTorch's op
                    continue
                if same:
                    shown = ", ".join(f"{k}={v!r}" for k, v in changed.items())
                    return f"torch.nn.{name}({shown})", module

    class TorchNative(torch.nn.Module):
        def forward(self, t: Any) -> Any:
            return native(t, torch, **params)

    return (f"{symbols[0]} (torch_native)" if symbols else "torch_native"), TorchNative()


def _block(
    act: Any, dtype: Any, dev: Any, block_input: tuple, repeats: int, warmup: int, budget: float, seed: int
) -> BlockResult:
    import copy

    import torch

    import actlab.nn

    found = torch_module(act.spec, dict(act.params))
    if found is None:
        return BlockResult(None, note="PyTorch has no op for it")
    label, reference = found
    width, hidden = BLOCK_DIMS
    torch.manual_seed(seed)
    lin1, lin2 = torch.nn.Linear(width, hidden), torch.nn.Linear(hidden, width)
    models = {}
    for key, module in (("torch", reference), ("actlab", actlab.nn.Activation(act))):
        models[key] = torch.nn.Sequential(copy.deepcopy(lin1), module, copy.deepcopy(lin2)).to(dtype=dtype, device=dev)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(block_input, generator=gen).to(dtype=dtype, device=dev)
    target = torch.randn(block_input, generator=gen).to(dtype=dtype, device=dev)
    probe = models["actlab"][1](x[:1, :1].new_zeros(1, hidden))
    if probe.shape[-1] != hidden:
        return BlockResult(label, note="the activation changes the width; the block needs an elementwise one")
    now = _timer(dev)

    def step(model: Any) -> tuple[float, float]:
        t0 = now()
        out = model(x)
        t1 = now()
        torch.nn.functional.mse_loss(out, target).backward()
        t2 = now()
        model.zero_grad(set_to_none=True)
        return t1 - t0, t2 - t0

    try:
        for _ in range(warmup):
            for model in models.values():
                step(model)
        fwd: dict[str, list[float]] = {k: [] for k in models}
        tot: dict[str, list[float]] = {k: [] for k in models}
        spent = 0.0
        for round_ in range(repeats):
            if round_ >= min(3, repeats) and spent > 2 * budget:
                break
            for key, model in models.items():
                a, b = step(model)
                fwd[key].append(a)
                tot[key].append(b)
                spent += b
    except Exception as err:  # noqa: BLE001 - e.g. a dtype PyTorch's op lacks: reported, the run goes on
        return BlockResult(label, note=f"{type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}")
    med = {k: (statistics.median(fwd[k]) * 1e3, statistics.median(tot[k]) * 1e3) for k in models}
    return BlockResult(
        torch_module=label,
        torch_fwd_ms=med["torch"][0],
        torch_step_ms=med["torch"][1],
        actlab_fwd_ms=med["actlab"][0],
        actlab_step_ms=med["actlab"][1],
        step_x_torch=_ratio(med["actlab"][1], med["torch"][1]),
    )


# ----------------------------------------------------------------------------- rendering
def _num(value: Any) -> str:
    """A figure for people: three significant digits without exponents; NaN is n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return "n/a"
    a = abs(value)
    if a >= 100 or a == 0:
        return f"{value:.0f}"
    if a >= 10:
        return f"{value:.1f}"
    if a >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _ops(row: dict[str, Any]) -> str:
    f, b = row.get("aten_ops_fwd"), row.get("aten_ops_bwd")
    return "n/a" if f is None else f"{f}/{b}"


# view -> [(key, table header, markdown/CSV header)]: the table's headers are short to fit 100 columns.
_COLUMNS: dict[str, list[tuple[str, str, str]]] = {
    "paths": [
        ("activation", "activation", "activation"),
        ("path", "path", "path"),
        ("fwd_ms", "fwd\nms", "fwd ms"),
        ("fwd_x_clone", "fwd\n×clone", "fwd × clone"),
        ("fwdbwd_ms", "f+b\nms", "fwd+bwd ms"),
        ("fwdbwd_x_clone", "f+b\n×clone", "fwd+bwd × clone"),
        ("small_fwd_us", "small\nfwd µs", "small fwd µs"),
        ("small_fwdbwd_us", "small\nf+b µs", "small fwd+bwd µs"),
        ("saved_bytes_per_element", "saved\nB/el", "saved B/elem"),
        ("peak_x_output", "peak\n×out", "fwd peak × output"),
        ("aten_ops", "ATen\nops f/b", "ATen ops fwd/bwd"),
    ],
    "summary": [
        ("activation", "activation", "activation"),
        ("actlab_path", "actlab\npath", "actlab path"),
        ("fwdbwd_x_clone", "f+b\n×clone", "fwd+bwd × clone"),
        ("torch_fwdbwd_x_clone", "torch f+b\n×clone", "torch fwd+bwd × clone"),
        ("fwdbwd_x_torch", "f+b\n×torch", "fwd+bwd × torch"),
        ("small_fwdbwd_x_torch", "small f+b\n×torch", "small fwd+bwd × torch"),
        ("saved_bytes_per_element", "saved\nB/el", "saved B/elem"),
        ("peak_x_output", "peak\n×out", "fwd peak × output"),
        ("block_step_x_torch", "block\n×torch", "MLP block step × torch"),
        ("misses", "misses", "misses (issue #11 targets)"),
    ],
    "block": [
        ("activation", "activation", "activation"),
        ("torch_module", "PyTorch module", "PyTorch module"),
        ("torch_fwd_ms", "torch\nfwd ms", "torch fwd ms"),
        ("torch_step_ms", "torch\nstep ms", "torch step ms"),
        ("actlab_fwd_ms", "actlab\nfwd ms", "actlab fwd ms"),
        ("actlab_step_ms", "actlab\nstep ms", "actlab step ms"),
        ("step_x_torch", "step\n×torch", "step × torch"),
    ],
}


def _rows(result: BenchResult, view: str) -> list[dict[str, Any]]:
    rows = {"paths": result.path_rows, "summary": result.summary_rows, "block": result.block_rows}[view]()
    for r in rows:
        if view == "paths":
            r["aten_ops"] = _ops(r)
    return rows


def _title(result: BenchResult, view: str) -> str:
    s = result.setting
    shape = "×".join(map(str, s["shape"]))
    where = f"{s['device']}, {s['threads']} thread{'s' if s['threads'] > 1 else ''}, torch {s['torch']}"
    if view == "block":
        return (
            f"MLP block {'×'.join(map(str, s['block_input']))} (Linear {BLOCK_DIMS[0]}→{BLOCK_DIMS[1]}, activation, "
            f"Linear {BLOCK_DIMS[1]}→{BLOCK_DIMS[0]}), one training step, {s['dtype']}, {where}; "
            f"median of up to {s['repeats']} rounds"
        )
    return (
        f"{s['dtype']}, {shape} elements (small: {'×'.join(map(str, s['small_shape']))}), {where}; "
        f"median of up to {s['repeats']} rounds; ×clone: time / one clone() timed beside each path; "
        f"actlab kernels: {s['kernels']}"
    )


def _notes(result: BenchResult, view: str) -> list[str]:
    """Why figures are n/a, one line per reason (and path), listing the activations."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for a in result.activations:
        if view == "paths":
            for p in a.paths:
                if p.note:
                    grouped.setdefault((p.path, p.note), []).append(a.activation)
        elif view == "block" and a.block is not None and a.block.note:
            grouped.setdefault(("block", a.block.note), []).append(a.activation)
    return [f"{path}, {note}: {', '.join(names)}" for (path, note), names in grouped.items()]


def render(result: BenchResult, fmt: str, view: str = "paths", width: int = 100) -> str:
    """The result as a rich table (``width`` columns), Markdown, CSV (one view) or JSON (everything)."""
    if fmt == "json":
        import json

        return json.dumps(json_safe(result.to_dict()), indent=2, default=_json_default, allow_nan=False)
    if view not in VIEWS:
        raise BenchError(f"view must be one of {', '.join(VIEWS)}")
    columns = _COLUMNS[view]
    rows = _rows(result, view)
    if fmt == "csv":
        import csv
        import io

        keys = [k for k, _, _ in columns if k != "aten_ops"]
        keys += ["clone_ms", "aten_ops_fwd", "aten_ops_bwd", "samples", "note"] if view == "paths" else []
        keys += ["note"] if view == "block" else []
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _csv_cell(r.get(k)) for k in keys})
        return buf.getvalue().rstrip("\n")
    # People read the activation once per group of rows.
    shown = []
    previous = None
    for r in rows:
        cells = {k: (r.get(k) if isinstance(r.get(k), str) else _num(r.get(k))) for k, _, _ in columns}
        cells["activation"] = "" if r["activation"] == previous else r["activation"]
        cells["torch_module"] = r.get("torch_module") or "n/a"
        previous = r["activation"]
        shown.append(cells)
    notes = _notes(result, view)
    if fmt == "md":
        lines = [f"**{_title(result, view)}**", ""]
        lines.append("| " + " | ".join(h for _, _, h in columns) + " |")
        lines.append(
            "|"
            + "|".join(
                "---" if k in ("activation", "path", "actlab_path", "torch_module", "misses") else "--:"
                for k, _, _ in columns
            )
            + "|"
        )
        for c in shown:
            lines.append("| " + " | ".join(_md_escape(c[k]) for k, _, _ in columns) + " |")
        if notes:
            lines += ["", *(f"- n/a: {_md_escape(n)}" for n in notes)]
        return "\n".join(lines)
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    # The misses, a list of labels, are listed under the table by target: a column would not fit.
    columns = [c for c in columns if c[0] != "misses"]
    if view == "summary":
        for _, _, label in TARGETS:
            missed = [r["activation"] for r in rows if label in r["misses"].split(", ")]
            if missed:
                notes.append(f"misses {label} (issue #11 target): {', '.join(missed)}")
    table = Table(title=escape(_title(result, view)), box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    for k, header, _ in columns:
        left = k in ("activation", "path", "actlab_path", "torch_module")
        table.add_column(escape(header), justify="left" if left else "right", overflow="fold")
    for c in shown:
        table.add_row(*(escape(c[k]) for k, _, _ in columns))
    console = Console(file=__import__("io").StringIO(), width=width, force_terminal=False, color_system=None)
    console.print(table)
    for n in notes:
        console.print(escape(n if n.startswith("misses") else f"n/a: {n}"), overflow="fold")
    return console.file.getvalue().rstrip("\n")


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _csv_cell(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return "" if value is None else value


def _json_default(value: Any) -> Any:
    return str(value)


# ----------------------------------------------------------------------------- command line
def _count(text: str) -> int:
    """A positive element count: an integer, ``1e6``, or a power ``2**24``."""
    t = text.strip().replace("_", "")
    try:
        if "**" in t:
            base, _, power = t.partition("**")
            value = int(base) ** int(power)
        elif "e" in t.lower():
            f = float(t)
            if not f.is_integer():
                raise ValueError
            value = int(f)
        else:
            value = int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer (or 1e6, 2**24), got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _dims(text: str) -> tuple[int, ...]:
    """A shape: positive sizes separated by commas (or x), e.g. ``4096,4096``."""
    import re

    pieces = re.split(r"[,x×]", text.strip())
    if not all(p.strip().isdigit() for p in pieces) or any(int(p) < 1 for p in pieces):
        raise argparse.ArgumentTypeError(f"expected positive sizes separated by commas, e.g. 4096,4096; got {text!r}")
    return tuple(int(p) for p in pieces)


def _path_list(text: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    bad = [p for p in names if p not in PATHS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"paths are a comma list of {', '.join(PATHS)}; got {text!r}")
    return names


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments; imports nothing heavy."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (__doc__ or "").split("\n\n", 1)[1].replace("``", "`").replace("**", "")
    parser.epilog = (
        "examples:\n"
        "  actlab bench gelu silu --size 1e6           # same as: actlab bench activations gelu silu ...\n"
        "  actlab bench \"gelu(approximate='tanh')\" --dtype bfloat16 --format md\n"
        "  actlab bench --paths clone,torch,fast --view summary --block   # every elementwise activation\n"
        "  actlab bench mish --block-only              # the MLP block alone"
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="activations: names, aliases or call strings such as \"gelu(approximate='tanh')\" "
        "(default: every elementwise activation in the registry)",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--size", type=_count, help=f"elements of the 1-D input (default 2**24 = {DEFAULT_SIZE})")
    what.add_argument("--shape", type=_dims, metavar="A,B", help="the input's shape instead, e.g. 4096,4096")
    parser.add_argument("--dtype", choices=DTYPES, default="float32", help="(default float32)")
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="cuda: the same on the GPU, against a device-to-device copy (default cpu)",
    )
    parser.add_argument("--threads", type=_positive(int), default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=_positive(int), default=7, help="timed rounds; medians (default 7)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per path first (default 1)")
    parser.add_argument(
        "--budget",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="a path that has used this many seconds stops after 3 rounds (default 3; the eager chain at 16M)",
    )
    parser.add_argument(
        "--paths",
        type=_path_list,
        default=PATHS,
        metavar="P,Q",
        help=f"paths to measure, of {','.join(PATHS)} (default all; clone always)",
    )
    parser.add_argument(
        "--small-shape",
        type=_dims,
        default=SMALL_SHAPE,
        metavar="A,B",
        help="the small tensor of the per-call figures (default 64,256)",
    )
    parser.add_argument("--block", action="store_true", help="also the MLP block's training step")
    parser.add_argument("--block-only", action="store_true", help="only the MLP block's training step")
    parser.add_argument(
        "--block-input",
        type=_dims,
        default=BLOCK_INPUT,
        metavar="B,T,192",
        help="the block's input (default 64,197,192)",
    )
    parser.add_argument(
        "--view",
        choices=VIEWS,
        default=None,
        help="which table table/md/csv show: every path (default), one summary row per "
        "activation, or the block (default with --block-only); json holds everything",
    )
    parser.add_argument("--format", choices=FORMATS, default="table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument(
        "--load",
        metavar="FILE",
        help="render a run saved with --format json (another --view or --format) instead of measuring",
    )


def _load(path: str) -> BenchResult:
    import json

    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise BenchError(f"--load {path}: {err}") from None
    return BenchResult.from_dict(data)


def run(args: argparse.Namespace) -> int:
    if args.block_only:
        parts = {"block"}
    else:
        parts = {"time", "small", "memory"} | ({"block"} if args.block else set())
    shape = args.shape or ((args.size or DEFAULT_SIZE),)

    def progress(msg: str) -> None:
        print(f"actlab bench: {msg}", file=sys.stderr, flush=True)

    try:
        if args.load:
            if args.names:
                raise BenchError("--load renders a saved run: give no activation names")
            result = _load(args.load)
            parts = set(result.setting.get("parts", ()))
        else:
            result = measure(
                args.names,
                dtype=args.dtype,
                shape=shape,
                small_shape=args.small_shape,
                threads=args.threads,
                device=args.device,
                repeats=args.repeats,
                warmup=args.warmup,
                budget=args.budget,
                seed=args.seed,
                paths=args.paths,
                parts=parts,
                block_input=args.block_input,
                progress=None if args.quiet else progress,
            )
    except BenchError as err:
        print(f"actlab bench: {err}", file=sys.stderr)
        return 2
    view = args.view or ("block" if parts == {"block"} else "paths")
    if args.format == "json":
        print(render(result, "json"))
        return 0
    print(render(result, args.format, view))
    if view == "paths" and "block" in parts and args.format in ("table", "md"):
        print()
        print(render(result, args.format, "block"))
    return 0
