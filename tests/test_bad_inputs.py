"""A generated bad-input matrix: every option of every subcommand, read from the parser itself, gets bad values.

For each value that the option's declared kind must refuse (wrong type, empty, negative, zero, huge, non-finite,
a file where a folder is expected and the reverse), ``senet.cli.main`` must exit with status 2 after exactly one
line on stderr, without a traceback, and without reaching any heavy work (training, data loading, exporting: those
are replaced by a tripwire here). Which values an option must refuse is decided below from its kind and bounds,
not by calling its check. An option added later is covered without new code; one without a declared check fails
``test_every_value_option_declares_a_check``.
"""

from __future__ import annotations

import argparse
import math

import pytest

from senet import checks
from senet.cli import build_parser, main
from senet.cli._common import check_of


class Reached(Exception):
    """Raised by the tripwires: a bad value got past validation into real work."""


def _tripwire(*args, **kwargs):
    raise Reached("heavy work started")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import senet

    root = tmp_path_factory.mktemp("bad_inputs")
    model_dir = root / "model"
    senet.save_model(senet.create_model("notebook_simple"), model_dir)
    (root / "a_file.txt").write_text("not a folder\n")
    (root / "a_folder").mkdir()
    return {"root": root, "model": str(model_dir), "file": str(root / "a_file.txt"), "folder": str(root / "a_folder")}


def _base(files) -> dict[str, dict[str, list[str]]]:
    """A valid command line per subcommand: {option or positional dest: values}."""
    root, model = files["root"], files["model"]
    return {
        "models": {},
        "summary": {"name": ["notebook_simple"]},
        "complexity": {"names": ["notebook_simple"]},
        "excite": {"model_dir": [model], "--out": [str(root / "excite")]},
        "prune": {"run": [model], "--out": [str(root / "pruned")]},
        "convert": {"src": [f"{model}/model.safetensors"], "--from": ["timm"], "--out": [str(root / "c.safetensors")]},
        "export": {"model": [model], "--out": [str(root / "m.onnx")]},
        "train": {"--model": ["notebook_simple"], "--data": ["synthetic"], "--out": [str(root / "run")],
                  "--epochs": ["1"]},
        "evaluate": {"model": [model]},
        "compare": {"--models": ["notebook_simple"], "--data": ["synthetic"], "--out": [str(root / "cmp")]},
    }


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _value_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.nargs != 0 and not isinstance(a, argparse._SubParsersAction)]


BAD = {  # category -> text, or a key of the `files` fixture
    "wrong type": "abc", "fraction": "1.5", "empty": "", "blank": "  ", "negative": "-1", "zero": "0",
    "huge": "9" * 30, "huge float": "1e300", "nan": "nan", "inf": "inf", "file for folder": "file",
    "folder for file": "folder",
}
NOT_A_NUMBER = {"wrong type", "empty", "blank", "nan", "inf", "file for folder", "folder for file"}


def must_refuse(check: checks.Check, category: str) -> bool:
    """Whether an option of this kind and these bounds must refuse a value of ``category``."""
    kind = check.kind
    if category in ("empty", "blank"):
        return True
    if kind in ("int", "int-list"):
        item = getattr(check, "item", check)
        lo = item.lo
        return (category in NOT_A_NUMBER or category in ("fraction", "huge", "huge float")
                or (category == "negative" and lo is not None and lo >= 0)
                or (category == "zero" and lo is not None and lo > 0))
    if kind == "float":
        return (category in NOT_A_NUMBER
                or (category in ("huge", "huge float") and check.hi is not None)
                or (category == "negative" and check.lo is not None and check.lo >= 0)
                or (category == "zero" and check.lo is not None and (check.lo > 0 or check.lo_open)))
    if kind == "choice":
        return BAD[category] not in check.choices
    if kind in ("model", "model-list", "device", "key=value"):
        return True  # none of the bad values is a model name, a device or KEY=VALUE
    if kind == "path":
        role = check.role
        if role.startswith("read") and category not in ("file for folder", "folder for file"):
            return True  # none of these names exists in the test's working folder
        return (category == "file for folder" and role in ("read-dir", "write-dir")) or \
               (category == "folder for file" and role in ("read-file", "write-file"))
    if kind == "text":
        return False  # any non-blank text may be a name; the command decides later
    raise AssertionError(f"no rule for checks of kind {kind!r}: add one to must_refuse")


