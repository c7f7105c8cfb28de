"""The package as users get it: one version, a torch-free ``import senet``, a core without extras, what the wheel
and sdist contain and declare, and the wheel installed into a fresh environment."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import senet
from senet._extras import require
from senet.errors import MissingExtraError, SenetError

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python >= 3.11's tomllib")

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

#: Everything outside the core; the core must work with all of these missing.
OPTIONAL = ("lightning", "lightning_fabric", "tqdm", "yaml", "torchinfo", "matplotlib", "onnx", "onnxruntime",
            "onnxscript", "keras", "tensorboard", "timm", "mkdocs")
CORE = {"torch", "torchvision", "safetensors", "numpy"}


def _run_python(code: str, *, cwd: Path | None = None, python: str = sys.executable,
                env: dict[str, str] | None = None, without_extras: bool = False) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    base["PYTHONPATH"] = str(SRC)
    code = (_BLOCK_OPTIONAL if without_extras else "") + textwrap.dedent(code)
    return subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=cwd,
                          env=env if env is not None else base, timeout=300, check=False)


# Every optional package made unimportable, as in a core-only install (a None entry in sys.modules makes `import`
# raise ModuleNotFoundError and importlib.util.find_spec answer None).
_BLOCK_OPTIONAL = f"""
import sys
sys.modules.update(dict.fromkeys({OPTIONAL!r}))
"""


def test_version_has_one_source():
    """pyproject reads the version from senet/_version.py; nothing else in the tree writes a version."""
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "senet._version.__version__"}
    tree = ast.parse((SRC / "senet" / "_version.py").read_text())
    (assign,) = [n for n in tree.body if isinstance(n, ast.Assign)]
    assert senet.__version__ == assign.value.value
    writers = [p for p in SRC.rglob("*.py") if "__version__ =" in p.read_text()]
    assert writers == [SRC / "senet" / "_version.py"]


def test_import_senet_loads_no_torch_and_public_names_load_on_use():
    result = _run_python("""
        import sys, senet
        assert "torch" not in sys.modules, "import senet imported torch"
        from senet import SqueezeExcite, create_model, load_model
        assert "torch" in sys.modules
        assert set(senet.__all__) <= set(dir(senet))
        for name in senet.__all__:
            getattr(senet, name)
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_core_dependencies_are_exactly_the_minimal_set():
    names = {d.split(">")[0].split("=")[0].split("[")[0].strip().lower() for d in PYPROJECT["project"]["dependencies"]}
    assert names == CORE
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"train", "analysis", "onnx", "keras", "docs", "dev", "tensorboard", "all"} <= set(extras)
    assert any(d.startswith("lightning-fabric") for d in extras["train"])
    assert any(d.startswith("matplotlib") for d in extras["analysis"])
    assert any(d.startswith("mkdocs") for d in extras["docs"])


def test_tasks_py_installs_every_extra_the_tests_need():
    tasks = ast.parse((ROOT / "tasks.py").read_text())
    (extras,) = [n.value.value for n in tasks.body if isinstance(n, ast.Assign)
                 and any(getattr(t, "id", None) == "EXTRAS" for t in n.targets)]
    assert set(extras.split(",")) >= {"train", "analysis", "onnx", "keras", "docs", "dev"}


#: `senet` commands that need an extra, and the extra their one-line error must name.
EXTRA_COMMANDS = [
    (["train", "--config", "fmnist_se_fast", "--out", "{tmp}/run"], "train"),
    (["train", "--model", "se_resnet8", "--data", "synthetic", "--epochs", "1", "--out", "{tmp}/run2"], "train"),
    (["export", "{tmp}/m", "--format", "onnx", "--out", "{tmp}/m.onnx"], "onnx"),
]


