"""A payment attempt: begun under the payment's row lock, the provider charged outside any transaction.

Transaction 1 moves the payment `pending -> processing` (under its row lock and a
version check); the provider is then called with the payment id as its
idempotency key; transaction 2 (`payment_outcome`) records the outcome if the
payment is still `processing`. A Redis lock per payment keeps two workers from
calling the provider at once, but correctness rests on the row lock and the
status check: a duplicate message, a worker killed at any point, or two workers
on one payment repeat the provider call under the same key and record its
outcome only once.
"""

from __future__ import annotations

from core.locking import LockBusy, held_lock
from core.payments import Payment, PaymentStatus, ambiguous_attempts
from core.providers import ChargeRequest, ProviderUnavailable
from core.usecases.announcements import announce_payment
from core.usecases.confirmation import OUTCOME_UNKNOWN, confirm
from core.usecases.late_charges import reverse_late_charge, reverse_late_charges
from core.usecases.payment_outcome import record_charge_outcome
from core.usecases.provider_calls import Unconfirmed, call
from core.usecases.worker_deps import Deps, Outcome, WorkResult
from core.work import WorkItem


async def process_payment(item: WorkItem, *, deps: Deps) -> Outcome:
    """Charge a pending (or retried) external payment through its provider, exactly once in effect."""
    try:
        async with held_lock(deps.locks, f"payment:{item.target_id}", deps.policy.lock_ttl) as held:
            payment, wait = await begin_attempt(item, deps)
            if payment is None:
                return (Outcome(WorkResult.RETRY, None, wait) if wait is not None
                        else await reverse_late_charges(item, deps))
            provider = deps.providers(payment.provider or "")
            request = _charge_request(payment)
            if payment.attempts >= deps.policy.max_attempts:
                # Every attempt is spent and the last outcome is still unknown: only ask, never charge again.
                reference, error = await confirm(Unconfirmed(OUTCOME_UNKNOWN), True,
                                                 lambda: provider.find_charge(request), deps.policy)
            else:
                reference, error = await call(lambda: provider.charge(request), deps.policy)
                if error is not None and held.lost:
                    # Another worker may be calling under the same key right now: a failure seen here proves
                    # nothing about the payment, so it is neither counted nor final. Try again later.
                    return Outcome(WorkResult.RETRY, payment.status, deps.policy.min_backoff)
                if isinstance(error, ProviderUnavailable) and payment.attempts + 1 >= deps.policy.max_attempts:
                    reference, error = await confirm(error, await _ambiguous_before(payment, deps),
                                                     lambda: provider.find_charge(request), deps.policy)
            outcome = await record_charge_outcome(payment, reference, error, deps)
            if outcome.result == WorkResult.LATE:
                assert reference is not None
                await reverse_late_charge(payment, reference, provider, deps)
            return outcome
    except LockBusy:
        return Outcome(WorkResult.BUSY, None, deps.policy.lock_ttl / 3)


async def begin_attempt(item: WorkItem, deps: Deps) -> tuple[Payment | None, float | None]:
    """Transaction 1: `pending -> processing`; a payment already processing is resumed. An early
    duplicate of a scheduled retry gets the seconds still to wait; other payments are not ours."""
    async with deps.uow_factory() as uow:
        payment = await uow.payments.lock(item.tenant_id, item.target_id)
        if payment is None or not payment.is_external or payment.status not in (
                PaymentStatus.PENDING, PaymentStatus.PROCESSING):
            return None, None
        now = deps.clock.now()
        if (wait := payment.wait(now)) is not None:
            return None, wait
        if payment.status == PaymentStatus.PENDING:
            payment.transition(PaymentStatus.PROCESSING, now)
            uow.payments.save(payment)
            announce_payment(uow, payment, "payment.processing", now)
        return payment, None


async def _ambiguous_before(payment: Payment, deps: Deps) -> bool:
    """Whether an earlier attempt of this payment may have reached the provider and been processed."""
    async with deps.uow_factory(read_only=True) as uow:
        return ambiguous_attempts(await uow.payments.events(payment.tenant_id, payment.id))


def _charge_request(payment: Payment) -> ChargeRequest:
    return ChargeRequest(payment_id=payment.id, amount=payment.amount, currency=payment.currency,
                         description=payment.description, metadata=payment.metadata)
