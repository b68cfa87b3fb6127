"""What the mock provider server remembers: its config, every charge and refund, request counts, per-key locks."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from typing import Any, Literal

import attrs

from adapters.providers.mock_store import Counts, Store, Table

MAX_LATENCY = 600.0

Answer = tuple[int, dict[str, Any]]  # HTTP status and JSON body

Kind = Literal["charge", "refund"]
Slot = tuple[str, str, str]  # kind, provider, idempotency key


@attrs.define
class Record:
    """A charge or refund the mock made or declined, with the answer every repeat of its key gets.

    `lookup` is what the provider's lookup finds it by: Stripe's `metadata[payment_id]` /
    `metadata[refund_id]`, PayPal's `purchase_units[0].reference_id` / `invoice_id`.
    """

    provider: str
    id: str
    idempotency_key: str
    amount: int
    currency: str
    status: str
    metadata: dict[str, str]
    created_at: str
    fingerprint: tuple[object, ...]
    description: str | None = None
    charge_id: str | None = None
    reason: str | None = None
    lookup: str | None = None
    answer: Answer = (200, {})

    def view(self, requests: int) -> dict[str, Any]:
        """The record as `GET /_mock/charges` and `/_mock/refunds` list it."""
        row = {"provider": self.provider, "id": self.id, "idempotency_key": self.idempotency_key,
               "amount": self.amount, "currency": self.currency, "status": self.status, "requests": requests,
               "metadata": self.metadata, "created_at": self.created_at}
        return row | ({"description": self.description} if self.charge_id is None else
                      {"charge_id": self.charge_id, "reason": self.reason})


def check_config(latency: object, failure_rate: object) -> list[str]:
    """What is wrong with a latency (seconds, 0–600) and a failure rate (0–1); empty when both are fine."""
    problems = []
    for name, value, top in (("latency", latency, MAX_LATENCY), ("failure_rate", failure_rate, 1.0)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            problems.append(f"{name} must be a number")
        elif not 0 <= value <= top:
            problems.append(f"{name} must be between 0 and {top:g}")
    return problems


class MockState:
    """Everything the server remembers: config, records by (provider, key), request counts and per-key locks.

    The records and counts live in a `Store` (SQLite on disk): the process's memory stays flat however many
    charges it keeps. A key's lock lives while requests hold or wait for it.
    """

    def __init__(self, latency: float, failure_rate: float, initial: tuple[float, float]) -> None:
        self.latency, self.failure_rate, self.initial = latency, failure_rate, initial
        self._store = Store()
        self.charges: Table[Record] = Table(self._store, "charge")
        self.refunds: Table[Record] = Table(self._store, "refund")
        self.charges_by_id: Table[Record] = Table(self._store, "charge_id")
        self.refunded = Counts(self._store, "refunded")
        self.requests = Counts(self._store, "requests")
        self._locks: dict[Slot, tuple[asyncio.Lock, int]] = {}  # a key's lock, and how many hold or wait for it

    def add(self, kind: Kind, key: tuple[str, str], record: Record) -> None:
        """Remember a new charge or refund under (provider, idempotency key), its id and its lookup value."""
        table = self.charges if kind == "charge" else self.refunds
        table[key] = record
        if kind == "charge":
            self.charges_by_id[record.id] = record
        if record.lookup is not None:
            table.tag((record.provider, record.lookup), key)

    def find(self, kind: Kind, provider: str, lookup: str) -> list[Record]:
        """The provider's charges or refunds whose `lookup` is `lookup`, oldest first."""
        return (self.charges if kind == "charge" else self.refunds).tagged((provider, lookup))

    @contextlib.asynccontextmanager
    async def lock(self, slot: Slot) -> AsyncIterator[None]:
        """Hold `slot`'s lock: one request per key at a time. The lock is forgotten when nobody needs it."""
        lock, users = self._locks.get(slot) or (asyncio.Lock(), 0)
        self._locks[slot] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[slot]
            if users == 1:
                del self._locks[slot]
            else:
                self._locks[slot] = (lock, users - 1)

    def reset(self) -> None:
        """Forget every record and count; back to the latency and failure rate the server started with."""
        self.latency, self.failure_rate = self.initial
        self._store.clear()
