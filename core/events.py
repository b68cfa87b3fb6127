"""Outbox messages: domain events committed with the change that caused them, relayed later."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import attrs

from core.clock import timestamp
from core.ids import new_id
from core.payments import PaymentType
from core.work import PAYMENT, REFUND, WorkItem

#: Events that ask a worker to do something besides telling subscribers. A late charge found by reconciliation
#: (`payment.late_charge_detected` of a failed payment) is refunded by the payment's own work: the late-charge path.
#: A refund recorded failed that the provider settled after all (`refund.late_success_suspected`, also found by
#: reconciliation) is looked up by the refund's own work, and posted if found: the late-refund path.
_WORK = {"payment.created": PAYMENT, "refund.created": REFUND, "payment.late_charge_detected": PAYMENT,
         "refund.late_success_suspected": REFUND}


def work_for(message: OutboxMessage) -> WorkItem | None:
    """The work a committed event starts: processing a new external payment or refund."""
    kind = _WORK.get(message.topic)
    if kind is None or (kind == PAYMENT and message.payload.get("payment_type") != PaymentType.EXTERNAL_PAYMENT):
        return None
    return WorkItem(kind=kind, tenant_id=message.tenant_id, target_id=message.aggregate_id,
                    correlation_id=message.correlation_id)

#: Event types a webhook subscription may name (API.md §7) and the events feed serves (§11); "*" matches all.
#: Other topics (`payment.late_charge_detected`, ...) are internal: never sent, never in the feed.
CATALOGUE = (
    "account.created",
    "account.updated",
    "transfer.completed",
    "payment.created",
    "payment.processing",
    "payment.attempt_failed",
    "payment.completed",
    "payment.failed",
    "payment.cancelled",
    "payment.partially_refunded",
    "payment.refunded",
    "refund.created",
    "refund.succeeded",
    "refund.failed",
    "hold.created",
    "hold.captured",
    "hold.voided",
    "hold.expired",
)


ALL_EVENTS = "*"


def hears(events: Collection[str], event_type: str) -> bool:
    """Whether a subscription naming `events` is sent an event of `event_type` (`*`: every event of the catalogue;
    events outside it are never sent)."""
    return event_type in CATALOGUE and (event_type in events or ALL_EVENTS in events)


@attrs.frozen(kw_only=True)
class Listener:
    """An enabled webhook subscription as the fan-out sees it: which events of its tenant it hears."""

    id: UUID
    tenant_id: UUID
    events: tuple[str, ...]

    def hears(self, event_type: str) -> bool:
        return hears(self.events, event_type)


@attrs.define
class ClaimedBatch:
    """Outbox messages a relay holds; `mark_published` before the claim ends records them as sent. `listeners`, when
    the claim was asked for them, are the enabled webhook subscriptions of the messages' tenants, read with them."""

    messages: Sequence[OutboxMessage]
    published: bool = False
    listeners: Sequence[Listener] | None = None

    def mark_published(self) -> None:
        self.published = True


@attrs.frozen(kw_only=True)
class OutboxMessage:
    """An event to publish at least once after its transaction commits."""

    id: UUID
    tenant_id: UUID
    topic: str
    aggregate_id: UUID
    payload: dict[str, Any]
    correlation_id: str | None
    created_at: datetime
    #: Opaque W3C trace context (`traceparent`...) of the work that wrote the message; adapters fill it.
    trace_context: dict[str, str] = attrs.field(factory=dict)

    @classmethod
    def new(
        cls, *, tenant_id: UUID, topic: str, aggregate_id: UUID, payload: dict[str, Any],
        correlation_id: str | None, at: datetime,
    ) -> OutboxMessage:
        """A fresh message with a new id (the id is the event id receivers deduplicate on)."""
        return cls(
            id=new_id(), tenant_id=tenant_id, topic=topic, aggregate_id=aggregate_id,
            payload=payload, correlation_id=correlation_id, created_at=at,
        )


def event_body(message: OutboxMessage) -> dict[str, Any]:
    """The event as the outside world sees it: the body of a webhook delivery and an entry of the events feed,
    `{"id", "type", "created_at", "data": {"object"}}` (API.md §7, §11)."""
    return {"id": str(message.id), "type": message.topic, "created_at": timestamp(message.created_at),
            "data": {"object": message.payload}}
