"""A charge's outcome, recorded in the attempt's second transaction: settle, fail, schedule a retry, or wait
for the provider's breaker (its refusal is no attempt).

A decline is an answer: `failed` with `declined`, not dead-lettered. Retries run out (`retries_exhausted`) or
the breaker waited out (`provider_unavailable`): `failed`, money back, and a dead letter (API.md §6)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from core.accounts import CLEARING, settlement
from core.payments import (
    FailureCode,
    Payment,
    PaymentEvent,
    PaymentStatus,
    ambiguous_attempts,
    late_charges,
    waiting_since,
)
from core.ports import UnitOfWork
from core.providers import CircuitOpen, ProviderDeclined, ProviderError, ProviderUnavailable
from core.usecases.announcements import announce_payment
from core.usecases.late_charges import LATE_DETECTED
from core.usecases.postings import move
from core.usecases.provider_calls import judge
from core.usecases.reversal import return_to_source
from core.usecases.shared_attempts import PaymentClaim
from core.usecases.worker_deps import Deps, Outcome, WorkResult
from core.work import PAYMENT, DeadLetter, RetryPolicy, WorkItem


async def record_charge_outcome(
    begun: Payment, reference: str | None, error: ProviderError | None, deps: Deps, *,
    history: Sequence[PaymentEvent] = (),
) -> Outcome:
    """Record the provider's answer if the payment is still ours to finish.

    A success is always recorded (on a payment that already failed, as a late charge to refund:
    `LATE`). A failure is recorded only if nobody changed the payment since this attempt began:
    otherwise another worker's attempt overlapped this one and the next delivery asks again.
    `history` is the payment's events when the attempt began (those that matter: see `_history`).
    """
    async def record(uow: UnitOfWork) -> Outcome:
        payment = await uow.payments.lock(begun.tenant_id, begun.id)
        if payment is None:
            return Outcome(WorkResult.SKIPPED)
        now = deps.clock.now()
        if reference is not None and payment.status == PaymentStatus.FAILED:
            # Noted once per charge: a completion run again (its shared transaction's COMMIT outcome unknown,
            # two deliveries overlapping) finds its first note and only asks for the (idempotent) reversal again.
            stored = await uow.payments.events(begun.tenant_id, begun.id)
            if reference not in late_charges([*stored, *payment.events]):  # unsaved too: a group's earlier member
                payment.note(LATE_DETECTED, now, charge_reference=reference)
                uow.payments.save(payment)
            return Outcome(WorkResult.LATE, payment.status)
        if payment.status != PaymentStatus.PROCESSING:
            return Outcome(WorkResult.SKIPPED, payment.status)
        if error is not None and payment.version != begun.version:
            return Outcome(WorkResult.RETRY, payment.status, deps.policy.min_backoff)
        retry_in = None
        if not isinstance(error, CircuitOpen):  # a breaker's refusal is not an attempt: nothing reached the provider
            payment.attempts += 1
        if reference is not None:
            await _settle(uow, payment, reference, now)
        elif isinstance(error, ProviderDeclined):  # an answer, not a fault: nothing to dead-letter
            await _fail(uow, payment, FailureCode.DECLINED, error.reason, now)
        else:
            assert isinstance(error, ProviderUnavailable)
            retry_in = await _unavailable(uow, payment, error, list(history), now, policy=deps.policy)
        uow.payments.save(payment)
        return Outcome(WorkResult.RETRY if retry_in is not None else WorkResult.DONE, payment.status, retry_in)

    if reference is not None and deps.shared is not None:
        # A charge, the common case: its completion shares one transaction with those completing now. Failures go
        # alone: returning money locks the source account, which may not be locked after clearing.
        claim = PaymentClaim(payment_id=begun.id, currency=begun.currency, provider=begun.provider)
        return await deps.shared.completions.run(record, tenant_id=begun.tenant_id, claim=claim)
    async with deps.uow_factory() as uow:
        return await record(uow)


async def _unavailable(
    uow: UnitOfWork, payment: Payment, error: ProviderUnavailable, history: list[PaymentEvent], now: datetime, *,
    policy: RetryPolicy,
) -> float | None:
    """A transient failure or a breaker's refusal: the payment waits for the breaker, or its next attempt is
    scheduled, or it fails (money back, dead letter). The seconds until it is tried again, or None."""
    since = waiting_since(history)
    verdict = judge(error, payment.attempts, since, now, ambiguous=ambiguous_attempts(history), policy=policy)
    retry_at = None if verdict.retry_in is None else now + timedelta(seconds=verdict.retry_in)
    if not verdict.counted and retry_at is not None:
        payment.waiting_for_provider(error.reason, now, retry_at, since or now)
    elif verdict.counted:
        payment.attempt_failed(error.reason, now, retry_at, ambiguous=error.ambiguous)
        announce_payment(uow, payment, "payment.attempt_failed", now)
    if verdict.code is not None:
        await _fail(uow, payment, verdict.code, verdict.reason, now)
        work = WorkItem(kind=PAYMENT, tenant_id=payment.tenant_id, target_id=payment.id,
                        correlation_id=payment.correlation_id)
        uow.dead_letters.add(DeadLetter.of(work, error=verdict.reason, attempts=payment.attempts, at=now))
    return verdict.retry_in


async def _settle(uow: UnitOfWork, payment: Payment, reference: str, now: datetime) -> None:
    """The provider charged: clearing -> settlement:<provider>, payment completed."""
    assert payment.provider is not None
    # Settlement first: clearing is the tenant's hottest row (every creation and completion locks it), so it is
    # locked last, held for the commit only. No path locks clearing before settlement (creation and failure lock
    # source -> clearing, a refund source -> settlement), so this order cannot deadlock.
    paid_out, clearing = await uow.accounts.lock_systems(payment.tenant_id, [settlement(payment.provider), CLEARING],
                                                         payment.currency)
    move(uow, [(clearing, -payment.amount), (paid_out, payment.amount)], now, payment_id=payment.id)
    payment.complete(reference, now)
    announce_payment(uow, payment, f"payment.{PaymentStatus.COMPLETED}", now)


async def _fail(uow: UnitOfWork, payment: Payment, code: FailureCode, reason: str, now: datetime) -> None:
    """End the payment `failed` and return its money."""
    await return_to_source(uow, payment, now)
    payment.fail(code, reason, now)
    announce_payment(uow, payment, "payment.failed", now)
