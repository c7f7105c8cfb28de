"""One pass over the training batches, with its running totals kept on the device.

The loss sum, correct count and first non-finite loss are tensors updated by the device itself, so a step never
waits for the device to finish: nothing is read back until a progress point (every :data:`PROGRESS_EVERY` steps)
or the end of the epoch, where one all-gather brings every process's totals to every process, which sum them. A NaN or infinite loss is
therefore detected within :data:`PROGRESS_EVERY` steps, not at the step itself; the run still stops before anything
of the epoch is written, and the message names the step whose loss first went non-finite.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from senet.errors import SenetError
from senet.train.config import TrainConfig
from senet.train.schedules import lr_factor

__all__ = ["PROGRESS_EVERY", "EpochTotals", "RunningTotals", "train_one_epoch"]

#: Steps between two reads of the running totals (progress bar, non-finite loss check).
PROGRESS_EVERY = 25
_NO_STEP = 2**62  # "no non-finite loss yet"


@dataclass(frozen=True)
class EpochTotals:
    """An epoch's training totals over all processes, the global step after it and the last learning rate."""

    loss_sum: float
    correct: int
    seen: int
    step: int
    lr: float


class RunningTotals:
    """Loss sum, correct predictions and the first non-finite loss of one process, accumulated on ``device``."""

    def __init__(self, device: torch.device) -> None:
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.seen = 0  # batch sizes are known on the host: no need to count them on the device
        self.bad_step = torch.full((), _NO_STEP, dtype=torch.int64, device=device)
        self.bad_loss = torch.zeros((), dtype=torch.float64, device=device)

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, step: int) -> None:
        """Add one batch (``loss`` is its mean) without reading anything back to the host."""
        loss = loss.detach().double()
        count = labels.shape[0]
        self.loss_sum += loss * count
        self.correct += (logits.detach().argmax(dim=1) == labels).sum()
        self.seen += count
        first = ~torch.isfinite(loss) & (self.bad_step == _NO_STEP)
        self.bad_step = torch.where(first, step, self.bad_step)
        self.bad_loss = torch.where(first, loss, self.bad_loss)

    def local(self) -> tuple[float, float]:
        """This process's mean loss and accuracy so far (reads the device: call at progress points only)."""
        seen = max(self.seen, 1)
        return float(self.loss_sum) / seen, int(self.correct) / seen

    def gather(self, fabric: Any) -> torch.Tensor:
        """Every process's (loss sum, correct, seen, first bad step, its loss), one row per process, on the host.

        One collective; every process must call it.
        """
        mine = torch.stack([self.loss_sum, self.correct.double(),
                            torch.full((), float(self.seen), dtype=torch.float64, device=self.loss_sum.device),
                            self.bad_step.double(), self.bad_loss])
        rows = fabric.all_gather(mine) if fabric.world_size > 1 else mine
        return rows.reshape(-1, 5).cpu()

    @staticmethod
    def first_non_finite(rows: torch.Tensor) -> tuple[int, float] | None:
        """(step, loss) of the earliest non-finite loss of any process in ``rows`` (from :meth:`gather`), or None."""
        row = rows[int(rows[:, 3].argmin())]
        return None if int(row[3]) == _NO_STEP else (int(row[3]), float(row[4]))

    @staticmethod
    def summed(rows: torch.Tensor) -> tuple[float, int, int]:
        """(loss sum, correct, seen) over all processes in ``rows`` (from :meth:`gather`)."""
        loss_sum, correct, seen = rows[:, :3].sum(dim=0).tolist()
        return loss_sum, int(correct), int(seen)


def train_one_epoch(fabric: Any, model: nn.Module, optimizer: Any, batches: Any, config: TrainConfig,
                    schedule: dict[str, Any], step: int, epoch: int, last_good_epoch: int) -> EpochTotals:
    """Forward, loss, backward and step over ``batches``; ``step`` is the global step the epoch starts at."""
    totals = RunningTotals(fabric.device)
    lr, start, bar = config.lr, time.perf_counter(), batches if hasattr(batches, "set_postfix") else None
    for index, batch in enumerate(batches, start=1):
        images, labels = fabric.to_device(batch)  # (not fabric.setup_dataloaders: it would reset set_epoch)
        lr = config.lr * lr_factor(step, **schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        logits = model(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        fabric.backward(loss)
        if config.clip_grad_norm is not None:
            fabric.clip_gradients(model, optimizer, max_norm=config.clip_grad_norm)
        optimizer.step()
        totals.add(loss, logits, labels, step)
        step += 1
        if index % PROGRESS_EVERY == 0:
            _stop_if_not_finite(totals.gather(fabric), step, epoch, config.out_dir, last_good_epoch)
            _show(bar, totals, fabric.world_size * totals.seen / max(time.perf_counter() - start, 1e-9), lr)
    rows = totals.gather(fabric)  # the epoch's one collective
    _stop_if_not_finite(rows, step, epoch, config.out_dir, last_good_epoch)
    _show(bar, totals, fabric.world_size * totals.seen / max(time.perf_counter() - start, 1e-9), lr)
    if hasattr(batches, "close"):
        batches.close()
    loss_sum, correct, seen = RunningTotals.summed(rows)
    return EpochTotals(loss_sum=loss_sum, correct=correct, seen=seen, step=step, lr=lr)


def _show(bar: Any, totals: RunningTotals, images_per_s: float, lr: float) -> None:
    """This process's running loss and accuracy on the progress bar (redrawn at the bar's own interval)."""
    if bar is not None:
        mean_loss, accuracy = totals.local()
        bar.set_postfix(loss=f"{mean_loss:.4f}", acc=f"{accuracy:.3f}", img_s=f"{images_per_s:.0f}", lr=f"{lr:.4g}",
                        refresh=False)


def _stop_if_not_finite(rows: torch.Tensor, step: int, epoch: int, out: Path, last_epoch: int) -> None:
    """A NaN or infinite loss on any process stops the run; the checkpoint of the last finished epoch is kept."""
    bad = RunningTotals.first_non_finite(rows)
    if bad is None:
        return
    bad_step, value = bad
    kept = f"the checkpoint of epoch {last_epoch} in {out} is kept" if last_epoch else "no checkpoint was written"
    raise SenetError(f"loss is not finite ({value}) at step {bad_step + 1} (epoch {epoch + 1}), noticed at step "
                     f"{step}; stopped, {kept}; try a lower --lr, a --warmup, or --precision 32")
