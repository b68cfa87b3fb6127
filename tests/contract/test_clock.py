"""The `Clock` port: one suite over the hand-moved fake and the system clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adapters.memory.clock import InMemoryClock


@pytest.fixture(params=["memory", "system"])
def clock_under_test(request: pytest.FixtureRequest):
    """The fake, or the clock the composition root gives every process."""
    return InMemoryClock() if request.param == "memory" else request.getfixturevalue("services").clock


def test_now_is_an_aware_time_in_utc(clock_under_test) -> None:
    now = clock_under_test.now()
    assert isinstance(now, datetime)
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)


def test_time_never_goes_backwards(clock_under_test) -> None:
    readings = [clock_under_test.now() for _ in range(1_000)]
    assert readings == sorted(readings)


def test_the_fake_moves_only_forward_and_only_by_hand() -> None:
    clock = InMemoryClock(datetime(2030, 1, 1, tzinfo=UTC))
    first = clock.now()
    clock.advance(timedelta(hours=2))
    assert clock.now() - first == timedelta(hours=2, microseconds=1)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="UTC"):
        InMemoryClock(datetime(2030, 1, 1))
