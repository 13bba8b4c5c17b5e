"""Array primitives, one namespace per backend, so that every spec is written once.

A spec's ``forward(x, ops, **params)`` uses only what ``ops`` offers; ``numpy_ops.NUMPY`` and
``torch_ops.TORCH`` implement the same names. The numerically careful building blocks
(stable sigmoid, softplus, log-sigmoid) live here, not in the specs.
"""

from actlab.ops._lazy import require

__all__ = ["require"]
