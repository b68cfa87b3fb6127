"""What the mock provider server remembers: its config, every charge and refund, request counts, per-key locks."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from typing import Any, Literal

import attrs

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


@attrs.define
class MockState:
    """Everything the server remembers: config, records by (provider, key), request counts and per-key locks."""

    latency: float
    failure_rate: float
    initial: tuple[float, float]
    charges: dict[tuple[str, str], Record] = attrs.field(factory=dict)
    refunds: dict[tuple[str, str], Record] = attrs.field(factory=dict)
    charges_by_id: dict[str, Record] = attrs.field(factory=dict)
    refunded: Counter[str] = attrs.field(factory=Counter)
    requests: Counter[Slot] = attrs.field(factory=Counter)
    locks: dict[Slot, asyncio.Lock] = attrs.field(factory=dict)
    by_lookup: dict[Slot, list[Record]] = attrs.field(factory=dict)  # (kind, provider, record.lookup)

    def add(self, kind: Kind, key: tuple[str, str], record: Record) -> None:
        """Remember a new charge or refund under (provider, idempotency key), its id and its lookup value."""
        if kind == "charge":
            self.charges[key] = self.charges_by_id[record.id] = record
        else:
            self.refunds[key] = record
        if record.lookup is not None:
            self.by_lookup.setdefault((kind, record.provider, record.lookup), []).append(record)

    def find(self, kind: Kind, provider: str, lookup: str) -> list[Record]:
        """The provider's charges or refunds whose `lookup` is `lookup`, oldest first."""
        return list(self.by_lookup.get((kind, provider, lookup), ()))

    def reset(self) -> None:
        """Forget every record and count; back to the latency and failure rate the server started with."""
        self.latency, self.failure_rate = self.initial
        self.charges, self.refunds, self.charges_by_id, self.by_lookup = {}, {}, {}, {}
        self.refunded, self.requests, self.locks = Counter(), Counter(), {}
