"""Charges that arrive after their payment failed: recorded as owed, then refunded in full at the provider."""

from __future__ import annotations

import uuid
from uuid import UUID

from core.payments import Payment, PaymentStatus, owed_reversals
from core.providers import PaymentProvider, RefundRequest
from core.usecases.provider_calls import call
from core.usecases.worker_deps import Deps, Outcome, WorkResult
from core.work import WorkItem

LATE_DETECTED, LATE_REVERSED = "payment.late_charge_detected", "payment.late_charge_reversed"


def reversal_id(payment_id: UUID, charge_reference: str) -> UUID:
    """The id (and idempotency key) of the refund that reverses the late charge `charge_reference`: derived,
    so every retry asks for the same refund, and reconciliation recognises it in a settlement report."""
    return uuid.uuid5(payment_id, f"late-charge:{charge_reference}")


async def reverse_late_charges(item: WorkItem, deps: Deps) -> Outcome:
    """A failed payment that still owes the refund of a late charge gets it (the delivery is retried
    until it does: the refund raises on failure)."""
    async with deps.uow_factory(read_only=True) as uow:
        payment = await uow.payments.get(item.tenant_id, item.target_id)
        events = await uow.payments.events(item.tenant_id, item.target_id) if payment else []
    owed = owed_reversals(events) if payment is not None and payment.status == PaymentStatus.FAILED else []
    if payment is None or not owed:
        return Outcome(WorkResult.SKIPPED, payment.status if payment else None)
    provider = deps.providers(payment.provider or "")
    for reference in owed:
        await reverse_late_charge(payment, reference, provider, deps)
    return Outcome(WorkResult.DONE, payment.status)


async def reverse_late_charge(payment: Payment, reference: str, provider: PaymentProvider, deps: Deps) -> None:
    """Refund, in full at the provider, a charge that succeeded after its payment had failed (its money is
    already back on the source), so the customer is not charged for a failed payment.

    Idempotent: the refund's key derives from the payment and the charge. `payment.late_charge_detected`
    was committed before this runs, so a crash here leaves the debt on record for the next delivery.
    """
    void = RefundRequest(refund_id=reversal_id(payment.id, reference), payment_id=payment.id,
                         charge_reference=reference, amount=payment.amount, currency=payment.currency,
                         reason="charge arrived after the payment failed", metadata={})
    refunded, error = await call(lambda: provider.refund(void), deps.policy)
    if error is not None:
        raise error
    async with deps.uow_factory() as uow:
        current = await uow.payments.lock(payment.tenant_id, payment.id)
        if current is None or reference not in owed_reversals(await uow.payments.events(payment.tenant_id,
                                                                                        payment.id)):
            return
        current.note(LATE_REVERSED, deps.clock.now(), charge_reference=reference, refund_reference=refunded)
        uow.payments.save(current)
