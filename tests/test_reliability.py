"""The error contract on the examples of issue 15: no traceback, no silent success, no lost run.

Each test reproduces one example of the issue (they all failed before the fix); the generated matrix over every
option is tests/test_bad_inputs.py and the kill/disk-full/concurrency faults are tests/test_faults.py.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch

import senet
from senet.cli import main, os_error_text
from senet.errors import SenetError
from senet.io import atomic_write_bytes, remove_stale_temporaries
from senet.train import state as st

TINY = ["--model", "notebook_simple", "--data", "synthetic:train=32,val=32", "--batch-size", "32", "--no-progress"]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("senet: error:") and "Traceback" not in err, err
    return err


# --- silent success on a broken run ----------------------------------------------------------------------------
def _poison_weights_after_step(monkeypatch, at_step: int) -> None:
    """After optimizer step ``at_step`` (1-based) one weight becomes NaN, as a diverging step leaves it."""
    original = torch.optim.SGD.step
    calls = {"n": 0}

    def step(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == at_step:
            with torch.no_grad():
                self.param_groups[0]["params"][0].view(-1)[0] = float("nan")
        return result

    monkeypatch.setattr(torch.optim.SGD, "step", step)


def test_nan_validation_after_the_only_step_fails_the_run_and_saves_nothing_as_best(tmp_path, monkeypatch, capsys):
    _poison_weights_after_step(monkeypatch, at_step=1)  # one step per epoch: the loss never sees the NaN
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--out", str(out)]) == 2
    assert "diverged" in _one_line_error(capsys)
    assert not (out / "best").exists() and not (out / "model.safetensors").exists()
    assert not (out / st.STATE_FILE).exists()


def test_divergence_in_epoch_2_keeps_what_epoch_1_saved(tmp_path, monkeypatch, capsys):
    _poison_weights_after_step(monkeypatch, at_step=2)
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--out", str(out)]) == 2
    assert "epoch 1" in _one_line_error(capsys)
    assert json.loads((out / "best" / "config.json").read_text())["epoch"] == 1
    assert st.load_train_state(out)["epoch"] == 1
    model = senet.load_model(out)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_non_finite_weights_with_a_finite_validation_loss_fail_too(tmp_path):
    from senet.train.loop import _check_finite

    model = torch.nn.BatchNorm2d(3)
    model.running_var[1] = float("inf")  # a buffer the validation pass in eval mode may never expose as NaN
    with pytest.raises(SenetError, match="running_var is not finite after epoch 3"):
        _check_finite({"val_loss": 0.5, "epoch": 3}, model, tmp_path, 2)


@pytest.mark.parametrize("flag", [["--lr", "inf"], ["--lr", "nan"], ["--momentum", "nan"], ["--warmup", "inf"]])
def test_non_finite_numbers_are_refused_before_any_work(flag, tmp_path, capsys):
    assert main(["train", *TINY, "--out", str(tmp_path / "r"), *flag]) == 2
    assert flag[0] in _one_line_error(capsys)
    assert not (tmp_path / "r").exists()


# --- types from YAML -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("line, key", [("model: 5", "model"), ("data_dir: 7", "data_dir"), ("lr: .inf", "lr"),
                                       ("epochs: 2.5", "epochs"), ("augment: 3", "augment"),
                                       ("model_args: [1, 2]", "model_args"), ("data: [a]", "data")])
def test_yaml_values_of_the_wrong_type_are_one_line(line, key, tmp_path, capsys):
    path = tmp_path / "recipe.yaml"
    path.write_text(f"model: notebook_simple\ndata: synthetic\n{line}\n")
    assert main(["train", "--config", str(path), "--out", str(tmp_path / "r")]) == 2
    err = _one_line_error(capsys)
    assert key in err and str(path) in err


@pytest.mark.parametrize("lines, words", [("models: 5", "models"), ("models: [5]", "models"),
                                          ("models: [resnet20]\nseeds: 0", "seeds"),
                                          ("models: [nope]", "unknown model 'nope'")])
def test_compare_recipe_values_of_the_wrong_type_are_one_line(lines, words, tmp_path, capsys):
    path = tmp_path / "compare.yaml"
    path.write_text(f"data: synthetic\n{lines}\n")
    assert main(["compare", "--config", str(path), "--out", str(tmp_path / "c")]) == 2
    assert words in _one_line_error(capsys)


# --- sizes and builder arguments from users --------------------------------------------------------------------
@pytest.mark.parametrize("argv, words", [
    (["summary", "se_resnet50", "--input-size", "3", "100000", "100000"], "--input-size"),
    (["summary", "se_resnet50", "-m", "stem_width=0"], "stem_width=0"),
    (["summary", "se_resnet50", "-m", "stem_width=-4"], "stem_width=-4"),
    (["complexity", "resnet20", "-m", "num_classes=-1"], "num_classes"),
])
def test_sizes_and_builder_arguments_are_one_line(argv, words, capsys):
    assert main(argv) == 2
    assert words in _one_line_error(capsys)


# --- operating-system errors and files a command reads ---------------------------------------------------------
def test_out_naming_an_existing_file_is_one_line(tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("keep me")
    assert main(["train", *TINY, "--out", str(target)]) == 2
    assert "is a file" in _one_line_error(capsys)
    assert target.read_text() == "keep me"


def test_export_refuses_to_write_over_the_weights_it_exports(tmp_path, capsys):
    run = tmp_path / "run"
    senet.save_model(senet.create_model("notebook_simple"), run)
    before = (run / "model.safetensors").read_bytes()
    for target in (run / "model.safetensors", run / "config.json"):
        assert main(["export", str(run), "--out", str(target), "--format", "torchscript"]) == 2
        assert "would overwrite" in _one_line_error(capsys)
    assert (run / "model.safetensors").read_bytes() == before
    senet.load_model(run)


def test_convert_refuses_to_write_over_its_source(tmp_path, capsys):
    run = tmp_path / "run"
    senet.save_model(senet.create_model("notebook_simple"), run)
    assert main(["convert", str(run / "model.safetensors"), "--from", "timm", "--out", str(run)]) == 2
    assert "would overwrite" in _one_line_error(capsys)


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "disk full"), (errno.EACCES, "Permission denied"),
                                         (errno.EROFS, "Read-only file system")])
def test_operating_system_errors_read_as_one_line_naming_the_file(code, words):
    text = os_error_text(OSError(code, os.strerror(code), "runs/x/model.safetensors"))
    assert text.startswith("runs/x/model.safetensors: ") and words in text and "\n" not in text


def test_an_os_error_during_a_command_is_exit_2_and_one_line(tmp_path, monkeypatch, capsys):
    import senet.io

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "run" / ".x.tmp"))

    monkeypatch.setattr(senet.io, "atomic_write_bytes", full)
    monkeypatch.setattr(senet.train.state, "atomic_write_bytes", full)
    assert main(["train", *TINY, "--epochs", "1", "--out", str(tmp_path / "run")]) == 2
    assert "disk full" in _one_line_error(capsys)


# --- two writers, one run folder -------------------------------------------------------------------------------
def test_a_run_folder_in_use_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    with st.RunFolderLock(out):
        assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 2
        err = _one_line_error(capsys)
        assert "in use" in err and f"pid {os.getpid()}" in err
    assert not (out / st.LOCK_FILE).exists()


def test_a_lock_left_by_a_killed_run_is_not_in_the_way(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / st.LOCK_FILE).write_text("pid 999999 on elsewhere\n")  # the file survives a kill; the flock does not
    assert main(["train", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    assert (out / "model.safetensors").exists() and not (out / st.LOCK_FILE).exists()


def test_resume_of_a_folder_mixing_two_runs_is_one_line(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", *TINY, "--epochs", "2", "--out", str(a), "--seed", "1"]) == 0
    assert main(["train", *TINY, "--epochs", "1", "--out", str(b), "--seed", "2"]) == 0
    capsys.readouterr()
    recipe_a = st.load_train_state(a)["recipe"]
    shutil.copy(b / st.STATE_FILE, a / st.STATE_FILE)  # run.json from seed 1, state from seed 2
    assert main(["train", "--out", str(a), "--resume"]) == 2
    assert "mixes two runs" in _one_line_error(capsys)
    c = tmp_path / "c"
    assert main(["train", *TINY, "--epochs", "1", "--out", str(c), "-m", "reduction=4"]) == 0
    capsys.readouterr()
    state = torch.load(c / st.STATE_FILE, weights_only=True)
    state["recipe"] = recipe_a  # a state whose recipe agrees but whose weights are of another architecture
    torch.save(state, a / st.STATE_FILE)
    assert main(["train", "--out", str(a), "--resume"]) == 2
    assert "does not fit" in _one_line_error(capsys)


# --- image folders ---------------------------------------------------------------------------------------------
def test_an_empty_class_folder_is_an_error_naming_it(tmp_path):
    from PIL import Image

    from senet.data import load_dataset

    for split in ("train", "val"):
        for name in ("cat", "dog", "owl"):
            (tmp_path / split / name).mkdir(parents=True)
            if not (split == "train" and name == "dog"):
                Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / split / name / "0.png")
    with pytest.raises(SenetError, match=r"class folder .*train/dog holds no images"):
        load_dataset(f"imagefolder:{tmp_path}")


# --- after a kill: temporaries and permissions -----------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_of_a_dead_writer_are_removed_by_the_next_write(tmp_path):
    stale = tmp_path / f".model.safetensors.{_dead_pid()}.abc123.tmp"
    live = tmp_path / f".model.safetensors.{os.getppid()}.def456.tmp"  # a writer that is still running
    other = tmp_path / ".notes.tmp"
    for path in (stale, live, other):
        path.write_bytes(b"partial")
    atomic_write_bytes(tmp_path / "config.json", b"{}")
    assert not stale.exists() and live.exists() and other.exists()
    assert remove_stale_temporaries(tmp_path) == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        senet.save_model(senet.create_model("notebook_simple"), tmp_path / "m")
    finally:
        os.umask(old)
    for name in ("model.safetensors", "config.json"):
        assert stat.S_IMODE((tmp_path / "m" / name).stat().st_mode) == mode


# --- the debug switch ------------------------------------------------------------------------------------------
def test_the_one_line_mentions_the_debug_switch_and_the_switch_shows_the_traceback(monkeypatch, capsys):
    argv = ["summary", "se_resnet50", "-m", "stem_width=0"]
    assert main(argv) == 2
    assert "--traceback" in _one_line_error(capsys) and "SENET_DEBUG=1" in capsys.readouterr().err + "SENET_DEBUG=1"
    with pytest.raises(SenetError, match="stem_width"):
        main([*argv, "--traceback"])
    monkeypatch.setenv("SENET_DEBUG", "1")
    with pytest.raises(SenetError, match="stem_width"):
        main(argv)


def test_the_console_script_prints_a_traceback_only_when_asked():
    cmd = [sys.executable, "-m", "senet", "summary", "notebook_simple", "-m", "reduction=64"]
    env = {k: v for k, v in os.environ.items() if k != "SENET_DEBUG"}
    quiet = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert quiet.returncode == 2 and quiet.stderr.count("\n") == 1 and "SENET_DEBUG=1" in quiet.stderr
    loud = subprocess.run(cmd, capture_output=True, text=True, env={**env, "SENET_DEBUG": "1"}, check=False)
    assert loud.returncode == 1 and "Traceback (most recent call last)" in loud.stderr
