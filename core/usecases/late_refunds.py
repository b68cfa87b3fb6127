"""Refunds the provider confirms after they were recorded `failed`: the ledger follows the provider.

What "the provider confirms" means here: a success for the refund's idempotency key (its id) that reaches the
worker once the refund is `failed`. It comes one of two ways:

- a late answer: an attempt that overlapped the one that failed the refund (two workers across a lost lock, or
  a delivery that outlived its lock) returns the provider's success afterwards (`record_refund_outcome`);
- a later lookup: a refund that failed for any reason but a decline (its attempts ran out, or it waited out the
  breaker, after the provider's lookup missed it: real providers' searches lag) is looked up again, never
  refunded again, whenever its work is delivered once more (a duplicate or redelivered message, or an operator's
  `payments dlq retry` of its dead letter, or reconciliation finding it in the provider's settlement report:
  `refund.late_success_suspected`).

A decline is the provider's own answer for that key, so a declined refund is never looked up. Then, in one
transaction, the refund becomes `succeeded` and the money moves exactly as for a refund that succeeded in time
(`settlement:<provider>` -> source, the payment `partially_refunded` or `refunded`, `refund.succeeded` and the
payment's event announced to webhooks), after `refund.late_success_detected` in the payment's history. It is
idempotent: only a `failed` refund is moved, once. Money is never created: if the late success, added to the
payment's other pending and succeeded refunds, would exceed the payment (another refund took its place while it
was failed), nothing is posted; `refund.late_success_held` is recorded and a dead letter asks a person to settle
it with the provider.
"""

from __future__ import annotations

from datetime import datetime

from core.payments import FailureCode, Payment, PaymentEvent
from core.ports import UnitOfWork
from core.refunds import Refund, RefundStatus
from core.usecases.reversal import reverse_external
from core.work import REFUND, DeadLetter, WorkItem

LATE_REFUND_DETECTED, LATE_REFUND_HELD = "refund.late_success_detected", "refund.late_success_held"
#: Reconciliation found the provider settled a refund recorded `failed`: the refund's work (started by this event,
#: `core.events.work_for`) looks it up and posts it (an internal event: not sent, not in the feed).
LATE_REFUND_SUSPECTED = "refund.late_success_suspected"
#: The payment's history event that ends a refund `failed` (its data: the refund, with its `failure_code`).
REFUND_FAILED = "refund.failed"


def of_refund(events: list[PaymentEvent], event_type: str, refund: Refund) -> list[PaymentEvent]:
    """The payment's events of `event_type` about `refund`."""
    return [e for e in events if e.type == event_type and e.data.get("refund", {}).get("id") == str(refund.id)]


def may_have_succeeded(history: list[PaymentEvent], refund: Refund) -> bool:
    """Whether a failed refund is worth looking up at the provider: it was not declined (a decline is the
    provider's answer for its key, and a repeat of the key gets it again)."""
    failures = of_refund(history, REFUND_FAILED, refund)
    return refund.status == RefundStatus.FAILED and not any(
        e.data["refund"].get("failure_code") == FailureCode.DECLINED for e in failures)


async def record_late_refund(uow: UnitOfWork, payment: Payment, refund: Refund, reference: str, now: datetime) -> bool:
    """The provider refunded a refund recorded `failed`: post it as a success, or, if that would refund more than
    the payment, hold it for a person (once). True if it was posted. The caller holds both rows' locks."""
    others = sum(r.amount for r in await uow.refunds.for_payment(payment.tenant_id, payment.id)
                 if r.outstanding and r.id != refund.id)
    if payment.refundable and others + refund.amount <= payment.amount:
        payment.note(LATE_REFUND_DETECTED, now, refund=refund.summary(), refund_reference=reference)
        await reverse_external(uow, payment, refund, reference, now)
        uow.payments.save(payment)
        return True
    if of_refund(await uow.payments.events(payment.tenant_id, payment.id), LATE_REFUND_HELD, refund):
        return False  # already held for a person
    reason = (f"the provider refunded {reference} after refund {refund.id} failed, but the payment has no "
              f"{refund.amount} minor units left to refund ({others} of {payment.amount} refunded or pending): "
              "not posted; settle it with the provider")
    payment.note(LATE_REFUND_HELD, now, refund=refund.summary(), refund_reference=reference, reason=reason)
    work = WorkItem(kind=REFUND, tenant_id=refund.tenant_id, target_id=refund.id,
                    correlation_id=refund.correlation_id)
    uow.dead_letters.add(DeadLetter.of(work, error=reason, attempts=refund.attempts, at=now))
    uow.payments.save(payment)
    return False
