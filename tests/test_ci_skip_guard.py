"""In CI a skip that the set-up should have prevented fails the run; the set-up itself fails loudly in CI."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SAMPLE = '''
import pytest

def test_runs():
    pass

def test_missing_extra():
    pytest.importorskip("senet_no_such_extra")

@pytest.mark.skipif(True, reason="needs a CUDA GPU")
def test_gpu_only():
    pass
'''


def _pytest(folder: Path, ci: bool) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)], check=False,
                          cwd=folder,
                          env=env, capture_output=True, text=True, timeout=120)


def test_an_unexpected_skip_fails_only_in_ci_and_every_skip_is_listed(tmp_path):
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    local = _pytest(tmp_path, ci=False)
    assert local.returncode == 0, local.stdout
    assert "1 passed, 0 failed, 0 error, 2 skipped" in local.stdout
    assert "skipped [UNEXPECTED in CI] test_sample.py::test_missing_extra" in local.stdout
    assert "skipped [machine-dependent] test_sample.py::test_gpu_only" in local.stdout
    ci = _pytest(tmp_path, ci=True)
    assert ci.returncode == 1, ci.stdout
    assert "FAILED test_sample.py::test_missing_extra" in ci.stdout and "unexpected skip in CI" in ci.stdout
    assert "1 passed, 1 failed, 0 error, 1 skipped" in ci.stdout  # the GPU-only skip is allowed


def _tasks_module():
    spec = importlib.util.spec_from_file_location("senet_tasks", ROOT / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("ci", [False, True])
def test_setup_without_fashion_mnist_fails_in_ci_and_warns_elsewhere(tmp_path, monkeypatch, capsys, ci):
    tasks = _tasks_module()
    monkeypatch.setattr(tasks, "FASHION_DIR", tmp_path / "absent")
    monkeypatch.delenv("SENET_DATA", raising=False)
    monkeypatch.setattr(tasks.shutil, "which", lambda name: None)  # no apt-get on this machine
    if ci:
        monkeypatch.setenv("CI", "true")
        with pytest.raises(SystemExit, match="apt-get not found.*CI is set"):
            tasks.ensure_fashion_mnist()
    else:
        monkeypatch.delenv("CI", raising=False)
        tasks.ensure_fashion_mnist()
        assert "apt-get not found" in capsys.readouterr().out + capsys.readouterr().err


def test_setup_in_ci_fails_when_apt_install_fails(tmp_path, monkeypatch):
    tasks = _tasks_module()
    monkeypatch.setattr(tasks, "FASHION_DIR", tmp_path / "absent")
    monkeypatch.delenv("SENET_DATA", raising=False)
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(tasks.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(tasks.os, "geteuid", lambda: 0)

    def failing_run(cmd, **kwargs):
        raise subprocess.CalledProcessError(100, cmd)

    monkeypatch.setattr(tasks, "run", failing_run)
    with pytest.raises(SystemExit, match="could not install"):
        tasks.ensure_fashion_mnist()
