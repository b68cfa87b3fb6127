"""A payment attempt: begun under the payment's row lock, the provider charged outside any transaction.

Transaction 1 moves the payment `pending -> processing` (under its row lock and a
version check); the provider is then called with the payment id as its
idempotency key; transaction 2 (`payment_outcome`) records the outcome if the
payment is still `processing`. A Redis lock per payment keeps two workers from
calling the provider at once, but correctness rests on the row lock and the
status check: a duplicate message, a worker killed at any point, or two workers
on one payment repeat the provider call under the same key and record its
outcome only once. A call the provider's circuit breaker refused is not an
attempt: the payment waits for the breaker (`payment.waiting_for_provider`), at
most `PAYMENTS_PAYMENT_BREAKER_MAX_WAIT` (`provider_calls.judge`).
"""

from __future__ import annotations

from core.errors import ConcurrencyConflict
from core.locking import LockBusy, held_lock
from core.payments import Payment, PaymentEvent, PaymentStatus, ambiguous_attempts, waiting_since
from core.ports import UnitOfWork
from core.providers import ChargeRequest, CircuitOpen, ProviderError, ProviderUnavailable
from core.usecases.announcements import announce_payment
from core.usecases.confirmation import confirm
from core.usecases.late_charges import reverse_late_charge, reverse_late_charges
from core.usecases.payment_outcome import record_charge_outcome
from core.usecases.provider_calls import ask, call, waited_out
from core.usecases.shared_attempts import PaymentClaim
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
            history = await _history(payment, deps)
            if _only_ask(payment, history, deps):
                # The last outcome is unknown and the payment may not try again (its attempts are spent, or it
                # waited out the breaker): only ask, never charge again.
                reference, error = await ask(lambda: provider.find_charge(request), deps.policy)
            else:
                reference, error = await call(lambda: provider.charge(request), deps.policy)
                if error is not None and held.lost:
                    # Another worker may be calling under the same key right now: a failure seen here proves
                    # nothing about the payment, so it is neither counted nor final. Try again later.
                    return Outcome(WorkResult.RETRY, payment.status, deps.policy.min_backoff)
                if _last_attempt(error, payment, deps):
                    assert isinstance(error, ProviderUnavailable)
                    reference, error = await confirm(error, ambiguous_attempts(history),
                                                     lambda: provider.find_charge(request), deps.policy)
            outcome = await record_charge_outcome(payment, reference, error, deps, history=history)
            if outcome.result == WorkResult.LATE:
                assert reference is not None
                await reverse_late_charge(payment, reference, provider, deps)
            return outcome
    except LockBusy:
        return Outcome(WorkResult.BUSY, None, deps.policy.lock_ttl / 3)


async def begin_attempt(item: WorkItem, deps: Deps) -> tuple[Payment | None, float | None]:
    """Transaction 1: `pending -> processing`; a payment already processing is resumed. An early
    duplicate of a scheduled retry gets the seconds still to wait; other payments are not ours.

    Optimistic: the payment is read without a row lock and its change is version-checked, so a
    change made meanwhile (a cancellation, another worker) fails the write, and the attempt waits
    `min_backoff` and starts over. On PostgreSQL a payment resumed costs one read, one begun a
    read and a write: no BEGIN, no COMMIT, no row lock (issue 12). In a worker, the attempts beginning together
    share that read and that write (`Deps.shared`)."""
    async def begin(uow: UnitOfWork) -> tuple[Payment | None, float | None]:
        payment = await uow.payments.get(item.tenant_id, item.target_id)
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

    try:
        if deps.shared is not None:  # with the attempts beginning now: one read and one write for all
            return await deps.shared.begins.run(begin, tenant_id=item.tenant_id,
                                                claim=PaymentClaim(payment_id=item.target_id))
        async with deps.uow_factory(optimistic=True) as uow:
            return await begin(uow)
    except ConcurrencyConflict:
        return None, deps.policy.min_backoff


async def _history(payment: Payment, deps: Deps) -> list[PaymentEvent]:
    """The payment's events, when they can matter: a payment that never failed nor waited has none that do."""
    if payment.attempts == 0 and payment.next_attempt_at is None:
        return []
    async with deps.uow_factory(read_only=True) as uow:
        return await uow.payments.events(payment.tenant_id, payment.id)


def _only_ask(payment: Payment, history: list[PaymentEvent], deps: Deps) -> bool:
    """Whether the payment may only ask the provider: its attempts are spent with the outcome unknown, or it
    waited out the breaker after an attempt that may have charged (it must not charge anew, nor fail unasked)."""
    return payment.attempts >= deps.policy.max_attempts or (
        ambiguous_attempts(history) and waited_out(waiting_since(history), deps.clock.now(), deps.policy))


def _last_attempt(error: ProviderError | None, payment: Payment, deps: Deps) -> bool:
    """A transient failure of the last attempt (a breaker's refusal is no attempt): ask before it is final."""
    return (isinstance(error, ProviderUnavailable) and not isinstance(error, CircuitOpen)
            and payment.attempts + 1 >= deps.policy.max_attempts)


def _charge_request(payment: Payment) -> ChargeRequest:
    return ChargeRequest(payment_id=payment.id, amount=payment.amount, currency=payment.currency,
                         description=payment.description, metadata=payment.metadata)
