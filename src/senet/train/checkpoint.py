"""The resume checkpoint ``DIR/train_state.pt`` through Lightning Fabric's ``save``/``load``.

Every process calls :func:`save_checkpoint` and :func:`load_checkpoint`; the Fabric strategy decides who gathers
and who writes (rank 0 writes one file under DDP). The bytes go through :class:`SafeCheckpointIO`, Fabric's
plug-in point for storage, so that writing stays atomic (a kill leaves the old file or the new one, never half a
file; leftover temporaries are removed when the run folder is locked) and reading stays
``torch.load(weights_only=True)``: a file whose pickle would run code is refused, whatever Fabric's default is.

The file is the same dictionary as before Fabric wrote it (``format``, ``version``, ``model``, ``optimizer``,
``epoch``, ``step``, ``rng``, ``data_order``, ``history``, ``best``, ``recipe``), so older run folders resume.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from senet._extras import require
from senet.errors import SenetError
from senet.io import atomic_write_bytes
from senet.train import state as st

__all__ = ["SafeCheckpointIO", "load_checkpoint", "restore_model_and_optimizer", "save_checkpoint"]

CheckpointIO = require("lightning_fabric.plugins", "train", purpose="training").CheckpointIO


class SafeCheckpointIO(CheckpointIO):
    """Fabric's storage plug-in for senet run folders: atomic writes, reads that never execute code."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} writes local files and takes no storage_options")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(Path(path), buffer.getvalue())

    def load_checkpoint(self, path: Any, map_location: Any = "cpu", weights_only: bool | None = None) -> dict:
        if weights_only is False:
            raise SenetError(f"refusing to load {path} with code execution allowed (weights_only=False)")
        return torch.load(str(path), map_location="cpu", weights_only=True)

    def remove_checkpoint(self, path: Any) -> None:
        Path(path).unlink(missing_ok=True)


def save_checkpoint(fabric: Any, directory: Path, model: torch.nn.Module, optimizer: Any,
                    contents: dict[str, Any]) -> None:
    """Write ``train_state.pt`` with the model's and optimizer's states plus ``contents`` (every process calls it)."""
    state = {"format": st.STATE_FORMAT, "version": 1, "model": model, "optimizer": optimizer, **contents}
    fabric.save(Path(directory) / st.STATE_FILE, state)


def load_checkpoint(fabric: Any, directory: Path) -> dict[str, Any]:
    """The whole state file as plain data; a foreign, corrupt or code-running file is one :class:`SenetError`."""
    return st.read_state_file(Path(directory) / st.STATE_FILE, fabric.load)


def restore_model_and_optimizer(fabric: Any, directory: Path, model: torch.nn.Module, optimizer: Any) -> None:
    """Load the saved weights and optimizer state in place, the way the strategy loads them.

    Call after ``fabric.setup``, so the optimizer's tensors land on the model's device. A state that does not fit
    the model or optimizer of ``run.json`` is a :class:`SenetError`.
    """
    path = Path(directory) / st.STATE_FILE
    try:
        fabric.load(path, {"model": model, "optimizer": optimizer}, strict=True)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SenetError(f"cannot resume: {path} does not fit the run described by "
                         f"{Path(directory) / st.RUN_FILE} ({first}); start again with --overwrite") from exc
