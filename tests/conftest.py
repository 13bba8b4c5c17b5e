"""Shared fixtures. Every test module is generated from the registry: a new spec is tested
without a new test file. Randomness is seeded (hypothesis runs derandomized)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# The oracle cache lives in the test session's temporary folder unless the caller chose one,
# so a run never trusts values from another version of a definition kept elsewhere.
os.environ.setdefault("ACTLAB_CACHE", "")

settings.register_profile(
    "actlab",
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("actlab")

import actlab  # noqa: E402
from actlab.registry import all_specs  # noqa: E402

ELEMENTWISE = [s for s in all_specs() if s.kind == "elementwise"]
# The fused kernels' tests run wherever a C++ compiler does (CXX, else c++).
HAS_COMPILER = shutil.which(os.environ.get("CXX", "c++")) is not None
VECTOR = [s for s in all_specs() if s.kind == "vector"]
# Layers (PReLU, PAU, gated layers, ...) have trained weights, no fixed curve: the registry tests
# (contract, serialization) cover them with the functions; tests/test_trainable.py the rest.
LAYERS = all_specs("layer")
ALL = all_specs("all")


@pytest.fixture(scope="session", autouse=True)
def fused_kernels_built() -> None:
    """Build (or load) the fused kernels once, in this process, before any test: a test that runs the
    CLI in a subprocess then never pays for, or prints about, the build."""
    try:
        from actlab.torch import kernels
    except ImportError:  # no torch: the torch tests skip
        return
    kernels.build(quiet=True)


def dispatched_ops(fn) -> list[str]:
    """The operators (and autograd nodes) a call dispatches, from the torch profiler's events."""
    import torch

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return [e.key for e in prof.key_averages()]


def spec_id(spec: actlab.Spec) -> str:
    return spec.name


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261121)


def away_from_kinks(spec: actlab.Spec, xs: np.ndarray, gap: float = 1e-3) -> np.ndarray:
    """``xs`` without the points closer than ``gap`` to a kink (derivatives jump there)."""
    keep = np.ones(xs.shape, bool)
    for at, _ in spec.kink_points():
        keep &= np.abs(xs - at) > gap
    lo, hi = spec.domain
    keep &= (xs > lo) & (xs < hi)
    return xs[keep]
