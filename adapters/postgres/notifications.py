"""PostgreSQL LISTEN on a connection of its own: wakes a waiter when a committed transaction NOTIFYs; optionally
one listener of many leads (a session advisory lock on that connection)."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

_FAILURES = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError)

#: The outbox relay's lead: an advisory lock (class, id) pair of this application ("pays", 1).
RELAY_LEAD = (0x70617973, 1)


class PgNotifications:
    """`event` is set on every notification on `channel`; the waiter clears it before it looks for work.

    With `lead` (an advisory lock's two-integer key: a key space apart from the one-bigint keys of the
    idempotency locks), `leading` says whether this listener holds the lock, on its own
    connection: one process of all those listening on the database leads, and holds the lead until its
    connection ends (its process stopped or killed, the database restarted). The others try again on each
    `listen`. The outbox relay uses it so that one relay, not every worker's, answers each notification: the
    others' claims found nothing (SKIP LOCKED) or split the rows into smaller batches. Without `lead`, every
    listener leads."""

    def __init__(self, database_url: str, channel: str, *, lead: tuple[int, int] | None = None) -> None:
        self._url, self._channel, self._lead = database_url, channel, lead
        self._conn: asyncpg.Connection | None = None
        self.event = asyncio.Event()
        self.leading = lead is None

    async def listen(self) -> None:
        """(Re)connect and LISTEN unless already listening, and try to lead if it does not; a database that is
        down is tried again next call."""
        if self._conn is not None and not self._conn.is_closed():
            if not self.leading:
                await self._try_lead(self._conn)
            return
        self.leading = self._lead is None
        conn: asyncpg.Connection | None = None
        with contextlib.suppress(*_FAILURES):
            conn = await asyncpg.connect(self._url, timeout=5)
            await conn.add_listener(self._channel, lambda *_: self.event.set())
            self._conn, conn = conn, None
            await self._try_lead(self._conn)
        if conn is not None:  # connected but could not listen: drop it, try again next time
            with contextlib.suppress(Exception):
                await conn.close()

    async def _try_lead(self, conn: asyncpg.Connection) -> None:
        if self._lead is None:
            return
        try:
            self.leading = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *self._lead, timeout=5))
        except _FAILURES:  # the connection is broken: the next `listen` connects again
            self.leading = False
            with contextlib.suppress(Exception):
                await conn.close()

    async def aclose(self) -> None:
        self.leading = self._lead is None
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.close()
