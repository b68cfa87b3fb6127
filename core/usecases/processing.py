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

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from uuid import UUID

import attrs

from core.accounts import CLEARING, settlement
from core.ids import new_id
from core.locking import LockBusy, held_lock
from core.payments import COMPLETED, FAILED, PENDING, PROCESSING, Payment
from core.ports import Clock, Locks, UnitOfWork, UnitOfWorkFactory
from core.providers import (
    ChargeRequest,
    PaymentProvider,
    ProviderDeclined,
    ProviderError,
    ProviderResult,
    ProviderUnavailable,
    RefundRequest,
)
from core.usecases.external import move, publish, return_to_source
from core.work import PAYMENT, DeadLetter, RetryPolicy, WorkItem

DONE, RETRY, SKIPPED, BUSY, LATE = "done", "retry", "skipped", "busy", "late"


@attrs.frozen
class Outcome:
    """What became of one delivery: `done`, `retry` (in `retry_in` seconds), `skipped`, `busy` or `late`
    (the provider charged a payment that had already failed)."""

    result: str
    status: str | None = None
    retry_in: float | None = None


@attrs.frozen(kw_only=True)
class Deps:
    """The ports a worker's use cases need."""

    uow: UnitOfWorkFactory
    providers: Callable[[str], PaymentProvider]
    locks: Locks
    clock: Clock
    policy: RetryPolicy


async def process_payment(item: WorkItem, *, deps: Deps) -> Outcome:
    """Charge a pending (or retried) external payment through its provider, exactly once in effect."""
    try:
        async with held_lock(deps.locks, f"payment:{item.target_id}", deps.policy.lock_ttl) as held:
            payment = await _begin(item.tenant_id, item.target_id, deps)
            if payment is None:
                return Outcome(SKIPPED)
            provider = deps.providers(payment.provider or "")
            request = ChargeRequest(payment_id=payment.id, amount=payment.amount, currency=payment.currency,
                                    description=payment.description, metadata=payment.metadata)
            reference, error = await call(lambda: provider.charge(request), deps.policy)
            if error is not None and held.lost:
                # Another worker may be calling under the same key right now: a failure seen here proves
                # nothing about the payment, so it is neither counted nor final. Try again later.
                return Outcome(RETRY, payment.status, deps.policy.min_backoff)
            outcome = await _finish(payment, reference, error, deps)
            if outcome.result == LATE:
                assert reference is not None
                await reverse_late_charge(payment, reference, provider, deps)
            return outcome
    except LockBusy:
        return Outcome(BUSY)


async def reverse_late_charge(payment: Payment, reference: str, provider: PaymentProvider, deps: Deps) -> None:
    """A charge that succeeded after its payment had already failed (and its money gone back to the source)
    is refunded in full at the provider, so the customer is not charged for a failed payment.

    Idempotent (the refund's key derives from the payment id); a failure raises, so the delivery is
    retried and, when retries run out, dead-lettered.
    """
    void = RefundRequest(refund_id=uuid.uuid5(payment.id, "late-charge"), payment_id=payment.id,
                         charge_reference=reference, amount=payment.amount, currency=payment.currency,
                         reason="charge arrived after the payment failed", metadata={})
    _, error = await call(lambda: provider.refund(void), deps.policy)
    if error is not None:
        raise error
    async with deps.uow() as uow:
        current = await uow.payments.lock(payment.tenant_id, payment.id)
        if current is None or any(e.type == "payment.late_charge_reversed"
                                  for e in await uow.payments.events(payment.tenant_id, payment.id)):
            return
        current.note("payment.late_charge_reversed", deps.clock.now(), charge_reference=reference)
        uow.payments.save(current)
        await uow.commit()


async def call(
    charge: Callable[[], Awaitable[ProviderResult]], policy: RetryPolicy
) -> tuple[str | None, ProviderError | None]:
    """The provider's reference, or the error it ended with (a timeout is transient)."""
    try:
        async with asyncio.timeout(policy.provider_timeout):
            result = await charge()
    except ProviderError as error:
        return None, error
    except TimeoutError:
        return None, ProviderUnavailable(f"the provider did not answer within {policy.provider_timeout:g}s")
    return result.reference, None


async def _begin(tenant_id: UUID, payment_id: UUID, deps: Deps) -> Payment | None:
    """Transaction 1: `pending -> processing`; a payment already processing is resumed; others skipped."""
    async with deps.uow() as uow:
        payment = await uow.payments.lock(tenant_id, payment_id)
        if payment is None or not payment.is_external or payment.status not in (PENDING, PROCESSING):
            return None
        if payment.next_attempt_at is not None and payment.next_attempt_at > deps.clock.now():
            return None  # an early duplicate; the scheduled delivery (or housekeeping) resumes it
        if payment.status == PENDING:
            now = deps.clock.now()
            payment.transition(PROCESSING, now)
            uow.payments.save(payment)
            publish(uow, payment, "payment.processing", now)
            await uow.commit()
        return payment


async def _finish(begun: Payment, reference: str | None, error: ProviderError | None, deps: Deps) -> Outcome:
    """Transaction 2: record the provider's answer if the payment is still ours to finish.

    A success is always recorded (or, on a payment that already failed, reversed: `LATE`). A failure
    is recorded only if nobody changed the payment since this attempt began: otherwise another
    worker's attempt overlapped this one and the next delivery asks the provider again.
    """
    async with deps.uow() as uow:
        payment = await uow.payments.lock(begun.tenant_id, begun.id)
        if payment is None:
            return Outcome(SKIPPED)
        if reference is not None and payment.status == FAILED:
            return Outcome(LATE, payment.status)
        if payment.status != PROCESSING:
            return Outcome(SKIPPED, payment.status)
        if error is not None and payment.version != begun.version:
            return Outcome(RETRY, payment.status, deps.policy.min_backoff)
        now = deps.clock.now()
        payment.attempts += 1
        retry_in = None
        if reference is not None:
            await _settle(uow, payment, reference, now)
        elif isinstance(error, ProviderDeclined):
            await fail_payment(uow, payment, error.reason, now)
        else:
            assert error is not None
            last = payment.attempts >= deps.policy.max_attempts
            retry_in = None if last else max(deps.policy.backoff(payment.attempts),
                                             getattr(error, "retry_after", 0.0))
            payment.attempt_failed(error.reason, now, None if retry_in is None else now + timedelta(seconds=retry_in))
            publish(uow, payment, "payment.attempt_failed", now)
            if last:
                await fail_payment(uow, payment, f"{error.reason} (gave up after {payment.attempts} attempts)", now)
        uow.payments.save(payment)
        await uow.commit()
    return Outcome(RETRY if retry_in is not None else DONE, payment.status, retry_in)


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
