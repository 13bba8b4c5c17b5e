"""actlab: the activation-function laboratory for PyTorch.

``import actlab`` needs NumPy only; ``actlab.torch`` and ``actlab.nn`` import torch when first
used, and the other subpackages import their own dependencies the same way.
"""

from __future__ import annotations

import importlib
from typing import Any

from actlab.catalog import Spec
from actlab.registry import (
    BoundActivation,
    IdentifierError,
    UnknownActivationError,
    deserialize,
    get,
    get_spec,
    list_activations,
    register,
    serialize,
)

__version__ = "0.1.0"

__all__ = [
    "Spec",
    "BoundActivation",
    "IdentifierError",
    "UnknownActivationError",
    "get",
    "get_spec",
    "serialize",
    "deserialize",
    "register",
    "list_activations",
    "__version__",
    "swap",
    "watch",
]

_LAZY_SUBMODULES = ("torch", "nn", "verify", "catalog", "ops", "analysis", "init", "plot", "diagnose", "arena", "bench")
# Functions re-exported from subpackages that import torch: resolved on first use.
_LAZY_FUNCTIONS = {"swap": "actlab.diagnose", "watch": "actlab.diagnose"}


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"actlab.{name}")
    if name in _LAZY_FUNCTIONS:
        return getattr(importlib.import_module(_LAZY_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'actlab' has no attribute {name!r}")
