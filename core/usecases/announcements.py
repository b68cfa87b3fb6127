"""Announcing a payment's or a refund's change: its event goes to the outbox in the transaction that made it."""

from __future__ import annotations

from datetime import datetime

from core.events import OutboxMessage
from core.holds import Hold
from core.payments import Payment
from core.ports import UnitOfWork
from core.refunds import Refund
from core.views import hold_view, payment_view, refund_view


def announce_payment(
    uow: UnitOfWork, payment: Payment, topic: str, at: datetime, *, correlation_id: str | None = None
) -> None:
    """Queue the payment's event for subscribers (and workers) in the same transaction."""
    uow.outbox.add(OutboxMessage.new(
        tenant_id=payment.tenant_id, topic=topic, aggregate_id=payment.id, payload=payment_view(payment),
        correlation_id=correlation_id or payment.correlation_id, at=at,
    ))


def announce_hold(uow: UnitOfWork, hold: Hold, topic: str, at: datetime, *, correlation_id: str | None = None) -> None:
    """Queue the hold's event (`hold.created`, `.captured`, `.voided`, `.expired`) in the same transaction."""
    uow.outbox.add(OutboxMessage.new(
        tenant_id=hold.tenant_id, topic=topic, aggregate_id=hold.id, payload=hold_view(hold),
        correlation_id=correlation_id or hold.correlation_id, at=at,
    ))


def announce_refund(uow: UnitOfWork, refund: Refund, topic: str, at: datetime) -> None:
    """Queue the refund's event for subscribers (and workers) in the same transaction."""
    uow.outbox.add(OutboxMessage.new(
        tenant_id=refund.tenant_id, topic=topic, aggregate_id=refund.id, payload=refund_view(refund),
        correlation_id=refund.correlation_id, at=at,
    ))
