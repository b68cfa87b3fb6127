"""A refund attempt: the provider is asked to refund outside any transaction, keyed by the refund's id.

A call the breaker refused is not an attempt: the refund waits for it (`refund.waiting_for_provider` in the
payment's history), at most `PAYMENTS_PAYMENT_BREAKER_MAX_WAIT`. A refund that failed (but was not declined)
is looked up again, never refunded again, when its work is delivered once more: a success found is a late
refund, and the ledger follows the provider (`late_refunds`).
"""

from __future__ import annotations

from core.locking import LockBusy, held_lock
from core.payments import Payment, PaymentEvent, waiting_since
from core.providers import CircuitOpen, ProviderUnavailable, RefundRequest
from core.refunds import Refund, RefundStatus
from core.usecases.confirmation import confirm
from core.usecases.late_refunds import may_have_succeeded
from core.usecases.provider_calls import ask, call, waited_out
from core.usecases.refund_outcome import REFUND_WAITING, ambiguous_refund, record_refund_outcome
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
            if refund is None or payment is None or payment.provider is None:
                return Outcome(WorkResult.SKIPPED)
            request = _refund_request(refund, payment)
            provider = deps.providers(payment.provider)
            if may_have_succeeded(history, refund):  # failed, not declined: did the provider refund after all?
                reference, _ = await call(lambda: provider.find_refund(request), deps.policy)
                if reference is None:
                    return Outcome(WorkResult.SKIPPED, refund.status)
                return await record_refund_outcome(item.tenant_id, payment.id, refund, (reference, None), deps)
            if refund.status != RefundStatus.PENDING:
                return Outcome(WorkResult.SKIPPED, refund.status)
            if (wait := refund.wait(deps.clock.now())) is not None:  # an early duplicate
                return Outcome(WorkResult.RETRY, refund.status, wait)
            if _only_ask(refund, history, deps):  # the outcome is unknown and it may not try again: only ask
                outcome = await ask(lambda: provider.find_refund(request), deps.policy)
                return await record_refund_outcome(item.tenant_id, payment.id, refund, outcome, deps,
                                                   history=history)
            outcome = await call(lambda: provider.refund(request), deps.policy)
            if outcome[1] is not None and held.lost:  # an overlapping attempt may have succeeded: not final
                return Outcome(WorkResult.RETRY, refund.status, deps.policy.min_backoff)
            error = outcome[1]
            if (isinstance(error, ProviderUnavailable) and not isinstance(error, CircuitOpen)
                    and refund.attempts + 1 >= deps.policy.max_attempts):
                outcome = await confirm(error, ambiguous_refund(history, refund),
                                        lambda: provider.find_refund(request), deps.policy)
            return await record_refund_outcome(item.tenant_id, payment.id, refund, outcome, deps, history=history)
    except LockBusy:
        return Outcome(WorkResult.BUSY, None, deps.policy.lock_ttl / 3)


def _only_ask(refund: Refund, history: list[PaymentEvent], deps: Deps) -> bool:
    """Its attempts are spent with the outcome unknown, or it waited out the breaker after an ambiguous attempt."""
    return refund.attempts >= deps.policy.max_attempts or (ambiguous_refund(history, refund) and waited_out(
        waiting_since(history, REFUND_WAITING, refund.id), deps.clock.now(), deps.policy))


def _refund_request(refund: Refund, payment: Payment) -> RefundRequest:
    return RefundRequest(
        refund_id=refund.id, payment_id=payment.id, charge_reference=payment.provider_reference or "",
        amount=refund.amount, currency=refund.currency, reason=refund.reason, metadata=payment.metadata,
    )
