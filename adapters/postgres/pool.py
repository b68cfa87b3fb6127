"""The asyncpg pool and the translation of driver errors into core errors."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

import asyncpg

from core.errors import ConcurrencyConflict, Unavailable, Unreachable

#: SQLSTATEs after which the whole transaction may simply be run again.
RETRYABLE = {"40001", "40P01"}


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _reset(conn: asyncpg.Connection) -> None:
    """Cheaper than asyncpg's default reset (four statements on every release): our units of
    work end their transactions and use only transaction-scoped advisory locks, LISTEN runs on
    dedicated connections, and nothing sets session state; only an interrupted transaction
    needs undoing."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(dsn: str, *, min_size: int, max_size: int, command_timeout: float,
                      connect_timeout: float = 60.0) -> asyncpg.Pool:
    """A lazily-connecting pool: the API starts even while the database is down (and answers 503)."""
    pool = asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=_init_connection, reset=_reset,
        command_timeout=command_timeout, max_inactive_connection_lifetime=60,  # idle ones go back within a minute
        timeout=connect_timeout,
    )
    with translate_errors():
        await pool
    return pool


class translate_errors:  # noqa: N801 - used as a context manager, like contextlib's helpers
    """Turn asyncpg's serialization, deadlock and connection errors into core errors: a lost or refused connection
    is `Unreachable`, a wait that ran out (the pool's acquire timeout, a statement timeout) `Unavailable`."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> Literal[False]:
        if exc is None:
            return False
        if isinstance(exc, asyncpg.PostgresError) and getattr(exc, "sqlstate", None) in RETRYABLE:
            raise ConcurrencyConflict("the transaction lost a race; retry it") from exc
        if isinstance(exc, (asyncio.TimeoutError, asyncpg.exceptions.TooManyConnectionsError,
                            asyncpg.exceptions.QueryCanceledError)):  # a wait that ran out: overloaded, or stuck
            raise Unavailable("the database is unavailable; retry later") from exc
        if isinstance(exc, (OSError, asyncpg.exceptions.PostgresConnectionError,
                            asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.AdminShutdownError)):
            raise Unreachable("the database is unavailable; retry later") from exc
        if isinstance(exc, asyncpg.InterfaceError) and lost_connection(exc):
            raise Unreachable("the database connection was lost; retry later") from exc
        if isinstance(exc, asyncpg.exceptions.InternalClientError):  # a connection left mid-operation by a loss
            raise Unreachable("the database connection is broken; retry later") from exc
        return False


#: What asyncpg's InterfaceError says when the connection, not the query, is the problem.
_LOST = ("connection is closed", "released back to the pool", "pool is closing", "pool is closed")


def lost_connection(error: asyncpg.InterfaceError) -> bool:
    """True when the error is about the connection (closed, or released under us after a loss), not a bug."""
    text = str(error)
    return any(phrase in text for phrase in _LOST)
