"""Analysis of activations with NumPy/SciPy only (no torch): Gaussian moments, variance-preserving
gains, mean-field signal propagation, and numerically measured properties (DESIGN.md §5: every
function returns a dataclass; plots render these later).

>>> import actlab.analysis as aa
>>> round(aa.gain("relu").computed ** 2, 12)
2.0
"""

from actlab.analysis.gain import GainReport, gain, gain_table, pytorch_gain
from actlab.analysis.meanfield import (
    MeanField,
    SelfNormalizing,
    critical_sigma_w2,
    fixed_point,
    length_map,
    length_map_slope,
    mean_field,
    self_normalizing,
    self_normalizing_map,
)
from actlab.analysis.moments import Moments, expectation, hermite_moments, moments
from actlab.analysis.properties import PropertyReport, properties

__all__ = [
    "Moments",
    "moments",
    "expectation",
    "hermite_moments",
    "GainReport",
    "gain",
    "gain_table",
    "pytorch_gain",
    "MeanField",
    "mean_field",
    "length_map",
    "length_map_slope",
    "fixed_point",
    "critical_sigma_w2",
    "SelfNormalizing",
    "self_normalizing",
    "self_normalizing_map",
    "PropertyReport",
    "properties",
]
