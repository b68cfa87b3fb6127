"""Asking for a refund, within what the payment has left to refund, and reading a payment's refunds back."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import attrs

from core.commands import Command
from core.errors import InvalidStateTransition, NotFound, RefundExceedsPayment, found
from core.ids import new_id
from core.money import parse_amount
from core.ports import Clock, Page, UnitOfWork
from core.refunds import Refund
from core.usecases.announcements import announce_refund
from core.usecases.reversal import reverse_internal


@attrs.frozen(kw_only=True)
class RequestRefund(Command):
    """Refund `amount` (in the payment's currency; None: everything not yet refunded) of a payment."""

    payment_id: UUID
    amount: Decimal | str | None = None
    reason: str | None = None


async def request_refund(cmd: RequestRefund, *, uow: UnitOfWork, clock: Clock) -> Refund:
    """Record a pending refund for a worker to settle (external), or reverse an internal transfer at once.

    Pending plus succeeded refunds never exceed the payment: the payment row is locked while they are
    summed. Raises `NotFound`, `InvalidStateTransition`, `ValidationFailed` (amount),
    `RefundExceedsPayment`, `AccountClosed` (the money would return to a closed account, or leave one) or, for an
    internal transfer, `InsufficientFunds` on the destination. A frozen account takes refunds: a refund undoes an
    earlier movement, it is not a new one (API.md §3 lists what a frozen account refuses).
    """
    payment = found(await uow.payments.lock(cmd.tenant_id, cmd.payment_id), f"payment {cmd.payment_id}")
    if not payment.refundable:
        raise InvalidStateTransition(f"payment {payment.id} is {payment.status}; only completed payments refund")
    held = sum(r.amount for r in await uow.refunds.for_payment(cmd.tenant_id, payment.id) if r.outstanding)
    amount = payment.amount - held if cmd.amount is None else parse_amount(cmd.amount, payment.currency).minor
    if amount <= 0 or held + amount > payment.amount:
        raise RefundExceedsPayment(
            f"refunds of payment {payment.id} would exceed its amount: {held} of {payment.amount} minor units "
            "are already refunded or pending")
    if payment.is_external:  # locked, so that the account cannot close while this refund is being made
        source = await uow.accounts.lock(cmd.tenant_id, [payment.source_account_id])
        source[payment.source_account_id].ensure_not_closed()
    now = clock.now()
    refund = Refund(id=new_id(), tenant_id=cmd.tenant_id, payment_id=payment.id, amount=amount,
                    currency=payment.currency, reason=cmd.reason, correlation_id=cmd.correlation_id,
                    created_at=now, updated_at=now)
    uow.refunds.add(refund)
    if payment.is_external:
        payment.note("refund.created", now, refund=refund.summary())
        announce_refund(uow, refund, "refund.created", now)
    else:
        await reverse_internal(uow, payment, refund, now)
    uow.payments.save(payment)
    return refund


async def list_refunds(
    tenant_id: UUID, payment_id: UUID, *, uow: UnitOfWork, limit: int, cursor: str | None
) -> Page[Refund]:
    """A payment's refunds, newest first; `NotFound` for a payment not the caller's."""
    if await uow.payments.get(tenant_id, payment_id) is None:
        raise NotFound(f"payment {payment_id} not found")
    return await uow.refunds.list(tenant_id, payment_id, limit=limit, cursor=cursor)


async def check_refund_amount(tenant_id: UUID, payment_id: UUID, amount: Decimal, *, uow: UnitOfWork) -> None:
    """Raise `ValidationFailed` if `amount` is not a valid amount of the payment's currency.

    Run before the request's Idempotency-Key is claimed: a malformed amount is refused without
    using the key, so the corrected request may reuse it. An unknown payment passes here; the
    refund itself answers `NotFound`.
    """
    payment = await uow.payments.get(tenant_id, payment_id)
    if payment is not None:
        parse_amount(amount, payment.currency)
