"""Optimal few-bit derivative tables for ``memory="fewbit"`` (Few-Bit Backward, Novikov et al., ICML 2023,
arXiv:2202.00441).

Backward keeps a ``bits``-bit code per element instead of the input and uses a piecewise-constant
q(x) in place of f'(x): ``q(x) = levels[k]`` with k the number of breakpoints <= x. The table
minimises the expected squared error E[(f'(x) - q(x))^2] for x ~ N(0, 1) (the input distribution
after normalisation), over breakpoints and levels together.

The fit is exact on a fine grid: the real line is cut into cells (a uniform grid on
[-GRID_HALF_WIDTH, GRID_HALF_WIDTH], the spec's kinks added as edges, each tail one end cell);
Gauss-Legendre quadrature gives each cell's mass w, first moment w f' and second moment w f'^2.
For a run of cells the best level is the weighted mean and its cost S2 - S1^2 / W, both O(1)
from cumulative sums, and dynamic programming over the cut positions finds the best 2**bits
segments (the "v-optimal histogram" recursion; f' need not be monotone, so the O(K n^2) recursion
is used as is, vectorised, rather than a monotone-split speed-up that would need sorted values).
One run of the recursion gives the tables for every bits up to the one asked for.

NumPy only. Tables are cached in-process and on disk as JSON (``ACTLAB_CACHE``/fewbit; an empty
``ACTLAB_CACHE`` turns the disk cache off), keyed by spec, parameters, bits and FIT_VERSION.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BITS",
    "FIT_VERSION",
    "FewBitTable",
    "FewBitError",
    "fewbit_table",
    "fewbit_tables",
    "optimal_segments",
]

#: Allowed code widths.
BITS = (1, 2, 3, 4)
#: Bumped whenever the fit changes what it returns (old cache files are then ignored).
FIT_VERSION = 1
#: Uniform cells on [-GRID_HALF_WIDTH, GRID_HALF_WIDTH]; beyond, one tail cell each side
#: (N(0, 1) mass beyond 6 is 1e-9: a breakpoint there cannot matter). Cells 0.006 wide: doubling them
#: to 4096 changed no cosine by more than 3e-7 (gelu, 1-4 bits) and cost 5x the time.
GRID_CELLS = 2048
GRID_HALF_WIDTH = 6.0
# The tails are integrated out to here (phi(12) ~ 1e-32) on panels of this many nodes.
_TAIL_END = 12.0
_TAIL_PANELS = 24
_NODES, _NODE_WEIGHTS = np.polynomial.legendre.leggauss(6)
# A derivative with at most this many distinct values is piecewise-constant: the function is
# piecewise-linear and memory="mask" stores the exact derivative (4 bits would reproduce it anyway).
_PIECEWISE_LINEAR_VALUES = 2 ** max(BITS)
# Columns of the recursion handled at once (bounds the temporary (n x block) matrix to ~4 MB).
_BLOCK = 128


class FewBitError(ValueError):
    """A few-bit table that cannot be made (bad bits, a vector or piecewise-linear activation)."""


@dataclass(frozen=True, eq=False)
class FewBitTable:
    """The optimal ``bits``-bit piecewise-constant stand-in q for f' of ``spec_name(**params)``.

    ``breakpoints`` (sorted, length 2**bits - 1) and ``levels`` (length 2**bits), float64:
    q(x) = levels[k] for breakpoints[k-1] <= x < breakpoints[k], i.e. k = number of breakpoints
    <= x. ``weighted_mse`` = E[(f' - q)^2] and ``cosine`` = E[f' q] / sqrt(E[f'^2] E[q^2]) for
    x ~ N(0, 1).
    """

    spec_name: str
    params: dict[str, Any] = field(repr=False)
    bits: int
    breakpoints: np.ndarray = field(repr=False)
    levels: np.ndarray = field(repr=False)
    weighted_mse: float
    cosine: float

    def codes(self, x: Any) -> np.ndarray:
        """The code k of each element of ``x`` (NumPy): the number of breakpoints <= x."""
        return np.searchsorted(self.breakpoints, np.asarray(x, dtype=np.float64), side="right")

    def __call__(self, x: Any) -> np.ndarray:
        """q(x) on NumPy."""
        return self.levels[self.codes(x)]

    def to_json(self) -> dict[str, Any]:
        return {
            "fit_version": FIT_VERSION,
            "spec": self.spec_name,
            "params": self.params,
            "bits": self.bits,
            "breakpoints": [float(v) for v in self.breakpoints],
            "levels": [float(v) for v in self.levels],
            "weighted_mse": self.weighted_mse,
            "cosine": self.cosine,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FewBitTable:
        bits = int(data["bits"])
        bp = _frozen(data["breakpoints"])
        lv = _frozen(data["levels"])
        if (
            data["fit_version"] != FIT_VERSION
            or bp.shape != (2**bits - 1,)
            or lv.shape != (2**bits,)
            or not (np.all(np.isfinite(bp)) and np.all(np.isfinite(lv)) and np.all(np.diff(bp) > 0))
        ):
            raise ValueError("not a valid few-bit table")
        return cls(
            str(data["spec"]),
            dict(data["params"]),
            bits,
            bp,
            lv,
            float(data["weighted_mse"]),
            float(data["cosine"]),
        )


def _frozen(values: Any) -> np.ndarray:
    arr = np.array(values, dtype=np.float64)
    arr.setflags(write=False)
    return arr


# ----------------------------------------------------------------------------- the recursion
def optimal_segments(w: np.ndarray, s1: np.ndarray, s2: np.ndarray, segments: int) -> list[tuple[np.ndarray, float]]:
    """Best split of n cells (masses ``w`` > 0, moments ``s1``, ``s2``) into 1..``segments`` runs.

    Returns, for every count m = 1..segments (m <= n), ``(cuts, cost)``: ``cuts`` the m - 1 cell
    indices where a new run starts (increasing) and ``cost`` the least sum over runs of
    S2 - S1^2 / W (the weighted squared error of the run's mean).
    """
    w, s1, s2 = (np.asarray(a, dtype=np.float64) for a in (w, s1, s2))
    n = w.size
    W = np.concatenate([[0.0], np.cumsum(w)])
    S1 = np.concatenate([[0.0], np.cumsum(s1)])
    S2 = np.concatenate([[0.0], np.cumsum(s2)])
    segments = min(segments, n)
    best = np.empty((segments, n + 1))  # best[m-1, j]: first j cells in m runs
    arg = np.zeros((segments, n + 1), dtype=np.int64)  # start of the last run
    with np.errstate(divide="ignore", invalid="ignore"):
        best[0] = S2 - S1 * S1 / W
    best[0, 0] = np.inf
    idx = np.arange(n + 1)
    for m in range(1, segments):
        prev = best[m - 1]
        row = np.full(n + 1, np.inf)
        for lo in range(m + 1, n + 1, _BLOCK):
            j = idx[lo : lo + _BLOCK]
            i = idx[m : j[-1]][:, None]  # the last run is cells i .. j-1, i >= m (m runs before it)
            dw = W[j][None, :] - W[i]
            d1 = S1[j][None, :] - S1[i]
            with np.errstate(divide="ignore", invalid="ignore"):
                total = prev[i] + (S2[j][None, :] - S2[i]) - d1 * d1 / dw
            total[i >= j[None, :]] = np.inf
            k = np.argmin(total, axis=0)
            row[j] = total[k, np.arange(j.size)]
            arg[m, j] = i[k, 0]
        best[m] = row
    out = []
    for m in range(1, segments + 1):
        cuts = []
        j = n
        for level in range(m - 1, 0, -1):
            j = int(arg[level, j])
            cuts.append(j)
        out.append((np.array(cuts[::-1], dtype=np.int64), float(best[m - 1, n])))
    return out


# ----------------------------------------------------------------------------- the grid
def _grid(kinks: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(edges, nodes, node weights): inner edges, and per cell its quadrature nodes and the
    N(0, 1)-weighted quadrature weights (shape cells x nodes; the tails are the first/last cells)."""
    h = GRID_HALF_WIDTH
    edges = np.linspace(-h, h, GRID_CELLS + 1)
    inner = [k for k in kinks if -h < k < h and not np.any(np.isclose(edges, k, rtol=0, atol=1e-12))]
    edges = np.unique(np.concatenate([edges, inner]))
    a, b = edges[:-1], edges[1:]
    x = 0.5 * (a + b)[:, None] + 0.5 * (b - a)[:, None] * _NODES[None, :]
    q = 0.5 * (b - a)[:, None] * _NODE_WEIGHTS[None, :]
    tail_edges = np.linspace(h, _TAIL_END, _TAIL_PANELS + 1)
    ta, tb = tail_edges[:-1], tail_edges[1:]
    right = (0.5 * (ta + tb)[:, None] + 0.5 * (tb - ta)[:, None] * _NODES[None, :]).ravel()
    tq = (0.5 * (tb - ta)[:, None] * _NODE_WEIGHTS[None, :]).ravel()
    width = max(x.shape[1], right.size)

    def pad(v: np.ndarray, fill: float) -> np.ndarray:
        return np.concatenate([v, np.full(width - v.size, fill)])

    # Tail cells have more nodes than inner ones: inner rows are padded with zero-weight nodes at 0.
    xs = np.vstack(
        [pad(-right[::-1], 0.0), np.hstack([x, np.zeros((x.shape[0], width - x.shape[1]))]), pad(right, 0.0)]
    )
    qs = np.vstack([pad(tq[::-1], 0.0), np.hstack([q, np.zeros((q.shape[0], width - q.shape[1]))]), pad(tq, 0.0)])
    qs = qs * np.exp(-0.5 * xs * xs) / math.sqrt(2.0 * math.pi)
    return edges, xs, qs


# ----------------------------------------------------------------------------- the spec
def _resolve(spec: Any, params: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    from actlab.registry import get_spec

    if isinstance(spec, str):
        spec = get_spec(spec)  # unknown names raise with suggestions
    if spec.kind != "elementwise" or spec.derivative is None:
        raise FewBitError(
            f"fewbit: {spec.name} is a {spec.kind} activation; few-bit derivative tables exist for elementwise "
            "activations only"
        )
    return spec, spec.resolve_params(**(params or {}))


def _derivative(spec: Any, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
    from actlab.ops import numpy_ops

    return np.asarray(numpy_ops.apply_derivative(spec, np.asarray(x, dtype=np.float64), params), dtype=np.float64)


def _label(spec: Any, params: dict[str, Any]) -> str:
    extra = spec.non_default(params)
    return spec.name if not extra else f"{spec.name}({', '.join(f'{k}={v!r}' for k, v in extra.items())})"


def _fit(spec: Any, params: dict[str, Any], max_bits: int) -> dict[int, FewBitTable]:
    """Tables for bits 1..max_bits from one run of the recursion."""
    edges, xs, qs = _grid([at for at, _ in spec.kink_points(params)])
    d = _derivative(spec, params, xs)
    used = qs > 0
    if not np.all(np.isfinite(d[used])):
        bad = float(xs[used & ~np.isfinite(d)][0])
        raise FewBitError(f"fewbit: the derivative of {_label(spec, params)} is not finite at x = {bad:g}")
    distinct = np.unique(d[used]).size
    if distinct <= _PIECEWISE_LINEAR_VALUES:
        raise FewBitError(
            f"fewbit: {_label(spec, params)} is piecewise-linear (its derivative takes {distinct} value(s)); "
            "use memory='mask', which keeps its exact derivative in 1-2 bits"
        )
    d = np.where(used, d, 0.0)
    w = qs.sum(axis=1)
    s1 = (qs * d).sum(axis=1)
    s2 = (qs * d * d).sum(axis=1)
    results = optimal_segments(w, s1, s2, 2**max_bits)
    total2 = float(s2.sum())
    tables = {}
    for bits in range(1, max_bits + 1):
        cuts, _ = results[2**bits - 1]
        bounds = np.concatenate([[0], cuts, [w.size]])
        W = np.add.reduceat(w, bounds[:-1])
        S1 = np.add.reduceat(s1, bounds[:-1])
        levels = S1 / W
        eq2 = float(np.sum(levels * S1))  # E[q^2] = E[f' q] for the weighted means
        # cell c spans edges[c-1]..edges[c] (cell 0 is the left tail), so a run starting at cell c starts at edges[c-1]
        breakpoints = edges[cuts - 1]
        mse = max(total2 - eq2, 0.0)
        cosine = math.sqrt(eq2 / total2) if total2 > 0 else 1.0
        tables[bits] = FewBitTable(
            spec.name, dict(params), bits, _frozen(breakpoints), _frozen(levels), mse, min(cosine, 1.0)
        )
    return tables


# ----------------------------------------------------------------------------- caches
_MEMORY: dict[tuple, FewBitTable] = {}


def _cache_dir() -> Path | None:
    # The oracle's convention: ACTLAB_CACHE names the folder, an empty value turns caching off.
    root = os.environ.get("ACTLAB_CACHE")
    if root == "":
        return None
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "actlab"
    return base / "fewbit"


def _cache_path(spec: Any, params: dict[str, Any], bits: int) -> Path | None:
    folder = _cache_dir()
    if folder is None:
        return None
    key = f"fewbit-{FIT_VERSION}/{spec.name}/{sorted(params.items())!r}/{bits}/{GRID_CELLS}/{GRID_HALF_WIDTH!r}"
    return folder / f"{spec.name}-{bits}bit-{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def _load(path: Path, spec: Any, params: dict[str, Any], bits: int) -> FewBitTable | None:
    try:
        table = FewBitTable.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or damaged: refitted
    if table.spec_name != spec.name or table.bits != bits or table.params != params:
        return None
    return table


def _store(path: Path, table: FewBitTable) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(table.to_json(), fh)
            os.replace(tmp, path)  # atomic: a reader sees the old file or the whole new one
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass  # a read-only cache folder costs a refit next time, nothing else


def fewbit_tables(
    spec: Any, params: dict[str, Any] | None = None, bits: tuple[int, ...] = BITS
) -> dict[int, FewBitTable]:
    """:func:`fewbit_table` for several ``bits`` at once (one fit covers them all)."""
    bits = tuple(bits)
    for b in bits:
        _check_bits(b)
    spec, params = _resolve(spec, params)
    from actlab.registry import is_registered

    # Anonymous specs (copies, unregistered look-alikes) share a registered one's name: never cached.
    cached = is_registered(spec)
    params_key = tuple(sorted(params.items()))
    out: dict[int, FewBitTable] = {}
    for b in bits:
        if cached and (spec.name, params_key, b) in _MEMORY:
            out[b] = _MEMORY[(spec.name, params_key, b)]
        elif cached and (path := _cache_path(spec, params, b)) is not None:
            table = _load(path, spec, params, b)
            if table is not None:
                out[b] = _MEMORY[(spec.name, params_key, b)] = table
    missing = [b for b in bits if b not in out]
    if missing:
        fitted = _fit(spec, params, max(missing))
        for b in missing:
            out[b] = fitted[b]
            if cached:
                _MEMORY[(spec.name, params_key, b)] = fitted[b]
                path = _cache_path(spec, params, b)
                if path is not None:
                    _store(path, fitted[b])
    return {b: out[b] for b in bits}


def _check_bits(bits: Any) -> None:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or int(bits) not in BITS:
        raise FewBitError(f"fewbit: bits must be an integer in 1..4, got {bits!r}")


def fewbit_table(spec: Any, params: dict[str, Any] | None = None, bits: int = 3) -> FewBitTable:
    """The optimal ``bits``-bit table for f' of ``spec`` (a Spec or a registered name) at ``params``.

    >>> t = fewbit_table("gelu", {}, 3)
    >>> len(t.breakpoints), len(t.levels), t.cosine > 0.99
    (7, 8, True)
    """
    _check_bits(bits)
    return fewbit_tables(spec, params, (int(bits),))[int(bits)]
