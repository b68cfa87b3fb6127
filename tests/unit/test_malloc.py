"""The worker's cap on glibc's malloc arenas, and its trimming (adapters/malloc.py)."""

from __future__ import annotations

import platform
import subprocess
import sys
import threading
import time

import pytest

from adapters.malloc import limit_arenas, start_trimming

GLIBC = platform.libc_ver()[0] == "glibc"


NO_MALLOPT = "mallopt(M_ARENA_MAX) is glibc's; elsewhere limit_arenas answers False"
NO_MALLOC_TRIM = "malloc_trim is glibc's; elsewhere trimmer answers None"


@pytest.mark.skipif(not GLIBC, reason=NO_MALLOPT)  # allowed: glibc-only call; test_no_libc_found covers the rest
def test_the_cap_is_set_on_glibc() -> None:
    # in a child: the cap is process-wide and must not leak into the test session
    code = "from adapters.malloc import limit_arenas, start_trimming; print(limit_arenas(2))"
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


# In a child: a thread (an arena of its own) allocates ~100 MiB in small blocks and frees all but the last, which
# pins the arena's top: glibc keeps the freed pages until malloc_trim gives them back.
_FRAGMENTED = """
import threading, time
from adapters.malloc import trimmer

def rss():
    return int(next(l for l in open('/proc/self/status') if l.startswith('VmRSS')).split()[1]) // 1024

def work():
    blocks = [bytes(2000) for _ in range(50_000)]
    global kept
    kept = blocks[-1]
    del blocks

thread = threading.Thread(target=work); thread.start(); thread.join()
before = rss(); started = time.perf_counter(); gave = trimmer()(); took = time.perf_counter() - started
print(before, rss(), gave, took)
"""


@pytest.mark.skipif(not GLIBC, reason=NO_MALLOC_TRIM)  # allowed: glibc-only; the fallback has its own test
def test_a_trim_gives_back_the_pages_an_arena_kept() -> None:
    out = subprocess.run([sys.executable, "-c", _FRAGMENTED], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"}, cwd=".")
    before, after, gave, took = out.stdout.split()
    assert gave == "True"
    assert int(before) - int(after) > 50, out.stdout  # MiB: most of the ~100 freed come back
    assert float(took) < 0.5


def test_trimming_runs_every_interval_until_stopped() -> None:
    calls: list[float] = []
    stop = threading.Event()

    def trim() -> bool:
        calls.append(time.monotonic())
        return True

    thread = start_trimming(0.01, trim=trim, stop=stop)
    assert thread is not None and thread.daemon
    deadline = time.monotonic() + 5
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(timeout=5)
    assert len(calls) >= 3 and not thread.is_alive()


def test_no_trimming_without_malloc_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ctypes.util.find_library", lambda name: None)
    assert start_trimming(0.01) is None


# In a child: the freeze is process-wide. What lives at the freeze is frozen, the garbage of then is collected first
# (not frozen for ever), cycles made after it are still collected, and the youngest generation is collected less often.
_FREEZE = """
import gc, weakref
from adapters.malloc import YOUNG_THRESHOLD, tune_collector
class Node: pass
def cycle():
    a, b = Node(), Node(); a.peer, b.peer = b, a
    return weakref.ref(a)
kept = [Node() for _ in range(1000)]
garbage = cycle()
frozen = tune_collector()
print(frozen >= 1000, garbage() is None)
later = cycle(); gc.collect()
print(later() is None, gc.get_count()[2] == 0, gc.get_threshold()[0] == YOUNG_THRESHOLD)
"""


def test_tune_collector_takes_the_started_process_out_of_full_collections() -> None:
    out = subprocess.run([sys.executable, "-c", _FREEZE], capture_output=True, text=True, check=True, cwd=".")
    assert out.stdout.split() == ["True"] * 5
