"""Time-ordered UUIDv7 identifiers (RFC 9562), so ids sort roughly by creation time."""

from __future__ import annotations

import os
import threading
import time
import uuid


class Uuid7:
    """A UUIDv7 source whose ids are strictly increasing: a 12-bit counter orders ids made in one millisecond."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def __call__(self) -> uuid.UUID:
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
