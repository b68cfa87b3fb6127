"""LocalLocks: FIFO per id, ascending order, a capacity, a deadline; cleaned up after use, cancellation, timeout."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from adapters.local_locks import LocalLocks
from core.errors import Unavailable


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


async def test_capacity_lets_that_many_hold_an_id_at_once_in_arrival_order() -> None:
    turns, a = LocalLocks(capacity=2), uuid4()
    first, second = await turns.acquire([a]), await turns.acquire([a])
    third = asyncio.create_task(turns.acquire([a]))
    fourth = asyncio.create_task(turns.acquire([a]))
    await asyncio.sleep(0)
    assert not third.done() and not fourth.done()
    turns.release(first)
    assert await asyncio.wait_for(third, 1) == [a]
    assert not fourth.done()
    turns.release(second)
    assert await asyncio.wait_for(fourth, 1) == [a]
    turns.release([a])
    turns.release([a])
    assert turns._locks == {} and turns._users == {}


async def test_a_deadline_that_passes_raises_unavailable_holding_nothing() -> None:
    locks, a, b = LocalLocks(), uuid4(), uuid4()
    held = await locks.acquire([b])
    deadline = asyncio.get_running_loop().time() + 0.05
    with pytest.raises(Unavailable, match=str(b)):
        await locks.acquire([a, b], deadline=deadline)  # takes a, then gives up waiting for b
    assert locks._users == {b: 1}, "a was given back and the waiter for b forgotten"
    locks.release(held)
    assert locks._locks == {} and locks._users == {}


async def test_a_free_lock_is_taken_even_when_the_deadline_has_passed() -> None:
    locks, a = LocalLocks(), uuid4()
    past = asyncio.get_running_loop().time() - 1
    assert await locks.acquire([a], deadline=past) == [a]
    locks.release([a])
