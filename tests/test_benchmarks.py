"""The scripts in benchmarks/ run end to end at tiny sizes (speed is their business, not the tests')."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _run(script: str, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, check=False)


def test_bench_se_quick_prints_ratios_for_both_formats():
    proc = _run("bench_se.py", "--quick", "--repeats", "2", "--warmup", "0", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    assert "contiguous: SE forward =" in proc.stdout and "channels_last: SE forward =" in proc.stdout


def test_cpu_only_benchmark_has_no_device_flag():
    proc = _run("bench_data.py", "--device", "cuda")
    assert proc.returncode == 2 and "unrecognized arguments: --device cuda" in proc.stderr


def test_cuda_without_a_gpu_is_refused_in_one_line():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = _run("bench_se.py", "--quick", "--device", "cuda")
    assert proc.returncode != 0 and "torch sees no CUDA device" in proc.stderr


def test_profile_step_lists_operators():
    proc = _run("profile_step.py", "--models", "se_resnet8", "--size", "16", "--in-chans", "1", "--batch", "4",
                "--steps", "1", "--warmup", "1", "--threads", "1", "--top", "5")
    assert proc.returncode == 0, proc.stderr
    assert "== se_resnet8, contiguous, fp32, 1 steps ==" in proc.stdout and "Self CPU" in proc.stdout


def test_time_to_accuracy_reports_first_epoch_at_target(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "base: {data: 'synthetic:classes=4,size=16,train=128,val=64', batch_size: 32, lr: 0.05, workers: 0}\n"
        "recipes:\n"
        "  - {name: tiny, model: se_resnet8, epochs: 2}\n"
        "  - {name: tiny_s2, model: se_resnet8, model_args: {stem_stride: 2}, epochs: 1}\n"
    )
    out_json = tmp_path / "r.json"
    proc = _run("time_to_accuracy.py", "--grid", str(grid), "--targets", "0.01", "0.999", "--threads", "1",
                "--json", str(out_json), "--out", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    results = {r["name"]: r for r in json.loads(out_json.read_text())}
    assert len(results["tiny"]["history"]) == 2 and len(results["tiny_s2"]["history"]) == 1
    assert results["tiny_s2"]["recipe"]["model_args"] == {"stem_stride": 2}
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| tiny "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "2" and cells[2] == "1"  # any accuracy clears 1%: the first epoch
    assert cells[4] == "-" and cells[5] == "-"  # 99.9% is not reached on this noisy set in 2 epochs
    assert (tmp_path / "runs" / "tiny" / "metrics.csv").is_file()


def test_time_to_accuracy_refuses_unknown_recipe(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("recipes:\n  - {name: a, model: resnet8}\n")
    proc = _run("time_to_accuracy.py", "--grid", str(grid), "--only", "b")
    assert proc.returncode != 0 and "has no recipe named b" in proc.stderr


def test_time_to_accuracy_checks_every_recipe_before_training(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("base: {data: synthetic}\nrecipes:\n  - {name: ok, model: resnet8, epochs: 1}\n"
                    "  - {name: bad, model: resnet8, epoch: 1}\n")
    proc = _run("time_to_accuracy.py", "--grid", str(grid), "--out", str(tmp_path / "runs"))
    assert proc.returncode != 0 and "recipe bad" in proc.stderr and "unknown training option 'epoch'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "runs").exists()


def test_time_to_accuracy_runs_a_config_file(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("model: notebook_simple\ndata: 'synthetic:train=64,val=32'\nepochs: 1\nbatch_size: 32\n")
    proc = _run("time_to_accuracy.py", "--config", str(config), "--threads", "1", "--out", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    assert "| tiny " in proc.stdout and (tmp_path / "runs" / "tiny" / "metrics.csv").is_file()
    again = _run("time_to_accuracy.py", "--config", str(config), "--threads", "1", "--out", str(tmp_path / "runs"))
    assert again.returncode == 1 and "FAILED" in again.stdout and "already holds a run" in again.stdout
    missing = _run("time_to_accuracy.py", "--config", str(tmp_path / "nope.yaml"))
    assert missing.returncode != 0 and "no such config file" in missing.stderr and "Traceback" not in missing.stderr
