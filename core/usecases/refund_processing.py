"""The worker's side of a refund: the provider is called outside any transaction, the outcome recorded after."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from core.ids import new_id
from core.locking import LockBusy, held_lock
from core.payments import PaymentEvent
from core.ports import UnitOfWork
from core.providers import ProviderDeclined, ProviderError, ProviderUnavailable, RefundRequest
from core.refunds import PENDING, Refund
from core.usecases.processing_base import BUSY, DONE, RETRY, SKIPPED, Deps, Outcome, breaker_wait, call
from core.usecases.reconcile import Unconfirmed, confirm
from core.usecases.refunds import announce, reverse_external
from core.work import REFUND, DeadLetter, WorkItem


async def process_refund(item: WorkItem, *, deps: Deps) -> Outcome:
    """Refund through the payment's provider with the refund id as idempotency key; on success the money
    goes from `settlement:<provider>` back to the source. Safe to run twice or concurrently."""
    try:
        async with held_lock(deps.locks, f"refund:{item.target_id}", deps.policy.lock_ttl) as held:
            async with deps.uow(read_only=True) as uow:
                refund = await uow.refunds.lock(item.tenant_id, item.target_id)
                payment = await uow.payments.get(item.tenant_id, refund.payment_id) if refund else None
                history = await uow.payments.events(item.tenant_id, payment.id) if payment else []
            if refund is None or payment is None or refund.status != PENDING or payment.provider is None:
                return Outcome(SKIPPED)
            now = deps.clock.now()
            if refund.next_attempt_at is not None and refund.next_attempt_at > now:  # an early duplicate
                return Outcome(RETRY, refund.status, (refund.next_attempt_at - now).total_seconds())
            request = RefundRequest(
                refund_id=refund.id, payment_id=payment.id, charge_reference=payment.provider_reference or "",
                amount=refund.amount, currency=refund.currency, reason=refund.reason, metadata=payment.metadata,
            )
            provider = deps.providers(payment.provider)
            if refund.attempts >= deps.policy.max_attempts:  # attempts spent, outcome unknown: only ask
                outcome = await confirm(Unconfirmed("the attempts ran out with the outcome unknown"), True,
                                        lambda: provider.find_refund(request), deps)
                return await _finish(item.tenant_id, refund.payment_id, refund, outcome, deps)
            outcome = await call(lambda: provider.refund(request), deps.policy)
            if outcome[1] is not None and held.lost:  # an overlapping attempt may have succeeded: not final
                return Outcome(RETRY, refund.status, deps.policy.min_backoff)
            error = outcome[1]
            if isinstance(error, ProviderUnavailable) and refund.attempts + 1 >= deps.policy.max_attempts:
                outcome = await confirm(error, _ambiguous(history, refund), lambda: provider.find_refund(request),
                                        deps)
            return await _finish(item.tenant_id, refund.payment_id, refund, outcome, deps)
    except LockBusy:
        return Outcome(BUSY, None, deps.policy.lock_ttl / 3)


def _ambiguous(history: list[PaymentEvent], refund: Refund) -> bool:
    """Whether an earlier attempt of this refund may have been processed by the provider."""
    return any(e.data.get("ambiguous", True) for e in history
               if e.type == "refund.attempt_failed" and e.data.get("refund", {}).get("id") == str(refund.id))


async def _finish(
    tenant_id: UUID, payment_id: UUID, begun: Refund, outcome: tuple[str | None, ProviderError | None],
    deps: Deps,
) -> Outcome:
    """Record the provider's answer; a failure only if nobody touched the refund since this attempt began."""
    reference, error = outcome
    async with deps.uow() as uow:
        payment = await uow.payments.lock(tenant_id, payment_id)
        refund = await uow.refunds.lock(tenant_id, begun.id)
        if payment is None or refund is None or refund.status != PENDING:
            return Outcome(SKIPPED, refund.status if refund else None)
        if error is not None and (refund.attempts, refund.updated_at) != (begun.attempts, begun.updated_at):
            return Outcome(RETRY, refund.status, deps.policy.min_backoff)
        now = deps.clock.now()
        refund.attempts += 1
        refund.updated_at = now
        retry_in = None
        if reference is not None:
            await reverse_external(uow, payment, refund, reference, now)
        elif isinstance(error, ProviderDeclined) or (
                refund.attempts >= deps.policy.max_attempts and not isinstance(error, Unconfirmed)):
            assert error is not None
            reason = error.reason if isinstance(error, ProviderDeclined) else (
                f"{error.reason} (gave up after {refund.attempts} attempts)")
            _fail(uow, refund, reason, now)
            payment.note("refund.failed", now, refund=refund.summary())
        else:
            assert error is not None
            assert isinstance(error, ProviderUnavailable)
            retry_in = deps.policy.max_backoff if isinstance(error, Unconfirmed) else max(
                deps.policy.backoff(refund.attempts), breaker_wait(error, deps))
            refund.next_attempt_at = now + timedelta(seconds=retry_in)
            payment.note("refund.attempt_failed", now, refund=refund.summary(), attempt=refund.attempts,
                         error=error.reason, ambiguous=error.ambiguous)
        uow.refunds.save(refund)
        uow.payments.save(payment)
        await uow.commit()
    return Outcome(RETRY if retry_in is not None else DONE, refund.status, retry_in)


def _fail(uow: UnitOfWork, refund: Refund, reason: str, now: datetime) -> None:
    """The refund ends `failed`; nothing moved, so nothing moves back. A dead letter keeps it for inspection."""
    refund.fail(reason, now)
    announce(uow, refund, "refund.failed", now)
    uow.dead_letters.add(DeadLetter(
        id=new_id(), tenant_id=refund.tenant_id, kind=REFUND, target_id=refund.id, error=reason,
        attempts=refund.attempts, correlation_id=refund.correlation_id, created_at=now,
    ))
