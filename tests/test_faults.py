"""Faults while a run writes its folder: SIGKILL in the middle of checkpoint writes, a full disk, two writers.

After each: every file present loads, the run resumes to the end, and no temporary file is left behind.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from senet.cli import main
from senet.train import state as st

TINY = ["--model", "notebook_simple", "--data", "synthetic:train=64,val=32", "--batch-size", "32", "--no-progress",
        "--epochs", "2", "--schedule", "cosine"]

#: Runs ``senet train`` and SIGKILLs itself just before the N-th file of the run would be renamed into place,
#: i.e. with that file's bytes written to its temporary and the rename not yet done.
KILLER = """
import os, signal, sys
kill_at, calls, rename = int(sys.argv[1]), [0], os.replace
def replace(src, dst):
    calls[0] += 1
    if calls[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return rename(src, dst)
os.replace = replace
from senet.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def _temporaries(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*.tmp"))


def _everything_present_loads(out: Path) -> None:
    from safetensors.torch import load_file

    import senet

    for path in out.rglob("*"):
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".safetensors":
            load_file(str(path))
        elif path.name == st.STATE_FILE:
            st.load_train_state(out)
        elif path.suffix == ".csv":
            list(csv.DictReader(path.open()))
    for folder in (out, out / st.BEST_DIR):
        if (folder / "model.safetensors").exists() and (folder / "config.json").exists():
            senet.load_model(folder)


# Writes of a run, in order: 1 run.json; epoch 1: 2 best weights, 3 best config, 4 weights, 5 config, 6 metrics,
# 7 train state; epoch 2 starts at 8.
@pytest.mark.parametrize("kill_at", [2, 7, 9])
def test_sigkill_during_checkpoint_writes_loses_nothing(kill_at, tmp_path, capsys):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(kill_at), "train", *TINY, "--out", str(out)],
                          env=_env(), capture_output=True, text=True, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert _temporaries(out), "the kill came between writing a temporary and renaming it"
    _everything_present_loads(out)
    assert main(["train", "--out", str(out), "--resume"]) == 0, capsys.readouterr().err
    assert _temporaries(out) == []
    assert st.load_train_state(out)["epoch"] == 2
    _everything_present_loads(out)


def test_two_runs_started_together_into_one_folder_never_mix(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "senet", "train", *TINY, "--epochs", "3", "--out", str(out)]
    procs = [subprocess.Popen([*cmd, "--seed", str(seed)], env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    loser = next(err for code, err in results if code == 2)
    assert loser.count("\n") == 1 and ("in use" in loser or "already holds a run" in loser), loser
    run_seed = st.read_run_file(out)["seed"]
    assert st.load_train_state(out)["recipe"]["seed"] == run_seed
    assert json.loads((out / "config.json").read_text())["train_config"]["seed"] == run_seed


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs: room for the run file and one model, not for a whole checkpoint."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_disk_full_while_checkpointing_is_one_line_and_keeps_what_was_written(small_disk, capsys):
    out = small_disk / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "disk full" in err and "Traceback" not in err, err
    assert _temporaries(out) == []  # a failed write removes its temporary
    assert (out / st.RUN_FILE).exists()
    _everything_present_loads(out)
