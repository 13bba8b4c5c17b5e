"""residual: a deeper plain net trains worse than a shallower one (degradation); residual connections fix it.

Arena runs (stored, resumable): the digits through plain ReLU MLPs with batch norm of a shallow and a
deep depth, and post-activation residual MLPs (He et al. 2016's original block: linear-BN-ReLU-
linear-BN, add, ReLU) with the same number of linear layers; SGD with momentum 0.9, one learning
rate for every arm, He ("auto") init. The quantity is the final epoch's training loss (the paper's
degradation is a training-error effect, not overfitting), paired by seed.
"""

from __future__ import annotations

from typing import Any

from actlab.experiments._base import Check, Context, Experiment, Measurement, Rule, plot_mean_curves, select


def _arms(p: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    w, shallow, deep = int(p["width"]), int(p["shallow"]), int(p["deep"])
    post = {"width": w, "norm": "batch", "pre_activation": False}
    return {
        f"plain {shallow}": ("mlp", {"width": w, "depth": shallow, "norm": "batch"}),
        f"plain {deep}": ("mlp", {"width": w, "depth": deep, "norm": "batch"}),
        f"residual {shallow}": ("residual_mlp", {**post, "blocks": shallow // 2}),
        f"residual {deep}": ("residual_mlp", {**post, "blocks": deep // 2}),
    }


def _measure(ctx: Context) -> Measurement:
    p = ctx.params
    arms = _arms(p)
    common = {
        "optimizer": "sgd",
        "lr": p["lr"],
        "momentum": 0.9,
        "epochs": p["epochs"],
        "init": "auto",
        "task_params": {"val_fraction": p.get("val_fraction", 0.2)},
    }
    records = []
    for model in ("mlp", "residual_mlp"):  # one suite per model: their parameters differ
        records += ctx.arena(
            {
                "activations": ["relu"],
                "tasks": ["digits"],
                "params": {**common, "model": model},
                "grid": {"model_params": [mp for m, mp in arms.values() if m == model]},
            },
            part=f"arena-{model}",
        )
    loss: dict[str, list[float]] = {}
    curves: dict[str, list[list[float]]] = {}
    for label, (model, mp) in arms.items():
        results = select(records, model=model, **{f"model_params__{k}": v for k, v in mp.items()})
        seeds = sorted(results)
        loss[label] = [
            results[s]["curve"][-1]["train_loss"] if results[s]["status"] == "ok" else float("nan") for s in seeds
        ]
        curves[label] = [[c["train_loss"] for c in results[s]["curve"]] for s in seeds]
    sh, dp = f"{int(p['shallow'])}", f"{int(p['deep'])}"

    def diff(a: str, b: str) -> list[float]:
        return [x - y for x, y in zip(loss[a], loss[b])]

    return Measurement(
        samples={
            "degradation": diff(f"plain {dp}", f"plain {sh}"),
            "residual_fix": diff(f"plain {dp}", f"residual {dp}"),
            "residual_depth": diff(f"residual {dp}", f"residual {sh}"),
        },
        arms={
            label: {"model": m, "model_params": mp, "init": "auto (He for relu)", "lr": p["lr"], "optimizer": "sgd"}
            for label, (m, mp) in arms.items()
        },
        details={"final_train_loss": loss, "train_loss_curves": curves},
    )


def _plot(m: Measurement, ax: Any) -> None:
    plot_mean_curves(
        ax, m.details["train_loss_curves"], lambda i, label: ("--" if label.startswith("plain") else "-", f"C{i}")
    )


EXPERIMENT = Experiment(
    name="residual",
    claim="a deeper plain net has higher training error than a shallower one (degradation), and residual "
    "connections remove it, so the deeper residual net trains at least as well as the shallower",
    source="He, Zhang, Ren & Sun 2016, Deep Residual Learning, arXiv:1512.03385, Fig. 4 and Table 2",
    published="ImageNet top-1 val error: plain-18 27.94, plain-34 28.54; ResNet-18 27.88, ResNet-34 25.03",
    checks=(
        Check(
            "degradation",
            "final training loss, deep plain minus shallow plain, paired by seed",
            Rule("above", 0.0),
            "positive (plain-34 trains worse than plain-18)",
        ),
        Check(
            "residual_fix",
            "final training loss, deep plain minus deep residual, paired",
            Rule("above", 0.0),
            "positive (ResNet-34 well below plain-34)",
        ),
        Check(
            "residual_depth",
            "final training loss, deep residual minus shallow residual, paired",
            Rule("below", 0.0),
            "negative (ResNet-34 better than ResNet-18)",
        ),
    ),
    measure=_measure,
    plot=_plot,
    scales={
        "tiny": {"seeds": 3, "width": 16, "shallow": 4, "deep": 12, "lr": 0.05, "epochs": 1, "val_fraction": 0.5},
        "default": {"seeds": 5, "width": 64, "shallow": 8, "deep": 32, "lr": 0.05, "epochs": 10, "workers": 2},
        "large": {"seeds": 10, "width": 128, "shallow": 8, "deep": 64, "lr": 0.05, "epochs": 30, "workers": 4},
    },
)
