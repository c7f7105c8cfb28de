"""The crucial property: a run killed with SIGKILL and resumed ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

DATA = "synthetic:train=128,val=32"
ARGS = ["--model", "notebook_simple", "--data", DATA, "--epochs", "3", "--batch-size", "32", "--lr", "0.05",
        "--schedule", "cosine", "--warmup", "0.5", "--seed", "3", "--no-progress"]
TIMING = {"epoch_time", "images_per_s"}
CLI = "import sys; from senet.cli import main; sys.exit(main())"


def _senet(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.Popen([sys.executable, "-c", CLI, "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return out


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"run ended before {path.name} appeared: {proc.communicate()[0]}"
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.01)


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def _assert_same_run(a: Path, b: Path) -> None:
    for sub in (".", "best"):
        wa, wb = load_file(str(a / sub / "model.safetensors")), load_file(str(b / sub / "model.safetensors"))
        assert wa.keys() == wb.keys()
        for key in wa:
            assert torch.equal(wa[key], wb[key]), f"{sub}/{key} differs after resume"
    assert _rows(a) == _rows(b)
    assert len(_rows(a)) == 3


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "run"
    _finish(_senet(*ARGS, "--out", str(out)))
    return out


def test_kill_mid_epoch_and_at_start_then_resume_is_exact(reference, tmp_path):
    out = tmp_path / "run"
    # 1st kill: right after the run claimed its folder, before any epoch finished.
    proc = _senet(*ARGS, "--out", str(out))
    _wait_for(out / "run.json", proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    # 2nd kill: in the middle of epoch 2, after epoch 1's checkpoint is on disk.
    proc = _senet("--out", str(out), "--resume", "--no-progress")
    _wait_for(out / "train_state.pt", proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # killed, not finished
    assert len(_rows(out)) < 3
    _finish(_senet("--out", str(out), "--resume", "--no-progress"))
    _assert_same_run(reference, out)


@pytest.mark.slow
def test_resume_from_an_older_state_rewrites_later_files_identically(reference, tmp_path):
    """A kill between the epoch's files and its state file: newer weights/metrics on disk, older state."""
    out = tmp_path / "run"
    proc = _senet(*ARGS, "--epochs", "3", "--out", str(out))
    _wait_for(out / "train_state.pt", proc)
    first_state = (out / "train_state.pt").read_bytes()
    _finish(proc)
    (out / "train_state.pt").write_bytes(first_state)  # back to "epoch 1 done", files of epoch 3 on disk
    _finish(_senet("--out", str(out), "--resume", "--no-progress"))
    _assert_same_run(reference, out)
