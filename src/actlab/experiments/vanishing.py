"""vanishing: sigmoid's derivative is at most 1/4, so gradients shrink layer by layer.

Analytic half: the largest value of the catalog's sigmoid derivative on a fine grid.
Measured half: a plain sigmoid MLP on the digits (Nielsen's setting, ch. 5: N(0, 1/fan_in) weights,
4 hidden layers of 30 units), one full-batch backward pass at initialisation under
``actlab.watch``; the quantity is log10 of the gradient-norm ratio first hidden layer / last
hidden layer (``DiagnosisReport.gradient_ratio``). A ReLU MLP with He init is the control arm.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from actlab.experiments._base import Check, Context, Experiment, Measurement, Rule

_ARMS = {"sigmoid": "lecun", "relu": "he"}  # activation -> init


def _layer_norms(activation: str, init: str, seed: int, depth: int, width: int) -> tuple[float, list[float]]:
    import torch
    import torch.nn.functional as F

    from actlab.arena.models import build_model
    from actlab.arena.tasks import build_task
    from actlab.diagnose import watch
    from actlab.init import init_

    data = build_task("digits", None, seed)
    x = torch.from_numpy(np.ascontiguousarray(data.x_train)).float()
    y = torch.from_numpy(np.ascontiguousarray(data.y_train)).long()
    model = build_model("mlp", activation, data.input_shape, data.output_shape, {"width": width, "depth": depth})
    init_(model, init, generator=torch.Generator().manual_seed(seed))
    with watch(model) as w:
        F.cross_entropy(model(x), y).backward()
    report = w.report()
    norms = [float(s.grad_norm) for s in sorted(report.sites, key=lambda s: s.index)]
    return float(report.gradient_ratio), norms


def _measure(ctx: Context) -> Measurement:
    import actlab
    from actlab.analysis import mean_field

    depth, width = int(ctx.params["depth"]), int(ctx.params["width"])
    grid = np.linspace(-20.0, 20.0, 400_001)  # contains 0, where the maximum 1/4 sits
    max_derivative = float(np.max(actlab.get("sigmoid").derivative(grid)))
    ratios: dict[str, list[float]] = {a: [] for a in _ARMS}
    norms: dict[str, list[list[float]]] = {a: [] for a in _ARMS}
    with ctx.progress(len(ctx.seeds) * len(_ARMS)) as step:
        for seed in ctx.seeds:
            for act, init in _ARMS.items():
                ratio, layer_norms = _layer_norms(act, init, seed, depth, width)
                ratios[act].append(math.log10(ratio))
                norms[act].append(layer_norms)
                step()
    chi = mean_field("sigmoid", sigma_w2=1.0).chi  # LeCun variance: σ_w² = 1
    return Measurement(
        samples={"log10_ratio": ratios["sigmoid"], "max_derivative": [max_derivative]},
        arms={a: {"init": i, "lr": None, "note": "at initialisation, no training"} for a, i in _ARMS.items()},
        details={
            "relu_he_log10_ratio": ratios["relu"],
            "layer_grad_norms": norms,
            "meanfield_chi_sigmoid": chi,
            "meanfield_predicted_log10_ratio": (depth - 1) / 2 * math.log10(chi),
        },
    )


def _plot(m: Measurement, ax: Any) -> None:
    for act, runs in m.details["layer_grad_norms"].items():
        arr = np.asarray(runs)
        layers = np.arange(1, arr.shape[1] + 1)
        for row in arr:
            ax.plot(layers, row, color="C0" if act == "sigmoid" else "C1", alpha=0.25, lw=1)
        ax.plot(layers, np.exp(np.log(arr).mean(0)), "o-", color="C0" if act == "sigmoid" else "C1", label=act)
    ax.set_yscale("log")
    ax.set_xlabel("hidden layer (1 = nearest the input)")
    ax.set_ylabel("gradient norm at the activation output")
    ax.legend()


EXPERIMENT = Experiment(
    name="vanishing",
    claim="sigmoid's derivative is at most 0.25, so the gradient shrinks through a deep sigmoid net: "
    "the first hidden layer learns about 100x slower than the last with 4 hidden layers",
    source="Nielsen, Neural Networks and Deep Learning, ch. 5 (and the sigma' <= 1/4 argument)",
    published="max sigma' = 0.25; |delta| per layer 0.003, 0.017, 0.070, 0.285 (4 hidden layers, MNIST)",
    checks=(
        Check(
            "log10_ratio",
            "log10(gradient norm at hidden layer 1 / at the last hidden layer), sigmoid MLP at init",
            Rule("below", -1.0),
            "about -2 (0.003 / 0.285, recalled [R]); 3 layers: 0.012 / 0.283 = -1.37",
        ),
        Check(
            "max_derivative",
            "max of sigmoid' over [-20, 20] (catalog derivative, 400001 points)",
            Rule("within", 0.25, tolerance=1e-9, min_seeds=1),
            "0.25 exactly, at x = 0",
        ),
    ),
    measure=_measure,
    plot=_plot,
    scales={
        "tiny": {"seeds": 3, "depth": 4, "width": 30},
        "default": {"seeds": 10, "depth": 4, "width": 30},
        "large": {"seeds": 30, "depth": 4, "width": 30},
    },
)
