"""A refund's outcome, recorded after the provider answered: reverse the money, fail, schedule a retry, or wait
for the provider's breaker (its refusal is no attempt, as for payments: `provider_calls.judge`).

A decline is an answer: the refund is `failed` and not dead-lettered. Retries run out, or the breaker waited
out: `failed` and a dead letter. A success that arrives once the refund is `failed` is a late refund
(`late_refunds`): the ledger follows the provider. The payment's history records each step, with the refund.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

from core.clock import timestamp
from core.payments import FailureCode, Payment, PaymentEvent, waiting_since
from core.ports import UnitOfWork
from core.providers import CircuitOpen, ProviderDeclined, ProviderError, ProviderUnavailable
from core.refunds import Refund, RefundStatus
from core.usecases.announcements import announce_refund
from core.usecases.late_refunds import REFUND_FAILED, of_refund, record_late_refund
from core.usecases.provider_calls import judge
from core.usecases.reversal import reverse_external
from core.usecases.worker_deps import Deps, Outcome, WorkResult
from core.work import REFUND, DeadLetter, RetryPolicy, WorkItem

#: A breaker refused the refund's call (not an attempt): it waits (an event of the payment's history).
REFUND_WAITING = "refund.waiting_for_provider"


async def record_refund_outcome(
    tenant_id: UUID, payment_id: UUID, begun: Refund, outcome: tuple[str | None, ProviderError | None],
    deps: Deps, *, history: Sequence[PaymentEvent] = (),
) -> Outcome:
    """Record the provider's answer; a failure only if nobody touched the refund since this attempt began.
    `history` is the payment's events when the attempt began."""
    reference, error = outcome
    async with deps.uow_factory() as uow:
        payment = await uow.payments.lock(tenant_id, payment_id)
        refund = await uow.refunds.lock(tenant_id, begun.id)
        if payment is None or refund is None:
            return Outcome(WorkResult.SKIPPED, refund.status if refund else None)
        now = deps.clock.now()
        if reference is not None and refund.status == RefundStatus.FAILED:  # the provider refunded after all
            await record_late_refund(uow, payment, refund, reference, now)
            return Outcome(WorkResult.DONE, refund.status)
        if refund.status != RefundStatus.PENDING:
            return Outcome(WorkResult.SKIPPED, refund.status)
        if error is not None and (refund.attempts, refund.updated_at) != (begun.attempts, begun.updated_at):
            return Outcome(WorkResult.RETRY, refund.status, deps.policy.min_backoff)
        if not isinstance(error, CircuitOpen):  # a breaker's refusal is not an attempt: nothing reached the provider
            refund.attempts += 1
        refund.updated_at = now
        retry_in = None
        if reference is not None:
            await reverse_external(uow, payment, refund, reference, now)
        elif isinstance(error, ProviderDeclined):  # an answer, not a fault: nothing to dead-letter
            _fail(uow, payment, refund, now, code=FailureCode.DECLINED, reason=error.reason)
        else:
            assert isinstance(error, ProviderUnavailable)
            retry_in = _unavailable(uow, payment, refund, error, list(history), now=now, policy=deps.policy)
        uow.refunds.save(refund)
        uow.payments.save(payment)
    return Outcome(WorkResult.RETRY if retry_in is not None else WorkResult.DONE, refund.status, retry_in)


def ambiguous_refund(history: list[PaymentEvent], refund: Refund) -> bool:
    """Whether an earlier attempt of this refund may have been processed by the provider."""
    return any(e.data.get("ambiguous", True) for e in of_refund(history, "refund.attempt_failed", refund))


def _unavailable(
    uow: UnitOfWork, payment: Payment, refund: Refund, error: ProviderUnavailable, history: list[PaymentEvent], *,
    now: datetime, policy: RetryPolicy,
) -> float | None:
    """A transient failure or a breaker's refusal: the refund waits for the breaker, or its next attempt is
    scheduled, or it fails. The seconds until it is tried again, or None."""
    since = waiting_since(history, REFUND_WAITING, refund.id)
    verdict = judge(error, refund.attempts, since, now, ambiguous=ambiguous_refund(history, refund), policy=policy)
    if verdict.retry_in is None:
        assert verdict.code is not None
        work = WorkItem(kind=REFUND, tenant_id=refund.tenant_id, target_id=refund.id,
                        correlation_id=refund.correlation_id)
        uow.dead_letters.add(DeadLetter.of(work, error=verdict.reason, attempts=refund.attempts, at=now))
        _fail(uow, payment, refund, now, code=verdict.code, reason=verdict.reason)
        return None
    refund.next_attempt_at = now + timedelta(seconds=verdict.retry_in)
    if verdict.counted:
        payment.note("refund.attempt_failed", now, refund=refund.summary(), attempt=refund.attempts,
                     error=error.reason, ambiguous=error.ambiguous)
    else:
        payment.note(REFUND_WAITING, now, refund=refund.summary(), attempts=refund.attempts, error=error.reason,
                     waiting_since=timestamp(since or now), retry_at=timestamp(refund.next_attempt_at))
    return verdict.retry_in


def _fail(uow: UnitOfWork, payment: Payment, refund: Refund, now: datetime, *, code: FailureCode, reason: str) -> None:
    """The refund ends `failed`; nothing moved, so nothing moves back. The history says why
    (the refund's `failure_code`: a refund has no such field of its own)."""
    refund.fail(reason, now)
    announce_refund(uow, refund, "refund.failed", now)
    payment.note(REFUND_FAILED, now, refund={**refund.summary(), "failure_code": code})
