"""Payments, their state machine and the events that record every change."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import attrs

from core.clock import timestamp
from core.errors import InvalidStateTransition
from core.ids import new_id
from core.money import format_minor
from core.work import RetriedWork


class PaymentType(enum.StrEnum):
    """An internal transfer settles in the transaction that creates it; an external payment goes through a
    provider."""

    INTERNAL_TRANSFER = "internal_transfer"
    EXTERNAL_PAYMENT = "external_payment"


class Provider(enum.StrEnum):
    """The external providers a payment can go through."""

    STRIPE = "stripe"
    PAYPAL = "paypal"


#: The providers' names, in the order the API lists them.
PROVIDERS: tuple[str, ...] = tuple(Provider)


class FailureCode(enum.StrEnum):
    """Why a payment failed (API.md §6): the provider declined, its transient failures outlasted the
    retries, or it stayed unavailable (its breaker open) for longer than a payment waits."""

    DECLINED = "declined"
    RETRIES_EXHAUSTED = "retries_exhausted"
    PROVIDER_UNAVAILABLE = "provider_unavailable"


#: A breaker refused the call (not an attempt): the payment waits for it (an internal event, not a webhook).
WAITING = "payment.waiting_for_provider"


class PaymentStatus(enum.StrEnum):
    """Where a payment is in its life (API.md §6)."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


#: API.md §6: every allowed move of a payment's status; anything else is a 409.
TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    PaymentStatus.PENDING: frozenset({PaymentStatus.PROCESSING, PaymentStatus.CANCELLED}),
    PaymentStatus.PROCESSING: frozenset({PaymentStatus.COMPLETED, PaymentStatus.FAILED}),
    PaymentStatus.COMPLETED: frozenset({PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}),
    PaymentStatus.PARTIALLY_REFUNDED: frozenset({PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED}),
    PaymentStatus.FAILED: frozenset(),
    PaymentStatus.CANCELLED: frozenset(),
    PaymentStatus.REFUNDED: frozenset(),
}


@attrs.frozen(kw_only=True)
class PaymentEvent:
    """One entry of a payment's history (`payment.created`, `payment.completed`, ...)."""

    id: UUID
    tenant_id: UUID
    payment_id: UUID
    sequence: int
    type: str
    data: dict[str, Any]
    correlation_id: str | None
    created_at: datetime


