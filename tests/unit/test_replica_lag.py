"""How `PgReplica` turns its samples into a lag, and when `PgReads` leaves the replica for the primary.

The pools are small fakes answering what a primary and a hot standby would (WAL positions as numbers); the real
servers are in tests/e2e/test_read_replica.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from adapters.postgres.replica import PgReads, PgReplica
from core.errors import ConcurrencyConflict, NotFound, Unavailable, UnknownEvent


class FakePool:
    """Answers `fetchval` (the primary's position) or `fetchrow` (the replica's state) with what it is set to."""

    def __init__(self, answer: Any = None) -> None:
        self.answer = answer

    async def fetchval(self, sql: str) -> Any:
        return self._give()

    async def fetchrow(self, sql: str) -> Any:
        return self._give()

    def _give(self) -> Any:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def close(self) -> None:
        return None


def standby(replayed: int, received: int | None = None, since: float = 0.0) -> dict[str, Any]:
    return {"standby": True, "replayed": replayed, "received": replayed if received is None else received,
            "since_replayed": since}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def replica(max_lag: float = 5.0) -> tuple[PgReplica, FakePool, FakePool, Clock]:
    clock, primary, pool = Clock(), FakePool(100), FakePool(standby(100))
    return PgReplica(pool, primary, max_lag=max_lag, clock=clock), pool, primary, clock  # type: ignore[arg-type]


async def test_caught_up_is_no_lag_however_old_its_last_transaction() -> None:
    made, pool, _, _ = replica()
    pool.answer = standby(100, since=3600.0)  # an idle primary: nothing replayed for an hour, nothing to replay
    await made.sample()
    assert made.lag == 0.0 and made.usable()


async def test_lag_is_how_long_ago_the_primary_was_where_the_replica_is() -> None:
    made, pool, primary, clock = replica(max_lag=5.0)
    await made.sample()  # at 1000 the primary is at 100, the replica too
    primary.answer, clock.now = 200, 1001.0  # the primary writes; the replica replays nothing more
    for now in (1001.0, 1004.0, 1007.0):
        clock.now = now
        await made.sample()
    assert made.lag == pytest.approx(7.0) and not made.usable()
    pool.answer, clock.now = standby(200), 1008.0  # it caught up
    await made.sample()
    assert made.lag == 0.0 and made.usable()


async def test_behind_every_remembered_position_on_the_first_sample_its_own_estimate_counts() -> None:
    made, pool, primary, _ = replica()
    primary.answer, pool.answer = 500, standby(100, since=42.0)
    await made.sample()
    assert made.lag == 42.0 and not made.usable()


async def test_without_the_primary_the_replica_judges_from_what_it_received() -> None:
    made, pool, primary, _ = replica()
    primary.answer = OSError("primary down")
    pool.answer = standby(100, received=100, since=3600.0)
    await made.sample()
    assert made.lag == 0.0
    pool.answer = standby(100, received=150, since=9.0)
    await made.sample()
    assert made.lag == 9.0 and not made.usable()


async def test_an_unreachable_replica_is_bypassed_until_a_sample_finds_it_again() -> None:
    made, pool, _, _ = replica()
    pool.answer = OSError("connection refused")
    await made.sample()
    assert made.lag is None and not made.usable()
    pool.answer = standby(100)
    await made.sample()
    assert made.usable()


async def test_a_promoted_replica_is_no_lag() -> None:
    made, pool, primary, _ = replica()
    primary.answer, pool.answer = 900, {"standby": False, "replayed": 0, "received": 0, "since_replayed": 0.0}
    await made.sample()
    assert made.lag == 0.0


class Uow:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self._log = name, log

    async def __aenter__(self) -> Uow:
        self._log.append(self.name)
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


def reads(made: PgReplica, log: list[str]) -> PgReads:
    return PgReads(lambda: Uow("primary", log), lambda: Uow("replica", log), made)  # type: ignore[arg-type, return-value]


def failing_on_replica(error: Exception) -> Callable[[Uow], Any]:
    async def use_case(uow: Uow) -> str:
        if uow.name == "replica":
            raise error
        return uow.name
    return use_case


@pytest.mark.parametrize("error", [NotFound("not yet"), UnknownEvent("after"), ConcurrencyConflict("replay")])
async def test_a_miss_on_the_replica_is_asked_of_the_primary_without_bypassing_it(error: Exception) -> None:
    made, _, _, _ = replica()
    await made.sample()
    log: list[str] = []
    assert await reads(made, log).run(failing_on_replica(error)) == "primary"
    assert log == ["replica", "primary"] and made.usable()


async def test_a_replica_failing_a_read_is_bypassed_and_the_request_stays_on_the_primary() -> None:
    made, _, _, _ = replica()
    await made.sample()
    log: list[str] = []
    request = reads(made, log)
    assert await request.run(failing_on_replica(Unavailable("gone"))) == "primary"
    assert not made.usable()
    await made.sample()  # healthy again: new requests go back to it, this one does not
    assert await request.run(failing_on_replica(Unavailable("gone"))) == "primary"
    assert log == ["replica", "primary", "primary"]
    assert await reads(made, log).run(failing_on_replica(NotFound("x"))) == "primary"
    assert log[-2:] == ["replica", "primary"]


async def test_without_a_usable_replica_everything_reads_the_primary() -> None:
    made, _, _, _ = replica()  # not sampled yet: not known to be usable
    log: list[str] = []
    assert await reads(made, log).run(failing_on_replica(NotFound("x"))) == "primary"
    assert await PgReads(lambda: Uow("primary", log), None, None).run(  # type: ignore[arg-type, return-value]
        failing_on_replica(NotFound("x"))) == "primary"
    assert log == ["primary", "primary"]
