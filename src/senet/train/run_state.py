"""The typed state of a training run: how far it got (:class:`TrainProgress`) and what one epoch gave
(:class:`EpochResult`). The checkpoint and ``metrics.csv`` store them as plain dicts, one row per epoch."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EpochResult", "TrainProgress"]


@dataclass(frozen=True)
class EpochResult:
    """One finished epoch: training loss/accuracy over all processes, validation (None without a validation
    part), the last learning rate, the epoch's seconds and its training throughput in images per second."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float | None
    val_top1: float | None
    val_top5: float | None
    lr: float
    epoch_time: float
    images_per_s: float

    def as_row(self) -> dict[str, Any]:
        """The row of ``metrics.csv`` and of the run's history (columns in ``state.METRIC_COLUMNS`` order)."""
        return dataclasses.asdict(self)


@dataclass
class TrainProgress:
    """How far a run got: finished epochs, optimizer steps taken, their rows, and the best validation top-1.

    ``best_top1`` is -1 until an epoch with validation finishes, so the first such epoch is always an improvement.
    """

    epoch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_top1: float = -1.0
    best_epoch: int = 0

    @classmethod
    def from_checkpoint(cls, saved: dict[str, Any] | None) -> TrainProgress:
        if saved is None:
            return cls()
        return cls(epoch=int(saved["epoch"]), step=int(saved["step"]), history=list(saved["history"]),
                   best_top1=float(saved["best"]["top1"]), best_epoch=int(saved["best"]["epoch"]))

    @property
    def best(self) -> dict[str, Any]:
        """The best epoch as the checkpoint and the model's ``config.json`` record it."""
        return {"top1": self.best_top1, "epoch": self.best_epoch}

    def record(self, result: EpochResult, step: int) -> bool:
        """Add a finished epoch; True when its validation top-1 beats every earlier one (``best/`` is rewritten)."""
        self.epoch, self.step = result.epoch, step
        self.history.append(result.as_row())
        improved = result.val_top1 is not None and result.val_top1 > self.best_top1
        if improved:
            self.best_top1, self.best_epoch = result.val_top1, result.epoch
        return improved

    def as_checkpoint(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "history": self.history, "best": self.best}
