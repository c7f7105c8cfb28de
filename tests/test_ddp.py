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


# ---------------------------------------------------------------------------------- in-process checks (fast)


def test_sharding_strategies_are_refused_in_one_line(tmp_path, capsys):
    """FSDP/DeepSpeed would shard the model, but checkpoints are rank 0's full state_dict (and Fabric's FSDP needs a
    GPU, so no test here could prove a sharded resume)."""
    from senet.cli import main
    from senet.errors import ConfigError
    from senet.train.config import make_config

    for strategy in ("fsdp", "FSDP", "fsdp_cpu_offload", "deepspeed_stage_3"):
        with pytest.raises(ConfigError, match=f"strategy '{strategy}' is not offered.*--strategy ddp"):
            make_config({"model": "resnet8", "data": "synthetic", "strategy": strategy}).validate()
    make_config({"model": "resnet8", "data": "synthetic", "strategy": "ddp"}).validate()
    out = tmp_path / "run"
    assert main(["train", *ARGS, "--strategy", "fsdp", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("senet: error:") and "fsdp" in err and "\n" not in err
    assert not out.exists()
    help_text = " ".join(_train_help().split())
    assert "sharding ones such as fsdp are refused" in help_text and "--sync-bn" in help_text


def _train_help() -> str:
    import contextlib
    import io

    from senet.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):
        main(["train", "--help"])
    return buffer.getvalue()


@pytest.mark.filterwarnings("ignore:.*AMP with fp16 is not supported on CPU")
def test_fp16_on_cpu_is_refused_not_silently_bf16(tmp_path):
    """Fabric would run bf16 and the run folder would say 16-mixed; the request is refused before any file."""
    from senet.errors import ConfigError
    from senet.train import train

    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="--precision 16-mixed cannot run on cpu.*--precision bf16-mixed"):
        train({"model": "notebook_simple", "data": "synthetic:train=16,val=8", "epochs": 1, "batch_size": 8,
               "precision": "16-mixed", "accelerator": "cpu", "progress": False, "out": str(out)})
    assert not out.exists()


def test_sync_bn_on_one_process_is_a_noop_and_recorded(tmp_path, capsys):
    from safetensors.torch import load_file

    from senet.train import train
    from senet.train.state import read_run_file

    runs = {}
    for flag in (True, False):
        runs[flag] = tmp_path / f"sync_{flag}"
        train({"model": "resnet8", "model_args": {"stem_width": 4, "widths": (4, 4, 4)},
               "data": "synthetic:classes=3,size=8,chans=1,train=16,val=8", "epochs": 1, "batch_size": 8,
               "accelerator": "cpu", "progress": False, "sync_bn": flag, "out": str(runs[flag])})
        assert read_run_file(runs[flag])["sync_bn"] is flag
    assert "--sync-bn: one process" in capsys.readouterr().out
    a, b = (load_file(str(runs[f] / "model.safetensors")) for f in (True, False))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_global_batchnorm_matches_batchnorm_in_a_process_group(tmp_path):
    """The all-reduce path of GlobalBatchNorm (a one-process gloo group, so the global batch is the local one) gives
    nn.BatchNorm's outputs, input and weight gradients, and running statistics (unbiased variance)."""
    import copy

    import torch.distributed as dist
    from torch import nn

    from senet.train.distributed import GlobalBatchNorm, _convert

    torch.manual_seed(0)
    reference = nn.Sequential(nn.Conv2d(3, 5, 3), nn.BatchNorm2d(5), nn.ReLU(), nn.Flatten(),
                              nn.Linear(5 * 36, 2), nn.BatchNorm1d(2, momentum=None))
    converted = _convert(copy.deepcopy(reference))
    assert isinstance(converted[1], GlobalBatchNorm) and isinstance(converted[5], GlobalBatchNorm)
    assert converted.state_dict().keys() == reference.state_dict().keys()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'group'}", rank=0, world_size=1)
    try:
        for step in range(3):
            x = torch.randn(6, 3, 8, 8) * (step + 1) + step
            xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
            ya, yb = converted(xa), reference(xb)
            torch.testing.assert_close(ya, yb, rtol=1e-4, atol=1e-5)
            target = torch.randn(6, 2)  # (a loss BN's output is not invariant to, unlike sum(y^2))
            ((ya - target) ** 2).sum().backward()
            ((yb - target) ** 2).sum().backward()
            torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-4, atol=1e-5)
        for a, b in zip(converted.parameters(), reference.parameters()):
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(converted.state_dict(), reference.state_dict(), rtol=1e-4, atol=1e-5)
        converted.eval(), reference.eval()
        torch.testing.assert_close(converted(x), reference(x), rtol=1e-4, atol=1e-5)
    finally:
        dist.destroy_process_group()


def test_each_process_gets_back_its_own_random_streams():
    """The per-process states of a checkpoint restore the generators and global RNG of that process only; a
    checkpoint from another number of processes restores nothing (its shards would not match anyway)."""
    from types import SimpleNamespace

    from senet.train.distributed import gather_rank_states, restore_rank_state

    one = SimpleNamespace(world_size=1, global_rank=0)
    generators = {"train": torch.Generator().manual_seed(1), "val": torch.Generator().manual_seed(2)}
    torch.manual_seed(3)
    saved = gather_rank_states(one, generators)
    expected = [torch.rand(4, generator=generators["train"]), torch.rand(4, generator=generators["val"]),
                torch.rand(4)]
    assert restore_rank_state(saved, one, generators)
    again = [torch.rand(4, generator=generators["train"]), torch.rand(4, generator=generators["val"]), torch.rand(4)]
    assert all(torch.equal(a, b) for a, b in zip(expected, again))
    two = SimpleNamespace(world_size=2, global_rank=1)
    before = generators["train"].get_state()
    assert not restore_rank_state(saved, two, generators) and not restore_rank_state(None, one, generators)
    assert torch.equal(generators["train"].get_state(), before)
