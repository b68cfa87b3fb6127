"""`held_lock`: hold a `Locks` lock for the length of a block, extending it in the background."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import attrs

from core.errors import Unavailable
from core.ports import Locks


class LockBusy(Exception):
    """Another owner holds the lock; the caller should skip the work or try again later.

    Not a `CoreError`: it is a coordination outcome for workers, never an API failure.
    """

    def __init__(self, name: str) -> None:
        super().__init__(f"lock {name!r} is held by another owner")
        self.name = name


@attrs.define
class HeldLock:
    """A lock held by `held_lock`; `lost` turns true (and `lost_event` is set) once it may no longer be ours."""

    name: str
    token: str
    lost_event: asyncio.Event = attrs.field(factory=asyncio.Event)

    @property
    def lost(self) -> bool:
        return self.lost_event.is_set()


@contextlib.asynccontextmanager
async def held_lock(locks: Locks, name: str, ttl_seconds: float) -> AsyncIterator[HeldLock]:
    """Acquire `name` for the block or raise `LockBusy`; keep it alive while the block runs; release it after.

    The TTL is what frees the lock when its holder dies, so it stays short; a
    background task extends it every ttl/3, which leaves two more chances before
    it would lapse. If an extension fails, because the lock expired and someone
    else took it or because the store is unreachable (`Unavailable`), we can no
    longer be sure we hold it, so `lost` is set and extending stops: the block
    should check `lost` (or await `lost_event`) before each step that needs the
    lock. Locks coordinate workers; they never alone protect a balance, so a lost
    lock costs duplicate work at worst, never money.

    On exit the task is cancelled and the lock released by token, which never
    frees a lock someone else took over. `Unavailable` on release is suppressed:
    the block's own outcome matters more, and the TTL frees the lock anyway.
    `Unavailable` from the acquire propagates; any other error from an extension
    also sets `lost` and is re-raised on exit rather than hidden in the task.
    """
    token = await locks.acquire(name, ttl_seconds)
    if token is None:
        raise LockBusy(name)
    held = HeldLock(name, token)
    keeper = asyncio.create_task(_keep_alive(locks, held, ttl_seconds), name=f"keep lock {name} alive")
    try:
        yield held
    finally:
        keeper.cancel()
        # Wait for the cancellation so no extension is in flight once the lock is released.
        await asyncio.wait([keeper])
        with contextlib.suppress(Unavailable):
            await locks.release(name, token)
        if not keeper.cancelled():
            keeper.result()  # an extension that failed unexpectedly (a bug, not `Unavailable`) surfaces here


async def _keep_alive(locks: Locks, held: HeldLock, ttl_seconds: float) -> None:
    while True:
        await asyncio.sleep(ttl_seconds / 3)
        try:
            extended = await locks.extend(held.name, held.token, ttl_seconds)
        except Unavailable:
            extended = False
        except Exception:
            held.lost_event.set()
            raise
        if not extended:
            held.lost_event.set()
            return
