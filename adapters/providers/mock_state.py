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
    """A charge or refund the mock made or declined, with the answer every repeat of its key gets."""

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

    def reset(self) -> None:
        """Forget every record and count; back to the latency and failure rate the server started with."""
        self.latency, self.failure_rate = self.initial
        self.charges, self.refunds, self.charges_by_id = {}, {}, {}
        self.refunded, self.requests, self.locks = Counter(), Counter(), {}
