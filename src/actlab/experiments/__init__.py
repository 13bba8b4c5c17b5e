"""Reproductions of the classic claims about activation functions (``actlab reproduce``).

Each module of this package defines one :class:`~actlab.experiments._base.Experiment` named
``EXPERIMENT``: the claim, its source, the published number or shape, and the verdict rule, fixed
in code before anything runs. Experiments are found by discovery (every public module of the
package), never from a hand-kept list, so a new module is a new experiment.

    >>> from actlab.experiments import experiment_names
    >>> "vanishing" in experiment_names()
    True

Importing this package is light (no torch); an experiment imports what it needs when it runs.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from actlab.experiments._base import Experiment

__all__ = ["experiments", "experiment_names", "get_experiment", "UnknownExperimentError"]

# Modules of this package that are machinery, not experiments.
_MACHINERY = frozenset({"cli"})


class UnknownExperimentError(KeyError):
    """An experiment name that no module defines; the message suggests close names."""

    def __str__(self) -> str:
        return str(self.args[0])


def experiments() -> dict[str, Experiment]:
    """Every experiment of the package by name, in name order (discovered, imported on demand)."""
    from actlab.experiments._base import Experiment

    found: dict[str, Experiment] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name in _MACHINERY:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        exp = getattr(module, "EXPERIMENT", None)
        if not isinstance(exp, Experiment):
            raise TypeError(f"{module.__name__} defines no EXPERIMENT (an actlab.experiments._base.Experiment)")
        if exp.name in found:
            raise ValueError(f"two experiment modules are named {exp.name!r}")
        found[exp.name] = exp
    return dict(sorted(found.items()))


def experiment_names() -> list[str]:
    """The experiment names, sorted."""
    return list(experiments())


def get_experiment(name: str) -> Experiment:
    """The experiment called ``name``; :class:`UnknownExperimentError` with suggestions otherwise."""
    known = experiments()
    key = str(name).strip().lower().replace("_", "-")
    if key in known:
        return known[key]
    close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.5)
    close += [n for n in known if n not in close and (key.startswith(n) or n.startswith(key))]  # 'selu-x'
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownExperimentError(f"unknown experiment {name!r}{hint} (known: {', '.join(known)})")
