"""Renderers: draw the data objects of :mod:`actlab.plot.data` with matplotlib.

Figures are ``matplotlib.figure.Figure`` objects made without pyplot (no global figure manager,
no backend switch, nothing shown); save them with ``fig.savefig``. No renderer touches global
style: colours, fonts and sizes are passed per call, so ``matplotlib.rcParams`` is unchanged.

Every renderer takes ``ax``: None (a new figure), one Axes, or a sequence of Axes, one per panel.
With fewer axes than panels: :func:`plot_curves` draws f' dashed on the function's axes, and the
other renderers draw their first panel(s) only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from actlab.ops._lazy import require
from actlab.plot.data import SATURATION_FRACTION, CurveData, MeanFieldData, MomentsData

__all__ = ["plot_curves", "plot_moments", "plot_meanfield", "COLORS"]

# The Tableau 10 colours, fixed here so a plot does not depend on the user's rcParams cycle.
COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
_SHADE = "#999999"


def _axes(ax: Any, panels: int, figsize: tuple[float, float] | None) -> tuple[Any, list[Any]]:
    """(figure, list of axes): new side-by-side panels, or the caller's axes."""
    if ax is None:
        figure = require("matplotlib.figure", "plots")
        w = 5.0 * panels if figsize is None else figsize[0]
        h = 3.6 if figsize is None else figsize[1]
        fig = figure.Figure(figsize=(w, h), layout="constrained")
        axs = fig.subplots(1, panels, squeeze=False)[0]
        return fig, list(axs)
    axs = list(ax) if isinstance(ax, (Sequence, np.ndarray)) else [ax]
    return axs[0].figure, axs


def _style(ax: Any, xlabel: str, ylabel: str, title: str = "") -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize="medium")
    ax.grid(True, linewidth=0.5, alpha=0.4)


