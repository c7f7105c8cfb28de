"""`senet train` end to end on tiny synthetic data: run folder, checkpoints, refusals, NaN stop, bad files."""

from __future__ import annotations

import csv
import json
import os
import types

import pytest
import torch

import senet
from senet.cli import main
from senet.errors import ConfigError, SenetError
from senet.train import TrainConfig, train
from senet.train import epoch as epoch_module
from senet.train import loop as loop_module

DATA = "synthetic:train=128,val=64"
RECIPE = {"model": "notebook_simple", "data": DATA, "epochs": 2, "batch_size": 32, "lr": 0.05, "progress": False,
          "schedule": "cosine"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "run"
    return train({**RECIPE, "out": str(out)})


def test_run_folder_holds_weights_config_metrics_best_and_state(run):
    out = run.out
    for name in ("model.safetensors", "config.json", "metrics.csv", "run.json", "train_state.pt",
                 "best/model.safetensors", "best/config.json"):
        assert (out / name).is_file(), name
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_top1", "val_top5", "lr",
                             "epoch_time", "images_per_s"]
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    doc = json.loads((out / "config.json").read_text())
    assert doc["model"] == {"name": "notebook_simple", "kwargs": {"num_classes": 10, "in_chans": 1, "image_size": 28}}
    assert doc["class_names"] == [f"class_{i}" for i in range(10)] or len(doc["class_names"]) == 10
    assert doc["dataset"]["name"].startswith("synthetic") and doc["metrics"]["epoch"] == 2
    assert doc["train_config"]["lr"] == 0.05
    best = json.loads((out / "best/config.json").read_text())
    assert best["metrics"]["val_top1"] == max(float(r["val_top1"]) for r in rows)


def test_training_learns_and_the_saved_model_reproduces_the_metrics(run):
    assert run.final["val_top1"] > 0.5  # 10 classes: chance is 0.1
    model = senet.load_model(run.out)
    from senet.data import load_dataset

    bundle = load_dataset(DATA, augment=False)
    images = torch.stack([bundle.val[i][0] for i in range(len(bundle.val))])
    labels = torch.tensor([bundle.val[i][1] for i in range(len(bundle.val))])
    with torch.no_grad():  # the metrics by their definitions, not by the meter that produced run.final
        logits = model(images)
    assert float((logits.argmax(1) == labels).double().mean()) == pytest.approx(run.final["val_top1"])
    assert float(torch.nn.functional.cross_entropy(logits, labels)) == pytest.approx(run.final["val_loss"], rel=1e-5)


def test_existing_run_is_refused_unless_resume_or_overwrite(run, tmp_path):
    with pytest.raises(SenetError, match="already holds a run"):
        train({**RECIPE, "out": str(run.out)})
    again = train({**RECIPE, "out": str(run.out), "resume": True})  # finished: returns without training
    assert again.history == run.history
    out = tmp_path / "over"
    train({**RECIPE, "epochs": 1, "out": str(out)})
    (out / "keep.txt").write_text("mine")
    redone = train({**RECIPE, "epochs": 1, "out": str(out), "overwrite": True})
    assert len(redone.history) == 1 and (out / "keep.txt").exists()


def test_resume_errors(tmp_path, run):
    with pytest.raises(SenetError, match="nothing to resume"):
        train({"out": str(tmp_path / "empty"), "resume": True})
    with pytest.raises(ConfigError, match="lr=0.2"):
        train({"out": str(run.out), "resume": True, "lr": 0.2})


def test_model_args_that_contradict_the_data_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="num_classes"):
        train({**RECIPE, "model_args": {"num_classes": 3}, "out": str(tmp_path / "x")})


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}

    def poisoned(logits, labels, **kw):
        loss = torch.nn.functional.cross_entropy(logits, labels, **kw)
        if "label_smoothing" in kw:  # training calls only
            calls["n"] += 1
            if calls["n"] == 6:  # 4 steps per epoch: the 2nd step of epoch 2
                return loss * float("nan")
        return loss

    monkeypatch.setattr(epoch_module, "F", types.SimpleNamespace(cross_entropy=poisoned))
    out = tmp_path / "nan"
    with pytest.raises(SenetError, match=r"not finite \(nan\) at step 6 \(epoch 2\), noticed at step 8.*epoch 1"):
        train({**RECIPE, "epochs": 3, "out": str(out)})
    state = torch.load(out / "train_state.pt", weights_only=True)
    assert state["epoch"] == 1 and (out / "model.safetensors").exists()
    with open(out / "metrics.csv") as f:
        assert len(list(csv.DictReader(f))) == 1


