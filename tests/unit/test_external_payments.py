"""External payments on the memory adapters: creation, processing through a provider fake, retries and cancel."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import attrs
import pytest

from adapters.memory import InMemoryStore
from adapters.memory.locks import InMemoryLocks
from adapters.memory.providers import InMemoryProvider
from core.accounts import FUNDING
from core.errors import CurrencyMismatch, InsufficientFunds, InvalidStateTransition, NotFound, ValidationFailed
from core.events import work_for
from core.payments import PaymentStatus, PaymentType
from core.usecases.payment_attempt import process_payment
from core.usecases.worker_deps import WorkResult
from core.views import payment_view
from core.work import PAYMENT, RetryPolicy, WorkItem
from tests.unit.conftest import FakeClock
from tests.unit.payments_fixtures import World, charges, refunds, snapshot


@pytest.fixture
def world(store: InMemoryStore, clock: FakeClock, tenant_id: UUID) -> World:
    return World(store, clock, tenant_id)


# --- create_external_payment -------------------------------------------------------------------


async def test_creating_an_external_payment_holds_the_money_in_clearing(world: World) -> None:
    source = await world.account(10_000)

    payment = await world.pay(source.id, 2_500, metadata={"order": "7"})

    stored = await world.payment(payment.id)
    assert (stored.status, stored.payment_type, stored.provider, stored.amount, stored.currency) == (
        PaymentStatus.PENDING, PaymentType.EXTERNAL_PAYMENT, "stripe", 2_500, "USD")
    assert (stored.source_account_id, stored.destination_account_id) == (source.id, None)
    assert (stored.attempts, stored.provider_reference, stored.failure_reason, stored.completed_at) == (
        0, None, None, None)
    assert (stored.metadata, stored.description, stored.refunded_amount) == ({"order": "7"}, "order 7", 0)
    assert (world.balance(source.id), world.clearing(), world.settled()) == (7_500, 2_500, 0)
    [clearing] = [a for a in world.store.accounts.values() if a.kind == "clearing"]
    assert sorted(world.entries(payment.id)) == sorted([(source.id, -2_500), (clearing.id, 2_500)])
    assert await world.event_types(payment.id) == ["payment.created"]
    [message] = [m for m in world.store.outbox if m.aggregate_id == payment.id]
    assert (message.topic, message.tenant_id, message.correlation_id) == (
        "payment.created", world.tenant_id, "req-1")
    assert message.payload == payment_view(stored)
    assert message.payload["status"] == "pending" and message.payload["amount"] == "25.00"
    assert work_for(message) == WorkItem(kind=PAYMENT, tenant_id=world.tenant_id, target_id=payment.id,
                                         correlation_id="req-1")
    assert world.store.dead_letters == {}
    assert charges(world) == []
    await world.check()


async def test_the_whole_balance_can_be_paid_out(world: World) -> None:
    source = await world.account(2_500)
    await world.pay(source.id, 2_500)
    assert (world.balance(source.id), world.clearing()) == (0, 2_500)
    with pytest.raises(InsufficientFunds):
        await world.pay(source.id, 1)
    await world.check()


@pytest.mark.parametrize("case", ["insufficient_funds", "unknown_account", "other_tenant", "system_account",
                                  "currency_of_amount", "unknown_provider"])
async def test_refused_external_payments_change_nothing(world: World, case: str) -> None:
    source = await world.account(1_000)
    foreign = await world.account(1_000, tenant_id=uuid4())
    [funding] = [a for a in world.store.accounts.values()
                 if (a.tenant_id, a.kind) == (world.tenant_id, FUNDING)]
    account_id, amount, currency, provider, error = {
        "insufficient_funds": (source.id, 1_001, "USD", "stripe", InsufficientFunds),
        "unknown_account": (uuid4(), 1, "USD", "stripe", NotFound),
        "other_tenant": (foreign.id, 1, "USD", "stripe", NotFound),
        "system_account": (funding.id, 1, "USD", "stripe", NotFound),
        "currency_of_amount": (source.id, 1, "EUR", "stripe", CurrencyMismatch),
        "unknown_provider": (source.id, 1, "USD", "adyen", ValidationFailed),
    }[case]
    before = snapshot(world.store)

    with pytest.raises(error):
        await world.pay(account_id, amount, currency=currency, provider=provider)

    assert snapshot(world.store) == before
    assert world.store.pending_system == {}
    # nothing stayed locked: the same account pays at once
    await world.pay(source.id, 1_000)
    assert (world.balance(source.id), world.clearing()) == (0, 1_000)
    await world.check()


# --- process_payment ---------------------------------------------------------------------------


async def test_a_successful_charge_completes_the_payment_and_settles_it(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500)

    outcome = await world.process(payment.id)

    assert (outcome.result, outcome.status, outcome.retry_in) == (WorkResult.DONE, PaymentStatus.COMPLETED, None)
    stored = await world.payment(payment.id)
    [charge] = charges(world)
    assert (charge.key, charge.amount, charge.currency) == (str(payment.id), 2_500, "USD")
    assert stored.status == PaymentStatus.COMPLETED
    assert stored.provider_reference == charge.reference and stored.provider_reference
    assert (stored.attempts, stored.failure_reason, stored.next_attempt_at) == (1, None, None)
    assert stored.completed_at == stored.updated_at
    assert (world.balance(source.id), world.clearing(), world.settled(), world.settled("paypal")) == (
        7_500, 0, 2_500, 0)
    assert await world.event_types(payment.id) == ["payment.created", "payment.processing", "payment.completed"]
    assert world.topics(payment.id) == ["payment.created", "payment.processing", "payment.completed"]
    [completed] = [m for m in world.store.outbox if m.topic == "payment.completed"]
    assert completed.payload == payment_view(stored)
    assert world.store.dead_letters == {}
    await world.check()


async def test_a_payment_cancelled_while_its_attempt_begins_is_never_charged(world: World) -> None:
    """The attempt reads the payment without a row lock (optimistic, issue 12): a cancellation committed between
    that read and its write makes the write fail, so the provider is not called; the retry finds it cancelled."""
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500)

    def cancel_after_the_read(**options: Any) -> Any:
        uow = world.store(**options)
        if options.get("optimistic"):
            read = uow.payments.get

            async def read_then_cancel(tenant_id: UUID, payment_id: UUID) -> Any:
                found = await read(tenant_id, payment_id)
                await world.cancel(payment_id)
                return found

            uow.payments.get = read_then_cancel
        return uow

    outcome = await world.process(payment.id, attrs.evolve(world.deps(), uow_factory=cancel_after_the_read))
    assert (outcome.result, outcome.retry_in) == (WorkResult.RETRY, world.policy.min_backoff)
    assert charges(world) == []
    assert (await world.payment(payment.id)).status == PaymentStatus.CANCELLED
    assert await world.event_types(payment.id) == ["payment.created", "payment.cancelled"]
    assert (await world.process(payment.id)).status != PaymentStatus.PROCESSING  # the retry: nothing to charge
    assert charges(world) == [] and world.balance(source.id) == 10_000
    await world.check()


async def test_a_paypal_payment_settles_on_the_paypal_account(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.pay(source.id, 1_234, provider="paypal")
    assert (await world.process(payment.id)).status == PaymentStatus.COMPLETED
    assert (world.clearing(), world.settled("stripe"), world.settled("paypal")) == (0, 0, 1_234)
    assert charges(world, "stripe") == [] and len(charges(world, "paypal")) == 1
    await world.check()


async def test_a_decline_fails_the_payment_returns_the_money_and_is_not_dead_lettered(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500, metadata={"mock_outcome": "decline"})

    outcome = await world.process(payment.id)

    assert (outcome.result, outcome.status, outcome.retry_in) == (WorkResult.DONE, PaymentStatus.FAILED, None)
    stored = await world.payment(payment.id)
    assert (stored.status, stored.failure_code) == (PaymentStatus.FAILED, "declined")
    assert stored.failure_reason
    assert (stored.attempts, stored.provider_reference, stored.completed_at, stored.next_attempt_at) == (
        1, None, None, None)
    assert (world.balance(source.id), world.clearing(), world.settled()) == (10_000, 0, 0)
    assert await world.event_types(payment.id) == ["payment.created", "payment.processing", "payment.failed"]
    assert world.topics(payment.id) == ["payment.created", "payment.processing", "payment.failed"]
    assert world.letters(payment.id) == []  # a decline is an answer, not a fault (API.md §6)
    assert charges(world) == []
    # a failed payment is final: another delivery does nothing
    assert (await world.process(payment.id)).result == WorkResult.SKIPPED
    assert world.letters(payment.id) == []
    await world.check()


async def test_transient_failures_are_retried_with_backoff_then_complete(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500, metadata={"mock_outcome": "fail_transient:2"})

    first = await world.process(payment.id)
    assert (first.result, first.status, first.retry_in) == (WorkResult.RETRY, PaymentStatus.PROCESSING, 1.0)
    stored = await world.payment(payment.id)
    assert (stored.status, stored.attempts) == (PaymentStatus.PROCESSING, 1)
    assert stored.next_attempt_at == stored.updated_at + timedelta(seconds=1)
    assert (world.balance(source.id), world.clearing(), world.settled()) == (7_500, 2_500, 0)

    # an early duplicate (before next_attempt_at) neither calls the provider nor changes anything: it is
    # put back on the queue for when the attempt is due (in case it is the scheduled delivery, early)
    before = snapshot(world.store)
    early = await world.process(payment.id)
    assert (early.result, early.retry_in) == (WorkResult.RETRY, pytest.approx(1.0, abs=1e-3))
    assert snapshot(world.store) == before

    world.clock.advance(timedelta(seconds=1))
    second = await world.process(payment.id)
    assert (second.result, second.status, second.retry_in) == (WorkResult.RETRY, PaymentStatus.PROCESSING, 2.0)
    stored = await world.payment(payment.id)
    assert stored.next_attempt_at == stored.updated_at + timedelta(seconds=2)

    world.clock.advance(timedelta(seconds=2))
    third = await world.process(payment.id)
    assert (third.result, third.status, third.retry_in) == (WorkResult.DONE, PaymentStatus.COMPLETED, None)

    stored = await world.payment(payment.id)
    assert (stored.status, stored.attempts, stored.next_attempt_at) == (PaymentStatus.COMPLETED, 3, None)
    events = await world.events(payment.id)
    assert [e.type for e in events] == ["payment.created", "payment.processing", "payment.attempt_failed",
                                        "payment.attempt_failed", "payment.completed"]
    assert [e.data["attempt"] for e in events if e.type == "payment.attempt_failed"] == [1, 2]
    assert all(e.data["error"] for e in events if e.type == "payment.attempt_failed")
    [charge] = charges(world)
    assert charge.key == str(payment.id) and stored.provider_reference == charge.reference
    assert world.providers["stripe"].calls == [("charge", str(payment.id))] * 3
    assert (world.balance(source.id), world.clearing(), world.settled()) == (7_500, 0, 2_500)
    assert world.store.dead_letters == {}
    topics = world.topics(payment.id)
    assert [t for t in topics if t != "payment.attempt_failed"] == [
        "payment.created", "payment.processing", "payment.completed"]
    await world.check()


async def test_the_default_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy()
    assert [policy.backoff(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


async def test_the_last_failed_attempt_fails_the_payment(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500, metadata={"mock_outcome": "fail_transient:10"})

    delays = []
    for _ in range(4):
        outcome = await world.process(payment.id)
        assert (outcome.result, outcome.status) == (WorkResult.RETRY, PaymentStatus.PROCESSING)
        assert outcome.retry_in is not None
        delays.append(outcome.retry_in)
        world.clock.advance(timedelta(seconds=outcome.retry_in))
    last = await world.process(payment.id)

    assert delays == [1.0, 2.0, 4.0, 8.0]
    assert (last.result, last.status, last.retry_in) == (WorkResult.DONE, PaymentStatus.FAILED, None)
    stored = await world.payment(payment.id)
    assert (stored.status, stored.attempts, stored.next_attempt_at, stored.provider_reference) == (
        PaymentStatus.FAILED, 5, None, None)
    assert stored.failure_reason is not None and "5 attempts" in stored.failure_reason
    assert stored.failure_code == "retries_exhausted"
    assert await world.event_types(payment.id) == [
        "payment.created", "payment.processing", *["payment.attempt_failed"] * 5, "payment.failed"]
    [letter] = world.letters(payment.id)  # retries that ran out are kept for inspection and re-drive
    assert (letter.kind, letter.tenant_id, letter.attempts, letter.error, letter.correlation_id) == (
        PAYMENT, world.tenant_id, 5, stored.failure_reason, "req-1")
    assert letter.retried_at is None
    assert (world.balance(source.id), world.clearing(), world.settled()) == (10_000, 0, 0)
    assert charges(world) == []
    await world.check()


async def test_max_attempts_is_configurable(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500, metadata={"mock_outcome": "fail_transient:10"})
    deps = world.deps(policy=RetryPolicy(max_attempts=2, min_backoff=0.5, max_backoff=0.75))
    first = await world.process(payment.id, deps)
    assert (first.result, first.retry_in) == (WorkResult.RETRY, 0.5)
    world.clock.advance(timedelta(seconds=1))
    assert (await world.process(payment.id, deps)).status == PaymentStatus.FAILED
    assert [letter.attempts for letter in world.letters(payment.id)] == [2]
    await world.check()


async def test_a_provider_timeout_is_a_transient_failure(world: World) -> None:
    world.policy = RetryPolicy(provider_timeout=0.01)
    world.providers["stripe"] = InMemoryProvider("stripe", timeout=60)  # would answer long after our timeout
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500, metadata={"mock_outcome": "timeout"})

    outcome = await world.process(payment.id)

    assert (outcome.result, outcome.status, outcome.retry_in) == (WorkResult.RETRY, PaymentStatus.PROCESSING, 1.0)
    stored = await world.payment(payment.id)
    assert (stored.status, stored.attempts, stored.failure_reason) == (PaymentStatus.PROCESSING, 1, None)
    [event] = [e for e in await world.events(payment.id) if e.type == "payment.attempt_failed"]
    assert event.data["attempt"] == 1 and "0.01" in event.data["error"]
    assert world.providers["stripe"].charges == {}
    assert (world.balance(source.id), world.clearing(), world.settled()) == (7_500, 2_500, 0)
    assert world.store.dead_letters == {}
    await world.check()


async def test_processing_again_after_completion_is_skipped_and_charges_once(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500)
    assert (await world.process(payment.id)).result == WorkResult.DONE
    before = snapshot(world.store)

    for _ in range(2):
        again = await world.process(payment.id)
        assert again.result == WorkResult.SKIPPED

    assert snapshot(world.store) == before
    assert len(charges(world)) == 1
    assert (world.balance(source.id), world.clearing(), world.settled()) == (7_500, 0, 2_500)
    await world.check()


async def test_work_for_an_unknown_or_foreign_payment_is_skipped(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500)
    transfer = await world.transfer(source.id, (await world.account(user_id="bob")).id, 100)
    deps = world.deps()

    assert (await world.process(uuid4())).result == WorkResult.SKIPPED
    assert (await world.process(transfer.id)).result == WorkResult.SKIPPED
    foreign = WorkItem(kind=PAYMENT, tenant_id=uuid4(), target_id=payment.id)
    assert (await process_payment(foreign, deps=deps)).result == WorkResult.SKIPPED
    assert (await world.payment(payment.id)).status == PaymentStatus.PENDING
    assert charges(world) == []
    await world.check()


async def test_a_payment_resumed_in_processing_charges_under_the_same_key(world: World) -> None:
    """A worker died between the provider call and recording it: the next delivery repeats the call
    with the same idempotency key and records the first result."""
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500)
    async with world.store() as uow:  # transaction 1 of a worker that then died
        locked = await uow.payments.lock(world.tenant_id, payment.id)
        assert locked is not None
        locked.transition(PaymentStatus.PROCESSING, world.clock.now())
        uow.payments.save(locked)

    outcome = await world.process(payment.id)

    assert (outcome.result, outcome.status) == (WorkResult.DONE, PaymentStatus.COMPLETED)
    assert await world.event_types(payment.id) == ["payment.created", "payment.processing", "payment.completed"]
    assert len(charges(world)) == 1
    await world.check()


async def test_a_held_lock_makes_the_delivery_busy_and_changes_nothing(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500)
    token = await world.locks.acquire(f"payment:{payment.id}", 30)
    assert token is not None
    before = snapshot(world.store)

    outcome = await world.process(payment.id)

    assert (outcome.result, outcome.status, outcome.retry_in) == (WorkResult.BUSY, None, world.policy.lock_ttl / 3)
    assert snapshot(world.store) == before
    assert charges(world) == []
    # the holder keeps its lock; once it lets go the payment is processed
    assert await world.locks.extend(f"payment:{payment.id}", token, 30)
    assert await world.locks.release(f"payment:{payment.id}", token)
    assert (await world.process(payment.id)).status == PaymentStatus.COMPLETED
    await world.check()


async def test_concurrent_deliveries_charge_once_and_complete_once(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500)

    outcomes = await asyncio.gather(*(world.process(payment.id) for _ in range(5)))

    assert sorted(o.result for o in outcomes).count(WorkResult.DONE) == 1
    assert {o.result for o in outcomes} <= {WorkResult.DONE, WorkResult.BUSY, WorkResult.SKIPPED}
    assert len(charges(world)) == 1
    assert (await world.event_types(payment.id)).count("payment.completed") == 1
    assert (world.balance(source.id), world.clearing(), world.settled()) == (7_500, 0, 2_500)
    await world.check()


async def test_workers_without_a_shared_lock_still_charge_once(world: World) -> None:
    """Locks only save duplicate work: with each worker holding its own lock (a lock lost to expiry),
    the row lock and the status check still record one outcome and the idempotency key one charge."""
    source = await world.account(10_000)
    payments = [await world.pay(source.id, 1_000, metadata={"mock_outcome": "fail_transient:1"})
                for _ in range(3)]

    for payment in payments:
        for _ in range(3):  # until it is settled; a transient failure is retried on its schedule
            outcomes = await asyncio.gather(*(world.process(payment.id, world.deps(locks=InMemoryLocks()))
                                              for _ in range(3)))
            assert {o.result for o in outcomes} <= {WorkResult.DONE, WorkResult.RETRY, WorkResult.SKIPPED}, outcomes
            world.clock.advance(timedelta(seconds=1))
        stored = await world.payment(payment.id)
        assert stored.status == PaymentStatus.COMPLETED
        types = await world.event_types(payment.id)
        assert (types.count("payment.processing"), types.count("payment.completed")) == (1, 1)
        assert stored.provider_reference == world.providers["stripe"].charges[str(payment.id)].reference
        assert world.providers["stripe"].calls.count(("charge", str(payment.id))) >= 2

    assert sorted(c.key for c in charges(world)) == sorted(str(p.id) for p in payments)
    assert (world.balance(source.id), world.clearing(), world.settled()) == (7_000, 0, 3_000)
    await world.check()


async def test_a_lost_lock_never_fails_a_payment_the_provider_charged(world: World) -> None:
    """Two workers on one payment (the lock expired under the first): the first's last attempt fails
    transiently while the second's repeat of the call, under the same key, is charged. The payment must
    not end `failed` with its money back on the source while the provider keeps a charge for it: either it
    completes, or the late charge is refunded at the provider (and the history says so)."""
    world.policy = RetryPolicy(max_attempts=1)
    source = await world.account(10_000)
    payment = await world.pay(source.id, 1_000, metadata={"mock_outcome": "fail_transient:1"})

    await asyncio.gather(*(world.process(payment.id, world.deps(locks=InMemoryLocks())) for _ in range(2)))

    charged = [c.key for c in charges(world)] == [str(payment.id)]
    reversed_ = [r.charge_reference for r in refunds(world)]
    stored = await world.payment(payment.id)
    kept = charged and not reversed_
    assert (kept, stored.status) in ((True, PaymentStatus.COMPLETED), (False, PaymentStatus.FAILED))
    assert world.settled() == (1_000 if kept else 0)
    assert world.balance(source.id) == (9_000 if kept else 10_000)
    if stored.status == PaymentStatus.FAILED and charged:
        types = [e.type for e in await world.events(payment.id)]
        assert types[-1] == "payment.late_charge_reversed", types
    await world.check()


# --- cancel_payment ----------------------------------------------------------------------------


async def test_cancelling_a_pending_payment_returns_the_money(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500)

    cancelled = await world.cancel(payment.id)

    assert cancelled.status == PaymentStatus.CANCELLED
    stored = await world.payment(payment.id)
    assert (stored.status, stored.completed_at, stored.failure_reason) == (PaymentStatus.CANCELLED, None, None)
    assert (world.balance(source.id), world.clearing(), world.settled()) == (10_000, 0, 0)
    assert await world.event_types(payment.id) == ["payment.created", "payment.cancelled"]
    assert world.topics(payment.id) == ["payment.created", "payment.cancelled"]
    [message] = [m for m in world.store.outbox if m.topic == "payment.cancelled"]
    assert message.payload == payment_view(stored) and message.correlation_id == "req-cancel"
    assert work_for(message) is None
    # the worker's delivery that follows does nothing
    assert (await world.process(payment.id)).result == WorkResult.SKIPPED
    assert charges(world) == []
    assert (await world.payment(payment.id)).status == PaymentStatus.CANCELLED
    await world.check()


async def test_cancel_racing_a_worker_lets_exactly_one_win(world: World) -> None:
    source = await world.account(1_000_000)
    winners = {PaymentStatus.CANCELLED: 0, PaymentStatus.COMPLETED: 0}

    async def cancel(payment_id: UUID, pauses: int) -> str:
        for _ in range(pauses):
            await asyncio.sleep(0)
        try:
            await world.cancel(payment_id)
        except InvalidStateTransition:
            return "refused"
        return PaymentStatus.CANCELLED

    for i in range(50):
        payment = await world.pay(source.id, 100)
        if i % 2:
            outcome, cancelled = await asyncio.gather(world.process(payment.id), cancel(payment.id, i % 5))
        else:
            cancelled, outcome = await asyncio.gather(cancel(payment.id, i % 5), world.process(payment.id))
        status = (await world.payment(payment.id)).status
        assert status in (PaymentStatus.CANCELLED, PaymentStatus.COMPLETED)
        winners[status] += 1
        if status == PaymentStatus.CANCELLED:
            assert (cancelled, outcome.result) == (PaymentStatus.CANCELLED, WorkResult.SKIPPED)
            assert str(payment.id) not in {c.key for c in charges(world)}
        else:
            assert (cancelled, outcome.result, outcome.status) == ("refused", WorkResult.DONE, PaymentStatus.COMPLETED)
        types = await world.event_types(payment.id)
        assert (types.count("payment.cancelled"), types.count("payment.completed")) == (
            (1, 0) if status == PaymentStatus.CANCELLED else (0, 1))

    assert winners[PaymentStatus.CANCELLED] > 0 and winners[PaymentStatus.COMPLETED] > 0
    assert len(charges(world)) == winners[PaymentStatus.COMPLETED]
    assert world.balance(source.id) == 1_000_000 - 100 * winners[PaymentStatus.COMPLETED]
    assert (world.clearing(), world.settled()) == (0, 100 * winners[PaymentStatus.COMPLETED])
    await world.check()


async def test_only_pending_payments_can_be_cancelled(world: World) -> None:
    source = await world.account(100_000)
    processing = await world.pay(source.id, 1_000, metadata={"mock_outcome": "fail_transient:3"})
    assert (await world.process(processing.id)).status == PaymentStatus.PROCESSING
    completed = await world.pay(source.id, 1_000)
    assert (await world.process(completed.id)).status == PaymentStatus.COMPLETED
    failed = await world.pay(source.id, 1_000, metadata={"mock_outcome": "decline"})
    assert (await world.process(failed.id)).status == PaymentStatus.FAILED
    cancelled = await world.pay(source.id, 1_000)
    await world.cancel(cancelled.id)
    internal = await world.transfer(source.id, (await world.account(user_id="bob")).id, 1_000)
    before = snapshot(world.store)

    for payment in (processing, completed, failed, cancelled, internal):
        with pytest.raises(InvalidStateTransition):
            await world.cancel(payment.id)

    assert snapshot(world.store) == before
    await world.check()


async def test_cancelling_an_unknown_or_foreign_payment_is_not_found(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500)
    before = snapshot(world.store)
    with pytest.raises(NotFound):
        await world.cancel(uuid4())
    with pytest.raises(NotFound):
        await world.cancel(payment.id, tenant_id=uuid4())
    assert snapshot(world.store) == before
    assert (await world.payment(payment.id)).status == PaymentStatus.PENDING
    await world.check()