@pytest.fixture(scope="module")
def core_only(tmp_path_factory) -> dict:
    """One process with every extra missing: the core's work, then each command of EXTRA_COMMANDS."""
    tmp = tmp_path_factory.mktemp("core")
    commands = [[a.format(tmp=tmp) for a in argv] for argv, _ in EXTRA_COMMANDS]
    result = _run_python(without_extras=True, code=f"""
        import contextlib, io, json, torch, senet
        from senet import SqueezeExcite, create_model, load_model, save_model, model_complexity
        se = SqueezeExcite(32, reduction=4)
        assert se(torch.randn(2, 32, 5, 5)).shape == (2, 32, 5, 5)
        model = create_model("se_resnet8", num_classes=3).eval()
        assert model_complexity(model, (3, 32, 32))["se_params"] > 0
        save_model(model, {str(tmp / "m")!r})
        again = load_model({str(tmp / "m")!r}).eval()
        x = torch.randn(1, 3, 32, 32)
        assert torch.equal(model(x), again(x))
        from senet.cli import main
        out = {{"models": main(["models"]), "commands": []}}
        for argv in {commands!r}:
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                status = main(argv)
            out["commands"].append([status, err.getvalue()])
        print("RESULT " + json.dumps(out))
    """)
    assert result.returncode == 0, result.stderr
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("RESULT ")]
    return json.loads(line[len("RESULT "):])


def test_core_works_without_any_extra(core_only):
    """The block, a model, complexity, save and load (equal outputs), and `senet models`, with every extra missing
    (the asserts run inside the core-only process; reaching the result means they held)."""
    assert core_only["models"] == 0


@pytest.mark.parametrize(("index", "extra"), [(i, extra) for i, (_, extra) in enumerate(EXTRA_COMMANDS)])
def test_a_missing_extra_ends_in_one_line_naming_the_install(core_only, index, extra):
    status, stderr = core_only["commands"][index]
    lines = stderr.strip().splitlines()
    assert status == 2 and len(lines) == 1 and "Traceback" not in stderr, stderr
    assert lines[0].startswith("senet: error:") and f'pip install "senet[{extra}]"' in lines[0]


def test_require_names_the_extra_and_leaves_broken_installs_alone(tmp_path, monkeypatch):
    with pytest.raises(MissingExtraError) as info:
        require("senet_no_such_module", "analysis", purpose="charts")
    assert isinstance(info.value, SenetError) and isinstance(info.value, ImportError)
    assert str(info.value) == ("charts needs senet_no_such_module, part of the 'analysis' extra: "
                               'pip install "senet[analysis]"')
    # Installed, but one of its own dependencies is missing: reinstalling senet would not help, so the original
    # error stays.
    (tmp_path / "brokenpkg").mkdir()
    (tmp_path / "brokenpkg" / "__init__.py").write_text("import senet_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        require("brokenpkg", "train")
    assert not isinstance(info.value, MissingExtraError) and info.value.name == "senet_missing_dependency"
    assert require("json", "train").dumps([1]) == "[1]"


def test_bundled_recipes_resolve_by_name_and_files_win(tmp_path, monkeypatch):
    from senet.recipes import bundled_recipes, resolve_recipe

    assert set(bundled_recipes()) >= {"demo", "se_vs_plain", "fmnist_se_fast", "fmnist_se_94", "fmnist_se_hour"}
    assert resolve_recipe("demo") == resolve_recipe("demo.yaml") == bundled_recipes()["demo"]
    assert resolve_recipe("demo").parent == SRC / "senet" / "configs"
    own = tmp_path / "demo.yaml"
    own.write_text("epochs: 1\n")
    monkeypatch.chdir(tmp_path)
    assert resolve_recipe("demo.yaml") == Path("demo.yaml")  # a file of that name in the working folder wins
    with pytest.raises(FileNotFoundError, match="bundled recipes, by name: demo, "):
        resolve_recipe("configs/demo.yaml")


# --- the built distributions -------------------------------------------------------------------------------------

_IGNORE = shutil.ignore_patterns(".git", ".venv", "runs", "build", "dist", "site", "__pycache__", "*.egg-info",
                                 ".pytest_cache", ".hypothesis", ".ruff_cache")


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """Build the sdist and, from it, the wheel, from a copy of the tree (the checkout stays untouched)."""
    pytest.importorskip("build", reason="the `build` package (dev extra) builds the distributions")
    work = tmp_path_factory.mktemp("dist")
    shutil.copytree(ROOT, work / "src_tree", ignore=_IGNORE)
    out = work / "out"
    result = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out),
                             str(work / "src_tree")], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


