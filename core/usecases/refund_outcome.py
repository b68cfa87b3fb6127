"""A refund's outcome, recorded after the provider answered: reverse the money, fail, or schedule a retry."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from core.payments import Payment
from core.ports import UnitOfWork
from core.providers import ProviderDeclined, ProviderError, ProviderUnavailable
from core.refunds import Refund, RefundStatus
from core.usecases.announcements import announce_refund
from core.usecases.provider_calls import retry_wait
from core.usecases.reversal import reverse_external
from core.usecases.worker_deps import Deps, Outcome, WorkResult
from core.work import REFUND, DeadLetter, RetryPolicy, WorkItem


async def record_refund_outcome(
    tenant_id: UUID, payment_id: UUID, begun: Refund, outcome: tuple[str | None, ProviderError | None],
    deps: Deps,
) -> Outcome:
    """Record the provider's answer; a failure only if nobody touched the refund since this attempt began."""
    reference, error = outcome
    async with deps.uow_factory() as uow:
        payment = await uow.payments.lock(tenant_id, payment_id)
        refund = await uow.refunds.lock(tenant_id, begun.id)
        if payment is None or refund is None or refund.status != RefundStatus.PENDING:
            return Outcome(WorkResult.SKIPPED, refund.status if refund else None)
        if error is not None and (refund.attempts, refund.updated_at) != (begun.attempts, begun.updated_at):
            return Outcome(WorkResult.RETRY, refund.status, deps.policy.min_backoff)
        now = deps.clock.now()
        refund.attempts += 1
        refund.updated_at = now
        retry_in = None
        if reference is not None:
            await reverse_external(uow, payment, refund, reference, now)
        elif isinstance(error, ProviderDeclined):
            _fail(uow, payment, refund, error.reason, now)
        else:
            assert isinstance(error, ProviderUnavailable)
            retry_in = _attempt_failed(uow, payment, refund, error, now, policy=deps.policy)
        uow.refunds.save(refund)
        uow.payments.save(payment)
    return Outcome(WorkResult.RETRY if retry_in is not None else WorkResult.DONE, refund.status, retry_in)


def _attempt_failed(
    uow: UnitOfWork, payment: Payment, refund: Refund, error: ProviderUnavailable, now: datetime, *,
    policy: RetryPolicy,
) -> float | None:
    """A transient failure: the next attempt is scheduled, or, the attempts spent, the refund fails.
    The seconds until the next attempt, or None."""
    retry_in = retry_wait(error, refund.attempts, policy)
    if retry_in is None:
        _fail(uow, payment, refund, f"{error.reason} (gave up after {refund.attempts} attempts)", now)
    else:
        refund.next_attempt_at = now + timedelta(seconds=retry_in)
        payment.note("refund.attempt_failed", now, refund=refund.summary(), attempt=refund.attempts,
                     error=error.reason, ambiguous=error.ambiguous)
    return retry_in


def _fail(uow: UnitOfWork, payment: Payment, refund: Refund, reason: str, now: datetime) -> None:
    """The refund ends `failed`; nothing moved, so nothing moves back. A dead letter keeps it for inspection."""
    refund.fail(reason, now)
    announce_refund(uow, refund, "refund.failed", now)
    work = WorkItem(kind=REFUND, tenant_id=refund.tenant_id, target_id=refund.id,
                    correlation_id=refund.correlation_id)
    uow.dead_letters.add(DeadLetter.of(work, error=reason, attempts=refund.attempts, at=now))
    payment.note("refund.failed", now, refund=refund.summary())
