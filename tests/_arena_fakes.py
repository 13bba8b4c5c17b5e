"""What a finished arena trial returns, for the stand-in trial functions of the arena tests."""

from __future__ import annotations

from typing import Any


def ok_result(score: float, curve: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """An "ok" accuracy result whose final and best metric is ``score`` (best at epoch 1)."""
    return {
        "status": "ok",
        "metric": "accuracy",
        "higher_is_better": True,
        "final_metric": score,
        "best_metric": score,
        "best_epoch": 1,
        "epochs_run": len(curve),
        "curve": curve,
        **extra,
    }


def one_epoch_result(score: float, seconds: float) -> dict[str, Any]:
    """``ok_result`` for a trial of one epoch that took ``seconds``."""
    curve = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0, "val_metric": score, "seconds": seconds}]
    return ok_result(score, curve, seconds_per_epoch=seconds)
