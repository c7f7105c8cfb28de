"""Proof of scale on one machine: several processes (gloo on CPU, 127.0.0.1 only) train, die and resume exactly.

* Two Fabric-launched DDP processes killed with SIGKILL mid-run and resumed end bit-identical to an uninterrupted
  two-process run (weights of the last and the best epoch, and every non-timing column of metrics.csv).
* Two ``torchrun`` "nodes" of one process each (c10d rendezvous on 127.0.0.1) compute the very same run: world
  size 2, the same sampler shards, the same gradient all-reduce. So a two-node run killed and resumed must also end
  bit-identical to the two-process reference.
* ``--sync-bn``: with it, the batch-norm statistics of a two-process run equal those of one process with the same
  global batch; without it, they do not.

The model is a CIFAR-style SE-ResNet-8 with 8 channels on 8x8 synthetic images: BatchNorm and augmentation
included, the two things that make multi-process runs differ from single-process ones.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _runs import assert_same_run, metric_rows
from safetensors.torch import load_file

pytestmark = [
    pytest.mark.slow,  # each test starts several Python processes that import torch and Lightning
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the processes to kill through /proc"),
]

MODEL = ["--model", "se_resnet8", "-m", "stem_width=8", "-m", "widths=(8, 8, 8)", "-m", "reduction=4"]
RECIPE = [*MODEL, "--data", "synthetic:classes=4,size=8,chans=3,train=256,val=32", "--epochs", "4",
          "--batch-size", "16", "--lr", "0.05", "--schedule", "cosine", "--seed", "5", "--no-progress",
          "--accelerator", "cpu"]
TWO_PROCESSES = ["--devices", "2", "--strategy", "ddp"]
CLI = "import sys\nfrom senet.cli import main\nsys.exit(main())\n"


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    for key in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)  # this test process must not look like a member of a distributed job
    return env


def _cli_script(folder: Path) -> Path:
    # Fabric's DDP launcher re-runs the script for rank 1, and torchrun runs a script: a real file, not `python -c`.
    script = folder / "senet_cli.py"
    if not script.exists():
        script.write_text(CLI)
    return script


def _start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _senet(folder: Path, *args: str) -> subprocess.Popen:
    return _start([sys.executable, str(_cli_script(folder)), "train", *args])


def _finish(*procs: subprocess.Popen, timeout: float = 300) -> list[str]:
    outputs = []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            out, _ = proc.communicate()
        assert proc.returncode == 0, out
        outputs.append(out)
    return outputs


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun starts its workers in sessions of their own, out of killpg's reach)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL ``proc`` and every process it started, as a node failure would."""
    for pid in [*_descendants(proc.pid), proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _kill_after_first_epoch(out: Path, *procs: subprocess.Popen, timeout: float = 180) -> None:
    """SIGKILL every process of the job as soon as epoch 1's state file is on disk (mid-way through epoch 2)."""
    end = time.monotonic() + timeout
    while not (out / "train_state.pt").exists():
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"run ended before its first checkpoint: {proc.communicate()[0]}")
        if time.monotonic() > end:
            for proc in procs:
                _kill(proc)
            raise AssertionError(f"{out / 'train_state.pt'} did not appear")
        time.sleep(0.005)
    for proc in procs:
        _kill(proc)
    for proc in procs:
        proc.communicate()
    assert 1 <= len(metric_rows(out)) < 4, "the kill came too late: the run had finished"




def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun_nodes(folder: Path, *args: str) -> list[subprocess.Popen]:
    """Two torchrun agents, one process each, meeting at a c10d rendezvous on 127.0.0.1 (as two machines would)."""
    port = _free_port()
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"senet{port}",
                "--local-addr", "127.0.0.1", "--max-restarts", "0"]
    return [_start([*torchrun, "--node-rank", str(rank), str(_cli_script(folder)), "train", *args,
                    "--devices", "1", "--num-nodes", "2", "--strategy", "ddp"]) for rank in (0, 1)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted two-process DDP run."""
    folder = tmp_path_factory.mktemp("reference")
    out = folder / "run"
    (log,) = _finish(_senet(folder, *RECIPE, *TWO_PROCESSES, "--out", str(out)))
    assert log.count("best val top-1") == 1, f"only rank 0 prints the summary:\n{log}"
    return out


def test_two_process_ddp_killed_and_resumed_is_bit_identical(reference, tmp_path):
    out = tmp_path / "run"
    proc = _senet(tmp_path, *RECIPE, *TWO_PROCESSES, "--out", str(out))
    _kill_after_first_epoch(out, proc)
    _finish(_senet(tmp_path, "--out", str(out), "--resume", *TWO_PROCESSES, "--accelerator", "cpu", "--no-progress"))
    assert_same_run(reference, out, epochs=4)


def test_two_torchrun_nodes_on_localhost_train_and_resume_exactly(reference, tmp_path):
    out = tmp_path / "run"
    nodes = _torchrun_nodes(tmp_path, *RECIPE, "--out", str(out))
    _kill_after_first_epoch(out, *nodes)
    logs = _finish(*_torchrun_nodes(tmp_path, "--out", str(out), "--resume", "--accelerator", "cpu",
                                    "--no-progress"))
    assert sum(log.count("best val top-1") for log in logs) == 1, "only global rank 0 prints the summary"
    assert_same_run(reference, out, epochs=4)


def _max_difference(a: Path, b: Path, which) -> float:
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    return max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa if which(k))


def test_sync_bn_makes_two_processes_normalise_like_one_process(tmp_path):
    """One process with batch 16 vs two with 8 each: equal BN statistics (float tolerance) only with --sync-bn.

    Augmentation is off so that both runs see the same images: the sampler gives the two processes the two halves
    of the very global batches the single process draws (``tests/test_ddp.py``), and DDP averages their gradients.
    """
    recipe = [*RECIPE, "--no-augment", "--epochs", "1", "--sync-bn"]
    one, synced, plain = tmp_path / "one", tmp_path / "synced", tmp_path / "plain"
    started = [_senet(tmp_path, *recipe, "--out", str(one)),
               _senet(tmp_path, *recipe, *TWO_PROCESSES, "--out", str(synced))]
    log_one, _ = _finish(*started)
    (_,) = _finish(_senet(tmp_path, *[a for a in recipe if a != "--sync-bn"], *TWO_PROCESSES, "--out", str(plain)))
    assert "--sync-bn: one process" in log_one
    assert json.loads((synced / "run.json").read_text())["config"]["sync_bn"] is True
    assert json.loads((plain / "run.json").read_text())["config"]["sync_bn"] is False

    def stats(key):
        return key.endswith(("running_mean", "running_var"))

    def weights(key):
        return not key.endswith("num_batches_tracked")

    assert _max_difference(one, synced, stats) < 1e-5
    assert _max_difference(one, synced, weights) < 1e-5
    assert _max_difference(one, plain, stats) > 1e-2  # per-shard statistics: what --sync-bn is for
