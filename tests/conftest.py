"""Shared test settings (deterministic, small, CPU-only) and the CI guard against quiet skips.

With ``CI`` set (``CI=true``, as every CI service sets it), a skipped test or module is a failure unless its reason
is one that depends on the machine rather than on the set-up: no GPU, no Triton, no C++ compiler, a non-glibc
libc, an older Python. The set-up (``python3 tasks.py test``) installs the extras and Fashion-MNIST, so a skip for a missing
package or dataset means CI ran less than it claims. At the end the suite prints what it ran and every skip.
"""

import os
import re

os.environ.setdefault("KERAS_BACKEND", "torch")

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

#: Skip reasons that describe the machine, not a missing install: allowed in CI too.
MACHINE_DEPENDENT_SKIPS = re.compile(
    r"CUDA|GPU|Triton|triton|C\+\+ compiler|glibc|mallinfo|interpreted in this process|needs Python >= 3\.\d+",
    re.IGNORECASE)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _unexpected_skip(report) -> bool:
    return report.skipped and not hasattr(report, "wasxfail") and not MACHINE_DEPENDENT_SKIPS.search(
        _skip_reason(report))


def _fail_if_unexpected_skip(report, what: str) -> None:
    if in_ci() and _unexpected_skip(report):
        reason = _skip_reason(report)
        report.outcome = "failed"
        report.longrepr = (f"unexpected skip in CI of {what}: {reason}\nThe set-up (python3 tasks.py test) installs "
                           f"every extra and Fashion-MNIST, so this must run here; only machine-dependent skips "
                           f"(GPU, Triton, C++ compiler, glibc) are allowed (tests/conftest.py).")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_if_unexpected_skip(outcome.get_result(), item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_if_unexpected_skip(outcome.get_result(), f"module {collector.nodeid}")


def pytest_terminal_summary(terminalreporter):
    """What ran: the count of each outcome, then every skip with its reason and whether CI allows it."""
    stats = terminalreporter.stats
    counts = {key: len(stats.get(key, [])) for key in ("failed", "error", "skipped", "xfailed", "xpassed")}
    counts = {"passed": len([r for r in stats.get("passed", []) if r.when == "call"]), **counts}
    terminalreporter.section("what ran")
    terminalreporter.write_line(", ".join(f"{n} {key}" for key, n in counts.items()) + f" (CI={in_ci()})")
    for report in stats.get("skipped", []):
        kind = "machine-dependent" if MACHINE_DEPENDENT_SKIPS.search(_skip_reason(report)) else "UNEXPECTED in CI"
        terminalreporter.write_line(f"skipped [{kind}] {report.nodeid}: {_skip_reason(report)}")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny models: one intra-op thread is faster than two on a shared machine, and frugal."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
