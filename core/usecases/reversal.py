"""Money back to its source: an unfinished payment's hold out of clearing, a refund out of the destination
or the provider's settlement account."""

from __future__ import annotations

from datetime import datetime

from core.accounts import CLEARING, settlement
from core.payments import Payment
from core.ports import UnitOfWork
from core.refunds import Refund
from core.usecases.announcements import announce_payment, announce_refund
from core.usecases.postings import move


async def return_to_source(uow: UnitOfWork, payment: Payment, at: datetime) -> None:
    """Move a pending or failed external payment's money from clearing back to its source."""
    source = (await uow.accounts.lock(payment.tenant_id, [payment.source_account_id]))[payment.source_account_id]
    clearing = await uow.accounts.lock_system(payment.tenant_id, CLEARING, payment.currency)
    move(uow, [(clearing, -payment.amount), (source, payment.amount)], at, payment_id=payment.id)


async def reverse_internal(uow: UnitOfWork, payment: Payment, refund: Refund, at: datetime) -> None:
    """An internal transfer's refund moves the money back from the destination synchronously."""
    assert payment.destination_account_id is not None
    ids = [payment.source_account_id, payment.destination_account_id]
    locked = await uow.accounts.lock(payment.tenant_id, ids)
    source, destination = locked[payment.source_account_id], locked[payment.destination_account_id]
    for account in (source, destination):
        account.ensure_not_closed()
    move(uow, [(destination, -refund.amount), (source, refund.amount)], at, payment_id=payment.id,
         refund_id=refund.id)
    refund.succeed(None, at)
    settle_refund(uow, payment, refund, at)


async def reverse_external(uow: UnitOfWork, payment: Payment, refund: Refund, reference: str, at: datetime) -> None:
    """The provider refunded: the money goes from the provider's settlement account back to the source."""
    source = (await uow.accounts.lock(payment.tenant_id, [payment.source_account_id]))[payment.source_account_id]
    assert payment.provider is not None
    paid_out = await uow.accounts.lock_system(payment.tenant_id, settlement(payment.provider), payment.currency)
    move(uow, [(paid_out, -refund.amount), (source, refund.amount)], at, payment_id=payment.id,
         refund_id=refund.id)
    refund.succeed(reference, at)
    settle_refund(uow, payment, refund, at)


def settle_refund(uow: UnitOfWork, payment: Payment, refund: Refund, at: datetime) -> None:
    """Record a succeeded refund on the payment (partially_refunded or refunded) and announce both."""
    payment.refunded(refund.amount, at, refund=refund.summary())
    uow.refunds.save(refund)
    announce_refund(uow, refund, "refund.succeeded", at)
    announce_payment(uow, payment, f"payment.{payment.status}", at, correlation_id=refund.correlation_id)
