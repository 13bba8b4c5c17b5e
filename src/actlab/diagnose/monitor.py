"""``with actlab.watch(model) as w: ...``: activation health from forward and backward hooks.

Per activation site and over every batch seen, with constant memory (running sums, fixed-bin
histograms, a running min and max per unit): pre-activation and output mean/std, the fraction of
negative pre-activations and of zero outputs, dead units, saturation and the norm of the gradient
reaching the site. Nothing the model computes changes: hooks only read (detached tensors).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from actlab.diagnose import structure
from actlab.diagnose.report import DiagnosisReport, Finding, Histogram, SiteReport, findings_for
from actlab.nn.recognition import (
    FunctionEntry,
    Site,
    _function_table,
    _method_table,
    as_patterns,
    find_module_sites,
    matches,
)
from actlab.registry import BoundActivation

__all__ = ["watch", "Watch"]

SATURATION_LEVEL = 0.01  # |f'(x)| below 1 % of max |f'| counts as saturated
_LOW_PRECISION = (torch.float16, torch.bfloat16)
SAMPLE = 1024  # values per call (random, stratified by unit) behind the fractions and the histogram
SEED = 0x5EED  # of each site's sampling generator (plus the site's index): reports are reproducible
FLUSH_EVERY = 32  # calls between reductions of the per-call figures (bounds the memory)


@functools.cache
def _max_abs_derivative(act: BoundActivation) -> float:
    from actlab.analysis import properties

    return float(properties(act).max_abs_derivative)


_GRID = np.linspace(-60.0, 60.0, 240_001)


@functools.cache
def _saturated_regions(act: BoundActivation) -> tuple[tuple[float, float], ...]:
    """The intervals where |f'(x)| < 1 % of max |f'|, from a grid of step 5e-4 on [-60, 60]
    (a region touching the end of the grid extends to infinity)."""
    flat = np.abs(act.derivative(_GRID)) < SATURATION_LEVEL * _max_abs_derivative(act)
    regions = []
    edges = np.flatnonzero(np.diff(flat.astype(np.int8)))
    starts = ([0] if flat[0] else []) + [i + 1 for i in edges if not flat[i]]
    ends = [i for i in edges if flat[i]] + ([len(_GRID) - 1] if flat[-1] else [])
    for a, b in zip(starts, ends):
        lo = -math.inf if a == 0 else float(_GRID[a])
        hi = math.inf if b == len(_GRID) - 1 else float(_GRID[b])
        regions.append((lo, hi))
    return tuple(regions)


def _count_between(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    if lo == -math.inf:
        return torch.count_nonzero(x <= hi)
    if hi == math.inf:
        return torch.count_nonzero(x >= lo)
    return torch.count_nonzero((x >= lo) & (x <= hi))


def _flat_between(act: BoundActivation, low: np.ndarray, high: np.ndarray, points: int = 257) -> np.ndarray:
    """Per unit: f' = 0 at every one of ``points`` on [low, high] (and at the kinks inside)."""
    t = np.linspace(0.0, 1.0, points)
    lo = np.nan_to_num(low, nan=0.0, posinf=1e300, neginf=-1e300)
    hi = np.nan_to_num(high, nan=0.0, posinf=1e300, neginf=-1e300)
    grid = lo[:, None] + (hi - lo)[:, None] * t[None, :]
    with np.errstate(all="ignore"):
        flat = np.all(act.derivative(grid) == 0, axis=1)
        for kink, _ in act.spec.kink_points(act.params):
            inside = (lo <= kink) & (kink <= hi)
            d = float(act.derivative(np.array([kink]))[0])
            flat &= ~inside | (d == 0)
    return flat & ~np.isnan(low) & ~np.isnan(high)


