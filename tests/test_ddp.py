"""`--devices 2 --strategy ddp` on CPU (gloo): two processes match one process with the same global batch.

Each process gets half of every global batch (batch_size is global; the DistributedSampler gives rank r the
indices r, r+2, ... of the same seeded permutation the single process walks through), and DDP averages the two
half-batch gradients, which equals the full-batch mean gradient. The model has no batch norm, augmentation is off,
so the only differences are float summation order: losses agree to 1e-5 relative, weights to 1e-5 absolute.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

ARGS = ["--model", "notebook_simple", "--data", "synthetic:train=128,val=32", "--no-augment", "--epochs", "2",
        "--batch-size", "32", "--lr", "0.05", "--no-progress", "--accelerator", "cpu"]


def _train(tmp_path, out, *extra) -> None:
    # Fabric's ddp launcher re-runs this script for rank 1, so it must be a real file (not `python -c`).
    script = tmp_path / "senet_cli.py"
    script.write_text("import sys\nfrom senet.cli import main\nsys.exit(main())\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([sys.executable, str(script), "train", *ARGS, "--out", str(out), *extra], env=env,
                          check=False, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _losses(out) -> list[float]:
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return [float(r[key]) for r in rows for key in ("train_loss", "val_loss")]


def test_two_cpu_processes_match_one_process(tmp_path):
    single, double = tmp_path / "one", tmp_path / "two"
    _train(tmp_path, single)
    _train(tmp_path, double, "--devices", "2", "--strategy", "ddp")
    assert _losses(double) == pytest.approx(_losses(single), rel=1e-5)
    a, b = load_file(str(single / "model.safetensors")), load_file(str(double / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-5)
    assert len(_losses(single)) == 4 and _losses(single)[2] < _losses(single)[0]  # it trained
    # the test split, evaluated once at the end, is sharded over the processes and summed: same count and result
    tests = [json.loads((out / "test.json").read_text()) for out in (single, double)]
    assert tests[0]["count"] == tests[1]["count"] == 128 and tests[1]["top1"] == pytest.approx(tests[0]["top1"])
