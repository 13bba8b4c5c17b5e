"""dying-relu: a high learning rate kills ReLU units; leaky, parametric and exponential variants survive.

Arena runs (stored, resumable): the digits through an MLP (width 64, 3 hidden layers), SGD with
momentum 0.9 at a moderate and a high learning rate, the same for every activation. The dead-unit
fraction is the arena's (``actlab.watch``: units whose input never left the region where f' = 0
on the validation set; for leaky ReLU that region is empty, so it cannot die in this sense, which
is why the survival of the variants is judged by accuracy). A diverged run counts as chance
accuracy 0.1 and has no dead fraction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actlab.experiments._base import Check, Context, Experiment, Measurement, Rule, select

_ACTS = ("relu", "leaky_relu", "prelu", "elu")
_CHANCE = 0.1


def _nan(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _measure(ctx: Context) -> Measurement:
    p = ctx.params
    lrs = {"low": p["lr_low"], "high": p["lr_high"]}
    records = ctx.arena(
        {
            "activations": list(_ACTS),
            "tasks": ["digits"],
            "params": {
                "optimizer": "sgd",
                "momentum": 0.9,
                "epochs": p["epochs"],
                "model_params": {"width": 64, "depth": 3},
                "task_params": {"val_fraction": p.get("val_fraction", 0.2)},
            },
            "grid": {"lr": list(lrs.values())},
        }
    )
    dead: dict[tuple[str, str], list[float]] = {}
    acc: dict[tuple[str, str], list[float]] = {}
    diverged: dict[str, int] = {}
    for act in _ACTS:
        for which, lr in lrs.items():
            results = select(records, activation=act, lr=lr)
            seeds = sorted(results)
            dead[act, which] = [_nan(results[s]["dead_fraction"]) for s in seeds]
            acc[act, which] = [results[s]["final_metric"] if results[s]["status"] == "ok" else _CHANCE for s in seeds]
            diverged[f"{act} {which}"] = sum(results[s]["status"] == "diverged" for s in seeds)

    def minus_relu(act: str) -> list[float]:
        return [a - r for a, r in zip(acc[act, "high"], acc["relu", "high"])]

    return Measurement(
        samples={
            "relu_dead_rise": [h - lo for h, lo in zip(dead["relu", "high"], dead["relu", "low"])],
            "relu_dead_high": dead["relu", "high"],
            "leaky_minus_relu": minus_relu("leaky_relu"),
            "prelu_minus_relu": minus_relu("prelu"),
            "elu_minus_relu": minus_relu("elu"),
        },
        arms={
            f"{act} lr={lr}": {"init": "auto", "lr": lr, "optimizer": "sgd", "momentum": 0.9}
            for act in _ACTS
            for lr in lrs.values()
        },
        details={
            "dead_fraction": {f"{a} {w}": v for (a, w), v in dead.items()},
            "accuracy": {f"{a} {w}": v for (a, w), v in acc.items()},
            "diverged_runs": diverged,
            "learning_rates": lrs,
        },
    )


def _plot(m: Measurement, ax: Any) -> None:
    dead = m.details["dead_fraction"]
    x = np.arange(len(_ACTS))
    for i, (which, color) in enumerate((("low", "C0"), ("high", "C3"))):
        means = [np.nanmean(dead[f"{a} {which}"]) if np.isfinite(dead[f"{a} {which}"]).any() else 0.0 for a in _ACTS]
        ax.bar(x + (i - 0.5) * 0.38, means, 0.38, color=color, label=f"lr {m.details['learning_rates'][which]:g}")
        for j, a in enumerate(_ACTS):
            vals = [v for v in dead[f"{a} {which}"] if np.isfinite(v)]
            ax.plot([x[j] + (i - 0.5) * 0.38] * len(vals), vals, "k.", ms=3)
    ax.set_xticks(x, _ACTS)
    ax.set_ylabel("dead-unit fraction after training")
    ax.legend()


EXPERIMENT = Experiment(
    name="dying-relu",
    claim="with a learning rate set too high, many ReLU units die (never activate again); leaky, parametric "
    "and exponential variants survive",
    source="CS231n notes (Karpathy), 'Commonly used activation functions'; Maas et al. 2013; He et al. 2015; "
    "Clevert et al. 2015",
    published="'as much as 40% of your network can be dead' with a high learning rate (a shape, no table)",
    checks=(
        Check(
            "relu_dead_rise",
            "ReLU dead-unit fraction at the high lr minus at the low lr, paired by seed",
            Rule("above", 0.0),
            "positive: the high learning rate kills units",
        ),
        Check(
            "relu_dead_high",
            "ReLU dead-unit fraction after training at the high lr",
            Rule("above", 0.1),
            "up to 0.4",
        ),
        Check(
            "leaky_minus_relu",
            "val accuracy leaky ReLU (0.01) minus ReLU at the high lr, paired",
            Rule("above", 0.0),
            "positive: leaky survives",
        ),
        Check(
            "prelu_minus_relu",
            "val accuracy PReLU minus ReLU at the high lr, paired",
            Rule("above", 0.0),
            "positive: parametric survives",
        ),
        Check(
            "elu_minus_relu",
            "val accuracy ELU minus ReLU at the high lr, paired",
            Rule("above", 0.0),
            "positive: exponential survives",
        ),
    ),
    measure=_measure,
    plot=_plot,
    scales={
        "tiny": {"seeds": 3, "epochs": 2, "lr_low": 0.01, "lr_high": 0.2, "val_fraction": 0.5},
        "default": {"seeds": 10, "epochs": 10, "lr_low": 0.01, "lr_high": 0.2, "workers": 2},
        "large": {"seeds": 30, "epochs": 30, "lr_low": 0.01, "lr_high": 0.2, "workers": 4},
    },
    notes="The high learning rate (0.2 with momentum 0.9) was chosen in a pilot as the one where ReLU runs "
    "start to fail on this task without most runs diverging; it is fixed here, not tuned per result.",
)
