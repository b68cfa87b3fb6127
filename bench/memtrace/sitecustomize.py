"""bench/soak.py --trace-memory DIR: the stack's processes run with this directory first on PYTHONPATH, so Python
imports this module at start-up in each of them. It starts a daemon thread that, after
PAYMENTS_BENCH_TRACEMALLOC_DELAY seconds (default 30: the start-up's imports run untraced, which would otherwise
take minutes on a busy machine), starts tracemalloc (PAYMENTS_BENCH_TRACEMALLOC_FRAMES frames, default 6) and
writes a snapshot every PAYMENTS_BENCH_TRACEMALLOC_SECONDS (default 60) to DIR/<pid>-<n>.snap; bench/soak.py then
compares, per process, the first snapshot after the warm-up with the last. Bench-only: tracemalloc slows the
processes down and costs memory of its own (not counted in its statistics).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import tracemalloc

_DIR = os.environ.get("PAYMENTS_BENCH_TRACEMALLOC_DIR")


def _dump(directory: str, every: float) -> None:
    time.sleep(float(os.environ.get("PAYMENTS_BENCH_TRACEMALLOC_DELAY", "30")))
    tracemalloc.start(int(os.environ.get("PAYMENTS_BENCH_TRACEMALLOC_FRAMES", "6")))
    name = " ".join(sys.argv)[-120:]
    with open(os.path.join(directory, f"{os.getpid()}.cmd"), "w") as handle:
        handle.write(name)
    number = 0
    while True:
        time.sleep(every)
        number += 1
        tracemalloc.take_snapshot().dump(os.path.join(directory, f"{os.getpid()}-{number:03d}.snap"))


if _DIR:
    threading.Thread(target=_dump, args=(_DIR, float(os.environ.get("PAYMENTS_BENCH_TRACEMALLOC_SECONDS", "60"))),
                     daemon=True, name="bench-tracemalloc").start()
