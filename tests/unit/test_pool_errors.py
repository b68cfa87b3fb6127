"""asyncpg's errors about the connection (not the query) become `Unavailable`: a 503, never a 500."""

from __future__ import annotations

import asyncpg
import pytest

from adapters.postgres.pool import translate_errors
from core.errors import ConcurrencyConflict, Unavailable

LOST = [asyncpg.InterfaceError("connection is closed"),
        asyncpg.InterfaceError("cannot call Connection.fetch(): connection has been released back to the pool"),
        asyncpg.InterfaceError("pool is closing"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
        ConnectionResetError("reset by peer"), TimeoutError()]


@pytest.mark.parametrize("error", LOST, ids=lambda error: f"{type(error).__name__}: {error}")
def test_a_lost_connection_is_unavailable(error: Exception) -> None:
    with pytest.raises(Unavailable), translate_errors():
        raise error


def test_a_serialization_failure_is_a_conflict_to_retry() -> None:
    with pytest.raises(ConcurrencyConflict), translate_errors():
        raise asyncpg.exceptions.SerializationError("could not serialize access")


def test_a_programming_error_stays_what_it_is() -> None:
    """A wrong query is a bug to see in the logs, not an outage to hide behind a 503."""
    with pytest.raises(asyncpg.InterfaceError), translate_errors():
        raise asyncpg.InterfaceError("the server expects 2 arguments for this query, 1 was passed")
