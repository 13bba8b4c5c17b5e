"""zero-mean: ELU's mean activations near zero make a deep net learn faster than with ReLU.

Arena runs (stored, resumable): the digits through Clevert et al.'s MNIST network shape (8 hidden
layers of 128 units) with ELU and ReLU, plain SGD (lr 0.01, mini-batches of 64, as recalled for
the paper), each under the paper's He init and under actlab's variance-preserving "auto" init
(which gives ELU its own gain), so the activation's effect is separated from the initialisation's.
The quantity is the final epoch's training loss, ELU minus ReLU, paired by seed.
"""

from __future__ import annotations

from typing import Any

from actlab.experiments._base import Check, Context, Experiment, Measurement, Rule, plot_mean_curves, select

_ACTS = ("relu", "elu")
_INITS = ("he", "auto")


def _measure(ctx: Context) -> Measurement:
    p = ctx.params
    records = ctx.arena(
        {
            "activations": list(_ACTS),
            "tasks": ["digits"],
            "params": {
                "model": "mlp",
                "model_params": {"width": int(p["width"]), "depth": 8},
                "optimizer": "sgd",
                "lr": p["lr"],
                "momentum": 0.0,
                "batch_size": 64,
                "epochs": p["epochs"],
                "task_params": {"val_fraction": p.get("val_fraction", 0.2)},
            },
            "grid": {"init": list(_INITS)},
        }
    )
    loss: dict[str, list[float]] = {}
    curves: dict[str, list[list[float]]] = {}
    for act in _ACTS:
        for init in _INITS:
            results = select(records, activation=act, init=init)
            seeds = sorted(results)
            loss[f"{act} {init}"] = [
                results[s]["curve"][-1]["train_loss"] if results[s]["status"] == "ok" else float("nan") for s in seeds
            ]
            curves[f"{act} {init}"] = [[c["train_loss"] for c in results[s]["curve"]] for s in seeds]

    def gap(init: str) -> list[float]:
        return [e - r for e, r in zip(loss[f"elu {init}"], loss[f"relu {init}"])]

    return Measurement(
        samples={"elu_minus_relu_he": gap("he"), "elu_minus_relu_auto": gap("auto")},
        arms={
            f"{act} {init}": {"init": init, "lr": p["lr"], "optimizer": "sgd", "momentum": 0.0, "batch_size": 64}
            for act in _ACTS
            for init in _INITS
        },
        details={"final_train_loss": loss, "train_loss_curves": curves},
    )


def _plot(m: Measurement, ax: Any) -> None:
    plot_mean_curves(
        ax, m.details["train_loss_curves"], lambda i, label: ("-" if label.endswith("he") else "--", f"C{i // 2}")
    )


EXPERIMENT = Experiment(
    name="zero-mean",
    claim="ELU pushes mean activations toward zero, so a deep network's training error falls faster than "
    "with ReLU; checked under the paper's He init and under a variance-preserving init for each",
    source="Clevert, Unterthiner & Hochreiter 2015, ELU, arXiv:1511.07289, Fig. 2 (MNIST, 8 x 128)",
    published="ELU's training error falls much faster than ReLU's (a curve, no table)",
    checks=(
        Check(
            "elu_minus_relu_he",
            "final training loss ELU minus ReLU, He init for both, paired by seed",
            Rule("below", 0.0),
            "negative (ELU learns faster)",
        ),
        Check(
            "elu_minus_relu_auto",
            "final training loss ELU minus ReLU, each with its own variance-preserving gain ('auto')",
            Rule("below", 0.0),
            "negative if the effect is the activation's, not the init's",
        ),
    ),
    measure=_measure,
    plot=_plot,
    scales={
        "tiny": {"seeds": 3, "width": 32, "lr": 0.01, "epochs": 1, "val_fraction": 0.5},
        "default": {"seeds": 10, "width": 128, "lr": 0.01, "epochs": 10, "workers": 2},
        "large": {"seeds": 20, "width": 128, "lr": 0.01, "epochs": 100, "workers": 4},
    },
    notes="The paper's MNIST hyper-parameters (lr 0.01, batch 64, He init) are recalled [R] in the research notes.",
)
