"""Metric loggers of ``senet train``, through Lightning Fabric's logger interface.

``DIR/metrics.csv`` is not one of them: it is rewritten from the checkpoint's history after every epoch (see
:func:`senet.train.state.write_metrics_csv`), so it holds each epoch exactly once across any number of resumes.
Loggers here receive the same row per epoch through ``fabric.log_dict``; to add another (Weights & Biases, MLflow,
...), append it in :func:`build_loggers` and give it a config field.
"""

from __future__ import annotations

from typing import Any

from senet._extras import require
from senet.train.config import TrainConfig

__all__ = ["TENSORBOARD_DIR", "build_loggers", "close_loggers", "log_epoch"]

#: TensorBoard event files of a run go to ``DIR/tensorboard`` (one folder across resumes).
TENSORBOARD_DIR = "tensorboard"


def build_loggers(config: TrainConfig) -> list[Any]:
    """The Fabric loggers ``config`` asks for; a missing optional package is one line naming its extra."""
    loggers: list[Any] = []
    if config.tensorboard:
        require("tensorboard", "tensorboard", purpose="--tensorboard")
        from lightning_fabric.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(root_dir=str(config.out_dir), name=TENSORBOARD_DIR, version="",
                                         default_hp_metric=False))
    return loggers


def log_epoch(fabric: Any, row: dict[str, Any]) -> None:
    """Send one epoch's row to every logger (Fabric logs on global rank 0 only), with the epoch as the step."""
    if fabric.loggers:
        metrics = {key: value for key, value in row.items() if key != "epoch" and value is not None}
        fabric.log_dict(metrics, step=row["epoch"])


def close_loggers(fabric: Any) -> None:
    for logger in fabric.loggers:
        logger.finalize("success")