def _break_at_kinks(x: np.ndarray, y: np.ndarray, kinks: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Insert NaN where y jumps at a kink, so a discontinuity is not drawn as a steep segment."""
    if not kinks:
        return x, y
    finite = y[np.isfinite(y)]
    span = float(np.ptp(finite)) if finite.size else 0.0
    xs, ys = x.copy(), y.astype(np.float64, copy=True)
    for k in sorted(kinks, reverse=True):
        i = int(np.searchsorted(xs, k))
        if i <= 0 or i >= xs.size - 1:
            continue
        on_grid = xs[i] == k
        left, right = ys[i - 1], ys[i + 1] if on_grid else ys[i]
        if not (abs(right - left) > 0.05 * span):
            continue
        if on_grid:
            ys[i] = np.nan  # the value actlab takes there is drawn as a marker
        else:
            xs, ys = np.insert(xs, i, k), np.insert(ys, i, np.nan)
    return xs, ys


def _ylim(ax: Any, arrays: Sequence[np.ndarray]) -> None:
    """Clip a runaway curve (exp-like growth) so the others stay readable: limits from the
    0.5–99.5 % quantiles of all values, widened by 8 %, applied only when autoscale would be
    more than 3× taller."""
    vals = np.concatenate([a[np.isfinite(a)] for a in arrays if a is not None]) if arrays else np.array([])
    if vals.size == 0:
        return
    lo, hi = float(vals.min()), float(vals.max())
    qlo, qhi = (float(v) for v in np.quantile(vals, [0.005, 0.995]))
    if hi - lo > 3 * max(qhi - qlo, 1e-12):
        pad = 0.08 * max(qhi - qlo, 1e-12)
        ax.set_ylim(qlo - pad, qhi + pad)


def plot_curves(
    data: CurveData,
    ax: Any = None,
    derivative: bool = True,
    *,
    figsize: tuple[float, float] | None = None,
    title: str | None = None,
    legend: bool = True,
) -> Any:
    """Function (left) and derivative (right) of each activation; kinks marked (open circle on f,
    filled dot at actlab's f' value on f'), saturation shaded. Returns the Figure."""
    derivative = derivative and all(c.df is not None for c in data.curves)
    fig, axs = _axes(ax, 2 if derivative else 1, figsize)
    fax = axs[0]
    dax = (axs[1] if len(axs) > 1 else axs[0]) if derivative else None
    x = data.x
    shaded = False
    for i, c in enumerate(data.curves):
        color = COLORS[i % len(COLORS)]
        kx = [k[0] for k in c.kinks]
        fx, fy = _break_at_kinks(x, c.f, kx)
        fax.plot(fx, fy, color=color, linewidth=1.8, label=c.label)
        if c.kinks:
            fax.plot(kx, [k[1] for k in c.kinks], "o", color=color, markerfacecolor="white", markersize=5, zorder=3)
        if dax is not None:
            dx, dy = _break_at_kinks(x, c.df, kx)
            same = dax is fax
            dax.plot(
                dx,
                dy,
                color=color,
                linewidth=1.4 if same else 1.8,
                linestyle="--" if same else "-",
                label=f"{c.label}'" if same else c.label,
            )
            if c.kinks:
                dax.plot(kx, [k[2] for k in c.kinks], "o", color=color, markersize=4, zorder=3)
        for a, b in c.saturation:  # in the curve's colour, so overlapping regions stay attributable
            shaded = True
            for target in {id(fax): fax, id(dax): dax}.values():
                if target is not None:
                    target.axvspan(a, b, color=color, alpha=0.08, linewidth=0, zorder=0)
    _style(fax, "x", "f(x)" if dax is not fax else "f(x), f'(x) (dashed)", "activation" if dax is not fax else "")
    _ylim(fax, [c.f for c in data.curves] + ([c.df for c in data.curves] if dax is fax else []))
    fax.set_xlim(*data.x_range)
    if dax is not None and dax is not fax:
        _style(dax, "x", "f'(x)", "derivative")
        _ylim(dax, [c.df for c in data.curves])
        dax.set_xlim(*data.x_range)
    if legend:
        handles, labels = fax.get_legend_handles_labels()
        if shaded:
            patch = require("matplotlib.patches", "plots").Patch(color=_SHADE, alpha=0.25, linewidth=0)
            handles.append(patch)
            labels.append(f"saturated (|f'| < {SATURATION_FRACTION:.0%} of max on [-1, 1])")
        if any(c.kinks for c in data.curves):
            line = require("matplotlib.lines", "plots").Line2D(
                [], [], marker="o", linestyle="none", color="#444444", markerfacecolor="white", markersize=5
            )
            handles.append(line)
            labels.append("kink")
        fax.legend(handles, labels, fontsize="small", loc="best", framealpha=0.85)
    if title:
        if ax is None:
            fig.suptitle(title)
        else:
            fax.set_title(title, fontsize="medium")
    return fig


def plot_moments(data: MomentsData, ax: Any = None, *, figsize: tuple[float, float] | None = None) -> Any:
    """Left: E[f], Var[f], E[f'²] vs the input variance q; right: the computed gain vs q with
    PyTorch's ``calculate_gain`` value as a dashed line. Log q axis. Returns the Figure."""
    fig, axs = _axes(ax, 2, figsize)
    m = axs[0]
    m.plot(data.q, data.mean, color=COLORS[0], label="E[f]")
    m.plot(data.q, data.variance, color=COLORS[1], label="Var[f]")
    m.plot(data.q, data.derivative_second_moment, color=COLORS[2], label="E[f'²]")
    m.set_xscale("log")
    _style(m, "input variance q  (z ~ N(0, q))", "moment", f"{data.label}: moments")
    if len(axs) > 1:
        g = axs[1]
        g.plot(data.q, data.gain, color=COLORS[3], label="computed: √(q / E[f²])")
        if data.pytorch_gain is not None:
            g.axhline(data.pytorch_gain, color="#444444", linestyle="--", linewidth=1.2, label="PyTorch calculate_gain")
        g.set_xscale("log")
        _style(g, "input variance q", "gain", f"{data.label}: variance-preserving gain")
        g.legend(fontsize="small", loc="best")
    m.legend(fontsize="small", loc="best")
    return fig


def _cobweb(traj: np.ndarray, top: float) -> tuple[np.ndarray, np.ndarray]:
    """The staircase (q0, q0) -> (q0, q1) -> (q1, q1) -> (q1, q2) ... while inside [0, top]."""
    xs, ys = [], []
    for i in range(traj.size - 1):
        a, b = float(traj[i]), float(traj[i + 1])
        if not (math.isfinite(a) and math.isfinite(b) and a <= top and b <= top):
            break
        xs += [a, a]
        ys += [a, b]
    if xs:
        xs.append(ys[-1])
        ys.append(ys[-1])
    return np.array(xs), np.array(ys)


def plot_meanfield(data: MeanFieldData, ax: Any = None, *, figsize: tuple[float, float] | None = None) -> Any:
    """Left: the length map q_{l+1}(q_l) with the identity, the fixed point q* and the iterates
    from q0 (cobweb); right: the predicted gradient factor χ^l over depth, log scale."""
    fig, axs = _axes(ax, 2, figsize)
    a = axs[0]
    a.plot(data.q, data.q_next, color=COLORS[0], linewidth=1.8, label="length map")
    a.plot(data.q, data.q, color="#666666", linestyle="--", linewidth=1.0, label="identity")
    cx, cy = _cobweb(data.trajectory, float(data.q[-1]))
    if cx.size > 1:
        a.plot(cx, cy, color=COLORS[1], linewidth=0.8, alpha=0.8, label="iterates from $q_0$")
    if math.isfinite(data.q_star) and data.q_star <= data.q[-1]:
        a.plot(
            [data.q_star], [data.q_star], "o", color=COLORS[3], markersize=6, zorder=3, label=f"q* = {data.q_star:.4g}"
        )
    a.set_xlim(data.q[0], data.q[-1])
    a.set_ylim(bottom=0.0)
    title = f"{data.label}: σ_w² = {data.sigma_w2:.4g}, σ_b² = {data.sigma_b2:.4g}"
    _style(a, "$q_l$", "$q_{l+1}$", title)
    a.legend(fontsize="small", loc="best")
    if len(axs) > 1:
        b = axs[1]
        finite = np.isfinite(data.gradient_factor) & (data.gradient_factor > 0)
        if finite.any():
            b.semilogy(data.depth[finite], data.gradient_factor[finite], color=COLORS[2], linewidth=1.8)
        b.axhline(1.0, color="#666666", linestyle="--", linewidth=1.0)
        _style(b, "depth l (layers)", r"$\chi^l$  (gradient norm² ratio)", f"χ = {data.chi:.4g} ({data.phase})")
    return fig
