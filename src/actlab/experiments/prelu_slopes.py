"""prelu-slopes: learned PReLU slopes are largest in the first layer and smaller deeper in the net.

He et al.'s Table 1 at digits scale: a small CNN on the 8x8 digits (three conv3x3 stages of 16, 32
and 64 channels, each followed by PReLU and 2x2 max-pooling, then a 64-unit fully connected layer
with PReLU and the classifier), PReLU slopes initialised to 0.25 as in the paper, either one slope
per layer (channel-shared) or one per channel (channel-wise); SGD with momentum 0.9 and weight
decay on the weights but none on the slopes (``actlab.nn.param_groups``). This experiment trains
with its own short loop (it reads the learned slopes, which an arena trial does not return); its
finished record is reused on a rerun. The quantity is the first layer's (mean) slope minus the
mean of the deeper conv layers' (mean) slopes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actlab.experiments._base import Check, Context, Experiment, Measurement, Rule

_CHANNELS = (16, 32, 64)
_FC = 64
_LAYERS = ("conv1", "conv2", "conv3", "fc1")


def _train(seed: int, channel_wise: bool, epochs: int, lr: float, weight_decay: float) -> list[float]:
    import torch
    import torch.nn.functional as F
    from torch import nn

    from actlab.arena.tasks import build_task
    from actlab.init import init_
    from actlab.nn import PReLU, param_groups

    torch.manual_seed(seed)
    data = build_task("digits_image", None, seed)
    x = torch.from_numpy(np.ascontiguousarray(data.x_train)).float()
    y = torch.from_numpy(np.ascontiguousarray(data.y_train)).long()
    layers: list[nn.Module] = []
    acts: list[PReLU] = []
    c_in = 1
    for c in _CHANNELS:
        acts.append(PReLU(c if channel_wise else 1, init=0.25))
        layers += [nn.Conv2d(c_in, c, 3, padding=1), acts[-1], nn.MaxPool2d(2)]
        c_in = c
    acts.append(PReLU(_FC if channel_wise else 1, init=0.25))
    layers += [nn.Flatten(), nn.Linear(_CHANNELS[-1], _FC), acts[-1], nn.Linear(_FC, 10)]
    model = nn.Sequential(*layers)
    init_(model, "he", generator=torch.Generator().manual_seed(seed))  # the paper's init for rectifiers
    opt = torch.optim.SGD(param_groups(model, weight_decay), lr=lr, momentum=0.9)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=order)
        for i in range(0, len(x) - 1, 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return [float(a.weight.detach().mean()) for a in acts]


def _measure(ctx: Context) -> Measurement:
    p = ctx.params
    slopes: dict[str, list[list[float]]] = {"shared": [], "channel-wise": []}
    with ctx.progress(2 * len(ctx.seeds)) as step:
        for seed in ctx.seeds:
            for kind in slopes:
                slopes[kind].append(_train(seed, kind == "channel-wise", int(p["epochs"]), p["lr"], p["weight_decay"]))
                step()

    def first_minus_deeper(kind: str) -> list[float]:
        return [s[0] - float(np.mean(s[1:3])) for s in slopes[kind]]

    return Measurement(
        samples={"shared": first_minus_deeper("shared"), "channel_wise": first_minus_deeper("channel-wise")},
        arms={
            f"prelu {kind}": {
                "init": "he (weights); slopes 0.25",
                "lr": p["lr"],
                "optimizer": "sgd",
                "momentum": 0.9,
                "weight_decay": p["weight_decay"],
                "weight_decay_on_slopes": 0.0,
            }
            for kind in slopes
        },
        details={"slopes_per_layer": {k: v for k, v in slopes.items()}, "layers": list(_LAYERS)},
    )


def _plot(m: Measurement, ax: Any) -> None:
    layers = m.details["layers"]
    x = np.arange(len(layers))
    for i, (kind, runs) in enumerate(m.details["slopes_per_layer"].items()):
        arr = np.asarray(runs)
        for row in arr:
            ax.plot(x, row, color=f"C{i}", alpha=0.25, lw=1)
        ax.plot(x, arr.mean(0), "o-", color=f"C{i}", label=kind)
    ax.plot([0, 1, 2], [0.681, 0.228, 0.126], "k*", ms=8, label="He et al. shared (conv1, conv2_3, conv3_1)")
    ax.axhline(0.25, color="gray", lw=0.8, ls=":")
    ax.set_xticks(x, layers)
    ax.set_ylabel("learned slope (mean over channels)")
    ax.legend(fontsize=8)


EXPERIMENT = Experiment(
    name="prelu-slopes",
    claim="learned PReLU slopes are largest in the first layer (it keeps negative responses) and smaller "
    "deeper in the network, for channel-shared and channel-wise slopes",
    source="He, Zhang, Ren & Sun 2015, Delving Deep into Rectifiers, arXiv:1502.01852, Table 1",
    published="conv1 0.681 shared / 0.596 channel-wise; deeper conv layers 0.008-0.561 / 0.124-0.464",
    checks=(
        Check(
            "shared",
            "channel-shared: conv1 slope minus the mean of conv2 and conv3 slopes",
            Rule("above", 0.0),
            "0.681 - (0.008..0.561): positive",
        ),
        Check(
            "channel_wise",
            "channel-wise: conv1 mean slope minus the mean of conv2 and conv3 mean slopes",
            Rule("above", 0.0),
            "0.596 - (0.124..0.464): positive",
        ),
    ),
    measure=_measure,
    plot=_plot,
    scales={
        "tiny": {"seeds": 3, "epochs": 1, "lr": 0.02, "weight_decay": 5e-4},
        "default": {"seeds": 8, "epochs": 20, "lr": 0.02, "weight_decay": 5e-4},
        "large": {"seeds": 20, "epochs": 60, "lr": 0.02, "weight_decay": 5e-4},
    },
    notes="lr 0.02 and 20 epochs were set before any run, not tuned; the slopes' learning rate is the weights'.",
)
