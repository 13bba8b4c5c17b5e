"""The arena: train one model with many activations and several seeds, store every trial, rank them.

``actlab arena`` (see :mod:`actlab.arena.cli`) is the command; from Python:

    >>> from actlab.arena.config import load_suite, with_overrides
    >>> from actlab.arena.runner import plan_trials, run_arena
    >>> suite = with_overrides(load_suite("default"), activations=["relu", "gelu"], seeds=2)
    >>> outcome = run_arena(plan_trials(suite), "arena-runs/mine", workers=2, threads=1)  # doctest: +SKIP

Importing this package is light (no torch): the submodules that train import it when they run.
"""

from __future__ import annotations
