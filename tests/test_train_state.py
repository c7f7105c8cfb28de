"""The trainer's typed state, device-side epoch totals, Fabric checkpoints and loggers (issue 16)."""

from __future__ import annotations

import importlib.util
import math
import pickle
import sys
import types

import pytest
import torch

from senet.cli import main
from senet.errors import SenetError
from senet.train import TrainConfig, train
from senet.train import epoch as epoch_module
from senet.train import state as st
from senet.train.checkpoint import SafeCheckpointIO
from senet.train.epoch import RunningTotals
from senet.train.run_state import EpochResult, TrainProgress

ONE_PROCESS = types.SimpleNamespace(world_size=1)
RECIPE = {"model": "notebook_simple", "data": "synthetic:train=128,val=64", "epochs": 3, "batch_size": 32,
          "lr": 0.05, "progress": False, "schedule": "cosine"}
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


def _result(epoch: int, top1: float | None) -> EpochResult:
    return EpochResult(epoch=epoch, train_loss=1.0, train_acc=0.5, val_loss=None if top1 is None else 1.0,
                       val_top1=top1, val_top5=top1, lr=0.1, epoch_time=1.0, images_per_s=10.0)


def test_running_totals_are_the_batch_size_weighted_sums():
    totals = RunningTotals(torch.device("cpu"))
    logits_a = torch.tensor([[2.0, 0.0], [0.0, 2.0]])  # predicts 0, 1
    logits_b = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0]])  # predicts 0, 0, 1
    totals.add(torch.tensor(0.5), logits_a, torch.tensor([0, 0]), step=0)  # 1 of 2 right
    totals.add(torch.tensor(1.25), logits_b, torch.tensor([0, 1, 1]), step=1)  # 2 of 3 right
    rows = totals.gather(ONE_PROCESS)
    assert RunningTotals.summed(rows) == (0.5 * 2 + 1.25 * 3, 3, 5)
    assert totals.local() == pytest.approx((4.75 / 5, 3 / 5))
    assert RunningTotals.first_non_finite(rows) is None
    two_processes = torch.cat([rows, torch.tensor([[1.0, 2.0, 4.0, 7.0, math.nan]])])
    assert RunningTotals.summed(two_processes) == (5.75, 5, 9)
    assert RunningTotals.first_non_finite(two_processes) == (7, pytest.approx(math.nan, nan_ok=True))


def test_the_first_non_finite_loss_is_kept_with_its_step():
    totals = RunningTotals(torch.device("cpu"))
    logits, labels = torch.zeros(2, 3), torch.tensor([0, 1])
    for step, loss in enumerate([0.7, 0.6, float("inf"), float("nan"), 0.5]):
        totals.add(torch.tensor(loss), logits, labels, step=step)
    assert RunningTotals.first_non_finite(totals.gather(ONE_PROCESS)) == (2, math.inf)


def test_progress_records_epochs_and_the_best_validation():
    progress = TrainProgress()
    assert progress.record(_result(1, 0.4), step=4) is True
    assert progress.record(_result(2, 0.3), step=8) is False
    assert progress.record(_result(3, 0.4), step=12) is False  # a tie is not an improvement: best/ keeps epoch 1
    assert (progress.epoch, progress.step, progress.best) == (3, 12, {"top1": 0.4, "epoch": 1})
    assert [row["epoch"] for row in progress.history] == [1, 2, 3]
    assert list(progress.history[0]) == list(st.METRIC_COLUMNS)
    again = TrainProgress.from_checkpoint({**progress.as_checkpoint(), "model": {}})
    assert again == progress


def test_without_validation_no_epoch_is_an_improvement():
    progress = TrainProgress()
    assert progress.record(_result(1, None), step=2) is False
    assert progress.best == {"top1": -1.0, "epoch": 0}


def test_a_nan_is_noticed_at_the_next_progress_point(tmp_path, monkeypatch):
    calls = {"n": 0}

    def poisoned(logits, labels, **kw):
        calls["n"] += 1
        loss = torch.nn.functional.cross_entropy(logits, labels, **kw)
        return loss * float("nan") if calls["n"] == 5 else loss  # the 1st step of epoch 2 (4 steps per epoch)

    monkeypatch.setattr(epoch_module, "F", types.SimpleNamespace(cross_entropy=poisoned))
    monkeypatch.setattr(epoch_module, "PROGRESS_EVERY", 2)
    out = tmp_path / "run"
    with pytest.raises(SenetError, match=r"at step 5 \(epoch 2\), noticed at step 6;.*checkpoint of epoch 1"):
        train({**RECIPE, "out": str(out)})
    assert st.load_train_state(out)["epoch"] == 1


