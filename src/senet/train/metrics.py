"""Classification metrics accumulated batch by batch: loss, top-1, top-5, confusion matrix, per-class accuracy."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["ClassificationMeter", "topk_correct"]


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """How many rows of ``logits`` have ``target`` among their ``k`` largest entries, for each ``k`` in ``ks``.

    ``k`` larger than the number of classes counts every row as correct (top-5 of a 3-class problem is 100%).
    """
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hits = top.eq(target.unsqueeze(1))
    return [int(hits[:, : min(k, kmax)].any(dim=1).sum()) for k in ks]


class ClassificationMeter:
    """Running sums for one pass over a dataset; :meth:`sync` sums them over processes (DDP)."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.loss_sum = 0.0
        self.count = 0
        self.top1 = 0
        self.top5 = 0
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)  # rows: true, cols: predicted

    def update(self, logits: torch.Tensor, target: torch.Tensor, loss_sum: float) -> None:
        """Add one batch; ``loss_sum`` is the summed (not mean) loss of the batch."""
        logits, target = logits.detach().float().cpu(), target.detach().cpu()
        c1, c5 = topk_correct(logits, target)
        self.top1 += c1
        self.top5 += c5
        self.count += target.numel()
        self.loss_sum += float(loss_sum)
        pred = logits.argmax(dim=1)
        self.confusion += torch.bincount(target * self.num_classes + pred, minlength=self.num_classes ** 2).view(
            self.num_classes, self.num_classes)

    def sync(self, fabric: Any) -> None:
        """Sum the counters over all processes (a no-op for one process)."""
        if fabric is None or fabric.world_size == 1:
            return
        packed = torch.tensor([self.loss_sum, self.count, self.top1, self.top5], dtype=torch.float64)
        packed = fabric.all_reduce(packed.to(fabric.device), reduce_op="sum").cpu()
        self.loss_sum, self.count, self.top1, self.top5 = float(packed[0]), *(int(v) for v in packed[1:].tolist())
        self.confusion = fabric.all_reduce(self.confusion.to(fabric.device), reduce_op="sum").cpu().long()

    def per_class_accuracy(self) -> list[float | None]:
        """Recall of each class (diagonal / row sum); None for a class with no samples."""
        totals = self.confusion.sum(dim=1)
        return [float(self.confusion[i, i] / totals[i]) if totals[i] > 0 else None for i in range(self.num_classes)]

    def summary(self) -> dict[str, float]:
        n = max(self.count, 1)
        return {"loss": self.loss_sum / n, "top1": self.top1 / n, "top5": self.top5 / n, "count": self.count}
