"""glibc's malloc arenas, capped and trimmed in a process that runs many threads (the worker).

glibc gives each thread that allocates under contention an arena of its own, up to 8 per core, and an arena
keeps the pages it once used. The worker runs Dramatiq's consumer and worker threads beside its event loop,
and its resident memory grew steadily in the soak while the Python heap did not (docs/benchmarks.md, "Soak").
`MALLOC_ARENA_MAX` is the usual remedy; this sets the same limit from inside the process, before its threads
start, unless the environment already chose one.

The cap alone did not flatten it: a soak still saw the worker grow about 1.5 MiB a minute, all in one arena's
heap, and `malloc_trim(0)` called into the running worker (gdb) gave 15 MiB of 96 back at once: memory freed
but kept, in the middle of the arena, where glibc's own trimming (from the top only) never reaches.
`start_trimming` calls `malloc_trim(0)` every minute from a daemon thread, which returns such pages.

`tune_collector` is the Python collector's side of the same care: what a started process holds stays out of every
full collection.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import threading
from collections.abc import Callable

M_ARENA_MAX = -8  # glibc's malloc.h
DEFAULT_ARENAS = 2
YOUNG_THRESHOLD = 10_000  # container objects allocated (net) between two collections of the youngest generation
TRIM_EVERY = 60.0  # seconds; a trim is milliseconds (9 ms giving back 97 MiB: tests/unit/test_malloc.py)


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def limit_arenas(arenas: int = DEFAULT_ARENAS) -> bool:
    """Cap glibc's malloc arenas at `arenas`; False where there is no glibc (musl, macOS) or the environment
    sets `MALLOC_ARENA_MAX` itself (glibc has read it at start-up: it wins)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))


def trimmer() -> Callable[[], bool] | None:
    """glibc's `malloc_trim(0)` (True when it gave memory back), or None where there is none."""
    malloc_trim = getattr(_libc(), "malloc_trim", None)
    if malloc_trim is None:
        return None
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int

    def trim() -> bool:
        return bool(malloc_trim(0))

    return trim


def start_trimming(every: float = TRIM_EVERY, *, trim: Callable[[], bool] | None = None,
                   stop: threading.Event | None = None) -> threading.Thread | None:
    """Trim every `every` seconds from a daemon thread until `stop` is set; None where there is no malloc_trim."""
    trim = trim or trimmer()
    if trim is None:
        return None
    stopped = stop or threading.Event()

    def loop() -> None:
        while not stopped.wait(every):
            trim()

    thread = threading.Thread(target=loop, name="malloc-trim", daemon=True)
    thread.start()
    return thread


def tune_collector() -> int:
    """Collect once, move every object the process holds into the collector's permanent generation, and let the
    youngest generation grow to `YOUNG_THRESHOLD` objects before it is collected; how many objects are frozen.

    Called once a process has started (the API after its server starts, the worker once its services are built):
    modules, the app, its adapters, 90,000-110,000 objects that live as long as the process. A full collection
    walked all of them, 100-250 ms each in `payments worker` under load (50-80 ms in `payments serve`), with the
    event loop stalled and the row locks of any unit of work it was in held meanwhile; 4-15 ms frozen. Python's
    default young threshold (700) collected the youngest generation about 20 times a second in each process
    under load, 0.8 ms each: at 10,000, a twentieth of the collections and about a fifth of their time
    (docs/benchmarks.md, "The collector"). Objects made later are collected as before."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
    return gc.get_freeze_count()
