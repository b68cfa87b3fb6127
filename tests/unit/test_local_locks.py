"""LocalLocks: FIFO per id, ascending order, cleaned up after use and after cancellation."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from adapters.postgres.local_locks import LocalLocks


async def test_second_holder_waits_until_release_and_state_is_cleaned() -> None:
    locks, a, b = LocalLocks(), uuid4(), uuid4()
    held = await locks.acquire([b, a])
    assert held == sorted([a, b])
    waiter = asyncio.create_task(locks.acquire([a]))
    await asyncio.sleep(0)
    assert not waiter.done()
    locks.release(held)
    assert await asyncio.wait_for(waiter, 1) == [a]
    locks.release([a])
    assert locks._locks == {} and locks._users == {}


async def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    locks, a, b = LocalLocks(), uuid4(), uuid4()
    first = await locks.acquire([b])
    waiter = asyncio.create_task(locks.acquire([a, b]))  # takes a, then waits for b
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    locks.release(first)
    assert locks._locks == {} and locks._users == {}
    assert await asyncio.wait_for(locks.acquire([a, b]), 1) == sorted([a, b])
