"""The first minute with the command: --help, --version and `senet models` answer without importing torch; help
texts are plain text; the shipped model table matches the models."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from senet.cli import build_parser, main, version
from senet.cli.catalogue import COLUMNS, build_row, rows

SRC = str(Path(__file__).resolve().parents[1] / "src")

#: Prints the heavy modules that a command imported, after running it in a fresh interpreter.
PROBE = """
import sys
from senet.cli import main
code = main(sys.argv[1:])
sys.stdout.flush()
print("HEAVY=" + ",".join(m for m in ("torch", "numpy", "lightning_fabric", "torchvision") if m in sys.modules))
sys.exit(code)
"""


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["models"], ["models", "--filter", "se_*"],
                                  ["train", "--help"], ["summary", "--help"], ["export", "--help"]])
def test_help_version_and_models_do_not_import_torch(argv):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY=", proc.stdout[-300:]
    assert elapsed < 5  # a bare interpreter plus argparse: well under a second on an idle machine


def _parsers():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [("senet", parser), *sub.choices.items()], sub


def test_help_texts_are_plain_text():
    parsers, sub = _parsers()
    texts = [(name, p.description or "") for name, p in parsers]
    texts += [(name, a.help or "") for name, p in parsers for a in p._actions]
    texts += [(c.dest, c.help or "") for c in sub._choices_actions]
    marked = [(name, text) for name, text in texts if "`" in text or ":class:" in text or ":func:" in text]
    assert not marked, marked


def test_version_is_the_installed_distribution_or_the_source_version(capsys):
    import importlib.metadata

    import senet

    try:
        expected = importlib.metadata.version("senet")
    except importlib.metadata.PackageNotFoundError:
        expected = senet.__version__
    assert version() == expected
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"senet {expected}"


def test_models_prints_a_sorted_table_and_filters(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "family", "params", "MACs", "input", "SE"]
    names = [line.split()[0] for line in lines[1:-1]]
    assert names == [row["name"] for row in rows()] and len(names) == len(set(names)) > 30
    se50 = next(line.split() for line in lines if line.startswith("se_resnet50 "))
    assert se50[1:] == ["resnet", "28.09M", "3.87G", "3x224x224", "yes"]  # paper Table 2: 28.1M, 3.87 GFLOPs
    assert main(["models", "--filter", "notebook_*", "--names"]) == 0
    assert capsys.readouterr().out.split() == ["notebook_se_residual", "notebook_simple"]
    assert main(["models", "--filter", "no_such_model*"]) == 1


def test_models_are_sorted_with_numbers_in_numeric_order():
    names = [row["name"] for row in rows()]
    cifar = [n for n in names if n.startswith("se_resnet") and n[9:].isdigit()]
    assert [int(n[9:]) for n in cifar] == sorted(int(n[9:]) for n in cifar)


def test_the_shipped_table_lists_exactly_the_registered_models():
    from senet.models import list_models

    assert sorted(row["name"] for row in rows()) == list_models()
    assert all(list(row) == list(COLUMNS) for row in rows())


@pytest.mark.parametrize("name", ["notebook_simple", "se_resnet20", "resnet50", "se_resnext50_32x4d",
                                  "se_mobilenet_v1"])
def test_the_shipped_rows_equal_the_models_counted_now(name):
    # A sample (counting all 40+ models on the meta device takes half a minute on 2 cores); after changing a model
    # run `python -m senet.cli.catalogue` to regenerate the table.
    shipped = next(row for row in rows() if row["name"] == name)
    assert json.loads(json.dumps(build_row(name))) == shipped


def test_the_notebook_row_matches_the_spec():
    row = next(row for row in rows() if row["name"] == "notebook_simple")
    assert (row["params"], row["input_size"], row["se"]) == (9227, [1, 28, 28], True)  # SPEC section 5
