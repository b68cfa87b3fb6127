"""Trying again while a dependency cannot be reached (`Unreachable`: the database restarting, a failover), for a
bounded time, when giving up would cost more than waiting (work already done outside the transaction). A wait that
ran out under load (`Unavailable` itself) is not tried again: waiting more would add to the load."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from core.errors import Unreachable

T = TypeVar("T")


async def patiently(attempt: Callable[[], Awaitable[T]], *, patience: float, first: float = 0.1,
                    longest: float = 2.0) -> T:
    """`attempt()`'s result, calling it again after each `Unreachable` (waits from `first` s, doubling, at most
    `longest` s) until the next wait would end more than `patience` s after the first call: then the last
    `Unreachable` is raised. Any other error (a plain `Unavailable` too) is raised at once."""
    loop = asyncio.get_running_loop()
    until, delay = loop.time() + patience, first
    while True:
        try:
            return await attempt()
        except Unreachable:
            if loop.time() + delay > until:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)
