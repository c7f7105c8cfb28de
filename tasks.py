#!/usr/bin/env python3
"""Set-up and entry points behind the README's two commands; needs only Python >= 3.10 and pip (apt optional).

    python3 tasks.py demo    # set up, then ask whether SE helps (ResNet-8 vs SE-ResNet-8, 5 seeds) and write the report
    python3 tasks.py test    # set up, then run the whole test suite
    python3 tasks.py docs    # set up, then build the documentation site into site/ (strict: broken links fail)

Set-up is idempotent: it creates ``.venv/`` in the repository root, installs the package with the extras the tests
need (re-installing only when ``pyproject.toml`` changes), and installs the Debian package
``dataset-fashion-mnist`` when apt is available and we may use it (root, or password-less sudo). Elsewhere, put the
four Fashion-MNIST IDX files in a folder and point ``SENET_DATA`` (or ``--data-dir``) at it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
EXTRAS = "train,analysis,onnx,keras,tensorboard,docs,dev"  # every extra the test suite exercises
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
APT_PACKAGE = "dataset-fashion-mnist"


def log(msg: str) -> None:
    print(f"[tasks] {msg}", flush=True)


def run(cmd: list[str], **kw) -> None:
    log(" ".join(map(str, cmd)))
    subprocess.run(cmd, check=True, **kw)


def ensure_venv() -> None:
    if not (BIN / "python").exists():
        log(f"creating virtual environment in {VENV}")
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".senet-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + EXTRAS.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    run([str(BIN / "python"), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[{EXTRAS}]"])
    stamp.write_text(digest)


def _no_fashion_mnist(msg: str) -> None:
    """Outside CI, say so and go on (the real-data tests skip); in CI (``CI`` set) stop: CI must run them."""
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on"):
        raise SystemExit(f"[tasks] {msg}; CI is set, and CI must run the real-data tests: failing the set-up")
    log(msg)


def ensure_fashion_mnist() -> None:
    if (FASHION_DIR / "train-images-idx3-ubyte.gz").exists() or os.environ.get("SENET_DATA"):
        return
    apt = shutil.which("apt-get")
    if apt is None:
        _no_fashion_mnist("apt-get not found: put the Fashion-MNIST IDX files in a folder and set SENET_DATA to it")
        return
    prefix: list[str] = []
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        if shutil.which("sudo") is None or subprocess.run(["sudo", "-n", "true"], check=False).returncode != 0:
            _no_fashion_mnist(f"not root and no password-less sudo: run `sudo apt-get install {APT_PACKAGE}` yourself")
            return
        prefix = ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*prefix, apt, "install", "-y", "-qq", APT_PACKAGE]
    try:
        run(install, env=env, stdout=subprocess.DEVNULL)
    except subprocess.CalledProcessError:
        try:  # the package lists may be missing or stale on a fresh machine
            run([*prefix, apt, "update", "-qq"], env=env)
            run(install, env=env, stdout=subprocess.DEVNULL)
        except subprocess.CalledProcessError:
            _no_fashion_mnist(f"could not install {APT_PACKAGE}: the real-data tests will be skipped and the demo "
                              f"needs SENET_DATA")
            return
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").exists():
        _no_fashion_mnist(f"{APT_PACKAGE} is installed but {FASHION_DIR} holds no train-images-idx3-ubyte.gz")


def setup() -> None:
    ensure_venv()
    ensure_fashion_mnist()


def demo(extra: list[str]) -> int:
    """`senet compare` of ResNet-8 and SE-ResNet-8 over 5 paired seeds (the bundled recipe ``demo``), then
    `senet excite` on the SE model of the first seed.

    Running it again resumes: finished runs are reused, an interrupted one continues from its last epoch.
    """
    setup()
    out = ROOT / "runs" / "demo"
    senet = str(BIN / "senet")
    compare = [senet, "compare", "--config", "demo", "--out", str(out)]
    if out.exists() and "--overwrite" not in extra:
        compare.append("--resume")
    rc = _run_logged([*compare, *extra])
    if rc != 0:
        return rc
    excite = [senet, "excite", str(out / "se_resnet8" / "seed0"), "--out", str(out / "excitation"),
              "--drop-se-stage", "4", "--eval-images", "2000"]
    rc = _run_logged(excite)
    if rc == 0:
        log(f"report: {out / 'report.md'}; curves: {out / 'curves.png'}; excitation charts: {out / 'excitation'}")
    return rc


def _run_logged(cmd: list[str], **kw) -> int:
    log(" ".join(cmd))
    return subprocess.run(cmd, check=False, env=_runtime_env(), **kw).returncode


def _runtime_env() -> dict[str, str]:
    # Idle OpenMP threads sleep instead of spinning, so on a machine shared with other jobs they do not starve the
    # threads doing work (docs/performance.md has the measurement). It must be set before torch starts.
    return {"OMP_WAIT_POLICY": "PASSIVE", "KERAS_BACKEND": "torch", **os.environ}


def test(extra: list[str]) -> int:
    """The whole suite, slow tests included, spread over up to four worker processes (pytest-xdist, a dev extra):
    on the 2-core CI machine that keeps it well under 15 minutes. ``-n 0`` in ``extra`` runs it in one process."""
    setup()
    workers = ["-n", str(min(4, os.cpu_count() or 1))] if not any(a.startswith("-n") for a in extra) else []
    return _run_logged([str(BIN / "python"), "-m", "pytest", "-q", *workers, *extra], cwd=ROOT)


def docs(extra: list[str]) -> int:
    """Build the documentation site into ``site/`` (``python3 tasks.py docs serve`` previews it live instead)."""
    setup()
    mkdocs = [str(BIN / "python"), "-m", "mkdocs"]
    if extra[:1] == ["serve"]:
        return _run_logged([*mkdocs, "serve", *extra[1:]], cwd=ROOT)
    return _run_logged([*mkdocs, "build", "--strict", "--site-dir", str(ROOT / "site"), *extra], cwd=ROOT)


def main(argv: list[str]) -> int:
    commands = {"demo": demo, "test": test, "docs": docs}
    if not argv or argv[0] not in (*commands, "setup"):
        print(__doc__)
        return 2
    if argv[0] == "setup":
        setup()
        return 0
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
