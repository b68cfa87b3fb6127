"""Ports that coordinate processes and time: cross-process locks, database leases, the clock."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Clock(Protocol):
    """The current time, in UTC."""

    def now(self) -> datetime: ...


class Locks(Protocol):
    """Short-lived cross-process locks with an owner token and a time to live.

    `acquire` returns a fresh token, or None while another owner holds the name.
    `extend` and `release` act only if the token still owns the name (a lock
    that expired and was taken by someone else is never extended or released by
    its old owner) and say whether they did. They coordinate workers; they never
    alone protect a balance. Raise `Unavailable` when the store cannot be reached.
    """

    async def acquire(self, name: str, ttl_seconds: float) -> str | None: ...

    async def extend(self, name: str, token: str, ttl_seconds: float) -> bool: ...

    async def release(self, name: str, token: str) -> bool: ...


class Lease(Protocol):
    """A named lease in the database, so one process at a time runs a periodic job."""

    async def acquire(self, name: str, owner: str, ttl_seconds: float) -> int | None:
        """The fencing token if `owner` holds (or now takes) the lease, else None."""
        ...

    async def reap_idempotency_keys(self, name: str, owner: str, token: int, limit: int) -> int:
        """Delete up to `limit` expired idempotency records while the lease is still ours; how many went."""
        ...

    async def purge_published_outbox(self, name: str, owner: str, token: int, before: datetime, limit: int) -> int:
        """Delete up to `limit` outbox rows published before `before` while the lease is ours; how many went."""
        ...
