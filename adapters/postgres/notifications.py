"""PostgreSQL LISTEN on a connection of its own: wakes a waiter when a committed transaction NOTIFYs."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg


class PgNotifications:
    """`event` is set on every notification on `channel`; the waiter clears it before it looks for work."""

    def __init__(self, database_url: str, channel: str) -> None:
        self._url, self._channel = database_url, channel
        self._conn: asyncpg.Connection | None = None
        self.event = asyncio.Event()

    async def listen(self) -> None:
        """(Re)connect and LISTEN unless already listening; a database that is down is tried again next call."""
        if self._conn is not None and not self._conn.is_closed():
            return
        conn: asyncpg.Connection | None = None
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError):
            conn = await asyncpg.connect(self._url, timeout=5)
            await conn.add_listener(self._channel, lambda *_: self.event.set())
            self._conn, conn = conn, None
        if conn is not None:  # connected but could not listen: drop it, try again next time
            with contextlib.suppress(Exception):
                await conn.close()

    async def aclose(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.close()
