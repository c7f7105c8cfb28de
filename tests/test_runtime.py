"""senet.runtime: glibc malloc thresholds. Each check runs in a child process: the setting is process-wide."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

from senet.runtime import tune_cpu_allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Allocates a 64 MiB tensor (above glibc's default mmap threshold, below the tuned one) and prints how many bytes
# glibc holds in mmapped blocks while it is alive (mallinfo2().hblkhd) and whether tune_cpu_allocator applied.
_PROBE = textwrap.dedent("""
    import ctypes, sys, torch
    from senet.runtime import tune_cpu_allocator
    class MallInfo2(ctypes.Structure):
        _fields_ = [(n, ctypes.c_size_t) for n in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2"):
        print("no-mallinfo2"); sys.exit(0)
    libc.mallinfo2.restype = MallInfo2
    applied = tune_cpu_allocator() if sys.argv[1] == "tune" else None
    before = libc.mallinfo2().hblkhd
    t = torch.empty(64 << 20, dtype=torch.uint8)
    t.fill_(1)
    print(applied, libc.mallinfo2().hblkhd - before)
""")


def _probe(mode: str, **env: str) -> tuple[str, int]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "SENET_TUNE"))}
    proc = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, timeout=120,
                          env={**child_env, **env}, check=True)
    out = proc.stdout.split()
    if out == ["no-mallinfo2"]:
        pytest.skip("glibc without mallinfo2")
    return out[0], int(out[1])


@pytest.mark.skipif(not GLIBC, reason="glibc malloc only")
def test_default_glibc_maps_a_large_tensor_and_the_tuned_heap_does_not():
    applied, mapped = _probe("default")
    assert mapped >= 64 << 20  # glibc's default: a fresh mmap (page faults on first touch) per large tensor
    applied, mapped = _probe("tune")
    assert applied == "True" and mapped == 0  # served from the heap, so freed memory is reused


@pytest.mark.skipif(not GLIBC, reason="glibc malloc only")
@pytest.mark.parametrize("env", [{"SENET_TUNE_MALLOC": "0"}, {"MALLOC_MMAP_THRESHOLD_": "131072"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"}])
def test_opt_out_and_user_settings_are_respected(env):
    applied, mapped = _probe("tune", **env)
    assert applied == "False" and mapped >= 64 << 20


@pytest.mark.skipif(not GLIBC, reason="glibc malloc only")
def test_an_unrelated_glibc_tunable_does_not_stop_the_tuning():
    applied, mapped = _probe("tune", GLIBC_TUNABLES="glibc.pthread.rseq=0")
    assert applied == "True" and mapped == 0


@pytest.mark.parametrize("bad", [0, -1, 2**31, 1.5, True, "1"])
def test_limit_must_fit_a_c_int(bad):
    with pytest.raises(ValueError, match="limit_bytes"):
        tune_cpu_allocator(bad)


def test_the_senet_program_tunes_and_main_alone_does_not(monkeypatch):
    from senet import cli

    calls = []
    monkeypatch.setattr(cli, "tune_cpu_allocator", lambda: calls.append("tune") or True)
    monkeypatch.setattr(cli, "build_parser", lambda real=cli.build_parser: calls.append("parse") or real())
    assert cli.main(["models"]) == 0
    assert calls == ["parse"]  # tests and embedding programs call main(): their process is left alone
    monkeypatch.setattr(sys, "argv", ["senet", "models"])
    assert cli.console_main() == 0
    assert calls == ["parse", "tune", "parse"]  # the program tunes first


@pytest.mark.skipif(not GLIBC, reason="glibc malloc only")
def test_a_refused_mmap_threshold_leaves_the_trim_threshold_alone(monkeypatch):
    import ctypes

    from senet import runtime

    seen = []

    class FakeLibc:
        @staticmethod
        def mallopt(param, value):
            seen.append(param)
            return 0 if param == runtime._M_MMAP_THRESHOLD else 1

    monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLibc)
    for name in ("SENET_TUNE_MALLOC", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    assert tune_cpu_allocator() is False
    assert seen == [runtime._M_MMAP_THRESHOLD]
