"""Fixtures for unit tests: a hand-moved clock and a fresh in-memory store per test (no I/O)."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from adapters.memory import InMemoryLedgerAudit, InMemoryStore
from adapters.memory.clock import InMemoryClock

#: The unit tests' name for the hand-moved `Clock` fake (it lives with the other fakes in adapters/memory).
FakeClock = InMemoryClock


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
