"""External payments: created pending with the money held in clearing, and cancelled while still pending."""

from __future__ import annotations

from uuid import UUID

import attrs

from core.accounts import CLEARING
from core.errors import CurrencyMismatch, FieldError, NotFound, ValidationFailed, found
from core.ids import new_id
from core.payments import PROVIDERS, Payment, PaymentStatus, PaymentType
from core.ports import Clock, UnitOfWork
from core.usecases.announcements import announce_payment
from core.usecases.hold_expiry import release_due
from core.usecases.postings import MoneyOut, move
from core.usecases.reversal import return_to_source


@attrs.frozen(kw_only=True)
class CreateExternalPayment(MoneyOut):
    """Pay `amount` out of a user account through `provider`."""

    provider: str

    @property
    def locked_accounts(self) -> tuple[UUID]:
        """The user account `create_external_payment` locks (declare it as `lock_accounts`; the tenant's
        clearing account is locked too, but it is a system account and queues in PostgreSQL)."""
        return (self.source_account_id,)


async def create_external_payment(cmd: CreateExternalPayment, *, uow: UnitOfWork, clock: Clock) -> Payment:
    """Move the amount from the source to the tenant's clearing account and record a pending payment
    whose `payment.created` event asks a worker to charge the provider.

    Raises `ValidationFailed` (unknown provider), `NotFound`, `AccountFrozen`, `AccountClosed`, `CurrencyMismatch`
    or `InsufficientFunds`.
    """
    if cmd.provider not in PROVIDERS:
        raise ValidationFailed([FieldError("provider", f"must be one of {', '.join(PROVIDERS)}")])
    source = (await uow.accounts.lock(cmd.tenant_id, cmd.locked_accounts)).get(cmd.source_account_id)
    if source is None or not source.is_user:
        raise NotFound(f"account {cmd.source_account_id} not found")
    source.ensure_movable()
    if source.currency != cmd.amount.currency:
        raise CurrencyMismatch(f"account {source.id} holds {source.currency}, not {cmd.amount.currency}")
    clearing = await uow.accounts.lock_system(cmd.tenant_id, CLEARING, source.currency)
    now = clock.now()
    await release_due(uow, source, now)
    payment = Payment(
        id=new_id(), tenant_id=cmd.tenant_id, payment_type=PaymentType.EXTERNAL_PAYMENT,
        status=PaymentStatus.PENDING, source_account_id=source.id, destination_account_id=None,
        amount=cmd.amount.minor, currency=cmd.amount.currency, provider=cmd.provider, description=cmd.description,
        metadata=cmd.metadata, correlation_id=cmd.correlation_id, created_at=now, updated_at=now,
    )
    payment.record("payment.created", now)
    move(uow, [(source, -payment.amount), (clearing, payment.amount)], now, payment_id=payment.id)
    uow.payments.add(payment)
    announce_payment(uow, payment, "payment.created", now)
    return payment


async def cancel_payment(
    tenant_id: UUID, payment_id: UUID, *, uow: UnitOfWork, clock: Clock, correlation_id: str | None = None
) -> Payment:
    """Cancel a pending payment and return its money; racing a worker, exactly one of them wins
    (both lock the payment row and re-check its status). Raises `NotFound` or `InvalidStateTransition`."""
    payment = found(await uow.payments.lock(tenant_id, payment_id), f"payment {payment_id}")
    now = clock.now()
    payment.transition(PaymentStatus.CANCELLED, now)
    await return_to_source(uow, payment, now)
    uow.payments.save(payment)
    announce_payment(uow, payment, "payment.cancelled", now, correlation_id=correlation_id)
    return payment
