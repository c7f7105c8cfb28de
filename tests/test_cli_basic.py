"""`senet models`, `senet summary`, `senet complexity` and the CLI's error contract."""

import json
import subprocess
import sys

import pytest

from senet.cli import main


def test_models_lists_and_filters(capsys):
    assert main(["models", "notebook_*", "--names"]) == 0
    assert capsys.readouterr().out.split() == ["notebook_se_residual", "notebook_simple"]


def test_summary_json_prints_only_the_three_totals(capsys):
    assert main(["summary", "notebook_simple", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"params": 9227, "se_params": 1024, "macs": 309920}


def test_summary_table_and_model_args(capsys):
    # conv 320 + SE r=4 (32*8 + 8*32 = 512) + 1x1 conv 33 + linear 784*3+3 = 3,220
    assert main(["summary", "notebook_simple", "-m", "num_classes=3", "-m", "reduction=4"]) == 0
    out = capsys.readouterr().out
    assert "SqueezeExcite (se)" in out and "Parameters: 3,220 (in SE/attention blocks: 512)" in out and "multiply-adds of conv" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["summary", "notebook_simpel"], "unknown model 'notebook_simpel'; did you mean notebook_simple"),
        (["summary", "notebook_simple", "-m", "reduction"], "--model-arg expects KEY=VALUE"),
        (["summary", "notebook_simple", "-m", "reduction=64"], "larger than channels"),
        (["summary", "notebook_simple", "-m", "size=3"], "does not take argument(s) size"),
        (["summary", "notebook_simple", "-m", "reduction=[1,"], "cannot parse"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_console_script_exit_code_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "senet.cli", "summary", "nope"], check=False, capture_output=True,
                          text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("senet: error: argument name: unknown model 'nope'")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