def test_the_checkpoint_io_never_runs_code_from_the_file(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / st.STATE_FILE
    path.write_bytes(pickle.dumps({"format": st.STATE_FORMAT, "x": Payload()}))
    with pytest.raises(pickle.UnpicklingError):
        SafeCheckpointIO().load_checkpoint(path)
    with pytest.raises(SenetError, match="weights_only=False"):
        SafeCheckpointIO().load_checkpoint(path, weights_only=False)
    assert not marker.exists()


def test_the_checkpoint_is_written_through_fabric_save(tmp_path, monkeypatch):
    from lightning_fabric import Fabric

    saved_keys = []
    original = Fabric.save

    def spy(self, path, state, filter=None):
        saved_keys.append(sorted(state))
        assert isinstance(state["model"], torch.nn.Module)  # Fabric, not the loop, turns it into a state dict
        return original(self, path, state, filter)

    monkeypatch.setattr(Fabric, "save", spy)
    out = tmp_path / "run"
    train({**RECIPE, "epochs": 2, "out": str(out)})
    assert len(saved_keys) == 2 and {"model", "optimizer", "rng", "data_order", "recipe"} <= set(saved_keys[0])
    state = torch.load(out / st.STATE_FILE, weights_only=True)
    assert state["format"] == st.STATE_FORMAT and state["epoch"] == 2
    assert all(isinstance(v, torch.Tensor) for v in state["model"].values())


def test_tensorboard_is_a_config_field_that_only_takes_booleans():
    assert TrainConfig(model="m", data="d").tensorboard is False
    with pytest.raises(Exception, match="tensorboard"):
        TrainConfig(model="notebook_simple", data="synthetic", tensorboard="yes").validate()


def test_tensorboard_without_the_package_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed: importing it fails
    out = tmp_path / "run"
    argv = ["train", "--model", "notebook_simple", "--data", "synthetic:train=32,val=32", "--batch-size", "32",
            "--no-progress", "--epochs", "1", "--out", str(out), "--tensorboard"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "senet[tensorboard]"' in err and "Traceback" not in err, err
    assert not out.exists()  # refused before any work


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="needs the tensorboard extra (python3 tasks.py test installs it)")
def test_tensorboard_logs_only_when_asked(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    plain, logged = tmp_path / "plain", tmp_path / "logged"
    train({**RECIPE, "epochs": 2, "out": str(plain)})
    result = train({**RECIPE, "epochs": 2, "out": str(logged), "tensorboard": True})
    assert not (plain / "tensorboard").exists()
    events = EventAccumulator(str(logged / "tensorboard"))
    events.Reload()
    values = [(e.step, e.value) for e in events.Scalars("train_loss")]
    assert [s for s, _ in values] == [1, 2]
    assert [v for _, v in values] == pytest.approx([row["train_loss"] for row in result.history])


#: ``senet train`` with the loss of rank 1 alone turned NaN at its 3rd step (Fabric re-runs this file for rank 1).
NAN_ON_RANK_1 = """
import sys, types
import torch
import torch.nn.functional as F
from senet.train import epoch
calls = [0]
def poisoned(logits, labels, **kw):
    loss = F.cross_entropy(logits, labels, **kw)
    calls[0] += 1
    bad = torch.distributed.is_initialized() and torch.distributed.get_rank() == 1 and calls[0] == 3
    return loss * float("nan") if bad else loss
epoch.F = types.SimpleNamespace(cross_entropy=poisoned)
epoch.PROGRESS_EVERY = 2
from senet.cli import main
sys.exit(main())
"""


def test_a_nan_on_one_process_stops_every_process_with_its_step(tmp_path):
    import os
    import subprocess

    script = tmp_path / "nan_on_rank_1.py"
    script.write_text(NAN_ON_RANK_1)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(script), "train", "--model", "notebook_simple", "--data",
                           "synthetic:train=128,val=32", "--epochs", "1", "--batch-size", "32", "--no-progress",
                           "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--out", str(out)],
                          env=env, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "loss is not finite (nan) at step 3 (epoch 1), noticed at step 4" in proc.stderr, proc.stderr
    assert not (out / st.STATE_FILE).exists()
