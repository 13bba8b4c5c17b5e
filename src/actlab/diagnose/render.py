"""Plots of a :class:`~actlab.diagnose.report.DiagnosisReport` (matplotlib ``Figure`` objects,
no pyplot state; every function takes an optional ``ax``).

- :func:`plot_sites`: per-site bars of dead units, saturated inputs and zero outputs;
- :func:`plot_histograms`: the pre-activation histogram of each site;
- :func:`plot_gradients`: gradient RMS per element reaching each site against depth (log scale);
- :func:`save_plots`: all three as PNG files in a folder (atomic writes).
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from actlab.diagnose.report import DiagnosisReport
from actlab.ops._lazy import require
from actlab.plot.render import COLORS, _axes, _style

__all__ = ["plot_sites", "plot_histograms", "plot_gradients", "save_plots", "write_atomic"]


def _short(name: str, limit: int = 18) -> str:
    return name if len(name) <= limit else "…" + name[-(limit - 1) :]


def plot_sites(report: DiagnosisReport, ax: Any = None) -> Any:
    """Grouped bars per site: % dead units, % saturated inputs (bounded activations), % zero outputs."""
    import numpy as np

    fig, (axis, *_) = _axes(ax, 1, (max(6.0, 0.55 * len(report.sites) + 3), 3.8))
    x = np.arange(len(report.sites))
    series = [
        ("dead units", [s.dead_fraction for s in report.sites], COLORS[0]),
        ("saturated inputs", [s.saturated_fraction for s in report.sites], COLORS[1]),
        ("zero outputs", [s.zero_fraction for s in report.sites], COLORS[2]),
    ]
    series = [entry for entry in series if any(v is not None for v in entry[1])]  # not measured: no bars
    width = 0.8 / len(series)
    for i, (label, values, color) in enumerate(series):
        heights = [100 * v if v is not None else 0.0 for v in values]
        axis.bar(x + (i - (len(series) - 1) / 2) * width, heights, width, label=label, color=color)
    if not any(v for _, values, _ in series for v in values if v is not None):
        axis.text(0.5, 0.5, "no dead units, saturation or zero outputs", transform=axis.transAxes, ha="center")
    axis.set_xticks(x, [f"{s.index}: {_short(s.name)}" for s in report.sites], rotation=45, ha="right")
    axis.set_ylim(0, 100)
    _style(axis, "site (execution order)", "% ", f"activation sites of {report.model}")
    axis.legend(fontsize="small")
    return fig


def plot_histograms(report: DiagnosisReport, ax: Any = None, max_sites: int = 12) -> Any:
    """One panel per site (the first ``max_sites``): the pre-activation histogram; the counts
    outside the fixed bins are written in the corner."""
    sites = [s for s in report.sites if s.histogram is not None][:max_sites]
    if not sites:
        raise ValueError("the report has no histograms (no forward pass was seen)")
    if ax is None:
        figure = require("matplotlib.figure", "plots")
        cols = min(4, len(sites))
        rows = math.ceil(len(sites) / cols)
        fig = figure.Figure(figsize=(3.4 * cols, 2.6 * rows), layout="constrained")
        axes = list(fig.subplots(rows, cols, squeeze=False).flat)
        for extra in axes[len(sites) :]:
            extra.set_visible(False)
    else:
        fig, axes = _axes(ax, len(sites), None)
    for axis, site, color in zip(axes, sites, [COLORS[i % len(COLORS)] for i in range(len(sites))]):
        h = site.histogram
        total = max(h.total, 1)
        widths = [b - a for a, b in zip(h.edges[:-1], h.edges[1:])]
        axis.bar(h.edges[:-1], [c / total for c in h.counts], widths, align="edge", color=color)
        _style(axis, "pre-activation", "fraction", f"{site.index}: {_short(site.name, 24)} ({site.activation})")
        if h.below or h.above:
            axis.text(
                0.98,
                0.95,
                f"below {h.below / total:.2%}\nabove {h.above / total:.2%}",
                transform=axis.transAxes,
                ha="right",
                va="top",
                fontsize="x-small",
            )
    return fig


def plot_gradients(report: DiagnosisReport, ax: Any = None) -> Any:
    """RMS per element of the gradient reaching each site against its depth (execution order), log
    scale; sites whose gradient is exactly zero are drawn as crosses at the bottom, never dropped."""
    measured = [s for s in report.sites if s.grad_rms is not None]
    if not measured:
        raise ValueError("the report has no gradient norms: run backward inside the `with actlab.watch(...)` block")
    live = [s for s in measured if s.grad_rms > 0]
    zero = [s for s in measured if s.grad_rms == 0]
    fig, (axis, *_) = _axes(ax, 1, (6.0, 3.8))
    if live:
        axis.plot([s.index for s in live], [s.grad_rms for s in live], marker="o", color=COLORS[0], label="grad RMS")
    if zero:
        floor = min(s.grad_rms for s in live) / 10 if live else 1.0
        axis.plot(
            [s.index for s in zero],
            [floor] * len(zero),
            linestyle="none",
            marker="x",
            color=COLORS[1],
            label="exactly zero (drawn at the bottom)",
        )
    axis.set_yscale("log")
    ratio = report.gradient_ratio
    title = "gradient RMS by depth" + (f" (first/last = {ratio:.3g})" if ratio is not None else "")
    _style(axis, "site (execution order)", "RMS of dL/d output", title)
    axis.legend(fontsize="small")
    return fig


def save_plots(report: DiagnosisReport, directory: str | os.PathLike) -> dict[str, Path]:
    """Write ``sites.png``, ``histograms.png`` and ``gradients.png`` (when there are gradients)
    into ``directory`` (created if needed); each file is written to a temporary name and renamed."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    figures = {"sites": plot_sites(report), "histograms": plot_histograms(report)}
    if any(s.grad_norm is not None for s in report.sites):
        figures["gradients"] = plot_gradients(report)
    written = {}
    for name, fig in figures.items():
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        written[name] = write_atomic(folder / f"{name}.png", buffer.getvalue())
    return written


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp makes 0600; these are ordinary files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
