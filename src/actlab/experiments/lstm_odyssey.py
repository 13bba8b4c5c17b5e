"""lstm-odyssey: in an LSTM the forget gate and the output activation are critical; CIFG and removing
the peepholes cost little.

Greff et al.'s eight variants (``actlab.nn.LSTM``'s flags) on the arena's copy-memory task (copy 5
symbols of 8 after a delay of 10 steps; chance accuracy 1/8, what a memoryless model gets), the
same training for every variant: Adam, gradient norm clipped to 1, the task's default learning
rate; a linear head reads the last 5 steps. This experiment trains with its own short loop (the
arena's LSTM model has no variant options); its finished record is reused on a rerun. The
quantity is the validation accuracy difference to the vanilla LSTM (with peepholes), paired by seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actlab.experiments._base import Check, Context, Experiment, Measurement, Rule, paired_minus

VARIANTS: dict[str, dict[str, Any]] = {
    "vanilla": {"peepholes": True},
    "NP": {},
    "CIFG": {"peepholes": True, "cifg": True},
    "NFG": {"peepholes": True, "no_forget_gate": True},
    "NIG": {"peepholes": True, "no_input_gate": True},
    "NOG": {"peepholes": True, "no_output_gate": True},
    "NIAF": {"peepholes": True, "no_input_activation": True},
    "NOAF": {"peepholes": True, "no_output_activation": True},
}


def _train(seed: int, flags: dict[str, Any], p: dict[str, Any]) -> float:
    import torch
    import torch.nn.functional as F
    from torch import nn

    from actlab.arena.tasks import build_task
    from actlab.nn import LSTM

    torch.manual_seed(seed)
    params = {"n_samples": int(p["n_samples"]), "copy_length": 5, "delay": int(p["delay"]), "n_symbols": 8}
    data = build_task("copy_memory", params, seed)
    x = torch.from_numpy(np.ascontiguousarray(data.x_train)).float()
    y = torch.from_numpy(np.ascontiguousarray(data.y_train)).long()
    xv = torch.from_numpy(np.ascontiguousarray(data.x_val)).float()
    yv = torch.from_numpy(np.ascontiguousarray(data.y_val)).long()
    k, classes = data.output_shape
    lstm = LSTM(x.shape[-1], int(p["hidden"]), batch_first=True, **flags)
    head = nn.Linear(int(p["hidden"]), classes)
    model = nn.ModuleList([lstm, head])
    opt = torch.optim.Adam(model.parameters(), lr=float(p["lr"]))
    order = torch.Generator().manual_seed(seed)

    def logits(inputs: Any) -> Any:
        out, _ = lstm(inputs)
        return head(out[:, -k:])

    for _ in range(int(p["epochs"])):
        perm = torch.randperm(len(x), generator=order)
        for i in range(0, len(x) - 1, 50):
            idx = perm[i : i + 50]
            loss = F.cross_entropy(logits(x[idx]).reshape(-1, classes), y[idx].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    with torch.no_grad():
        acc = (logits(xv).argmax(-1) == yv).double().mean()
    return float(acc)


def _measure(ctx: Context) -> Measurement:
    p = ctx.params
    acc: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with ctx.progress(len(VARIANTS) * len(ctx.seeds)) as step:
        for seed in ctx.seeds:
            for name, flags in VARIANTS.items():
                acc[name].append(_train(seed, flags, p))
                step()

    return Measurement(
        samples={
            "nfg": paired_minus(acc, "NFG", "vanilla"),
            "noaf": paired_minus(acc, "NOAF", "vanilla"),
            "cifg": paired_minus(acc, "CIFG", "vanilla"),
            "np": paired_minus(acc, "NP", "vanilla"),
        },
        arms={
            name: {"flags": flags, "init": "actlab.nn.LSTM default (forget bias 1)", "lr": p["lr"], "optimizer": "adam"}
            for name, flags in VARIANTS.items()
        },
        details={"accuracy": acc, "chance_accuracy": 1 / 8},
    )


def _plot(m: Measurement, ax: Any) -> None:
    acc = m.details["accuracy"]
    names = list(acc)
    for i, name in enumerate(names):
        vals = np.asarray(acc[name])
        ax.plot([i] * len(vals), vals, "o", color=f"C{i}", alpha=0.5, ms=4)
        ax.plot([i - 0.25, i + 0.25], [vals.mean()] * 2, color="k")
    ax.axhline(m.details["chance_accuracy"], color="gray", lw=0.8, ls=":", label="memoryless (chance)")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("copy-memory val accuracy")
    ax.legend(fontsize=8)


EXPERIMENT = Experiment(
    name="lstm-odyssey",
    claim="the forget gate and the output activation are the critical components of the LSTM; coupling the "
    "input and forget gates (CIFG) or removing the peepholes (NP) costs little",
    source="Greff et al. 2017, LSTM: A Search Space Odyssey, arXiv:1503.04069, Fig. 3 and conclusions",
    published="NFG and NOAF significantly worse than vanilla on all three tasks; "
    "CIFG and NP not significantly different",
    checks=(
        Check("nfg", "val accuracy NFG minus vanilla, paired by seed", Rule("below", 0.0), "negative (critical)"),
        Check("noaf", "val accuracy NOAF minus vanilla, paired", Rule("below", 0.0), "negative (critical)"),
        Check(
            "cifg",
            "val accuracy CIFG minus vanilla, paired",
            Rule("within", 0.0, tolerance=0.05),
            "no significant change (within ±5 points here)",
        ),
        Check(
            "np",
            "val accuracy NP minus vanilla, paired",
            Rule("within", 0.0, tolerance=0.05),
            "no significant change (within ±5 points here)",
        ),
    ),
    measure=_measure,
    plot=_plot,
    scales={
        "tiny": {"seeds": 3, "n_samples": 200, "delay": 5, "hidden": 16, "lr": 0.01, "epochs": 1},
        "default": {"seeds": 5, "n_samples": 2000, "delay": 10, "hidden": 64, "lr": 0.01, "epochs": 10},
        "large": {"seeds": 10, "n_samples": 5000, "delay": 50, "hidden": 128, "lr": 0.01, "epochs": 30},
    },
    notes="The ±5-point equivalence margin for 'costs little' was fixed before any run.",
)
