"""selu: SELU with LeCun-normal weights keeps mean 0 and variance 1 through many layers.

Analytic (``actlab.analysis.self_normalizing_map``, the moment map (μ, ν) -> (E f, Var f) for
x ~ N(μω, ντ) with ω = 0, τ = 1): its Jacobian at (0, 1) by central differences, the largest
singular value, and the map iterated from variance 0.1 and 9. Measured: a deep SELU net with
LeCun-normal weights on standardised Gaussian inputs, in training mode with alpha dropout and with
ordinary dropout at the same rate; the variance after the last layer, per seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actlab.experiments._base import Check, Context, Experiment, Measurement, Rule

_PUBLISHED_J = ((0.0, 0.0888348), (0.0, 0.782648))
_STEP = 1e-5
_MAP_LAYERS = 50


def _jacobian() -> np.ndarray:
    from actlab.analysis import self_normalizing_map

    def g(mu: float, nu: float) -> np.ndarray:
        return np.array(self_normalizing_map("selu", mu, nu))

    d_mu = (g(_STEP, 1.0) - g(-_STEP, 1.0)) / (2 * _STEP)
    d_nu = (g(0.0, 1.0 + _STEP) - g(0.0, 1.0 - _STEP)) / (2 * _STEP)
    return np.column_stack([d_mu, d_nu])


def _layer_variances(seed: int, depth: int, width: int, samples: int, dropout: str, rate: float) -> list[float]:
    """Variance of every layer's output (all units, all samples), training mode."""
    import torch
    from torch import nn

    from actlab.init import init_
    from actlab.nn import Activation

    torch.manual_seed(seed)
    drop = nn.AlphaDropout if dropout == "alpha" else nn.Dropout
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width), Activation("selu"), drop(rate)]
    net = nn.Sequential(*layers)
    init_(net, "lecun", generator=torch.Generator().manual_seed(seed))
    net.train()
    gen = torch.Generator().manual_seed(10_000 + seed)
    h = torch.randn(samples, width, generator=gen)
    out = []
    with torch.no_grad():
        for i in range(0, len(net), 3):
            h = net[i + 2](net[i + 1](net[i](h)))
            out.append(float(h.var()))
    return out


def _measure(ctx: Context) -> Measurement:
    from actlab.analysis import self_normalizing

    J = _jacobian()
    sv = float(np.linalg.svd(J, compute_uv=False).max())
    maps = {}
    for nu0 in (0.1, 9.0):
        it = self_normalizing("selu", 0.0, nu0, _MAP_LAYERS)
        maps[nu0] = (list(it.mu), list(it.nu))
    depth, width = int(ctx.params["depth"]), int(ctx.params["width"])
    samples, rate = int(ctx.params["samples"]), float(ctx.params["dropout"])
    var = {"alpha": [], "standard": []}
    with ctx.progress(2 * len(ctx.seeds)) as step:
        for seed in ctx.seeds:
            for kind in var:
                var[kind].append(_layer_variances(seed, depth, width, samples, kind, rate))
                step()
    last_alpha = [v[-1] for v in var["alpha"]]
    last_std = [v[-1] for v in var["standard"]]
    return Measurement(
        samples={
            "sv_max": [sv],
            "jacobian_error": [float(np.abs(J - np.asarray(_PUBLISHED_J)).max())],
            "from_var_0.1": [max(abs(maps[0.1][0][-1]), abs(maps[0.1][1][-1] - 1.0))],
            "from_var_9": [max(abs(maps[9.0][0][-1]), abs(maps[9.0][1][-1] - 1.0))],
            "alpha_var_last": last_alpha,
            "dropout_gap": [abs(a - 1) - abs(s - 1) for a, s in zip(last_alpha, last_std)],
        },
        arms={
            "selu + alpha dropout": {"init": "lecun", "lr": None, "dropout": rate, "note": "forward only"},
            "selu + dropout": {"init": "lecun", "lr": None, "dropout": rate, "note": "forward only"},
        },
        details={
            "jacobian": J.tolist(),
            "map_from_0.1": {"mu": maps[0.1][0], "nu": maps[0.1][1]},
            "map_from_9": {"mu": maps[9.0][0], "nu": maps[9.0][1]},
            "layer_variance": var,
        },
    )


def _plot(m: Measurement, ax: Any) -> None:
    for key, color in (("map_from_0.1", "C0"), ("map_from_9", "C1")):
        nu = m.details[key]["nu"]
        ax.plot(range(len(nu)), nu, color=color, lw=2, label=f"moment map, {key.replace('map_', '')}")
    for kind, color in (("alpha", "C2"), ("standard", "C3")):
        arr = np.asarray(m.details["layer_variance"][kind])
        layers = np.arange(1, arr.shape[1] + 1)
        for row in arr:
            ax.plot(layers, row, color=color, alpha=0.3, lw=1)
        ax.plot(layers, arr.mean(0), "--", color=color, label=f"measured, {kind} dropout")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("layer")
    ax.set_ylabel("variance")
    ax.legend(fontsize=8)


EXPERIMENT = Experiment(
    name="selu",
    claim="SELU with LeCun-normal weights has a stable, attracting fixed point (mean 0, variance 1): "
    "the moment map is a contraction there, and alpha dropout keeps the variance where dropout does not",
    source="Klambauer et al. 2017, Self-Normalizing Neural Networks, arXiv:1706.02515, Thm 1 and §4",
    published="fixed point (0, 1); Jacobian [[0, 0.0888], [0, 0.7826]]; largest singular value 0.7877",
    checks=(
        Check(
            "sv_max",
            "largest singular value of the moment map's Jacobian at (0, 1)",
            Rule("within", 0.7877, tolerance=5e-4, min_seeds=1),
            "0.787673 (0.7877)",
        ),
        Check(
            "jacobian_error",
            "max |J - J_published| over the four entries",
            Rule("below", 1e-3, min_seeds=1),
            "[[0, 0.0888348], [0, 0.782648]]",
        ),
        Check(
            "from_var_0.1",
            f"max(|mu|, |nu - 1|) after {_MAP_LAYERS} layers of the moment map from (0, 0.1)",
            Rule("below", 1e-2, min_seeds=1),
            "attracted to (0, 1) (Theorem 3: no vanishing variance)",
        ),
        Check(
            "from_var_9",
            f"max(|mu|, |nu - 1|) after {_MAP_LAYERS} layers of the moment map from (0, 9)",
            Rule("below", 1e-2, min_seeds=1),
            "attracted to (0, 1) (Theorem 2: no exploding variance)",
        ),
        Check(
            "alpha_var_last",
            "variance after the last layer of a deep SELU net, LeCun-normal weights, alpha dropout (training mode)",
            Rule("within", 1.0, tolerance=0.1),
            "stays near 1",
        ),
        Check(
            "dropout_gap",
            "|var - 1| with alpha dropout minus |var - 1| with ordinary dropout (same rate), last layer",
            Rule("below", 0.0),
            "alpha dropout keeps mean and variance, ordinary dropout does not (negative)",
        ),
    ),
    measure=_measure,
    plot=_plot,
    scales={
        "tiny": {"seeds": 3, "depth": 16, "width": 128, "samples": 256, "dropout": 0.1},
        "default": {"seeds": 10, "depth": 32, "width": 256, "samples": 512, "dropout": 0.1},
        "large": {"seeds": 30, "depth": 64, "width": 512, "samples": 2048, "dropout": 0.1},
    },
)
