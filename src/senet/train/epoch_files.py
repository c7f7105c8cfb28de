"""What a finished epoch leaves in the run folder, written in an order that makes a kill at any moment safe.

The models (``best/`` when validation improved, and the last model), ``metrics.csv``, the curves and the loggers
come first, from global rank 0; the checkpoint ``train_state.pt`` comes last, through ``fabric.save`` called by
every process. A kill before the checkpoint is written resumes from the previous epoch and rewrites the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from senet.train import state as st
from senet.train.checkpoint import save_checkpoint
from senet.train.config import TrainConfig
from senet.train.loggers import log_epoch
from senet.train.run_state import TrainProgress

__all__ = ["EpochWriter"]


@dataclass
class EpochWriter:
    """The end-of-epoch files of one run. ``saved_info`` goes into every model's ``config.json`` (dataset
    statistics, class names, the training config)."""

    fabric: Any
    config: TrainConfig
    model: nn.Module
    optimizer: Any
    saved_info: dict[str, Any]

    def write(self, progress: TrainProgress, improved: bool, data_order: dict[str, Any]) -> None:
        """Write the epoch ``progress`` just recorded; ``data_order`` is the loaders' and every rank's RNG state.

        Every process must call it (the checkpoint is a collective).
        """
        from senet.io import save_model
        from senet.train.plots import plot_run_curves

        out, row = self.config.out_dir, progress.history[-1]
        if self.fabric.is_global_zero:
            extra = {**self.saved_info, "metrics": row, "epoch": row["epoch"], "best": progress.best}
            if improved:
                save_model(self.model, out / st.BEST_DIR, extra=extra)
            save_model(self.model, out, extra=extra)
            st.write_metrics_csv(out, progress.history)
            plot_run_curves(progress.history, out / "curves.png", self.config.model, self.config.data)
        log_epoch(self.fabric, row)
        save_checkpoint(self.fabric, out, self.model, self.optimizer, {
            **progress.as_checkpoint(), "rng": st.capture_rng(), "recipe": self.config.recipe(),
            "data_order": {**data_order, "seed": self.config.seed, "epoch": row["epoch"]},
        })
