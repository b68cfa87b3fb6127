"""In-process queues per account, in front of PostgreSQL's row locks, with a bounded wait.

They protect nothing by themselves (PostgreSQL's row locks do); they keep the
requests of one process that want the same hot account queueing here, where
waiting costs nothing, instead of inside PostgreSQL, where every waiter holds a
connection and the holder's next round trip waits behind everyone's event-loop
work. A process keeps two sets: the account *locks* (one holder, taken just before
the row lock) and the account *turns* (`TURNS_PER_ACCOUNT` holders, taken before a
unit of work takes its pooled connection), so that a storm on one account holds at
most that many connections while the other accounts' requests keep flowing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from operator import attrgetter
from uuid import UUID

from core.errors import Unavailable

#: Units of work per account that may hold a pooled connection at once: one doing its work under the
#: account's lock, the next one already connected (its BEGIN and idempotency claim done) and waiting
#: for the lock, so the hot account's throughput does not pay for those round trips.
TURNS_PER_ACCOUNT = 2

_INT = attrgetter("int")


def ascending(ids: Iterable[UUID]) -> list[UUID]:
    """`ids` once each, ascending: `sorted(set(ids))`, keyed by the ids' integers, which is the order `UUID`'s
    own comparison gives, without a Python call per comparison (a batch names a few hundred accounts)."""
    return sorted(set(ids), key=_INT)


class LocalLocks:
    """FIFO semaphores of `capacity` holders by id, created on demand and dropped when nobody holds or waits."""

    def __init__(self, capacity: int = 1) -> None:
        self._capacity = capacity
        self._locks: dict[UUID, asyncio.Semaphore] = {}
        self._users: dict[UUID, int] = {}

    async def acquire(self, ids: Iterable[UUID], *, deadline: float | None = None) -> list[UUID]:
        """Take the locks in ascending id order, all of them by `deadline` (the event loop's `time()`;
        None: no bound); returns what was taken (give it back with `release`).

        Raises `Unavailable` when the time runs out, holding none of them: the request is shed
        (503 with Retry-After) rather than queued without end behind a hot account.
        """
        taken: list[UUID] = []
        waiting_for: UUID | None = None
        try:
            async with asyncio.timeout_at(deadline):
                for waiting_for in ascending(ids):
                    await self._take(waiting_for)
                    taken.append(waiting_for)
        except BaseException as error:
            self.release(taken)
            if isinstance(error, TimeoutError):
                raise Unavailable(f"too many requests are waiting for account {waiting_for}; retry later") from None
            raise
        return taken

    async def try_acquire(self, ids: Iterable[UUID]) -> list[UUID] | None:
        """Take the locks of `ids` if every one is free now, nobody queueing for it (FIFO stays fair); else
        take none and return None. Taking a free one never suspends, so nothing can come in between."""
        wanted = ascending(ids)
        if any(lock_id in self._locks and self._locks[lock_id].locked() for lock_id in wanted):
            return None
        for lock_id in wanted:
            await self._take(lock_id)
        return wanted

    async def _take(self, lock_id: UUID) -> None:
        lock = self._locks.setdefault(lock_id, asyncio.Semaphore(self._capacity))
        self._users[lock_id] = self._users.get(lock_id, 0) + 1
        try:
            await lock.acquire()
        except BaseException:
            self._forget(lock_id)
            raise

    def release(self, ids: Iterable[UUID]) -> None:
        for lock_id in ids:
            self._locks[lock_id].release()
            self._forget(lock_id)

    def _forget(self, lock_id: UUID) -> None:
        self._users[lock_id] -= 1
        if self._users[lock_id] == 0:
            del self._users[lock_id], self._locks[lock_id]
