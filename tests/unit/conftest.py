"""Fakes for unit tests: a settable clock and a fresh in-memory store per test (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from adapters.memory import InMemoryLedgerAudit, InMemoryStore


class FakeClock:
    """The `Clock` port, moved by hand; every reading is a microsecond later so ordering stays strict."""

    def __init__(self, start: datetime = datetime(2025, 1, 1, tzinfo=UTC)) -> None:
        self.current = start

    def now(self) -> datetime:
        self.current += timedelta(microseconds=1)
        return self.current

    def advance(self, delta: timedelta) -> None:
        self.current += delta


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def audit(store: InMemoryStore) -> InMemoryLedgerAudit:
    return InMemoryLedgerAudit(store)


@pytest.fixture
def tenant_id() -> UUID:
    return uuid4()
