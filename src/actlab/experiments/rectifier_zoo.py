"""rectifier-zoo: leaky, very leaky, parametric and randomized ReLU against ReLU on small data.

Arena runs (stored, resumable): the digits through the arena's default MLP, the learning rate
chosen per activation by the arena's search (Adam; candidates on a held-out 20 % of the training
split), several seeds; the quantity is the validation accuracy difference to ReLU, paired by seed.
Xu et al. used CIFAR-10/100 and the NDSB plankton set with a Network-in-Network; the digits are the
small-data stand-in. ELU is an extra arm (not in Xu et al.).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actlab.experiments._base import Check, Context, Experiment, Measurement, Rule, paired_minus, select

_ACTS = {
    "relu": "relu",
    "leaky": "leaky_relu",  # negative slope 0.01
    "very leaky": "leaky_relu(negative_slope=0.18)",  # Xu et al.: a = 5.5, slope 1/5.5
    "prelu": "prelu",
    "rrelu": "rrelu",  # slope ~ U(1/8, 1/3) in training, the mean at test (Xu et al.'s 3..8)
    "elu": "elu",
}


def _measure(ctx: Context) -> Measurement:
    p = ctx.params
    records = ctx.arena(
        {
            "activations": list(_ACTS.values()),
            "tasks": ["digits"],
            "params": {
                "optimizer": "adam",
                "lr": p["lr"],
                "epochs": p["epochs"],
                "task_params": {"val_fraction": p.get("val_fraction", 0.2)},
            },
        }
    )
    acc: dict[str, list[float]] = {}
    chosen_lr: dict[str, list[float]] = {}
    for label, ident in _ACTS.items():
        results = select(records, activation=_canonical(ident))
        seeds = sorted(results)
        acc[label] = [results[s]["final_metric"] if results[s]["status"] == "ok" else 0.1 for s in seeds]
        chosen_lr[label] = [results[s]["lr"] for s in seeds]
    wins = {label: 0 for label in _ACTS}
    for i in range(len(acc["relu"])):
        wins[max(_ACTS, key=lambda lab: acc[lab][i])] += 1

    return Measurement(
        samples={
            "very_leaky_minus_relu": paired_minus(acc, "very leaky", "relu"),
            "rrelu_minus_relu": paired_minus(acc, "rrelu", "relu"),
            "prelu_minus_relu": paired_minus(acc, "prelu", "relu"),
            "leaky_minus_relu": paired_minus(acc, "leaky", "relu"),
        },
        arms={
            label: {"activation": ident, "init": "auto", "lr": p["lr"], "lr_chosen_per_seed": chosen_lr[label]}
            for label, ident in _ACTS.items()
        },
        details={"accuracy": acc, "best_arm_count_over_seeds": wins},
    )


def _canonical(identifier: str) -> str:
    """The activation as the arena stores it (its normalised call string)."""
    from actlab.arena.trial import normalize_trial

    return normalize_trial({"task": "digits", "activation": identifier})["activation"]


def _plot(m: Measurement, ax: Any) -> None:
    acc = m.details["accuracy"]
    labels = list(acc)
    base = np.asarray(acc["relu"])
    for i, lab in enumerate(labels):
        diff = np.asarray(acc[lab]) - base
        ax.plot([i] * len(diff), diff, "o", color=f"C{i}", alpha=0.5, ms=4)
        ax.plot([i - 0.25, i + 0.25], [diff.mean()] * 2, color="k")
    ax.axhline(0.0, color="gray", lw=0.8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("val accuracy minus ReLU (paired by seed)")


EXPERIMENT = Experiment(
    name="rectifier-zoo",
    claim="leaky, very leaky, parametric and randomized ReLU beat ReLU on small data (Xu et al.), "
    "yet practitioners find no consistent winner",
    source="Xu, Wang, Chen & Li 2015, Empirical Evaluation of Rectified Activations, arXiv:1505.00853, Tables 3-4",
    published="CIFAR-10 NIN test error: ReLU 12.45, leaky 12.66, very leaky 11.20, PReLU 11.79, RReLU 11.19 "
    "(recalled [R], not verified)",
    checks=(
        Check(
            "very_leaky_minus_relu",
            "val accuracy very leaky ReLU (0.18) minus ReLU, paired by seed",
            Rule("above", 0.0),
            "+1.25 points on CIFAR-10 [R]",
        ),
        Check("rrelu_minus_relu", "val accuracy RReLU minus ReLU, paired", Rule("above", 0.0), "+1.26 points [R]"),
        Check("prelu_minus_relu", "val accuracy PReLU minus ReLU, paired", Rule("above", 0.0), "+0.66 points [R]"),
        Check(
            "leaky_minus_relu",
            "val accuracy leaky ReLU (0.01) minus ReLU, paired",
            Rule("above", 0.0),
            "-0.21 points on CIFAR-10, better on CIFAR-100 [R]",
        ),
    ),
    measure=_measure,
    plot=_plot,
    scales={
        "tiny": {"seeds": 3, "epochs": 2, "lr": 0.01, "val_fraction": 0.5},
        "default": {"seeds": 10, "epochs": 15, "lr": [0.001, 0.003, 0.01], "workers": 2},
        "large": {"seeds": 30, "epochs": 30, "lr": [0.0003, 0.001, 0.003, 0.01], "workers": 4},
    },
    notes="Xu et al.'s numbers are recalled, not read from the paper (tag [R] in the research notes).",
)
