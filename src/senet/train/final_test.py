"""The test split, evaluated once at the end of a run with the model the protocol selected.

Per-epoch validation and the choice of ``best/`` use the validation split only; the test split never selects or
tunes anything. When training ends, the selected model - ``best/`` (highest validation top-1), or the final model
when the run had no validation part - is evaluated once on the test split and the result written to
``DIR/test.json``, apart from the per-epoch validation numbers in ``metrics.csv``. A resumed run that already
holds ``test.json`` reads it instead of evaluating again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from senet.train import state as st

__all__ = ["TEST_FILE", "evaluate_test_once", "read_test_result"]

TEST_FILE = st.TEST_FILE


def read_test_result(out: Path) -> dict[str, Any] | None:
    """``DIR/test.json`` as a dict, or None when the run has not been tested (or the file is unreadable)."""
    try:
        doc = json.loads((Path(out) / TEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and "top1" in doc else None


def evaluate_test_once(fabric: Any, model: nn.Module, forward_model: nn.Module, bundle: Any, config: Any,
                       best: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Evaluate the selected weights on ``bundle.test`` (all processes take part) and write ``test.json``.

    ``model`` is the plain module whose weights ``forward_model`` (the Fabric-wrapped one) uses; it is loaded with
    ``best/`` when validation selected an epoch. Returns the record, or None without a test split.
    """
    from senet.data import make_loader
    from senet.io import WEIGHTS_FILE, atomic_write_json, read_state_dict
    from senet.train.loop import ShardSampler, evaluate_loader

    out = config.out_dir
    if bundle.test is None or not history:
        return None
    done = read_test_result(out)
    if done is not None:
        return done
    if best.get("epoch", 0) > 0:
        weights, epoch = "best", int(best["epoch"])
        model.load_state_dict(read_state_dict(out / st.BEST_DIR / WEIGHTS_FILE))
    else:
        weights, epoch = "final", int(history[-1]["epoch"])
    per_process_batch = config.batch_size // fabric.world_size
    loader = make_loader(bundle.test, per_process_batch, shuffle=False, workers=config.workers, seed=config.seed,
                         sampler=ShardSampler(len(bundle.test), fabric.global_rank, fabric.world_size))
    summary = evaluate_loader(forward_model, loader, bundle.num_classes, fabric=fabric,
                              channels_last=config.channels_last).summary()
    record = {"split": "test", "data": bundle.name, "weights": weights, "epoch": epoch,
              "selected_by": "validation top-1" if weights == "best" else "last epoch (no validation split)",
              "top1": summary["top1"], "top5": summary["top5"], "loss": summary["loss"], "count": summary["count"]}
    if fabric.is_global_zero:
        atomic_write_json(out / TEST_FILE, record)
    fabric.print(f"test ({weights} model, epoch {epoch}, {record['count']} images): top-1 {record['top1']:.4f} "
                 f"top-5 {record['top5']:.4f} loss {record['loss']:.4f}")
    fabric.barrier()
    return record
