"""A pool whose connections record the statements a unit of work sends (the first word of each; BEGIN, COMMIT and
ROLLBACK of its transaction): for tests that count round trips."""

from __future__ import annotations

from typing import Any

import asyncpg


class Recording:
    """A pooled connection that records what the unit of work sends through it."""

    def __init__(self, conn: Any, sent: list[str]) -> None:
        self.conn, self.sent = conn, sent

    def transaction(self) -> Any:
        return RecordingTransaction(self.conn.transaction(), self.sent)

    async def execute(self, sql: str, *args: Any) -> Any:
        self.sent.append("COMMIT" if sql.strip().upper() == "COMMIT" else sql.split(maxsplit=1)[0].upper())
        return await self.conn.execute(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> Any:
        self.sent.append(sql.split(maxsplit=1)[0].upper())
        return await self.conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        self.sent.append(sql.split(maxsplit=1)[0].upper())
        return await self.conn.fetchrow(sql, *args)

    def is_closed(self) -> bool:
        return bool(self.conn.is_closed())


class RecordingTransaction:
    def __init__(self, tx: Any, sent: list[str]) -> None:
        self.tx, self.sent = tx, sent

    async def start(self) -> None:
        self.sent.append("BEGIN")
        await self.tx.start()

    async def commit(self) -> None:
        self.sent.append("COMMIT")
        await self.tx.commit()

    async def rollback(self) -> None:
        self.sent.append("ROLLBACK")
        await self.tx.rollback()


class RecordingPool:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool, self.sent = pool, list[str]()

    async def acquire(self, *, timeout: float) -> Recording:
        return Recording(await self.pool.acquire(timeout=timeout), self.sent)

    async def release(self, conn: Recording, *, timeout: float) -> None:
        await self.pool.release(conn.conn, timeout=timeout)
