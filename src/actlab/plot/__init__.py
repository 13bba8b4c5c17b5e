"""Plots of activations (DESIGN.md §5): data objects first, matplotlib renderers second.

>>> from actlab.plot import curve_data, plot_curves      # doctest: +SKIP
>>> fig = plot_curves(curve_data(["relu", "gelu"]))       # doctest: +SKIP
>>> fig.savefig("relu_gelu.png")                          # doctest: +SKIP

The data functions need NumPy/SciPy only; matplotlib is imported when a renderer runs (a missing
matplotlib raises an ImportError naming ``pip install 'actlab[plot]'``). Renderers build
``matplotlib.figure.Figure`` objects without pyplot and never change global style.
"""

from actlab.plot.data import (
    Curve,
    CurveData,
    MeanFieldData,
    MomentsData,
    curve_data,
    meanfield_data,
    moments_data,
    vector_curve_data,
)
from actlab.plot.render import plot_curves, plot_meanfield, plot_moments

__all__ = [
    "Curve",
    "CurveData",
    "curve_data",
    "vector_curve_data",
    "plot_curves",
    "MomentsData",
    "moments_data",
    "plot_moments",
    "MeanFieldData",
    "meanfield_data",
    "plot_meanfield",
]
