"""External payments: created pending with the money held in clearing, and cancelled while still pending."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import attrs

from core.accounts import CLEARING, Account
from core.errors import CurrencyMismatch, FieldError, NotFound, ValidationFailed
from core.events import OutboxMessage
from core.ids import new_id
from core.ledger import post
from core.money import Money
from core.payments import CANCELLED, EXTERNAL_PAYMENT, PENDING, PROVIDERS, Payment
from core.ports import Clock, UnitOfWork
from core.views import payment_view


@attrs.frozen(kw_only=True)
class CreateExternalPayment:
    """Pay `amount` out of a user account through `provider`."""

    tenant_id: UUID
    source_account_id: UUID
    amount: Money
    provider: str
    description: str | None = None
    metadata: dict[str, str] = attrs.field(factory=dict)
    correlation_id: str | None = None


async def create_external_payment(cmd: CreateExternalPayment, *, uow: UnitOfWork, clock: Clock) -> Payment:
    """Move the amount from the source to the tenant's clearing account and record a pending payment
    whose `payment.created` event asks a worker to charge the provider.

    Raises `ValidationFailed` (unknown provider), `NotFound`, `CurrencyMismatch` or `InsufficientFunds`.
    """
    if cmd.provider not in PROVIDERS:
        raise ValidationFailed([FieldError("provider", f"must be one of {', '.join(PROVIDERS)}")])
    source = (await uow.accounts.lock(cmd.tenant_id, [cmd.source_account_id])).get(cmd.source_account_id)
    if source is None or not source.is_user:
        raise NotFound(f"account {cmd.source_account_id} not found")
    if source.currency != cmd.amount.currency:
        raise CurrencyMismatch(f"account {source.id} holds {source.currency}, not {cmd.amount.currency}")
    clearing = await uow.accounts.lock_system(cmd.tenant_id, CLEARING, source.currency)
    now = clock.now()
    payment = Payment(
        id=new_id(), tenant_id=cmd.tenant_id, payment_type=EXTERNAL_PAYMENT, status=PENDING,
        source_account_id=source.id, destination_account_id=None, amount=cmd.amount.minor,
        currency=cmd.amount.currency, provider=cmd.provider, description=cmd.description, metadata=cmd.metadata,
        correlation_id=cmd.correlation_id, created_at=now, updated_at=now,
    )
    payment.record("payment.created", now)
    move(uow, [(source, -payment.amount), (clearing, payment.amount)], now, payment_id=payment.id)
    uow.payments.add(payment)
    publish(uow, payment, "payment.created", now)
    return payment


async def cancel_payment(
    tenant_id: UUID, payment_id: UUID, *, uow: UnitOfWork, clock: Clock, correlation_id: str | None = None
) -> Payment:
    """Cancel a pending payment and return its money; racing a worker, exactly one of them wins
    (both lock the payment row and re-check its status). Raises `NotFound` or `InvalidStateTransition`."""
    payment = await uow.payments.lock(tenant_id, payment_id)
    if payment is None:
        raise NotFound(f"payment {payment_id} not found")
    now = clock.now()
    payment.transition(CANCELLED, now)
    await return_to_source(uow, payment, now)
    uow.payments.save(payment)
    publish(uow, payment, "payment.cancelled", now, correlation_id=correlation_id)
    return payment


async def return_to_source(uow: UnitOfWork, payment: Payment, at: datetime) -> None:
    """Move a pending or failed external payment's money from clearing back to its source."""
    source = (await uow.accounts.lock(payment.tenant_id, [payment.source_account_id]))[payment.source_account_id]
    clearing = await uow.accounts.lock_system(payment.tenant_id, CLEARING, payment.currency)
    move(uow, [(clearing, -payment.amount), (source, payment.amount)], at, payment_id=payment.id)


def move(
    uow: UnitOfWork, legs: list[tuple[Account, int]], at: datetime, *, payment_id: UUID,
    refund_id: UUID | None = None,
) -> None:
    """Post balanced legs and buffer the changed accounts and their entries."""
    uow.ledger.add(post(legs, at=at, payment_id=payment_id, refund_id=refund_id))
    for account, _ in legs:
        uow.accounts.save(account)


def publish(
    uow: UnitOfWork, payment: Payment, topic: str, at: datetime, *, correlation_id: str | None = None
) -> None:
    """Queue the payment's event for subscribers (and workers) in the same transaction."""
    uow.outbox.add(OutboxMessage.new(
        tenant_id=payment.tenant_id, topic=topic, aggregate_id=payment.id, payload=payment_view(payment),
        correlation_id=correlation_id or payment.correlation_id, at=at,
    ))
