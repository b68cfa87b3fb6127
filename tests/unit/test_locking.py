"""held_lock: acquire or LockBusy, background extension, release on exit, `lost` when the lock goes."""

from __future__ import annotations

import asyncio

import pytest

from adapters.memory.locks import InMemoryLocks
from core.errors import CoreError, Unavailable
from core.locking import HeldLock, LockBusy, held_lock
from tests.fakes import FakeMonotonic

pytestmark = pytest.mark.timeout(30)

TTL = 0.06  # the keeper extends every 20 ms of real time; expiry itself follows the fake clock


class WatchedLocks:
    """InMemoryLocks that reports each extension and can be told to fail like an unreachable store."""

    def __init__(self, clock: FakeMonotonic) -> None:
        self.inner = InMemoryLocks(clock)
        self.extended = asyncio.Queue[bool]()
        self.extend_fails = False
        self.release_fails = False
        self.released: list[str] = []

    async def acquire(self, name: str, ttl_seconds: float) -> str | None:
        return await self.inner.acquire(name, ttl_seconds)

    async def extend(self, name: str, token: str, ttl_seconds: float) -> bool:
        if self.extend_fails:
            raise Unavailable("lock store unreachable")
        extended = await self.inner.extend(name, token, ttl_seconds)
        self.extended.put_nowait(extended)
        return extended

    async def release(self, name: str, token: str) -> bool:
        self.released.append(token)
        if self.release_fails:
            raise Unavailable("lock store unreachable")
        return await self.inner.release(name, token)


@pytest.fixture
def clock() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def locks(clock: FakeMonotonic) -> WatchedLocks:
    return WatchedLocks(clock)


async def next_extension(locks: WatchedLocks) -> bool:
    """The outcome of the first extension from now on (earlier ones, made at an earlier fake time, are dropped)."""
    while not locks.extended.empty():
        locks.extended.get_nowait()
    return await asyncio.wait_for(locks.extended.get(), 5)


async def lost(held: HeldLock) -> None:
    await asyncio.wait_for(held.lost_event.wait(), 5)


async def test_the_lock_is_held_inside_and_released_on_exit(locks: WatchedLocks) -> None:
    async with held_lock(locks, "job", 30) as held:
        assert held.name == "job" and held.token
        assert await locks.acquire("job", 30) is None
        assert not held.lost
    assert locks.released == [held.token]
    assert await locks.acquire("job", 30) is not None


async def test_a_held_name_raises_lock_busy(locks: WatchedLocks) -> None:
    other = await locks.acquire("job", 30)
    with pytest.raises(LockBusy) as raised:
        async with held_lock(locks, "job", 30):
            pytest.fail("the block must not run")
    assert raised.value.name == "job"
    assert not isinstance(raised.value, CoreError)
    assert await locks.release("job", other) is True


async def test_extension_keeps_the_lock_past_its_ttl(locks: WatchedLocks, clock: FakeMonotonic) -> None:
    async with held_lock(locks, "job", TTL) as held:
        for _ in range(6):  # 6 × ttl/2 of fake time: three ttls in all, yet never one without an extension
            clock.advance(TTL / 2)
            assert await next_extension(locks) is True
        assert await locks.acquire("job", TTL) is None
        assert not held.lost
    assert await locks.acquire("job", TTL) is not None


async def test_without_extension_the_same_time_would_free_it(locks: WatchedLocks, clock: FakeMonotonic) -> None:
    token = await locks.acquire("job", TTL)
    clock.advance(TTL * 3)
    assert await locks.extend("job", token, TTL) is False
    assert await locks.acquire("job", TTL) is not None


async def test_release_on_exit_when_the_block_raises(locks: WatchedLocks) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with held_lock(locks, "job", 30) as held:
            raise RuntimeError("boom")
    assert locks.released == [held.token]
    assert await locks.acquire("job", 30) is not None


async def test_lost_is_set_when_the_lock_is_stolen(locks: WatchedLocks, clock: FakeMonotonic) -> None:
    async with held_lock(locks, "job", TTL) as held:
        clock.advance(TTL * 2)  # expired before the keeper's next extension
        thief = await locks.acquire("job", 30)
        assert thief is not None
        await lost(held)
        assert held.lost
    # The old owner's release on exit left the thief's lock alone.
    assert await locks.acquire("job", 30) is None
    assert await locks.release("job", thief) is True


async def test_lost_is_set_when_the_store_is_unavailable(locks: WatchedLocks) -> None:
    async with held_lock(locks, "job", TTL) as held:
        locks.extend_fails = True
        await lost(held)
        assert held.lost


async def test_unavailable_on_release_is_suppressed(locks: WatchedLocks) -> None:
    locks.release_fails = True
    async with held_lock(locks, "job", 30) as held:
        pass
    assert locks.released == [held.token]


async def test_the_keeper_stops_on_exit(locks: WatchedLocks) -> None:
    async with held_lock(locks, "job", TTL):
        assert await next_extension(locks) is True
    keepers = [task for task in asyncio.all_tasks() if task.get_name() == "keep lock job alive"]
    assert keepers == []
