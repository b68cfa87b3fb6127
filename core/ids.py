"""Time-ordered UUIDv7 identifiers (RFC 9562), so ids sort roughly by creation time."""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar

#: Set by `provisional_ids` for the work running in it (a task, and the tasks it starts): ids come from there.
_provisional: ContextVar[Callable[[], uuid.UUID] | None] = ContextVar("provisional_ids", default=None)


class Uuid7:
    """A UUIDv7 source whose ids are strictly increasing: a 12-bit counter orders ids made in one millisecond."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def __call__(self) -> uuid.UUID:
        provisional = _provisional.get()
        if provisional is not None:
            return provisional()
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms <= self._last_ms:
                ms = self._last_ms
                self._counter += 1
                if self._counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next one
                    ms += 1
                    self._counter = 0
            else:
                self._counter = int.from_bytes(os.urandom(2), "big") & 0x3FF
            self._last_ms = ms
            rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
            value = (ms << 80) | (0x7 << 76) | (self._counter << 64) | (0b10 << 62) | rand
        return uuid.UUID(int=value)


#: Return a fresh UUIDv7; ids made in one process are strictly increasing (one source per process, as
#: `uuid.uuid4` is one function: ids are values, not a dependency worth injecting).
new_id = Uuid7()


@contextlib.contextmanager
def provisional_ids() -> Iterator[None]:
    """Within the block, `new_id` hands out throwaway ids (UUIDv8, a counter from 1) and leaves the process's
    UUIDv7 source untouched: a dry run (API.md §10) computes exactly what the real run would, but consumes no id.

    Throwaway ids are distinct from each other and from every real id (another version), and must never be stored.
    """
    counter = itertools.count(1)
    token = _provisional.set(lambda: uuid.UUID(int=(0x8 << 76) | (0b10 << 62) | next(counter)))
    try:
        yield
    finally:
        _provisional.reset(token)