@attrs.define(kw_only=True)
class Payment(RetriedWork):
    """A movement of money between accounts, internal or through a provider (its `attempts` through the
    provider, and when the next is due, are `RetriedWork`'s)."""

    id: UUID
    tenant_id: UUID
    payment_type: PaymentType = attrs.field(converter=PaymentType)
    status: PaymentStatus = attrs.field(converter=PaymentStatus)
    source_account_id: UUID
    destination_account_id: UUID | None
    amount: int
    currency: str
    provider: str | None = None
    provider_reference: str | None = None
    refunded_amount: int = 0
    failure_code: FailureCode | None = attrs.field(default=None, converter=attrs.converters.optional(FailureCode))
    failure_reason: str | None = None
    description: str | None = None
    metadata: dict[str, str] = attrs.field(factory=dict)
    version: int = 0
    correlation_id: str | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    events: list[PaymentEvent] = attrs.field(factory=list, eq=False, repr=False)

    @property
    def stored_version(self) -> int:
        """The version the payment had when it was read: its unsaved events came after it."""
        return self.version - len(self.events)

    @property
    def is_external(self) -> bool:
        return self.payment_type == PaymentType.EXTERNAL_PAYMENT

    def snapshot(self) -> dict[str, Any]:
        """The fields an event records, so folding events rebuilds the payment's state."""
        return {
            "status": self.status,
            "refunded_amount": format_minor(self.refunded_amount, self.currency),
            "provider_reference": self.provider_reference,
            "failure_code": self.failure_code,
            "failure_reason": self.failure_reason,
            "updated_at": timestamp(self.updated_at),
            "completed_at": timestamp(self.completed_at),
        }

    def record(self, event_type: str, at: datetime, **details: Any) -> PaymentEvent:
        """Append an event carrying the payment's new state (and `details` of what happened)."""
        event = PaymentEvent(
            id=new_id(),
            tenant_id=self.tenant_id,
            payment_id=self.id,
            sequence=self.version,
            type=event_type,
            data={**details, **self.snapshot()},
            correlation_id=self.correlation_id,
            created_at=at,
        )
        self.events.append(event)
        return event

    def complete_internal(self, at: datetime) -> PaymentEvent:
        """An internal transfer settles in the transaction that creates it."""
        if self.payment_type != PaymentType.INTERNAL_TRANSFER or self.status != PaymentStatus.PENDING:
            raise InvalidStateTransition(f"payment {self.id} cannot complete synchronously")
        self.status = PaymentStatus.COMPLETED
        self.version += 1
        self.updated_at = self.completed_at = at
        return self.record("payment.completed", at)

    def transition(
        self, status: PaymentStatus, at: datetime, event_type: str | None = None, **details: Any
    ) -> PaymentEvent:
        """Move to `status` if the state machine allows it, recording the event."""
        if status not in TRANSITIONS[self.status]:
            raise InvalidStateTransition(f"payment {self.id} cannot go from {self.status} to {status}")
        self.status = status
        self.version += 1
        self.updated_at = at
        if status == PaymentStatus.COMPLETED:
            self.completed_at = at
        if status not in (PaymentStatus.PENDING, PaymentStatus.PROCESSING):
            self.next_attempt_at = None
        return self.record(event_type or f"payment.{status}", at, **details)

    def note(self, event_type: str, at: datetime, **details: Any) -> PaymentEvent:
        """Record an event that changes no status (an attempt failed, a refund was asked for)."""
        self.version += 1
        self.updated_at = at
        return self.record(event_type, at, **details)

    def complete(self, reference: str, at: datetime) -> PaymentEvent:
        """The provider charged the payment."""
        self.provider_reference = reference
        return self.transition(PaymentStatus.COMPLETED, at)

    def fail(self, code: FailureCode, reason: str, at: datetime) -> PaymentEvent:
        """A decline or the last failed attempt: the payment ends `failed`, saying why in `code` and `reason`."""
        if PaymentStatus.FAILED in TRANSITIONS[self.status]:
            self.failure_code, self.failure_reason = code, reason
        return self.transition(PaymentStatus.FAILED, at)

    def attempt_failed(self, error: str, at: datetime, retry_at: datetime | None, **details: Any) -> PaymentEvent:
        """Attempt number `attempts` failed transiently; `retry_at` is when the next is due (None: none)."""
        self.next_attempt_at = retry_at
        return self.note("payment.attempt_failed", at, attempt=self.attempts, error=error, **details)

    def waiting_for_provider(self, error: str, at: datetime, retry_at: datetime, since: datetime) -> PaymentEvent:
        """The provider's breaker refused the call: not an attempt; the payment waits for the breaker, and its
        history says so (`since`: the first refusal, from which `PAYMENTS_PAYMENT_BREAKER_MAX_WAIT` runs)."""
        self.next_attempt_at = retry_at
        return self.note(WAITING, at, attempts=self.attempts, error=error, waiting_since=timestamp(since),
                         retry_at=timestamp(retry_at))

    @property
    def refundable(self) -> bool:
        return self.status in (PaymentStatus.COMPLETED, PaymentStatus.PARTIALLY_REFUNDED)

    def refunded(self, amount: int, at: datetime, **details: Any) -> PaymentEvent:
        """A refund of `amount` succeeded: partially or fully refunded."""
        if self.refunded_amount + amount > self.amount or amount <= 0:
            raise ValueError("a refund cannot exceed the payment")
        if not self.refundable:
            raise InvalidStateTransition(f"payment {self.id} is {self.status}; it cannot be refunded")
        self.refunded_amount += amount
        status = PaymentStatus.REFUNDED if self.refunded_amount == self.amount else PaymentStatus.PARTIALLY_REFUNDED
        return self.transition(status, at, **details)


#: The payment fields an event's data carries; folding them in sequence order rebuilds the payment.
STATE_KEYS = ("status", "refunded_amount", "provider_reference", "failure_code", "failure_reason", "updated_at",
              "completed_at")


def fold(events: list[PaymentEvent]) -> dict[str, Any]:
    """Replay a payment's events in order; the result must equal the payment's stored state."""
    state: dict[str, Any] = {}
    for event in sorted(events, key=lambda e: e.sequence):
        state.update({key: event.data[key] for key in STATE_KEYS if key in event.data})
    return state


def late_charges(events: Sequence[PaymentEvent]) -> list[str]:
    """Charges noted as arriving after the payment failed (their references), in order, each once."""
    detected = (e.data.get("charge_reference") for e in events if e.type == "payment.late_charge_detected")
    return [ref for ref in dict.fromkeys(detected) if isinstance(ref, str)]


def owed_reversals(events: list[PaymentEvent]) -> list[str]:
    """Charges that arrived after the payment failed and are not refunded yet (their references)."""
    reversed_ = {e.data.get("charge_reference") for e in events if e.type == "payment.late_charge_reversed"}
    return [ref for ref in late_charges(events) if ref not in reversed_]


def ambiguous_attempts(events: list[PaymentEvent]) -> bool:
    """Whether any failed attempt may have reached the provider and been processed."""
    return any(e.data.get("ambiguous", True) for e in events if e.type == "payment.attempt_failed")


def waiting_since(events: list[PaymentEvent], event_type: str = WAITING,
                  refund_id: UUID | None = None) -> datetime | None:
    """When the provider's breaker first refused the payment (or, with `refund_id`, that refund of it)."""
    return min((e.created_at for e in events if e.type == event_type
                and (refund_id is None or e.data.get("refund", {}).get("id") == str(refund_id))), default=None)