def _argv(command: str, parser: argparse.ArgumentParser, base: dict, action: argparse.Action, value: str) -> list:
    given = dict(base)
    key = action.option_strings[0] if action.option_strings else action.dest
    if isinstance(action.nargs, int):
        values = [value] * action.nargs
    else:
        values = [value]
    for other in list(given):  # a flag's aliases (-m / --model-arg) are one option
        if other in action.option_strings:
            del given[other]
    given[key] = values
    positionals = [a for a in parser._actions if not a.option_strings and a.nargs != 0]
    argv = [command]
    for pos in positionals:
        argv += given.get(pos.dest, [])
    for flag, vals in given.items():
        if flag.startswith("-"):
            argv += [f"{flag}={vals[0]}"] if len(vals) == 1 else [flag, *vals]
    return argv


def _cases():
    """(command, option dest, category) for every value an option must refuse (options without a check are
    reported by test_every_value_option_declares_a_check)."""
    for command, parser in _subparsers().items():
        for action in _value_actions(parser):
            name = action.option_strings[0] if action.option_strings else action.dest
            check = check_of(action)
            for category in BAD:
                if check is not None and must_refuse(check, category):
                    yield pytest.param(command, action.dest, category, id=f"{command} {name} {category}")


def test_every_value_option_declares_a_check():
    missing = [f"senet {cmd} {a.option_strings or a.dest}" for cmd, p in _subparsers().items()
               for a in _value_actions(p) if check_of(a) is None]
    assert not missing, f"options without a senet.checks check: {missing}"


@pytest.mark.parametrize("command, dest, category", list(_cases()))
def test_bad_value_is_refused_in_one_line(command, dest, category, files, monkeypatch, capsys):
    import senet.data
    import senet.interop.export
    import senet.train.api

    parser = _subparsers()[command]
    action = next(a for a in _value_actions(parser) if a.dest == dest)
    for module, name in ((senet.train.api, "run_training"), (senet.data, "load_dataset"),
                         (senet.interop.export, "export_model")):
        monkeypatch.setattr(module, name, _tripwire)
    monkeypatch.chdir(files["root"])  # relative names such as "abc" do not exist here
    value = files[BAD[category]] if BAD[category] in ("file", "folder") else BAD[category]
    argv = _argv(command, parser, _base(files)[command], action, value)
    try:
        status = main(argv)
    except Reached:
        pytest.fail(f"senet {' '.join(argv)}: a bad value reached heavy work")
    err = capsys.readouterr().err
    assert status == 2, (argv, err)
    assert err.count("\n") == 1 and err.startswith("senet: error:"), (argv, err)
    assert "Traceback" not in err


def test_the_matrix_is_not_empty():
    # 9 commands; the rules refuse most categories for numeric options, so the matrix is big.
    assert len(list(_cases())) > 500


@pytest.mark.parametrize("check, category", [
    (checks.Int(1), "zero"), (checks.Int(0), "negative"), (checks.Float(0, lo_open=True), "zero"),
    (checks.Float(), "nan"), (checks.Float(), "inf"), (checks.Path("read-dir"), "file for folder"),
])
def test_the_rules_refuse_what_the_issue_lists(check, category):
    assert must_refuse(check, category)


def test_checks_refuse_non_finite_and_out_of_range_values():
    assert checks.Float()("1e3") == 1000.0
    for bad in ("nan", "inf", "-inf", float("nan"), math.inf, True, "1e400"):
        with pytest.raises(ValueError, match="finite"):
            checks.Float()(bad)
    with pytest.raises(ValueError, match="from 1 to"):
        checks.Int(1)(0)
    with pytest.raises(ValueError):
        checks.Int()(2.0)  # a float where an integer is expected, as YAML `epochs: 2.0` gives
    with pytest.raises(ValueError):
        checks.Text()(5)  # a number where text is expected, as YAML `model: 5` gives
