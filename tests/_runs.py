"""Helpers shared by the resume tests: start `senet train` in a subprocess, and compare two run folders."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

#: metrics.csv columns that measure time, not what was computed.
TIMING = {"epoch_time", "images_per_s"}
CLI = "import sys; from senet.cli import main; sys.exit(main())"


def senet_train(*args: str) -> subprocess.Popen:
    """``senet train ARGS`` in a child process (2 threads), stdout and stderr together."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.Popen([sys.executable, "-c", CLI, "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen) -> str:
    """Wait for ``proc``; it must succeed. Returns its output."""
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return out


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until ``path`` exists, failing if ``proc`` ends first."""
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"run ended before {path.name} appeared: {proc.communicate()[0]}"
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.01)


def metric_rows(path: Path) -> list[dict[str, str]]:
    """The rows of ``path/metrics.csv`` without the timing columns."""
    with open(path / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def assert_same_run(a: Path, b: Path, epochs: int) -> None:
    """Both folders hold bit-identical final and best weights and the same ``epochs`` metric rows."""
    for sub in (".", "best"):
        wa, wb = load_file(str(a / sub / "model.safetensors")), load_file(str(b / sub / "model.safetensors"))
        assert wa.keys() == wb.keys()
        for key in wa:
            assert torch.equal(wa[key], wb[key]), f"{sub}/{key} differs from the uninterrupted run"
    assert metric_rows(a) == metric_rows(b)
    assert len(metric_rows(a)) == epochs