def test_wheel_contains_and_declares_what_users_need(dists):
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
        info = f"senet-{senet.__version__}.dist-info"
        metadata = Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    assert dists["wheel"].name == f"senet-{senet.__version__}-py3-none-any.whl"
    assert {"senet/py.typed", "senet/_version.py", "senet/recipes.py", "senet/paper.py",
            "senet/configs/demo.yaml", "senet/configs/se_vs_plain.yaml", "senet/configs/fmnist_se_fast.yaml", "senet/configs/fmnist_se_94.yaml",
            "senet/configs/fmnist_se_hour.yaml",
            f"{info}/licenses/LICENSE"} <= names
    assert not any(n.startswith(("tests/", "docs/", "benchmarks/")) for n in names)
    assert metadata["Name"] == "senet" and metadata["Version"] == senet.__version__
    assert metadata["License-Expression"] == "MIT"
    assert set(metadata.get_all("Provides-Extra")) >= {"train", "analysis", "onnx", "keras", "docs", "dev", "all"}
    unconditional = {r.split(">")[0].strip().lower() for r in metadata.get_all("Requires-Dist") if ";" not in r}
    assert unconditional == CORE
    assert "senet = senet.cli:console_main" in entry_points.replace("senet=", "senet = ")


def test_sdist_carries_sources_tests_docs_and_license(dists):
    with tarfile.open(dists["sdist"]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "mkdocs.yml", "tasks.py",
            "src/senet/py.typed", "src/senet/configs/demo.yaml", "docs/index.md", "docs/performance.md",
            "tests/test_packaging.py"} <= names


@pytest.mark.slow
def test_wheel_installs_and_runs_in_a_fresh_environment(dists, tmp_path):
    """`senet --version`, `senet models` and a tiny training run from the installed wheel, away from the checkout.

    The fresh venv reuses this environment's installed dependencies through a path entry (nothing downloads); the
    wheel itself is installed with --no-deps, so senet comes only from the wheel.
    """
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    deps = [p for p in sys.path if p.endswith("site-packages")]
    Path(site, "outer_dependencies.pth").write_text("\n".join(deps) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # --force-reinstall: the outer environment's own (editable) senet of the same version must not count as
    # "already installed" for the fresh one.
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                              "--no-index", "--force-reinstall", "--quiet", str(dists["wheel"])],
                             capture_output=True, text=True, timeout=300, check=False, env=env)
    assert install.returncode == 0, install.stderr
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    work = tmp_path / "elsewhere"
    work.mkdir()

    def senet_cmd(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(bindir / "senet"), *args], capture_output=True, text=True, cwd=work, env=env,
                              timeout=600, check=False)

    where = _run_python("import senet, senet.recipes; print(senet.__file__); print(senet.recipes.recipe_dir())",
                        python=str(python), cwd=work, env=env)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(site) for line in where.stdout.split()), where.stdout  # the wheel's copy, not src/

    models = senet_cmd("models")
    assert models.returncode == 0, models.stderr
    assert "se_resnet50" in models.stdout and "senet154" in models.stdout
    run = senet_cmd("train", "--model", "se_resnet8", "--data", "synthetic:classes=3,size=16,train=48,val=24",
                    "--epochs", "1", "--batch-size", "16", "--no-progress", "--out", str(work / "run"))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert (work / "run" / "model.safetensors").is_file() and (work / "run" / "metrics.csv").is_file()
    version = senet_cmd("--version")  # `senet --version` reads senet/_version.py
    assert version.returncode == 0, version.stderr
    assert senet.__version__ in version.stdout