def _nice_ceil(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^k that is >= value (histogram ranges people can read)."""
    if not math.isfinite(value) or value <= 0:
        return 1.0
    exp = math.floor(math.log10(value))
    for m in (1.0, 2.0, 5.0, 10.0):
        if m * 10.0**exp >= value:
            return m * 10.0**exp
    return 10.0 ** (exp + 1)


class _SiteStats:
    """Streaming statistics of one site: O(units + bins) memory however many batches it sees.

    Every value enters the means, standard deviations and per-unit min and max (from which dead
    units are decided at report time); the fractions (negative, zero, saturated) and the
    histogram come from a random sample of about ``SAMPLE`` values per call (all of them for
    smaller tensors; the same positions of input and output): bucketing every value would cost
    more than the layer itself on CPU. The sample is stratified by unit (each unit gets the same
    number of positions, drawn afresh per call from a seeded generator), so it is unbiased
    whatever the layout: an evenly strided sample aligns with it (a stride that is a multiple of
    the unit count sees the same few units of every row).
    """

    def __init__(
        self,
        name: str,
        label: str,
        index: int,
        kind: str,
        activation: BoundActivation | None,
        bins: int,
        hist_range: tuple[float, float] | None,
    ):
        self.name, self.label, self.index, self.kind = name, label, index, kind
        self.activation = activation
        spec = activation.spec if activation is not None else None
        self.elementwise = spec is not None and spec.kind == "elementwise"
        lo, hi = spec.bounds_for(activation.params) if spec is not None else (-math.inf, math.inf)
        self.bounded = math.isfinite(lo) and math.isfinite(hi)
        self.zero_centered = spec.zero_centered if spec is not None else True
        # Saturation is measured for bounded activations (sigmoid, tanh, hard_tanh, ...): for
        # ReLU-like ones the flat side is "dead", counted per unit instead.
        self.saturated_regions: tuple[tuple[float, float], ...] | None = None
        if self.elementwise and self.bounded and spec.saturates:
            self.saturated_regions = _saturated_regions(activation)
        self.bins, self.hist_range = bins, hist_range
        self.batches = self.elements = self.backward = 0
        self.shape: tuple[int, ...] = ()
        # Per call, the figures are 0-d tensors appended to lists (no reduction, no sync); every
        # FLUSH_EVERY calls they are stacked, summed in float64 and moved into Python floats, so
        # memory stays bounded. ``layout`` names the figures of one call.
        self.layout: tuple[str, ...] = ()
        self.figures: list[torch.Tensor] = []
        self.grad_norms: list[torch.Tensor] = []
        self.grad_sums: list[torch.Tensor] = []  # a sum is NaN or inf exactly when a value is (see flush)
        self.nonfinite = {"pre": 0, "out": 0, "grad": 0}  # calls with a NaN or inf value
        self.totals: dict[str, float] = {}
        self.pending: list[torch.Tensor] | None = None  # this call's pre figures, until post
        self.sampled_pre = self.sampled_out = 0
        self.hist: torch.Tensor | None = None  # bins + 2 counts: below the range, the bins [a, b), above
        self.hists: list[torch.Tensor] = []
        self.edges: torch.Tensor | None = None
        self.zero_bin: int | None = None  # the bin edge at 0, when there is one
        self.unit_min: torch.Tensor | None = None  # per unit, of the pre-activation (output without a spec)
        self.unit_max: torch.Tensor | None = None
        self.lows: list[torch.Tensor] = []
        self.highs: list[torch.Tensor] = []
        self.unit_shape: tuple[int, ...] | None = None
        self.unit_dim: int | None = None
        self.units_consistent = True
        self.generator: torch.Generator | None = None
        self.pool: list[torch.Tensor] | None = None  # sample positions drawn ahead, for calls of one shape
        self.pool_key: tuple | None = None
        self.pool_next = 0
        self.positions: torch.Tensor | None = None  # this call's sample positions, until post
        self.gated: bool | None = None  # decided by actlab.diagnose.structure from the autograd graph
        self.sum_input: bool | None = None
        self.node: Any = None

    # Few tensor operations per call: on small layers each costs more in dispatch than in work.
    # ----------------------------------------------------------------- forward, before f
    def pre(self, x: torch.Tensor, unit_dim: int | None) -> None:
        x = x.detach()
        if x.dtype in _LOW_PRECISION:
            x = x.float()
        if self.edges is None:
            self._start(x)
        elif self.pending is not None:  # the last call raised before its post hook
            self._commit(None)
        self.batches += 1
        self.elements += x.numel()
        self.shape = tuple(x.shape)
        flat = x.reshape(-1)
        self.positions = self._positions(x.shape, unit_dim)
        sample = flat if self.positions is None else flat.index_select(0, self.positions)
        self.sampled_pre += sample.numel()
        parts = [flat.sum(), torch.dot(flat, flat)]
        if self.zero_bin is None:
            parts.append(torch.count_nonzero(sample < 0))
        if self.saturated_regions is not None:
            parts.append(sum(_count_between(sample, a, b) for a, b in self.saturated_regions))
        self.pending = parts
        # bucketize + bincount: a third of torch.histc's time on CPU, and index 0 / bins + 1
        # count the values below / above the range.
        self.hists.append(torch.bincount(torch.bucketize(sample, self.edges, right=True), minlength=self.bins + 2))
        if self.elementwise:
            self._units(x, unit_dim)
        if len(self.hists) >= FLUSH_EVERY:
            self.flush()

    def _positions(self, shape: torch.Size, unit_dim: int | None) -> torch.Tensor | None:
        """Flat positions of this call's sample, (draw, unit) flattened: for each unit,
        ``ceil(SAMPLE / units)`` positions drawn uniformly (with replacement) among its values;
        None: take every value."""
        key = (shape, unit_dim)
        if key == self.pool_key:  # the shape of the last call: no arithmetic on it again
            if self.pool is None:
                return None
            if self.pool_next < len(self.pool):
                self.pool_next += 1
                return self.pool[self.pool_next - 1]
        numel = math.prod(shape)
        units = shape[unit_dim] if unit_dim is not None and shape else 1
        outer = math.prod(shape[:unit_dim]) if unit_dim is not None else numel
        inner = math.prod(shape[unit_dim + 1 :]) if unit_dim is not None else 1
        per_unit = -(-SAMPLE // units)
        if numel <= SAMPLE or per_unit >= outer * inner:
            self.pool, self.pool_key = None, key
            return None
        # Drawn for FLUSH_EVERY calls at once while the shape repeats (a few kernels per call less
        # on small layers), for one call after a change (inputs of varying length).
        calls = FLUSH_EVERY if key == self.pool_key else 1
        g, device = self.generator, self.edges.device
        size = (calls, per_unit, units)
        # viewed as (outer, units, inner): unit u's values start at u * inner, a stride units * inner apart
        pos = (torch.arange(units, device=device) * inner).add(
            torch.randint(outer, size, generator=g, device=device), alpha=units * inner
        )
        if inner > 1:
            pos += torch.randint(inner, size, generator=g, device=device)
        # a list of 1-d tensors: no tensor op to pick a call's positions; index_select beats take
        self.pool, self.pool_key, self.pool_next = list(pos.reshape(calls, -1).unbind(0)), key, 1
        return self.pool[0]

    def _start(self, x: torch.Tensor) -> None:
        if self.hist_range is None:
            finite = x[torch.isfinite(x)]
            extent = float(finite.abs().max()) if finite.numel() else 1.0
            r = _nice_ceil(1.25 * extent)
            self.hist_range = (-r, r)
        lo, hi = self.hist_range
        k = -lo / ((hi - lo) / self.bins)
        if lo <= 0 <= hi and abs(k - round(k)) < 1e-9:
            self.zero_bin = round(k)  # negatives = the bins left of it: no count of its own needed
        self.layout = ("pre_sum", "pre_sq")
        self.layout += ("negative",) if self.zero_bin is None else ()
        self.layout += ("saturated",) if self.saturated_regions is not None else ()
        self.layout += ("out_sum", "out_sq", "nonzero")
        self.totals = dict.fromkeys(self.layout + ("grad",), 0.0)
        self.edges = torch.linspace(lo, hi, self.bins + 1, dtype=x.dtype, device=x.device)
        self.hist = torch.zeros(self.bins + 2, dtype=torch.int64, device=x.device)
        self.generator = torch.Generator(device=x.device)
        self.generator.manual_seed(SEED + self.index)

    # ----------------------------------------------------------------- forward, after f
    def post(self, y: torch.Tensor, unit_dim: int | None) -> None:
        if self.pending is None:  # no pre-activation seen for this call
            return
        y = y.detach()
        if y.dtype in _LOW_PRECISION:
            y = y.float()
        self._commit(y, unit_dim)
        if not self.elementwise:  # no spec: a unit is active when its output is not 0
            self._units(y, unit_dim)

    def _commit(self, y: torch.Tensor | None, unit_dim: int | None = None) -> None:
        parts, positions = self.pending, self.positions
        self.pending = self.positions = None
        if y is None:
            zero = parts[0].new_zeros(())
            parts += [zero, zero, zero]
        else:
            flat = y.reshape(-1)
            if tuple(y.shape) != self.shape:
                positions = self._positions(y.shape, unit_dim)  # not the input's shape: a sample of its own
            sample = flat if positions is None else flat.index_select(0, positions)
            self.sampled_out += sample.numel()
            parts += [flat.sum(), torch.dot(flat, flat), torch.count_nonzero(sample)]
        self.figures += parts

    def _units(self, values: torch.Tensor, unit_dim: int | None) -> None:
        if unit_dim is None or not self.units_consistent:
            return
        shape = (values.shape[unit_dim],) if values.dim() else ()
        if self.unit_shape is None:
            self.unit_shape, self.unit_dim = shape, unit_dim
        elif self.unit_shape != shape or self.unit_dim != unit_dim:
            self.units_consistent = False  # the unit count changed: dead units are undefined
            self.unit_min = self.unit_max = None
            self.lows.clear()
            self.highs.clear()
            return
        if values.dim() <= 1:
            low = high = values
        else:  # amin + amax: ten times faster than torch.aminmax over dim 0 on CPU
            others = tuple(d for d in range(values.dim()) if d != unit_dim)
            low, high = values.amin(dim=others), values.amax(dim=others)
        self.lows.append(low)
        self.highs.append(high)

    def flush(self) -> None:
        """Reduce what the calls since the last flush appended (float64 sums; per-unit min/max)."""
        if self.figures:
            k = len(self.layout)
            n = len(self.figures) // k * k
            # One cast after stacking (float32 for float32 models: exact for the sums, which are
            # float32 already, and for the sample counts, below 2**24).
            calls = torch.stack(self.figures[:n]).double().reshape(-1, k)
            # A call's sum is NaN or inf exactly when one of its values is, unless finite values
            # overflow it (float32: |sum| > 3e38, values near 1e34): no extra pass over the values.
            sums = calls[:, [self.layout.index("pre_sum"), self.layout.index("out_sum")]]
            values = torch.cat([calls.sum(0), (~torch.isfinite(sums)).sum(0).double()]).tolist()
            for name, value in zip(self.layout, values):
                self.totals[name] += value
            self.nonfinite["pre"] += int(values[k])
            self.nonfinite["out"] += int(values[k + 1])
            del self.figures[:n]
        if self.grad_norms:
            norms, sums = torch.stack(self.grad_norms).double(), torch.stack(self.grad_sums)
            total, bad = torch.stack([norms.sum(), (~torch.isfinite(sums)).sum().double()]).tolist()
            self.totals["grad"] += total
            self.nonfinite["grad"] += int(bad)
            self.grad_norms.clear()
            self.grad_sums.clear()
        if self.hists:
            self.hist += torch.stack(self.hists).sum(0)
            self.hists.clear()
        if self.lows:
            low, high = torch.stack(self.lows).amin(0), torch.stack(self.highs).amax(0)
            self.unit_min = low if self.unit_min is None else torch.minimum(self.unit_min, low)
            self.unit_max = high if self.unit_max is None else torch.maximum(self.unit_max, high)
            self.lows.clear()
            self.highs.clear()

    def dead_units(self) -> tuple[int, ...] | None:
        """Units whose every input lay where f' = 0 (ReLU: max <= 0); without a spec, units whose
        output was always 0. Decided on [min, max] of each unit's inputs over all batches."""
        if self.unit_min is None:
            return None
        low = self.unit_min.double().cpu().numpy()
        high = self.unit_max.double().cpu().numpy()
        if not self.elementwise:
            return tuple(int(i) for i in np.flatnonzero((low == 0) & (high == 0)))
        return tuple(int(i) for i in np.flatnonzero(_flat_between(self.activation, low, high)))

    # ----------------------------------------------------------------- backward
    def grad(self, g: torch.Tensor) -> None:
        g = g.detach()
        g = g.float() if g.dtype in _LOW_PRECISION else g
        self.grad_norms.append(torch.linalg.vector_norm(g))
        self.grad_sums.append(g.sum())  # the norm overflows float32 already at values of 1e20
        self.backward += 1
        if len(self.grad_norms) >= FLUSH_EVERY:
            self.flush()

    # ----------------------------------------------------------------- summary
    def report(self) -> SiteReport:
        n = max(self.elements, 1)
        self.flush()
        t = self.totals

        def std(total: float, squares: float) -> float:
            mean = total / n
            return math.sqrt(max(squares / n - mean * mean, 0.0))

        dead = self.dead_units()
        units = None if dead is None else int(self.unit_min.numel())
        hist = None
        if self.hist is not None:
            lo, hi = self.hist_range
            step = (hi - lo) / self.bins
            edges = tuple(lo + i * step for i in range(self.bins)) + (hi,)
            counts = self.hist.tolist()
            hist = Histogram(edges, tuple(counts[1:-1]), counts[0], counts[-1])
        if self.zero_bin is not None and hist is not None:
            negative = (hist.below + sum(hist.counts[: self.zero_bin])) / max(hist.total, 1)
        else:
            negative = t.get("negative", 0.0) / max(self.sampled_pre, 1)
        return SiteReport(
            name=self.name,
            activation=self.label,
            index=self.index,
            kind=self.kind,
            shape=self.shape,
            batches=self.batches,
            elements=self.elements,
            pre_mean=t.get("pre_sum", 0.0) / n,
            pre_std=std(t.get("pre_sum", 0.0), t.get("pre_sq", 0.0)),
            out_mean=t.get("out_sum", 0.0) / n,
            out_std=std(t.get("out_sum", 0.0), t.get("out_sq", 0.0)),
            negative_fraction=negative,
            zero_fraction=1.0 - t.get("nonzero", 0.0) / max(self.sampled_out, 1) if self.sampled_out else 0.0,
            units=units,
            unit_dim=self.unit_dim if units is not None else None,
            dead_units=dead,
            saturated_fraction=(
                t.get("saturated", 0.0) / self.sampled_pre
                if self.saturated_regions is not None and self.sampled_pre
                else None
            ),
            grad_norm=t["grad"] / self.backward if self.backward else None,
            backward_passes=self.backward,
            histogram=hist,
            bounded=self.bounded,
            zero_centered=self.zero_centered,
            gated=self.gated,
            sum_input=self.sum_input,
        )


class _FunctionalProbe(TorchFunctionMode):
    """Sees every torch call in the model's forward; measures the activation calls among them."""

    def __init__(self, watcher: Watch):
        super().__init__()
        self.watcher = watcher

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        w = self.watcher
        entry = None if (w._busy or w._inside_site) else _callable_entry(func)
        if entry is None or entry.spec.kind != "elementwise" or not args or not isinstance(args[0], torch.Tensor):
            return func(*args, **kwargs)
        return w._functional_call(entry, func, args, kwargs)


@functools.cache
def _tensor_method_entries() -> dict[int, FunctionEntry]:
    out = {}
    for name, (spec, inplace) in _method_table().items():
        out[id(getattr(torch.Tensor, name))] = FunctionEntry(spec, f"Tensor.{name}", inplace, True)
    return out


def _call_activation(entry: FunctionEntry, func: Any, args: tuple, kwargs: dict) -> BoundActivation:
    """The catalog activation of one call (its literal parameters; the defaults when they cannot
    be read), cached: a forward makes the same calls every time."""
    from actlab.nn.recognition import bind_call

    try:
        params = bind_call(entry, func, args, kwargs) if not entry.name.startswith("Tensor.") else {}
        key = (entry.spec.name, tuple(sorted(params.items())))
        hash(key)
    except (TypeError, ValueError):
        params, key = {}, (entry.spec.name, ())
    act = _CALL_CACHE.get(key)
    if act is None:
        try:
            act = BoundActivation(entry.spec, params)
        except (TypeError, ValueError):
            act = BoundActivation(entry.spec)
        _CALL_CACHE[key] = act
    return act


_CALL_CACHE: dict[tuple, BoundActivation] = {}


def _callable_entry(func: Any) -> FunctionEntry | None:
    key = id(func)
    return _function_table().get(key) or _tensor_method_entries().get(key)


class Watch:
    """The context manager :func:`watch` returns; ``report()`` gives the measurements so far."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        sites: str | Iterable[str] | None = None,
        bins: int = 64,
        hist_range: tuple[float, float] | None = None,
        unit_dim: int | None = None,
        functional: bool | None = None,
    ):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"watch() needs a torch.nn.Module, got {type(model).__name__}")
        if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= 100_000:
            raise ValueError(f"bins must be an integer in [1, 100000], got {bins!r}")
        if hist_range is not None:
            try:
                lo, hi = (float(v) for v in hist_range)
            except (TypeError, ValueError):
                raise ValueError(f"hist_range must be a pair (low, high) of numbers, got {hist_range!r}") from None
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"hist_range must be finite with low < high, got {hist_range!r}")
            hist_range = (lo, hi)
        if unit_dim is not None and (isinstance(unit_dim, bool) or not isinstance(unit_dim, int)):
            raise ValueError(f"unit_dim must be None (automatic) or an integer dimension, got {unit_dim!r}")
        if functional not in (None, True, False):
            raise ValueError(f"functional must be None (automatic), True or False, got {functional!r}")
        # A compiled model (torch.compile's OptimizedModule) is watched through its original:
        # compiled code runs no hook, and hooks present while Dynamo traces would be traced.
        self.compiled = model
        self.model = model = _original(model)
        self.bins, self.hist_range, self.unit_dim = bins, hist_range, unit_dim
        patterns = as_patterns(sites, "sites")
        found = find_module_sites(model)
        self._skipped: list[str] = []
        self._module_sites: list[Site] = []
        for site in found:
            if patterns is not None and not matches(site.name, patterns):
                continue
            if not site.elementwise:
                self._skipped.append(f"{site.name} ({site.label}): a vector activation, no per-unit statistics")
                continue
            self._module_sites.append(site)
        self._facts = structure.model_facts(model)  # before anything in the block trains it
        self._has_conv1d = any(isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)) for m in model.modules())
        if not self._module_sites:
            if functional is False:
                raise ValueError(self._no_sites_message(found, patterns))
            if patterns is None:
                self._check_functional_calls(model, found)
        self._patterns = patterns
        # functional=None: look for activation calls in the first forward pass only, and keep
        # looking when it finds some (a model that uses modules only pays nothing afterwards).
        self._probe_mode = functional
        self._probing = functional is not False
        self._pending: list[_SiteStats] = []
        self._stats: dict[tuple[str, int], _SiteStats] = {}
        self._handles: list[Any] = []
        self._owner_handles: list[Any] = []
        self._calls: dict[Any, int] = {}
        self._owners: list[str] = []
        self._in_root = 0
        self._root_passes = 0
        self._inside_site = 0
        self._busy = False
        self._mode: _FunctionalProbe | None = None
        self._open = False
        self._closed = False
        self._restore: list[tuple[torch.nn.Module, str, Any]] = []

    # ------------------------------------------------------------------ discovery
    def _no_sites_message(self, found: list[Site], patterns: tuple[str, ...] | None) -> str:
        name = type(self.model).__name__
        if patterns is not None and found:
            names = ", ".join(s.name for s in found)
            return f"sites={list(patterns)} matches none of the activation sites of {name} ({names})"
        return (
            f"{name} has no activation to watch: no activation modules (torch.nn's ReLU, GELU, Tanh, ..., "
            "timm-style ones, actlab's) and no activation calls (F.relu, torch.tanh, x.sigmoid(), ...) in forward"
        )

    def _check_functional_calls(self, model: torch.nn.Module, found: list[Site]) -> None:
        """Raise now when torch.fx can read ``forward`` and it calls no activation at all."""
        from actlab.diagnose.swapping import trace

        try:
            graph = trace(model).graph
        except Exception:  # untraceable forward: the first forward pass will tell
            return
        for node in graph.nodes:
            if node.op == "call_function" and _function_table().get(id(node.target)) is not None:
                return
            if node.op == "call_method" and node.target in _method_table():
                return
        raise ValueError(self._no_sites_message(found, None))

    # ------------------------------------------------------------------ context
    def __enter__(self) -> Watch:
        if self._open:
            raise RuntimeError("this watch is already active; create a new one with actlab.watch(model)")
        if self._closed:
            raise RuntimeError("this watch has ended; create a new one with actlab.watch(model)")
        self._open = True
        try:
            self._attach()
        except BaseException:
            self._detach()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self._detach()
        self._open = False
        self._closed = True

    def _run_eagerly(self) -> None:
        """Inside the block, compiled parts run their original modules eagerly (restored on exit):
        ``torch.compile(module)`` wrappers call ``_orig_mod`` directly, ``module.compile()`` is
        set aside. Hooks then fire, and Dynamo never traces them nor the functional probe (a
        TorchFunctionMode that made it trace for minutes)."""
        for module in [self.compiled, *self.model.modules()]:
            if _is_compiled_wrapper(module):
                self._restore.append((module, "forward", module.__dict__.get("forward", _MISSING)))
                module.__dict__["forward"] = module._orig_mod.__call__
            if module.__dict__.get("_compiled_call_impl") is not None:
                self._restore.append((module, "_compiled_call_impl", module.__dict__["_compiled_call_impl"]))
                module.__dict__["_compiled_call_impl"] = None

    def _attach(self) -> None:
        self._run_eagerly()
        self._handles.append(self.model.register_forward_pre_hook(self._root_pre))
        self._handles.append(self.model.register_forward_hook(self._root_post, always_call=True))
        for site in self._module_sites:
            self._handles.append(site.module.register_forward_pre_hook(functools.partial(self._module_pre, site)))
            self._handles.append(
                site.module.register_forward_hook(functools.partial(self._module_post, site), always_call=True)
            )
        if self._probing:
            self._attach_owner_tracking()

    def _attach_owner_tracking(self) -> None:
        for name, module in self.model.named_modules():
            if name:
                self._owner_handles.append(module.register_forward_pre_hook(functools.partial(self._enter_owner, name)))
                self._owner_handles.append(module.register_forward_hook(self._leave_owner, always_call=True))

    def _detach(self) -> None:
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None
        for h in self._handles + self._owner_handles:
            h.remove()
        self._handles.clear()
        self._owner_handles.clear()
        while self._restore:
            module, name, value = self._restore.pop()
            if value is _MISSING:
                module.__dict__.pop(name, None)
            else:
                module.__dict__[name] = value

    @property
    def active(self) -> bool:
        """Whether hooks are attached now (inside the ``with`` block)."""
        return bool(self._handles)

    # ------------------------------------------------------------------ hooks
    def _root_pre(self, module: Any, args: Any) -> None:
        if self._in_root == 0:
            self._calls.clear()
            self._root_passes += 1
            if self._probing and self._mode is None:
                self._mode = _FunctionalProbe(self)
                self._mode.__enter__()
        self._in_root += 1

    def _root_post(self, module: Any, args: Any, output: Any) -> None:
        self._in_root = max(self._in_root - 1, 0)
        if self._in_root:
            return
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None
        structure.mark_gates(output, self._stats.values())
        if self._probing and self._probe_mode is None and not any(s.kind == "function" for s in self._stats.values()):
            self._probing = False  # first pass found no activation calls: stop looking
            for h in self._owner_handles:
                h.remove()
            self._owner_handles.clear()

    def _enter_owner(self, name: str, module: Any, args: Any) -> None:
        self._owners.append(name)

    def _leave_owner(self, module: Any, args: Any, output: Any) -> None:
        if self._owners:
            self._owners.pop()

    def _unit_dim(self, x: torch.Tensor) -> int | None:
        nd = x.dim()
        if self.unit_dim is not None:
            if not -nd <= self.unit_dim < max(nd, 1):
                return None
            return self.unit_dim % max(nd, 1)
        if nd == 0:
            return None
        if nd == 1:
            return 0
        if nd == 3 and not self._has_conv1d:
            return 2  # (batch, time, features): units are features
        return 1  # (batch, features) and (batch, channels, ...) of convolutions

    def _stats_for(self, base: str, kind: str, label: str, activation: BoundActivation | None) -> _SiteStats:
        k = self._calls.get((kind, base), 0) if self._in_root else 0
        if self._in_root:
            self._calls[(kind, base)] = k + 1
        key = (base, k)
        stats = self._stats.get(key)
        if stats is None:
            name = base if k == 0 else f"{base}#{k}"
            stats = self._stats[key] = _SiteStats(
                name, label, len(self._stats), kind, activation, self.bins, self.hist_range
            )
        return stats

    def _module_pre(self, site: Site, module: Any, args: tuple) -> None:
        self._inside_site += 1
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            return
        self._busy = True
        try:
            stats = self._stats_for(site.name, "module", site.label, site.activation)
            stats.pre(x, self._unit_dim(x))
            structure.see_input(stats, x)
            # The matching post hook needs this call's stats (a shared module is several sites).
            self._pending.append(stats)
        finally:
            self._busy = False

    def _module_post(self, site: Site, module: Any, args: tuple, output: Any) -> None:
        self._inside_site = max(self._inside_site - 1, 0)
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or not self._pending:
            return
        stats = self._pending.pop()
        if isinstance(output, torch.Tensor):
            self._after(stats, output)

    def _after(self, stats: _SiteStats, y: torch.Tensor) -> None:
        self._busy = True
        try:
            stats.post(y, self._unit_dim(y))
            structure.see_output(stats, y)
            if y.requires_grad and torch.is_grad_enabled():
                y.register_hook(functools.partial(self._grad_hook, stats))
        finally:
            self._busy = False

    def _grad_hook(self, stats: _SiteStats, grad: torch.Tensor) -> None:
        if self._closed:  # a backward after the block ended: nothing is recorded any more
            return
        stats.grad(grad)

    def _functional_call(self, entry: FunctionEntry, func: Any, args: tuple, kwargs: dict) -> Any:
        x = args[0]
        short = entry.name.rsplit(".", 1)[-1].rstrip("_")
        owner = self._owners[-1] if self._owners else ""
        base = f"{owner}.{short}" if owner else short
        if self._patterns is not None and not matches(base, self._patterns):
            return func(*args, **kwargs)
        activation = _call_activation(entry, func, args, kwargs)
        if not x.is_floating_point():
            return func(*args, **kwargs)
        self._busy = True
        try:
            stats = self._stats_for(base, "function", repr(activation), activation)
            stats.pre(x, self._unit_dim(x))
            structure.see_input(stats, x)
        finally:
            self._busy = False
        out = func(*args, **kwargs)
        if isinstance(out, torch.Tensor):
            self._after(stats, out)
        return out

    # ------------------------------------------------------------------ results
    def report(self) -> DiagnosisReport:
        """The statistics so far as a :class:`DiagnosisReport` (inside or after the block)."""
        if not self._stats:
            if not self._root_passes:
                raise RuntimeError(
                    f"watch saw no forward pass of {type(self.model).__name__}: run the model inside the `with` block"
                )
            raise ValueError(self._no_sites_message(find_module_sites(self.model), self._patterns))
        sites = tuple(s.report() for s in sorted(self._stats.values(), key=lambda s: s.index))
        seen = {s.name for s in self._stats.values()}
        skipped = list(self._skipped)
        skipped += [f"{site.name} ({site.label}): never called" for site in self._module_sites if site.name not in seen]
        report = DiagnosisReport(
            model=type(self.model).__name__,
            sites=sites,
            findings=(),
            batches=max([self._root_passes] + [s.batches for s in sites]),
            backward_passes=max(s.backward_passes for s in sites),
            skipped=tuple(skipped),
            facts=self._facts,
        )
        stats = sorted(self._stats.values(), key=lambda s: s.index)
        return DiagnosisReport(
            report.model,
            report.sites,
            _non_finite_findings(self.model, stats) + findings_for(sites, report.gradient_ratio, self._facts),
            report.batches,
            report.backward_passes,
            report.skipped,
            self._facts,
        )


_MISSING = object()


def _is_compiled_wrapper(module: Any) -> bool:
    """``torch.compile(module)``'s OptimizedModule (without importing Dynamo when nothing has)."""
    import sys

    eval_frame = sys.modules.get("torch._dynamo.eval_frame")
    return eval_frame is not None and isinstance(module, eval_frame.OptimizedModule)


def _original(model: torch.nn.Module) -> torch.nn.Module:
    while _is_compiled_wrapper(model):
        model = model._orig_mod
    return model


def _non_finite_findings(model: torch.nn.Module, stats: list[_SiteStats]) -> tuple[Finding, ...]:
    """NaN or inf in the parameters or their gradients (now), in the activations or in the
    gradients reaching the sites (any batch): each makes the other figures meaningless, so these
    findings come first. The sites' counts are of calls (batches), decided in ``_SiteStats.flush``."""
    out = []
    named = [(n, p) for n, p in model.named_parameters() if (p.is_floating_point() or p.is_complex()) and not p.is_meta]
    bad_weights: list[str] = []
    bad_grads: list[str] = []
    if named:
        tensors = [p.detach() for _, p in named] + [p.grad for _, p in named]
        counts = [0 if t is None else int(torch.count_nonzero(~torch.isfinite(t))) for t in tensors]
        values = sum(p.numel() for _, p in named)
        bad = sum(counts[: len(named)])
        bad_weights = [n for (n, _), c in zip(named, counts[: len(named)]) if c]
        bad_grads = [n for (n, _), c in zip(named, counts[len(named) :]) if c]
        if bad_weights:
            out.append(
                Finding(
                    "non_finite_weights",
                    None,
                    bad / values,
                    0.0,
                    f"{bad} of {values} parameter values are NaN or inf (in {_names(bad_weights)})",
                    "training has diverged or a broken checkpoint was loaded, and every other figure follows from "
                    "it: restart from the last good checkpoint with a lower learning rate or clipped gradients "
                    "(torch.nn.utils.clip_grad_norm_)",
                )
            )
    acts = [s for s in stats if s.nonfinite["pre"] or s.nonfinite["out"]]
    if acts:
        first = acts[0]  # execution order: where the NaN or inf first appears in a forward pass
        where = "input" if first.nonfinite["pre"] else "output (from finite inputs)"
        calls = max(first.nonfinite["pre"], first.nonfinite["out"])
        later = f", and at {len(acts) - 1} later site(s)" if len(acts) > 1 else ""
        out.append(
            Finding(
                "non_finite_activations",
                first.name,
                calls / max(first.batches, 1),
                0.0,
                f"NaN or inf in the {where} of {first.name} ({first.label}) in {calls} of {first.batches} "
                f"batches{later}",
                "find the operation that makes it (the inputs, a division, log or sqrt of a non-positive value, "
                "float16 overflow; torch.autograd.set_detect_anomaly(True) names it in backward) and the weights "
                "that feed it; lower the learning rate if it appeared during training",
            )
        )
    grads = [s for s in stats if s.nonfinite["grad"]]
    if grads or bad_grads:
        if grads:
            first = grads[-1]  # backward runs from the last site to the first
            earlier = f", and at {len(grads) - 1} earlier site(s)" if len(grads) > 1 else ""
            message = (
                f"NaN or inf in the gradient reaching {first.name} ({first.label}) in {first.nonfinite['grad']} "
                f"of {first.backward} backward passes{earlier}"
            )
            value, site = first.nonfinite["grad"] / max(first.backward, 1), first.name
        else:
            message, value, site = f"NaN or inf in the gradients (.grad) of {_names(bad_grads)}", 1.0, None
        if grads and bad_grads:
            message += f"; in the .grad of {_names(bad_grads)}"
        out.append(
            Finding(
                "non_finite_gradients",
                site,
                value,
                0.0,
                message,
                "check the loss for log(0), division by zero or an overflow (torch.autograd.set_detect_anomaly(True) "
                "names the operation), clip gradients (torch.nn.utils.clip_grad_norm_) and skip steps whose "
                "gradients are not finite (torch.amp.GradScaler does this for float16)",
            )
        )
    return tuple(out)


def _names(names: list[str], limit: int = 4) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def watch(
    model: torch.nn.Module,
    *,
    sites: str | Iterable[str] | None = None,
    bins: int = 64,
    hist_range: tuple[float, float] | None = None,
    unit_dim: int | None = None,
    functional: bool | None = None,
) -> Watch:
    """Measure the activation health of ``model`` over the batches run inside the block.

    >>> import torch, actlab
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    >>> with actlab.watch(model) as w:
    ...     model(torch.randn(32, 8)).sum().backward()
    >>> report = w.report()  # report.sites, report.dead_fraction, report.findings, print(report)

    ``sites``: module-name patterns (fnmatch) to watch, default every activation module.
    ``bins``/``hist_range``: the pre-activation histogram (range default: from the first batch,
    rounded to 1, 2 or 5 x 10^k; values outside are counted as below/above).
    ``unit_dim``: the dimension that indexes units for dead-unit counts; default 1 (features of
    (N, F), channels of (N, C, ...)) except for 3-d inputs of models without Conv1d, where the
    last dimension (features of (N, T, F)) is taken.
    ``functional``: also measure activation *calls* in ``forward`` (``F.relu(x)``, ``x.tanh()``),
    seen through a :class:`~torch.overrides.TorchFunctionMode` while the model runs; None looks
    for them in the first forward pass and keeps looking only if it found some.

    Means and standard deviations use every value, dead units every value of every batch; the
    fractions and the histogram a random sample of about ``SAMPLE`` values per call, stratified by
    unit. NaN or inf in the parameters, activations or gradients is a finding of its own.

    A compiled model (``torch.compile(model)``, ``model.compile()``, or compiled submodules) is
    watched through its original modules, which run eagerly inside the block (compiled code runs
    no hooks); the compiled forward is back when the block exits.

    Hooks are removed when the block exits. The backward pass must run inside the block for the
    gradient norms to be recorded. A model with no activation raises ValueError here.
    """
    return Watch(model, sites=sites, bins=bins, hist_range=hist_range, unit_dim=unit_dim, functional=functional)
