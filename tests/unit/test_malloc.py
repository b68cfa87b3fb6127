"""The worker's cap on glibc's malloc arenas (adapters/malloc.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from adapters.malloc import limit_arenas

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="mallopt(M_ARENA_MAX) is glibc's; elsewhere limit_arenas answers False")
def test_the_cap_is_set_on_glibc() -> None:
    # in a child: the cap is process-wide and must not leak into the test session
    code = "from adapters.malloc import limit_arenas; print(limit_arenas(2))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"}, cwd=".")
    assert out.stdout.strip() == "True"


def test_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_arenas(2) is False


def test_no_libc_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setattr("ctypes.util.find_library", lambda name: None)
    assert limit_arenas(2) is False
