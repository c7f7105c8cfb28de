"""Fine-tuning: --init-from, freezing, AdamW, gradient clipping, and exact resume of a fine-tuning run."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import torch
from _runs import finish, metric_rows, senet_train
from safetensors.torch import load_file
from torch import nn

from senet.cli import main
from senet.errors import SenetError
from senet.io import load_model, save_model
from senet.models import create_model
from senet.train import train
from senet.train.config import make_config
from senet.train.init_from import load_initial_weights, read_source
from senet.train.optim import make_optimizer
from senet.train.state import seed_everything

SOURCE_DATA = "synthetic:classes=10,size=16,chans=3,train=64,val=32,test=16"
TARGET_DATA = "synthetic:classes=3,size=16,chans=3,train=96,val=24,test=24,seed=4"
QUIET = {"progress": False, "batch_size": 32}


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory) -> Path:
    """A plain ResNet-8 trained one epoch on 10 classes: the 'pretrained' weights to start from."""
    out = tmp_path_factory.mktemp("src") / "resnet8"
    train({"model": "resnet8", "data": SOURCE_DATA, "epochs": 1, "out": str(out), **QUIET})
    return out


def _params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_plain_weights_into_an_se_model_keep_the_function(plain_run):
    """A plain ResNet's weights into the SE-ResNet of the same family: the new SE blocks start as the identity,
    so the logits are those of the source network."""
    source_model = load_model(plain_run)
    model = create_model("se_resnet8", num_classes=10).eval()
    report = load_initial_weights(model, read_source(plain_run))
    assert len(report.loaded) == len(source_model.state_dict()) and not report.reinitialised
    assert report.se_identity and all(".se." in k for k in report.se_identity)
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), source_model(x), atol=1e-5, rtol=0)


def test_other_class_count_reinitialises_the_head_only(plain_run):
    source = read_source(plain_run)
    model = create_model("resnet8", num_classes=3)
    report = load_initial_weights(model, source)
    assert sorted(report.reinitialised) == ["fc.bias", "fc.weight"] == sorted(report.skipped)
    assert len(report.loaded) == len(source.state) - 2
    assert "loaded " + str(len(report.loaded)) in str(report) and "re-initialised 2, skipped 2" in str(report)
    for key in report.loaded:
        assert torch.equal(model.state_dict()[key], source.state[key]), key


def test_mismatch_outside_the_head_is_one_line_error(plain_run, capsys):
    with pytest.raises(SenetError, match="does not fit the model: layer1.1.* missing from the source"):
        load_initial_weights(create_model("resnet14", num_classes=10), read_source(plain_run))
    code = main(["train", "--init-from", str(plain_run), "--model", "resnet14", "--data", TARGET_DATA,
                 "--epochs", "1", "--batch-size", "32", "--out", str(plain_run.parent / "bad"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "does not fit the model" in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_run_from_init_from_records_the_source_model_and_trains_the_head_only(plain_run, tmp_path, capsys):
    """--model defaults to the source's; --freeze all-but-head leaves every other tensor - BatchNorm running
    statistics included (frozen BN stays in eval mode) - exactly as loaded."""
    out = tmp_path / "ft"
    assert main(["train", "--init-from", str(plain_run), "--data", TARGET_DATA, "--epochs", "1", "--batch-size",
                 "32", "--freeze", "all-but-head", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "init from" in printed and "re-initialised 2, skipped 2" in printed
    source, tuned = load_file(str(plain_run / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert load_model(out).fc.out_features == 3
    for key, value in tuned.items():
        if key.startswith("fc."):
            continue
        assert torch.equal(value, source[key]), f"{key} changed although frozen"


def test_freeze_all_but_head_and_se_trains_the_se_blocks(plain_run, tmp_path):
    out = tmp_path / "ft_se"
    train({"init_from": str(plain_run), "model": "se_resnet8", "data": TARGET_DATA, "epochs": 1,
           "freeze": "all-but-head-and-se", "optimizer": "adamw", "out": str(out), **QUIET})
    tuned, source = load_file(str(out / "model.safetensors")), load_file(str(plain_run / "model.safetensors"))
    se_keys = [k for k in tuned if ".se." in k]
    assert se_keys and all(not torch.equal(tuned[k], torch.zeros_like(tuned[k])) for k in se_keys if "fc2" in k)
    assert torch.equal(tuned["layer1.0.conv1.weight"], source["layer1.0.conv1.weight"])


def test_adamw_leaves_norms_and_biases_out_of_weight_decay():
    model = create_model("se_resnet8", num_classes=3)
    optimizer = make_optimizer(model, make_config({"model": "x", "data": "y", "optimizer": "adamw",
                                                   "weight_decay": 0.05, "lr": 1e-3}))
    assert isinstance(optimizer, torch.optim.AdamW)
    decay = {id(p) for g in optimizer.param_groups if g["weight_decay"] == 0.05 for p in g["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[i] for i in decay} == {n for n, p in model.named_parameters() if p.dim() >= 2}
    assert "bn1.weight" not in {names[i] for i in decay} and "fc.bias" not in {names[i] for i in decay}
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(names)


def test_gradient_clipping_bounds_the_step(plain_run, tmp_path):
    """One SGD step without momentum or decay moves the parameters by exactly lr * the clipped gradient, whose
    global norm is the clip value."""
    out = tmp_path / "clip"
    train({"init_from": str(plain_run), "data": TARGET_DATA.replace("train=96", "train=32"), "epochs": 1,
           "batch_size": 32, "lr": 1.0, "momentum": 0.0, "weight_decay": 0.0, "clip_grad_norm": 1e-3,
           "freeze": "all-but-head", "augment": False, "out": str(out), "progress": False})
    seed_everything(0)  # the run's seed: the same random head before its one step
    start = create_model("resnet8", num_classes=3)
    load_initial_weights(start, read_source(plain_run))
    tuned = load_file(str(out / "model.safetensors"))
    step = torch.cat([(tuned[k] - v).flatten() for k, v in start.state_dict().items() if k.startswith("fc.")])
    assert float(step.norm()) == pytest.approx(1e-3, rel=1e-3)


def test_model_with_a_hand_swapped_head_saves_and_loads(tmp_path):
    model = create_model("se_resnet8", num_classes=10)
    model.fc = nn.Linear(model.fc.in_features, 4)
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.fc.out_features == 4
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model.eval()(x))


# ---------------------------------------------------------------------------------------------- exact resume





@pytest.mark.slow
def test_fine_tuning_run_killed_and_resumed_is_exact(plain_run, tmp_path):
    args = ["--init-from", str(plain_run), "--model", "se_resnet8", "--data", TARGET_DATA, "--epochs", "3",
            "--batch-size", "32", "--optimizer", "adamw", "--freeze", "all-but-head-and-se", "--clip-grad-norm",
            "0.5", "--seed", "2", "--no-progress"]
    reference = tmp_path / "reference"
    finish(senet_train(*args, "--out", str(reference)))
    out = tmp_path / "run"
    proc = senet_train(*args, "--out", str(out))
    end = time.monotonic() + 120
    while not (out / "train_state.pt").exists():
        assert proc.poll() is None and time.monotonic() < end
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert len(metric_rows(out)) < 3
    finish(senet_train("--out", str(out), "--resume", "--no-progress"))
    for sub in (".", "best"):
        a, b = load_file(str(reference / sub / "model.safetensors")), load_file(str(out / sub / "model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), sub
    assert metric_rows(out) == metric_rows(reference) and len(metric_rows(out)) == 3


@pytest.mark.parametrize("peer,target", [("timm_seresnet18", "se_resnet18"), ("torchvision_resnet18", "se_resnet18")])
def test_peer_checkpoint_is_converted_on_the_way_in(tmp_path, peer, target):
    """A timm file keeps timm's architecture (stride on the 3x3, SE width rounded to 8): the model the run builds
    computes the peer's logits. A torchvision ResNet-18 into an SE-ResNet-18 keeps its logits too (SE at
    identity)."""
    from senet.train.api import resolve_config

    torch.manual_seed(0)
    if peer.startswith("timm"):
        timm = pytest.importorskip("timm")
        reference = timm.create_model("seresnet18", num_classes=5)
    else:
        torchvision = pytest.importorskip("torchvision")
        reference = torchvision.models.resnet18(num_classes=5)
    path = tmp_path / "peer.pth"
    torch.save(reference.state_dict(), path)
    config = resolve_config({"init_from": str(path), "model": target, "data": "synthetic"})
    assert config.model == target and config.model_args["stride_in_1x1"] is False
    model = create_model(config.model, **config.model_args, num_classes=5)
    report = load_initial_weights(model, read_source(path))
    assert not report.reinitialised and not report.skipped
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference.eval()(x), atol=1e-4, rtol=0)
