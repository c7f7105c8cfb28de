"""The crucial property: a run killed with SIGKILL and resumed ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from _runs import assert_same_run, finish, metric_rows, senet_train, wait_for

DATA = "synthetic:train=128,val=32"
ARGS = ["--model", "notebook_simple", "--data", DATA, "--epochs", "3", "--batch-size", "32", "--lr", "0.05",
        "--schedule", "cosine", "--warmup", "0.5", "--seed", "3", "--no-progress"]







@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    finish(senet_train(*ARGS, "--out", str(out)))
    return out


def test_kill_mid_epoch_and_at_start_then_resume_is_exact(reference, tmp_path):
    out = tmp_path / "run"
    # 1st kill: right after the run claimed its folder, before any epoch finished.
    proc = senet_train(*ARGS, "--out", str(out))
    wait_for(out / "run.json", proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    # 2nd kill: in the middle of epoch 2, after epoch 1's checkpoint is on disk.
    proc = senet_train("--out", str(out), "--resume", "--no-progress")
    wait_for(out / "train_state.pt", proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed, not finished
    assert len(metric_rows(out)) < 3
    finish(senet_train("--out", str(out), "--resume", "--no-progress"))
    assert_same_run(reference, out, epochs=3)


@pytest.mark.slow
def test_resume_from_an_older_state_rewrites_later_files_identically(reference, tmp_path):
    """A kill between the epoch's files and its state file: newer weights/metrics on disk, older state."""
    out = tmp_path / "run"
    proc = senet_train(*ARGS, "--epochs", "3", "--out", str(out))
    wait_for(out / "train_state.pt", proc)
    first_state = (out / "train_state.pt").read_bytes()
    finish(proc)
    (out / "train_state.pt").write_bytes(first_state)  # back to "epoch 1 done", files of epoch 3 on disk
    finish(senet_train("--out", str(out), "--resume", "--no-progress"))
    assert_same_run(reference, out, epochs=3)