def test_corrupt_or_code_running_state_is_refused_without_unpickling(tmp_path, run):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(run.out, out)
    cfg = {"out": str(out), "resume": True}
    (out / "train_state.pt").write_bytes(b"\x00garbage")
    with pytest.raises(SenetError, match="corrupt"):
        train(cfg)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"format": "senet-train-state", "evil": Evil()}, out / "train_state.pt")
    with pytest.raises(SenetError, match="corrupt or not a plain"):
        train(cfg)
    assert not marker.exists()
    (out / "run.json").write_text("{not json")
    with pytest.raises(SenetError, match="run.json"):
        train(cfg)


def test_cli_reports_bad_input_as_one_line(tmp_path, capsys):
    base = ["train", "--model", "notebook_simple", "--data", DATA, "--out", str(tmp_path / "r"), "--no-progress"]
    assert main([*base, "--lr", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("senet: error:") and "lr" in err and "\n" not in err
    assert not (tmp_path / "r").exists()  # refused before any work
    assert main([*base, "--epochs", "0"]) == 2
    assert main(["train", "--model", "notebook_simple", "--data", "mnist", "--data-dir", str(tmp_path),
                 "--out", str(tmp_path / "m")]) == 2
    assert "mnist" in capsys.readouterr().err.lower()
    assert not (tmp_path / "m").exists()  # a failed start leaves no run behind, so a retry is not refused


def test_train_accepts_a_config_object(tmp_path):
    result = train(TrainConfig(**{**RECIPE, "epochs": 1, "out": str(tmp_path / "obj")}))
    assert result.best_epoch == 1 and result.images_per_s > 0 and result.train_time > 0


@pytest.mark.parametrize("flags, words", [
    (["--strategy", "bogus"], "strategy=bogus"),
    pytest.param(["--accelerator", "cuda"], "accelerator=cuda",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")),
])
def test_fabric_setup_errors_are_one_line_not_a_traceback(tmp_path, capsys, flags, words):
    out = tmp_path / "hw"
    assert main(["train", "--model", "notebook_simple", "--data", DATA, "--out", str(out), "--no-progress",
                 *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("senet: error: cannot set up") and words in err and "\n" not in err
    assert not out.exists()


def test_batch_larger_than_the_training_set_is_refused_before_the_folder_is_claimed(tmp_path):
    out = tmp_path / "big"
    with pytest.raises(ConfigError, match="batch_size 256 is larger than the training set"):
        train({**RECIPE, "epochs": 1, "batch_size": 256, "out": str(out)})
    assert not (out / "run.json").exists()
    fixed = train({**RECIPE, "epochs": 1, "batch_size": 32, "out": str(out)})  # no --overwrite needed
    assert fixed.best_epoch == 1


def test_batch_check_compares_per_process_batch_with_per_process_share():
    cfg = TrainConfig(**{**RECIPE, "batch_size": 64, "devices": 2})
    loop_module._check_batch_fits(cfg, 64, world=2)  # 32 per process, 32 images each: fits
    with pytest.raises(ConfigError, match="32 per process vs 31 images per process"):
        loop_module._check_batch_fits(cfg, 62, world=2)


class _FakeFabric:
    """Rank ``rank`` of a 2-process Fabric: records whether code ran inside ``rank_zero_first``."""

    world_size = 2

    def __init__(self, rank: int, rank0_error: str | None = None) -> None:
        self.global_rank, self.rank0_error, self.inside = rank, rank0_error, False

    def rank_zero_first(self, local: bool = False):
        import contextlib

        @contextlib.contextmanager
        def ctx():
            self.inside = True
            yield
            self.inside = False
        return ctx()

    def broadcast(self, obj, src=0):
        return obj if self.global_rank == 0 else self.rank0_error


def test_several_processes_load_the_data_rank_zero_first(monkeypatch):
    import senet.data

    seen = []

    def fake_load(name, **kw):
        seen.append((name, kw["download"], fabric.inside))
        return "bundle"

    monkeypatch.setattr(senet.data, "load_dataset", fake_load)
    cfg = TrainConfig(**{**RECIPE, "devices": 2, "download": True})
    fabric = _FakeFabric(rank=1)
    assert loop_module._load_data(fabric, cfg) == "bundle"
    assert seen == [(DATA, True, True)]  # loaded inside rank_zero_first: rank 1 waits for rank 0's download
    fabric = _FakeFabric(rank=1, rank0_error="no Fashion-MNIST files in /nowhere")
    with pytest.raises(SenetError, match="/nowhere"):  # rank 0's failure stops the other ranks too
        loop_module._load_data(fabric, cfg)
