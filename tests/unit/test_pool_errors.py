"""asyncpg's errors about the connection (not the query) become `Unavailable`: a 503, never a 500. A lost or
refused connection is `Unreachable` (worth waiting a few seconds for); a wait that ran out is `Unavailable` only."""

from __future__ import annotations

import asyncpg
import pytest

from adapters.postgres.pool import translate_errors
from core.errors import ConcurrencyConflict, Unavailable, Unreachable

LOST = [asyncpg.InterfaceError("connection is closed"),
        asyncpg.InterfaceError("cannot call Connection.fetch(): connection has been released back to the pool"),
        asyncpg.InterfaceError("pool is closing"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
        ConnectionResetError("reset by peer"), ConnectionRefusedError("connection refused")]
#: Waits that ran out: the pool's acquire timeout, a statement timeout, the server's connection limit.
RAN_OUT = [TimeoutError(), asyncpg.exceptions.QueryCanceledError("canceling statement due to statement timeout"),
           asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already")]


@pytest.mark.parametrize("error", LOST, ids=lambda error: f"{type(error).__name__}: {error}")
def test_a_lost_connection_is_unreachable(error: Exception) -> None:
    with pytest.raises(Unreachable), translate_errors():
        raise error


@pytest.mark.parametrize("error", RAN_OUT, ids=lambda error: f"{type(error).__name__}: {error}")
def test_a_wait_that_ran_out_is_unavailable_but_not_unreachable(error: Exception) -> None:
    with pytest.raises(Unavailable) as raised, translate_errors():
        raise error
    assert not isinstance(raised.value, Unreachable)


def test_a_serialization_failure_is_a_conflict_to_retry() -> None:
    with pytest.raises(ConcurrencyConflict), translate_errors():
        raise asyncpg.exceptions.SerializationError("could not serialize access")


def test_a_programming_error_stays_what_it_is() -> None:
    """A wrong query is a bug to see in the logs, not an outage to hide behind a 503."""
    with pytest.raises(asyncpg.InterfaceError), translate_errors():
        raise asyncpg.InterfaceError("the server expects 2 arguments for this query, 1 was passed")
