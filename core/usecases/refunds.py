"""Refunds: asked for through the API, settled by a worker through the provider (internal: at once)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

import attrs

from core.accounts import settlement
from core.errors import InvalidStateTransition, NotFound, RefundExceedsPayment
from core.events import OutboxMessage
from core.ids import new_id
from core.money import parse_amount
from core.payments import Payment
from core.ports import Clock, Page, UnitOfWork
from core.refunds import Refund
from core.usecases.external import move, publish
from core.views import refund_view


@attrs.frozen(kw_only=True)
class RequestRefund:
    """Refund `amount` (in the payment's currency; None: everything not yet refunded) of a payment."""

    tenant_id: UUID
    payment_id: UUID
    amount: Decimal | str | None = None
    reason: str | None = None
    correlation_id: str | None = None


async def request_refund(cmd: RequestRefund, *, uow: UnitOfWork, clock: Clock) -> Refund:
    """Record a pending refund for a worker to settle (external), or reverse an internal transfer at once.

    Pending plus succeeded refunds never exceed the payment: the payment row is locked while they are
    summed. Raises `NotFound`, `InvalidStateTransition`, `ValidationFailed` (amount),
    `RefundExceedsPayment` or, for an internal transfer, `InsufficientFunds` on the destination.
    """
    payment = await uow.payments.lock(cmd.tenant_id, cmd.payment_id)
    if payment is None:
        raise NotFound(f"payment {cmd.payment_id} not found")
    if not payment.refundable:
        raise InvalidStateTransition(f"payment {payment.id} is {payment.status}; only completed payments refund")
    held = sum(r.amount for r in await uow.refunds.for_payment(cmd.tenant_id, payment.id) if r.outstanding)
    amount = payment.amount - held if cmd.amount is None else parse_amount(cmd.amount, payment.currency).minor
    if amount <= 0 or held + amount > payment.amount:
        raise RefundExceedsPayment(
            f"refunds of payment {payment.id} would exceed its amount: {held} of {payment.amount} minor units "
            "are already refunded or pending")
    now = clock.now()
    refund = Refund(id=new_id(), tenant_id=cmd.tenant_id, payment_id=payment.id, amount=amount,
                    currency=payment.currency, reason=cmd.reason, correlation_id=cmd.correlation_id,
                    created_at=now, updated_at=now)
    uow.refunds.add(refund)
    if payment.is_external:
        payment.note("refund.created", now, refund=refund.summary())
        announce(uow, refund, "refund.created", now)
    else:
        await reverse_internal(uow, payment, refund, now)
    uow.payments.save(payment)
    return refund


async def reverse_internal(uow: UnitOfWork, payment: Payment, refund: Refund, at: datetime) -> None:
    """An internal transfer's refund moves the money back from the destination synchronously."""
    assert payment.destination_account_id is not None
    ids = [payment.source_account_id, payment.destination_account_id]
    locked = await uow.accounts.lock(payment.tenant_id, ids)
    source, destination = locked[payment.source_account_id], locked[payment.destination_account_id]
    move(uow, [(destination, -refund.amount), (source, refund.amount)], at, payment_id=payment.id,
         refund_id=refund.id)
    refund.succeed(None, at)
    settle(uow, payment, refund, at)


async def reverse_external(uow: UnitOfWork, payment: Payment, refund: Refund, reference: str, at: datetime) -> None:
    """The provider refunded: the money goes from the provider's settlement account back to the source."""
    source = (await uow.accounts.lock(payment.tenant_id, [payment.source_account_id]))[payment.source_account_id]
    assert payment.provider is not None
    paid_out = await uow.accounts.lock_system(payment.tenant_id, settlement(payment.provider), payment.currency)
    move(uow, [(paid_out, -refund.amount), (source, refund.amount)], at, payment_id=payment.id,
         refund_id=refund.id)
    refund.succeed(reference, at)
    settle(uow, payment, refund, at)


def settle(uow: UnitOfWork, payment: Payment, refund: Refund, at: datetime) -> None:
    """Record a succeeded refund on the payment (partially_refunded or refunded) and announce both."""
    payment.refunded(refund.amount, at, refund=refund.summary())
    uow.refunds.save(refund)
    announce(uow, refund, "refund.succeeded", at)
    publish(uow, payment, f"payment.{payment.status}", at, correlation_id=refund.correlation_id)


def announce(uow: UnitOfWork, refund: Refund, topic: str, at: datetime) -> None:
    uow.outbox.add(OutboxMessage.new(
        tenant_id=refund.tenant_id, topic=topic, aggregate_id=refund.id, payload=refund_view(refund),
        correlation_id=refund.correlation_id, at=at,
    ))


async def list_refunds(
    tenant_id: UUID, payment_id: UUID, *, uow: UnitOfWork, limit: int, cursor: str | None
) -> Page[Refund]:
    """A payment's refunds, newest first; `NotFound` for a payment not the caller's."""
    if await uow.payments.get(tenant_id, payment_id) is None:
        raise NotFound(f"payment {payment_id} not found")
    return await uow.refunds.list(tenant_id, payment_id, limit=limit, cursor=cursor)
