"""The catalog: one frozen :class:`Spec` per activation, collected from the family modules.

Every module in this package (other than ``spec`` and private ones) defines ``SPECS``; they are
discovered, not listed, so adding a family module is all it takes to add activations.
"""

from __future__ import annotations

import importlib
import pkgutil

from actlab.catalog.spec import Equivalent, Kernel, Kink, Param, ParameterError, Reference, Spec, Tolerance

__all__ = [
    "SPECS",
    "Kernel",
    "Spec",
    "Param",
    "Kink",
    "Reference",
    "Equivalent",
    "Tolerance",
    "ParameterError",
    "families",
]


def _collect() -> tuple[Spec, ...]:
    specs: list[Spec] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "spec" or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        specs.extend(module.SPECS)
    return tuple(specs)


SPECS: tuple[Spec, ...] = _collect()


def families() -> list[str]:
    return sorted({s.family for s in SPECS})
