"""In-process locks per account, taken before the row locks.

They protect nothing by themselves (PostgreSQL's row locks do); they keep the
requests of one process that want the same hot account queueing here, where
waiting costs nothing, instead of inside PostgreSQL, where every waiter holds a
connection and the holder's next round trip waits behind everyone's event-loop
work. The lock holder then runs with a quiet event loop and releases sooner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from uuid import UUID


class LocalLocks:
    """FIFO asyncio locks by id, created on demand and dropped when nobody holds or waits."""

    def __init__(self) -> None:
        self._locks: dict[UUID, asyncio.Lock] = {}
        self._users: dict[UUID, int] = {}

    async def acquire(self, ids: Iterable[UUID]) -> list[UUID]:
        """Take the locks in ascending id order; returns what was taken (release it with `release`)."""
        taken: list[UUID] = []
        try:
            for lock_id in sorted(set(ids)):
                lock = self._locks.setdefault(lock_id, asyncio.Lock())
                self._users[lock_id] = self._users.get(lock_id, 0) + 1
                try:
                    await lock.acquire()
                except BaseException:
                    self._forget(lock_id)
                    raise
                taken.append(lock_id)
        except BaseException:
            self.release(taken)
            raise
        return taken

    def release(self, ids: Iterable[UUID]) -> None:
        for lock_id in ids:
            self._locks[lock_id].release()
            self._forget(lock_id)

    def _forget(self, lock_id: UUID) -> None:
        self._users[lock_id] -= 1
        if self._users[lock_id] == 0:
            del self._users[lock_id], self._locks[lock_id]
