"""Fixtures for unit tests: a hand-moved clock, a fresh in-memory store per test (no I/O), the app in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import httpx
import pytest

from adapters.memory import InMemoryLedgerAudit, InMemoryStore
from adapters.memory.clock import InMemoryClock
from tests.unit.asgi import client, payments_app

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


@pytest.fixture(scope="module")
async def api() -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app `payments serve` runs, in-process, started once per test module (tests/unit/asgi.py)."""
    async with client(payments_app()) as c:
        yield c
