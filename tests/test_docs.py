"""The README and the documentation site: short, first things first, every link and command real, strict build."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _blocks(path: Path, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(path.read_text()) if lang == language]


def test_readme_is_short_and_starts_with_the_two_set_up_commands():
    text = README.read_text()
    assert len(text) <= 10_000, f"README.md is {len(text)} characters; the limit is 10,000"
    title, rest = text.split("\n", 1)
    assert title.startswith("# ")
    first = FENCE.search(rest)
    assert first is not None and not rest[: first.start()].strip(), "the set-up commands must come first"
    commands = [line.split("#")[0].strip() for line in first.group(2).splitlines()]
    assert commands == ["python3 tasks.py demo", "python3 tasks.py test"]
    # what a newcomer looks for is on the first screen: install, the block, training, fine-tuning
    first_screen = text[:6000]
    for needle in ("pip install", "SqueezeExcite", "senet train", "--init-from"):
        assert needle in first_screen, needle


def test_ci_runs_the_readme_test_command():
    assert "python3 tasks.py test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files_that_exist(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+://", target) or target.startswith(("#", "mailto:")):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{page.name}: broken link {target}"


def _subcommand_options() -> dict[str, set[str]]:
    from senet.cli import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {name: {s for a in p._actions for s in a.option_strings} for name, p in sub.choices.items()}


def _senet_invocations(script: str) -> list[list[str]]:
    """Each `senet SUBCOMMAND ...` in a shell block, continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", script)
    found = []
    for line in joined.splitlines():
        line = line.split(" #")[0].replace("$(which senet)", "senet")
        if line.lstrip().startswith("#"):
            continue
        words = shlex.split(line, posix=True)
        for i, word in enumerate(words):
            if word == "senet" and i + 1 < len(words):
                found.append(words[i + 1:])
                break
    return found


def test_every_documented_command_and_option_exists():
    """`senet SUB --option` in the README's and the docs' shell blocks is a real subcommand and option."""
    options = _subcommand_options()
    checked, unknown = 0, []
    for page in PAGES:
        for script in _blocks(page, "bash"):
            for words in _senet_invocations(script):
                sub = words[0]
                if sub.startswith("-"):
                    continue  # `senet --version` and the like: the top-level parser
                checked += 1
                if sub not in options:
                    unknown.append(f"{page.name}: senet {sub}")
                    continue
                unknown += [f"{page.name}: senet {sub} {word.split('=')[0]}" for word in words[1:]
                            if word.startswith("--") and word.split("=")[0] not in options[sub]]
    assert checked >= 30  # the pages show that many commands; a parser that found none would pass vacuously
    assert not unknown, "documented but not in the parser: " + "; ".join(sorted(set(unknown)))


def test_the_readme_block_in_five_lines_runs():
    (block,) = [b for b in _blocks(README, "python") if "SqueezeExcite" in b]
    assert len(block.strip().splitlines()) == 5
    exec(compile(block, "README.md", "exec"), {})  # noqa: S102 - our own README's example


def _mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], capture_output=True, text=True, env=env, timeout=600, cwd=config.parent,
                          check=False)


needs_mkdocs = pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers") is None,
    reason='the docs extra is not installed (pip install "senet[docs]"; python3 tasks.py installs it)')


@needs_mkdocs
def test_site_builds_strictly_with_every_page_and_the_api_reference(tmp_path):
    result = _mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr[-4000:]
    site = tmp_path / "site"
    for page in ("getting-started", "block", "models", "contract", "training", "finetuning", "distributed",
                 "analysis", "interop", "keras", "errors", "performance", "api/layers", "changelog"):
        assert (site / page / "index.html").is_file(), page
    api = (site / "api" / "layers" / "index.html").read_text()
    assert "SqueezeExcite" in api and "reduction" in api  # rendered from the docstrings and signatures


@needs_mkdocs
@pytest.mark.slow
def test_a_broken_reference_fails_the_strict_build(tmp_path):
    work = tmp_path / "tree"
    shutil.copytree(DOCS, work / "docs")
    shutil.copy(ROOT / "mkdocs.yml", work / "mkdocs.yml")
    (work / "CHANGELOG.md").write_text("# Changelog\n")
    config = (work / "mkdocs.yml").read_text().replace("paths: [src]", f"paths: [{ROOT / 'src'}]")
    (work / "mkdocs.yml").write_text(config)
    page = work / "docs" / "block.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    result = _mkdocs_build(work / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0 and "no-such-page.md" in result.stderr


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_examples_are_valid_python(page):
    for block in _blocks(page, "python"):
        compile(block, str(page), "exec")
