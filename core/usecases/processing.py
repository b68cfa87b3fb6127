"""The worker's side of a payment: call the provider outside any transaction, record the outcome after.

Transaction 1 moves the payment `pending -> processing` (under its row lock and a
version check); the provider is then called with the payment id as its
idempotency key; transaction 2 records the outcome if the payment is still
`processing`. A Redis lock per payment keeps two workers from calling the
provider at once, but correctness rests on the row lock and the status check:
a duplicate message, a worker killed at any point, or two workers on one payment
repeat the provider call under the same key and record its outcome only once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.accounts import CLEARING, settlement
from core.ids import new_id
from core.locking import LockBusy, held_lock
from core.payments import COMPLETED, FAILED, PENDING, PROCESSING, Payment, ambiguous_attempts
from core.ports import UnitOfWork
from core.providers import ProviderDeclined, ProviderError, ProviderUnavailable
from core.usecases.external import move, publish, return_to_source
from core.usecases.processing_base import BUSY, DONE, LATE, RETRY, SKIPPED, Deps, Outcome, breaker_wait, call
from core.usecases.reconcile import (
    LATE_DETECTED,
    Unconfirmed,
    charge_request,
    confirm,
    reverse_late_charge,
    reverse_late_charges,
)
from core.work import PAYMENT, DeadLetter, WorkItem

__all__ = ["BUSY", "DONE", "LATE", "RETRY", "SKIPPED", "Deps", "Outcome", "process_payment"]


async def process_payment(item: WorkItem, *, deps: Deps) -> Outcome:
    """Charge a pending (or retried) external payment through its provider, exactly once in effect."""
    try:
        async with held_lock(deps.locks, f"payment:{item.target_id}", deps.policy.lock_ttl) as held:
            payment, wait = await _begin(item, deps)
            if payment is None:
                return Outcome(RETRY, None, wait) if wait is not None else await reverse_late_charges(item, deps)
            provider = deps.providers(payment.provider or "")
            request = charge_request(payment)
            if payment.attempts >= deps.policy.max_attempts:
                # Every attempt is spent and the last outcome is still unknown: only ask, never charge again.
                reference, error = await confirm(Unconfirmed("the attempts ran out with the outcome unknown"),
                                                 True, lambda: provider.find_charge(request), deps)
            else:
                reference, error = await call(lambda: provider.charge(request), deps.policy)
                if error is not None and held.lost:
                    # Another worker may be calling under the same key right now: a failure seen here proves
                    # nothing about the payment, so it is neither counted nor final. Try again later.
                    return Outcome(RETRY, payment.status, deps.policy.min_backoff)
                if isinstance(error, ProviderUnavailable) and payment.attempts + 1 >= deps.policy.max_attempts:
                    reference, error = await confirm(error, await _ambiguous_before(payment, deps),
                                                     lambda: provider.find_charge(request), deps)
            outcome = await _finish(payment, reference, error, deps)
            if outcome.result == LATE:
                assert reference is not None
                await reverse_late_charge(payment, reference, provider, deps)
            return outcome
    except LockBusy:
        return Outcome(BUSY, None, deps.policy.lock_ttl / 3)


async def _begin(item: WorkItem, deps: Deps) -> tuple[Payment | None, float | None]:
    """Transaction 1: `pending -> processing`; a payment already processing is resumed. An early
    duplicate of a scheduled retry gets the seconds still to wait; other payments are not ours."""
    async with deps.uow() as uow:
        payment = await uow.payments.lock(item.tenant_id, item.target_id)
        if payment is None or not payment.is_external or payment.status not in (PENDING, PROCESSING):
            return None, None
        now = deps.clock.now()
        if payment.next_attempt_at is not None and payment.next_attempt_at > now:
            return None, (payment.next_attempt_at - now).total_seconds()
        if payment.status == PENDING:
            payment.transition(PROCESSING, now)
            uow.payments.save(payment)
            publish(uow, payment, "payment.processing", now)
            await uow.commit()
        return payment, None


async def _ambiguous_before(payment: Payment, deps: Deps) -> bool:
    async with deps.uow(read_only=True) as uow:
        return ambiguous_attempts(await uow.payments.events(payment.tenant_id, payment.id))


async def _finish(begun: Payment, reference: str | None, error: ProviderError | None, deps: Deps) -> Outcome:
    """Transaction 2: record the provider's answer if the payment is still ours to finish.

    A success is always recorded (on a payment that already failed, as a late charge to refund:
    `LATE`). A failure is recorded only if nobody changed the payment since this attempt began:
    otherwise another worker's attempt overlapped this one and the next delivery asks again.
    """
    async with deps.uow() as uow:
        payment = await uow.payments.lock(begun.tenant_id, begun.id)
        if payment is None:
            return Outcome(SKIPPED)
        now = deps.clock.now()
        if reference is not None and payment.status == FAILED:
            payment.note(LATE_DETECTED, now, charge_reference=reference)
            uow.payments.save(payment)
            await uow.commit()
            return Outcome(LATE, payment.status)
        if payment.status != PROCESSING:
            return Outcome(SKIPPED, payment.status)
        if error is not None and payment.version != begun.version:
            return Outcome(RETRY, payment.status, deps.policy.min_backoff)
        payment.attempts += 1
        retry_in = None
        if reference is not None:
            await _settle(uow, payment, reference, now)
        elif isinstance(error, ProviderDeclined):
            await fail_payment(uow, payment, error.reason, now)
        else:
            assert isinstance(error, ProviderUnavailable)
            retry_in = _retry_in(payment, error, deps)
            payment.attempt_failed(error.reason, now, None if retry_in is None else now + timedelta(seconds=retry_in),
                                   ambiguous=error.ambiguous)
            publish(uow, payment, "payment.attempt_failed", now)
            if retry_in is None:
                await fail_payment(uow, payment, f"{error.reason} (gave up after {payment.attempts} attempts)", now)
        uow.payments.save(payment)
        await uow.commit()
    return Outcome(RETRY if retry_in is not None else DONE, payment.status, retry_in)


def _retry_in(payment: Payment, error: ProviderUnavailable, deps: Deps) -> float | None:
    """Seconds until the next attempt, or None when this was the last one. An unconfirmed outcome is
    never the last: it waits the longest backoff and asks again. An open breaker's refusal waits at
    least until the breaker lets a call through, so attempts are not burned faster than it recovers."""
    if isinstance(error, Unconfirmed):
        return deps.policy.max_backoff
    if payment.attempts >= deps.policy.max_attempts:
        return None
    return max(deps.policy.backoff(payment.attempts), breaker_wait(error, deps))



async def _settle(uow: UnitOfWork, payment: Payment, reference: str, now: datetime) -> None:
    """The provider charged: clearing -> settlement:<provider>, payment completed."""
    assert payment.provider is not None
    clearing = await uow.accounts.lock_system(payment.tenant_id, CLEARING, payment.currency)
    paid_out = await uow.accounts.lock_system(payment.tenant_id, settlement(payment.provider), payment.currency)
    move(uow, [(clearing, -payment.amount), (paid_out, payment.amount)], now, payment_id=payment.id)
    payment.complete(reference, now)
    publish(uow, payment, f"payment.{COMPLETED}", now)


async def fail_payment(uow: UnitOfWork, payment: Payment, reason: str, now: datetime) -> None:
    """End the payment `failed`, return its money and keep a dead letter for inspection."""
    await return_to_source(uow, payment, now)
    payment.fail(reason, now)
    publish(uow, payment, "payment.failed", now)
    uow.dead_letters.add(DeadLetter(
        id=new_id(), tenant_id=payment.tenant_id, kind=PAYMENT, target_id=payment.id, error=reason,
        attempts=payment.attempts, correlation_id=payment.correlation_id, created_at=now,
    ))


