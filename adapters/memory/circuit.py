"""The in-memory `SharedCircuit`: one provider's circuit shared by the breakers of one process (for tests)."""

from __future__ import annotations

import time
from collections.abc import Callable


class InMemoryCircuit:
    """Open until a point on `clock`, or closed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._open_until = 0.0

    async def open_for(self) -> float:
        return max(0.0, self._open_until - self._clock())

    async def trip(self, seconds: float) -> None:
        self._open_until = self._clock() + seconds

    async def close(self) -> None:
        self._open_until = 0.0
