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

    #: Random bytes are drawn from the OS this many at a time, not one system call per id (8 bytes an id; a
    #: batch of a hundred transfers makes 700 ids).
    RANDOM_CHUNK = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0
        self._random = b""
        self._offset = 0
        # A forked child must not hand out the parent's bytes drawn ahead: it draws its own.
        os.register_at_fork(after_in_child=self._forget_random)

    def _forget_random(self) -> None:
        self._random, self._offset = b"", 0

    def _bytes(self, count: int) -> int:
        """`count` random bytes (from `os.urandom`, drawn ahead) as an unsigned integer; the lock is held."""
        if self._offset + count > len(self._random):
            self._random, self._offset = os.urandom(self.RANDOM_CHUNK), 0
        start, self._offset = self._offset, self._offset + count
        return int.from_bytes(self._random[start:self._offset], "big")

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
                self._counter = self._bytes(2) & 0x3FF
            self._last_ms = ms
            rand = self._bytes(8) & ((1 << 62) - 1)
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
