"""init-depth: a 30-layer plain ReLU net stalls with Xavier initialisation and trains with He's.

Arena runs (stored, resumable): the digits through a plain ReLU MLP of width 64 and 22 or 30 hidden
layers (the arena's ``deep_mlp`` task), SGD with momentum 0.9 and the same learning rate for both
initialisations; "xavier" here is std sqrt(2/(fan_in+fan_out)), i.e. sqrt(1/n) for the square
hidden layers, as in He et al.'s comparison. The quantity is the validation accuracy after the
budget, paired by seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actlab.experiments._base import Check, Context, Experiment, Measurement, Rule, select

_INITS = ("xavier", "he")
_DEPTHS = (22, 30)


def _measure(ctx: Context) -> Measurement:
    p = ctx.params
    width = int(p["width"])
    records = ctx.arena(
        {
            "activations": ["relu"],
            "tasks": ["deep_mlp"],
            "task": {"deep_mlp": {"task_params": {"val_fraction": p.get("val_fraction", 0.2)}}},
            "params": {"optimizer": "sgd", "lr": p["lr"], "momentum": 0.9, "epochs": p["epochs"]},
            "grid": {
                "init": list(_INITS),
                "model_params": [{"width": width, "depth": d, "norm": "none"} for d in _DEPTHS],
            },
        }
    )
    acc: dict[tuple[str, int], dict[int, float]] = {}
    curves: dict[str, list[list[float]]] = {}
    for init in _INITS:
        for depth in _DEPTHS:
            results = select(records, init=init, model_params__depth=depth)
            # A diverged run learned nothing: chance accuracy (10 classes), stated in the record.
            acc[init, depth] = {
                s: (r["final_metric"] if r["final_metric"] is not None else 0.1) for s, r in results.items()
            }
            curves[f"{init} {depth}"] = [[c["train_loss"] for c in r["curve"]] for r in results.values()]
    seeds = sorted(acc["he", 30])

    def gap(depth: int) -> list[float]:
        return [acc["he", depth][s] - acc["xavier", depth][s] for s in seeds]

    return Measurement(
        samples={"gap_30": gap(30), "gap_22": gap(22), "xavier_22": [acc["xavier", 22][s] for s in seeds]},
        arms={
            f"relu {init} {depth} layers": {"init": init, "lr": p["lr"], "optimizer": "sgd", "momentum": 0.9}
            for init in _INITS
            for depth in _DEPTHS
        },
        details={
            "accuracy": {f"{i} {d}": [acc[i, d][s] for s in seeds] for i in _INITS for d in _DEPTHS},
            "train_loss_curves": curves,
            "epochs": p["epochs"],
            "width": width,
        },
    )


def _plot(m: Measurement, ax: Any) -> None:
    styles = {"xavier": "--", "he": "-"}
    for key, runs in m.details["train_loss_curves"].items():
        init, depth = key.split()
        n = min((len(r) for r in runs), default=0)
        if not n:
            continue
        mean = np.mean([r[:n] for r in runs], axis=0)
        ax.plot(
            range(1, n + 1), mean, styles[init], color="C0" if depth == "22" else "C3", label=f"{depth} layers, {init}"
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (mean over seeds)")
    ax.legend()


EXPERIMENT = Experiment(
    name="init-depth",
    claim="with ReLU, a 30-layer plain net completely stalls under Xavier init and converges under He init; "
    "at 22 layers both converge, He's earlier",
    source="He et al. 2015, Delving Deep into Rectifiers, arXiv:1502.01852, Figs. 2 and 3",
    published="30 layers: Xavier stalls (error stays ~0.9+), He converges; 22 layers: both converge",
    checks=(
        Check(
            "gap_30",
            "val accuracy He minus Xavier, 30 layers, paired by seed",
            Rule("above", 0.0),
            "He converges, Xavier completely stalls (positive)",
        ),
        Check(
            "gap_22",
            "val accuracy He minus Xavier, 22 layers, paired by seed",
            Rule("above", 0.0),
            "He starts reducing error earlier (positive)",
        ),
        Check(
            "xavier_22",
            "val accuracy of the 22-layer Xavier net after the budget (chance: 0.1)",
            Rule("above", 0.5),
            "converges (Fig. 2)",
        ),
    ),
    measure=_measure,
    plot=_plot,
    scales={
        "tiny": {"seeds": 3, "width": 16, "lr": 0.005, "epochs": 1, "val_fraction": 0.5},
        "default": {"seeds": 5, "width": 64, "lr": 0.005, "epochs": 10, "workers": 2},
        "large": {"seeds": 10, "width": 128, "lr": 0.005, "epochs": 40, "workers": 4},
    },
    notes="Both arms use the same learning rate (He et al. compare at one schedule). A diverged run "
    "counts as chance accuracy 0.1.",
)
