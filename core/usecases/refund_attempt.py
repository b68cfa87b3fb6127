"""A refund attempt: the provider is asked to refund outside any transaction, keyed by the refund's id."""

from __future__ import annotations

from core.locking import LockBusy, held_lock
from core.payments import Payment, PaymentEvent
from core.providers import ProviderUnavailable, RefundRequest
from core.refunds import Refund, RefundStatus
from core.usecases.confirmation import OUTCOME_UNKNOWN, confirm
from core.usecases.provider_calls import Unconfirmed, call
from core.usecases.refund_outcome import record_refund_outcome
from core.usecases.worker_deps import Deps, Outcome, WorkResult
from core.work import WorkItem


async def process_refund(item: WorkItem, *, deps: Deps) -> Outcome:
    """Refund through the payment's provider with the refund id as idempotency key; on success the money
    goes from `settlement:<provider>` back to the source. Safe to run twice or concurrently."""
    try:
        async with held_lock(deps.locks, f"refund:{item.target_id}", deps.policy.lock_ttl) as held:
            async with deps.uow_factory(read_only=True) as uow:
                refund = await uow.refunds.lock(item.tenant_id, item.target_id)
                payment = await uow.payments.get(item.tenant_id, refund.payment_id) if refund else None
                history = await uow.payments.events(item.tenant_id, payment.id) if payment else []
            if refund is None or payment is None or refund.status != RefundStatus.PENDING or payment.provider is None:
                return Outcome(WorkResult.SKIPPED)
            if (wait := refund.wait(deps.clock.now())) is not None:  # an early duplicate
                return Outcome(WorkResult.RETRY, refund.status, wait)
            request = _refund_request(refund, payment)
            provider = deps.providers(payment.provider)
            if refund.attempts >= deps.policy.max_attempts:  # attempts spent, outcome unknown: only ask
                outcome = await confirm(Unconfirmed(OUTCOME_UNKNOWN), True,
                                        lambda: provider.find_refund(request), deps.policy)
                return await record_refund_outcome(item.tenant_id, refund.payment_id, refund, outcome, deps)
            outcome = await call(lambda: provider.refund(request), deps.policy)
            if outcome[1] is not None and held.lost:  # an overlapping attempt may have succeeded: not final
                return Outcome(WorkResult.RETRY, refund.status, deps.policy.min_backoff)
            error = outcome[1]
            if isinstance(error, ProviderUnavailable) and refund.attempts + 1 >= deps.policy.max_attempts:
                outcome = await confirm(error, _ambiguous(history, refund), lambda: provider.find_refund(request),
                                        deps.policy)
            return await record_refund_outcome(item.tenant_id, refund.payment_id, refund, outcome, deps)
    except LockBusy:
        return Outcome(WorkResult.BUSY, None, deps.policy.lock_ttl / 3)


def _ambiguous(history: list[PaymentEvent], refund: Refund) -> bool:
    """Whether an earlier attempt of this refund may have been processed by the provider."""
    return any(e.data.get("ambiguous", True) for e in history
               if e.type == "refund.attempt_failed" and e.data.get("refund", {}).get("id") == str(refund.id))


def _refund_request(refund: Refund, payment: Payment) -> RefundRequest:
    return RefundRequest(
        refund_id=refund.id, payment_id=payment.id, charge_reference=payment.provider_reference or "",
        amount=refund.amount, currency=refund.currency, reason=refund.reason, metadata=payment.metadata,
    )
