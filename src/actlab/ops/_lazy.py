"""Lazy imports of optional dependencies with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

_EXTRA_FOR = {
    "torch": "torch",
    "matplotlib": "plot",
    "plotly": "plot",
    "sklearn": "arena",
    "ray": "distributed",
}


def require(module: str, feature: str = "") -> ModuleType:
    """Import ``module`` or raise an ImportError naming the ``pip install`` extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".")[0]
        extra = _EXTRA_FOR.get(top)
        target = f"'actlab[{extra}]'" if extra else "actlab  (a core dependency is missing)"
        what = f" for {feature}" if feature else ""
        raise ImportError(f"actlab needs {top!r}{what}; install it with: pip install {target}") from err
