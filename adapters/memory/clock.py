"""A `Clock` moved by hand, for tests that need time to pass without waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class InMemoryClock:
    """The `Clock` port, moved by hand; every reading is a microsecond later, so readings are strictly ordered
    (as rows written one after another are in a real store)."""

    def __init__(self, start: datetime = datetime(2025, 1, 1, tzinfo=UTC)) -> None:
        if start.utcoffset() != timedelta(0):
            raise ValueError("the clock reads UTC")
        self.current = start

    def now(self) -> datetime:
        self.current += timedelta(microseconds=1)
        return self.current

    def advance(self, delta: timedelta) -> None:
        """Move the clock forward (a negative `delta` would break the port's never-backwards promise)."""
        if delta < timedelta(0):
            raise ValueError("time does not go backwards")
        self.current += delta
