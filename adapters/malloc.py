"""glibc's malloc arenas, capped for a process that runs many threads (the worker).

glibc gives each thread that allocates under contention an arena of its own, up to 8 per core, and an arena
keeps the pages it once used. The worker runs Dramatiq's consumer and worker threads beside its event loop,
and its resident memory grew steadily in the soak while the Python heap did not (docs/benchmarks.md, "Soak").
`MALLOC_ARENA_MAX` is the usual remedy; this sets the same limit from inside the process, before its threads
start, unless the environment already chose one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

M_ARENA_MAX = -8  # glibc's malloc.h
DEFAULT_ARENAS = 2


def limit_arenas(arenas: int = DEFAULT_ARENAS) -> bool:
    """Cap glibc's malloc arenas at `arenas`; False where there is no glibc (musl, macOS) or the environment
    sets `MALLOC_ARENA_MAX` itself (glibc has read it at start-up: it wins)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))
