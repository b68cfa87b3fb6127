"""Settling what a provider call left unknown: look the charge up before failing a payment, and refund a
charge that arrived after its payment had failed.

A timeout or a dropped connection says nothing about whether money moved. A
payment whose attempts ran out is failed (and its money returned) only when no
attempt was ambiguous, or when the provider confirms it holds no charge for it.
If the provider cannot be asked, the payment stays `processing` and is tried
again later: money in clearing is better than money in two places.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from core.payments import FAILED, Payment, owed_reversals
from core.providers import (
    ChargeRequest,
    PaymentProvider,
    ProviderError,
    ProviderResult,
    ProviderUnavailable,
    RefundRequest,
)
from core.usecases.processing_base import DONE, SKIPPED, Deps, Outcome, call
from core.work import WorkItem

LATE_DETECTED, LATE_REVERSED = "payment.late_charge_detected", "payment.late_charge_reversed"


class Unconfirmed(ProviderUnavailable):
    """The attempts ran out after an ambiguous failure and the provider could not be asked whether it
    charged: the payment may not be failed yet."""


async def confirm(
    error: ProviderUnavailable, ambiguous_before: bool, find: Callable[[], Awaitable[ProviderResult | None]],
    deps: Deps,
) -> tuple[str | None, ProviderError | None]:
    """Before the last failure becomes final: the provider's reference if it did charge (or refund)
    after all; the error itself if nothing can have moved; `Unconfirmed` if that cannot be known yet."""
    if not (error.ambiguous or ambiguous_before):
        return None, error
    found, failure = await call(find, deps.policy)
    if failure is not None:
        return None, Unconfirmed(f"{error.reason}; whether the provider acted is not known yet ({failure.reason})")
    if found is not None:
        return found, error
    return None, ProviderUnavailable(error.reason, ambiguous=False)


async def reverse_late_charges(item: WorkItem, deps: Deps) -> Outcome:
    """A failed payment that still owes the refund of a late charge gets it (the delivery is retried
    until it does: the refund raises on failure)."""
    async with deps.uow(read_only=True) as uow:
        payment = await uow.payments.get(item.tenant_id, item.target_id)
        events = await uow.payments.events(item.tenant_id, item.target_id) if payment else []
    owed = owed_reversals(events) if payment is not None and payment.status == FAILED else []
    if payment is None or not owed:
        return Outcome(SKIPPED, payment.status if payment else None)
    provider = deps.providers(payment.provider or "")
    for reference in owed:
        await reverse_late_charge(payment, reference, provider, deps)
    return Outcome(DONE, payment.status)


async def reverse_late_charge(payment: Payment, reference: str, provider: PaymentProvider, deps: Deps) -> None:
    """Refund, in full at the provider, a charge that succeeded after its payment had failed (its money is
    already back on the source), so the customer is not charged for a failed payment.

    Idempotent: the refund's key derives from the payment and the charge. `payment.late_charge_detected`
    was committed before this runs, so a crash here leaves the debt on record for the next delivery.
    """
    void = RefundRequest(refund_id=uuid.uuid5(payment.id, f"late-charge:{reference}"), payment_id=payment.id,
                         charge_reference=reference, amount=payment.amount, currency=payment.currency,
                         reason="charge arrived after the payment failed", metadata={})
    refunded, error = await call(lambda: provider.refund(void), deps.policy)
    if error is not None:
        raise error
    async with deps.uow() as uow:
        current = await uow.payments.lock(payment.tenant_id, payment.id)
        if current is None or reference not in owed_reversals(await uow.payments.events(payment.tenant_id,
                                                                                        payment.id)):
            return
        current.note(LATE_REVERSED, deps.clock.now(), charge_reference=reference, refund_reference=refunded)
        uow.payments.save(current)
        await uow.commit()


def charge_request(payment: Payment) -> ChargeRequest:
    return ChargeRequest(payment_id=payment.id, amount=payment.amount, currency=payment.currency,
                         description=payment.description, metadata=payment.metadata)
