"""Matplotlib renderers of the arena report: final-metric strips, learning curves with seed bands,
and run health. Each takes its data (a :class:`~actlab.arena.stats.TaskSummary` or
:class:`ArmCurves`) and an optional ``ax``; none touches pyplot or ``rcParams``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from actlab.arena.stats import ArmSummary, TaskSummary
from actlab.ops._lazy import require
from actlab.plot.render import COLORS

__all__ = ["ArmCurves", "arm_colors", "plot_strip", "plot_learning_curves", "plot_health", "figure_png"]

# Tableau 10 (the plots' fixed colours), then its light partners: a report does not depend on
# the user's rcParams cycle.
_PALETTE = (
    *COLORS,
    *("#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"),
)
_LINESTYLES = ("-", "--", ":", "-.")
BETTER, WORSE, NEUTRAL, DIVERGED = "#1a7f37", "#c62828", "#222222", "#c62828"
#: The health panel of the trial result's ``peak_memory_bytes``: named for what the record holds (a high-water
#: mark the trial reported; actlab.arena.trial says how it is measured), not as the activation's own memory.
PEAK_MEMORY_LABEL = "recorded peak memory (MiB)"


@dataclass(frozen=True)
class ArmCurves:
    """Per-epoch statistics across the seeds of one arm (NaN where no seed has the epoch)."""

    label: str
    epochs: np.ndarray
    n_seeds: np.ndarray  # seeds with a finite value at each epoch
    metric_mean: np.ndarray
    metric_low: np.ndarray  # the band: min and max across seeds
    metric_high: np.ndarray
    loss_mean: np.ndarray
    loss_low: np.ndarray
    loss_high: np.ndarray


def arm_colors(labels: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(colour, line style) per label, in the given order: the same arm looks the same everywhere."""
    return {lab: (_PALETTE[i % len(_PALETTE)], _LINESTYLES[(i // len(_PALETTE)) % 4]) for i, lab in enumerate(labels)}


def _new(figsize: tuple[float, float], ncols: int = 1, sharey: bool = False) -> tuple[Any, list[Any]]:
    figure = require("matplotlib.figure", "the arena report")
    fig = figure.Figure(figsize=figsize, layout="constrained")
    axs = fig.subplots(1, ncols, squeeze=False, sharey=sharey)[0]
    return fig, list(axs)


def _axes(ax: Any, ncols: int, figsize: tuple[float, float], sharey: bool = False) -> tuple[Any, list[Any]]:
    if ax is None:
        return _new(figsize, ncols, sharey)
    axs = list(ax) if isinstance(ax, (Sequence, np.ndarray)) else [ax]
    return axs[0].figure, axs


def _grid(ax: Any, axis: str = "both") -> None:
    ax.grid(True, axis=axis, linewidth=0.5, alpha=0.4)
    ax.set_axisbelow(True)


def _plain(text: str) -> str:
    """Text from the store drawn as it is: a "$" would start matplotlib's mathtext (and an unbalanced one fail)."""
    return str(text).replace("$", r"\$")


def _metric_label(task: TaskSummary) -> str:
    name = _plain(task.metric or "final metric")
    return f"{name} ({'higher' if task.higher_is_better else 'lower'} is better)"


def _arm_ticks(ax: Any, arms: Sequence[ArmSummary]) -> None:
    ax.set_yticks(range(len(arms)))
    ax.set_yticklabels([_plain(a.label) + (" (baseline)" if a.is_baseline else "") for a in arms])
    for tick, a in zip(ax.get_yticklabels(), arms):
        tick.set_color(BETTER if a.direction == "better" else WORSE if a.direction == "worse" else NEUTRAL)
        if a.is_baseline:
            tick.set_fontweight("bold")
    ax.set_ylim(len(arms) - 0.5, -0.5)  # the best arm on top


def _jitter(n: int) -> np.ndarray:
    """Fixed vertical offsets so that seeds with equal values stay visible (no randomness)."""
    return np.zeros(1) if n == 1 else np.linspace(-0.18, 0.18, n)


def plot_strip(task: TaskSummary, colors: Mapping[str, tuple[str, str]], *, ax: Any = None) -> Any:
    """Final metric per seed (dots), mean with 95 % CI (bar), diverged seeds (× at the worse edge)."""
    arms = task.arms
    fig, (ax,) = _axes(ax, 1, (9.5, 0.4 * len(arms) + 1.3))
    values = [v for a in arms for v in a.values]
    if values:
        lo, hi = min(values), max(values)
        span = hi - lo
        # show the CIs too, but a wide one (2 seeds: t = 12.7) may not squash the dots: at most one span more
        lo = max(min([lo, *(a.ci_low for a in arms if a.ci_low is not None)]), lo - span)
        hi = min(max([hi, *(a.ci_high for a in arms if a.ci_high is not None)]), hi + span)
        pad = 0.04 * (hi - lo) if hi > lo else max(abs(hi) * 0.05, 1e-3)
    else:
        lo, hi, pad = 0.0, 1.0, 0.05
    worse_edge = lo - pad * 0.5 if task.higher_is_better else hi + pad * 0.5
    for y, a in enumerate(arms):
        color = colors[a.label][0]
        vals = np.asarray(a.values)
        if vals.size:
            ax.scatter(vals, y + _jitter(vals.size), s=26, color=color, alpha=0.85, zorder=4, linewidths=0)
        if a.ci_low is not None and a.ci_high is not None:
            ax.plot([a.ci_low, a.ci_high], [y, y], color="#555555", linewidth=1.3, zorder=3, solid_capstyle="butt")
        if a.mean is not None:
            ax.plot([a.mean], [y], marker="|", markersize=16, markeredgewidth=2.2, color=NEUTRAL, zorder=5)
        if a.n_diverged:
            ax.scatter(
                [worse_edge] * a.n_diverged, y + _jitter(a.n_diverged), marker="x", s=30, color=DIVERGED, zorder=3
            )
        if a.is_baseline and a.mean is not None:
            ax.axvline(a.mean, color="#888888", linestyle="--", linewidth=0.9, zorder=1)
    ax.set_xlim(min(lo - pad, worse_edge - pad * 0.5), max(hi + pad, worse_edge + pad * 0.5))
    _arm_ticks(ax, arms)
    ax.set_xlabel(_metric_label(task))
    ax.set_title("final metric per seed · mean and 95 % CI · × diverged", fontsize="medium")
    _grid(ax, "x")
    return fig


def plot_learning_curves(
    curves: Sequence[ArmCurves], colors: Mapping[str, tuple[str, str]], task: TaskSummary, *, ax: Any = None
) -> Any:
    """Validation metric and training loss per epoch: mean across seeds, band from min to max."""
    fig, axs = _axes(ax, 2, (11.5, 4.0))
    panels = [
        ("metric", f"validation {task.metric or 'metric'}", False),
        ("loss", "training loss", True),
    ]
    for ax_i, (what, ylabel, log) in zip(axs, panels):
        positive = True
        for c in curves:
            mean = getattr(c, f"{what}_mean")
            low, high = getattr(c, f"{what}_low"), getattr(c, f"{what}_high")
            color, style = colors[c.label]
            ok = np.isfinite(mean)
            if not ok.any():
                continue
            positive &= bool(np.all(low[ok] > 0))
            ax_i.fill_between(c.epochs, low, high, where=ok, color=color, alpha=0.10, linewidth=0)
            ax_i.plot(c.epochs, mean, color=color, linestyle=style, linewidth=1.5, label=_plain(c.label))
        if log and positive and any(np.isfinite(c.loss_mean).any() for c in curves):
            ax_i.set_yscale("log")
        ax_i.set_xlabel("epoch")
        ax_i.set_ylabel(ylabel)
        _grid(ax_i)
        from matplotlib.ticker import MaxNLocator

        ax_i.xaxis.set_major_locator(MaxNLocator(integer=True))
    axs[0].set_title("mean across seeds; band: min to max", fontsize="medium")
    handles, labels = axs[0].get_legend_handles_labels()
    if handles and len(axs) > 1:
        axs[-1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)
    return fig


def plot_health(task: TaskSummary, colors: Mapping[str, tuple[str, str]], *, ax: Any = None) -> Any:
    """Per arm: dead-unit fraction, diverged seeds, seconds per epoch and peak memory (a dot per seed)."""
    arms = task.arms
    fig, axs = _axes(ax, 4, (12.5, 0.36 * len(arms) + 1.5), sharey=True)
    panels = [
        ("dead-unit fraction at the end", lambda t: t.dead_fraction, 1.0),
        ("diverged seeds", None, 1.0),
        ("seconds per epoch", lambda t: t.seconds_per_epoch, 1.0),
        (PEAK_MEMORY_LABEL, lambda t: t.peak_memory_bytes, 1.0 / 2**20),
    ]
    for ax_i, (title, get, scale) in zip(axs, panels):
        if get is None:
            counts = [a.n_diverged for a in arms]
            ax_i.barh(
                range(len(arms)),
                counts,
                color=[DIVERGED if c else "#cccccc" for c in counts],
                height=0.55,
            )
            for y, a in enumerate(arms):
                ax_i.text(a.n_diverged, y, f" {a.n_diverged}/{a.n}", va="center", fontsize="small")
            ax_i.set_xlim(0, max(1, max((a.n for a in arms), default=1)) * 1.25)
            from matplotlib.ticker import MaxNLocator

            ax_i.xaxis.set_major_locator(MaxNLocator(integer=True))
        else:
            seen = False
            for y, a in enumerate(arms):
                vals = [get(t) * scale for t in a.trials if get(t) is not None]
                if vals:
                    seen = True
                    v = np.asarray(vals, dtype=float)
                    ax_i.scatter(v, y + _jitter(v.size), s=18, color=colors[a.label][0], alpha=0.8, linewidths=0)
            if not seen:
                ax_i.text(0.5, 0.5, "not recorded", transform=ax_i.transAxes, ha="center", va="center", color="#777")
                ax_i.set_xticks([])
            elif "fraction" in title:
                ax_i.set_xlim(-0.03, 1.03)
        ax_i.set_title(title, fontsize="medium")
        _grid(ax_i, "x")
    _arm_ticks(axs[0], arms)
    return fig


def figure_png(fig: Any, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (Agg canvas, no pyplot)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
