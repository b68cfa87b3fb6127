"""The dead letter queue (list and re-drive) and the housekeeping that re-enqueues stuck work."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from adapters.memory import InMemoryStore
from adapters.memory.lease import InMemoryLease
from adapters.memory.outbox import InMemoryInFlight, InMemoryTaskQueue
from core.errors import InvalidStateTransition, NotFound
from core.ids import new_id
from core.payments import PaymentStatus
from core.refunds import RefundStatus
from core.usecases.dlq import list_dead_letters, retry_dead_letter
from core.usecases.outbox import requeue_stuck
from core.usecases.payment_attempt import process_payment
from core.usecases.worker_deps import WorkResult
from core.work import PAYMENT, REFUND, DeadLetter, RetryPolicy, WorkItem
from tests.unit.conftest import FakeClock
from tests.unit.payments_fixtures import World, snapshot


@pytest.fixture
def world(store: InMemoryStore, clock: FakeClock, tenant_id: UUID) -> World:
    return World(store, clock, tenant_id)


async def retry(world: World, letter_id: UUID, queue: InMemoryTaskQueue) -> str:
    return await retry_dead_letter(letter_id, uow_factory=world.store, queue=queue, clock=world.clock)


async def dead_letter(world: World, kind: str, target_id: UUID, error: str = "ConnectionError: down") -> DeadLetter:
    """What the worker's `dead_letter_work` actor records when a message failed on every infrastructure retry."""
    letter = DeadLetter(id=new_id(), tenant_id=world.tenant_id, kind=kind, target_id=target_id, error=error,
                        attempts=11, correlation_id="req-1", created_at=world.clock.now())
    async with world.store() as uow:
        uow.dead_letters.add(letter)
    return letter


# --- retry_dead_letter ---------------------------------------------------------------------------


async def test_a_failed_payments_letter_cannot_be_redriven(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500, metadata={"mock_outcome": "fail_transient:10"})
    deps = world.deps(policy=RetryPolicy(max_attempts=1))
    assert (await world.process(payment.id, deps)).status == PaymentStatus.FAILED  # its retries ran out
    [letter] = world.letters(payment.id)
    queue = InMemoryTaskQueue()
    before = snapshot(world.store)

    with pytest.raises(InvalidStateTransition):
        await retry(world, letter.id, queue)

    assert queue.work == [] and queue.events == []
    assert snapshot(world.store) == before
    assert world.store.dead_letters[letter.id].retried_at is None
    assert (world.balance(source.id), world.clearing()) == (10_000, 0)
    await world.check()


async def test_a_letter_whose_payment_is_unfinished_is_enqueued_again(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500)
    letter = await dead_letter(world, PAYMENT, payment.id)
    queue = InMemoryTaskQueue()

    message = await retry(world, letter.id, queue)

    assert str(payment.id) in message and "pending" in message
    assert queue.work == [(WorkItem(kind=PAYMENT, tenant_id=world.tenant_id, target_id=payment.id,
                                    correlation_id="req-1"), 0.0)]
    assert world.store.dead_letters[letter.id].retried_at is not None
    assert (await world.payment(payment.id)).status == PaymentStatus.PENDING  # re-driving only enqueues
    # the re-driven work finishes the payment as if never interrupted
    [(item, _)] = queue.work
    assert (await process_payment(item, deps=world.deps())).status == PaymentStatus.COMPLETED
    assert (world.balance(source.id), world.clearing(), world.settled()) == (7_500, 0, 2_500)
    await world.check()


async def test_a_letter_whose_payment_is_still_processing_is_enqueued_again(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500, metadata={"mock_outcome": "fail_transient:1"})
    assert (await world.process(payment.id)).result == WorkResult.RETRY
    letter = await dead_letter(world, PAYMENT, payment.id)
    queue = InMemoryTaskQueue()

    message = await retry(world, letter.id, queue)

    assert "processing" in message
    assert [item.target_id for item, _ in queue.work] == [payment.id]
    assert world.store.dead_letters[letter.id].retried_at is not None


async def test_refund_letters_are_redriven_while_pending_or_failed_without_a_decline(world: World) -> None:
    world.policy = RetryPolicy(max_attempts=1)  # a failed refund is dead-lettered once its attempts run out
    source = await world.account(10_000)
    payment = await world.completed(source.id, 10_000)
    stripe = world.providers["stripe"]
    stripe.available = False
    failed = await world.refund(payment.id, "10.00")
    assert (await world.process_refund(failed.id)).status == RefundStatus.FAILED
    stripe.available = True
    [failed_letter] = world.letters(failed.id)
    pending = await world.refund(payment.id, "20.00")
    pending_letter = await dead_letter(world, REFUND, pending.id)
    queue = InMemoryTaskQueue()

    assert "failed" in await retry(world, failed_letter.id, queue)  # the provider may have refunded after all
    await retry(world, pending_letter.id, queue)

    assert queue.work == [(WorkItem(kind=REFUND, tenant_id=world.tenant_id, target_id=target,
                                    correlation_id=correlation), 0.0)
                          for target, correlation in ((failed.id, failed_letter.correlation_id),
                                                      (pending.id, "req-1"))]
    assert world.store.dead_letters[pending_letter.id].retried_at is not None
    assert world.store.dead_letters[failed_letter.id].retried_at is not None
    assert world.store.refunds[pending.id].status == RefundStatus.PENDING
    # the re-driven failed refund is only looked up: the provider holds nothing, nothing moves, nothing is refunded
    before = snapshot(world.store)
    assert (await world.process_refund(failed.id)).result == WorkResult.SKIPPED
    assert snapshot(world.store) == before
    assert world.store.refunds[failed.id].status == RefundStatus.FAILED
    await world.check()


async def test_a_declined_refunds_letter_cannot_be_redriven(world: World) -> None:
    declined = await world.declined_refund()
    assert world.letters(declined.id) == []  # a decline is an answer, not dead-lettered
    letter = await dead_letter(world, REFUND, declined.id)  # e.g. one an earlier version recorded
    queue = InMemoryTaskQueue()

    with pytest.raises(InvalidStateTransition):
        await retry(world, letter.id, queue)
    assert queue.work == []
    assert world.store.dead_letters[letter.id].retried_at is None
    await world.check()


async def test_an_unknown_letter_is_not_found(world: World) -> None:
    queue = InMemoryTaskQueue()
    with pytest.raises(NotFound):
        await retry(world, uuid4(), queue)
    assert queue.work == []


async def test_dead_letters_are_listed_newest_first(world: World) -> None:
    source = await world.account(100_000)
    ids = []
    for _ in range(3):
        payment = await world.pay(source.id, 1_000)
        await dead_letter(world, PAYMENT, payment.id)
        world.clock.advance(timedelta(seconds=1))
        ids.append(payment.id)
    async with world.store() as uow:
        letters = await list_dead_letters(uow=uow)
        two = await list_dead_letters(uow=uow, limit=2)
    assert [letter.target_id for letter in letters] == ids[::-1]
    assert [letter.target_id for letter in two] == ids[:0:-1]
    assert {letter.kind for letter in letters} == {PAYMENT}


# --- requeue_stuck -------------------------------------------------------------------------------


async def test_stuck_work_is_enqueued_again_under_the_housekeeping_lease(world: World) -> None:
    source = await world.account(1_000_000)
    # stuck: a pending payment whose message was lost
    lost = await world.pay(source.id, 1_000)
    # stuck: a payment whose worker died between the provider call and recording it
    died = await world.pay(source.id, 1_000)
    async with world.store() as uow:
        locked = await uow.payments.lock(world.tenant_id, died.id)
        assert locked is not None
        locked.transition(PaymentStatus.PROCESSING, world.clock.now())
        uow.payments.save(locked)
    # stuck: a processing payment whose retry was due long ago
    overdue = await world.pay(source.id, 1_000, metadata={"mock_outcome": "fail_transient:3"})
    assert (await world.process(overdue.id)).retry_in == 1.0
    # not stuck: a processing payment whose retry is scheduled far ahead
    later = await world.pay(source.id, 1_000, metadata={"mock_outcome": "fail_transient:3"})
    hourly = world.deps(policy=RetryPolicy(min_backoff=3_600, max_backoff=3_600))
    assert (await world.process(later.id, hourly)).retry_in == 3_600
    # stuck: a pending refund
    completed = await world.completed(source.id, 10_000)
    stuck_refund = await world.refund(completed.id, "10.00")
    # not stuck: finished work
    done = await world.completed(source.id, 1_000)
    world.clock.advance(timedelta(minutes=10))
    # not stuck: fresh work
    fresh = await world.pay(source.id, 1_000)
    fresh_refund = await world.refund(completed.id, "10.00")
    lease, queue, in_flight = InMemoryLease(world.store), InMemoryTaskQueue(), InMemoryInFlight(world.store)

    count = await requeue_stuck(lease=lease, owner="worker-1", ttl_seconds=60, in_flight=in_flight, queue=queue,
                                now=world.clock.now(), stuck_after=timedelta(minutes=5))

    expected = {(PAYMENT, lost.id), (PAYMENT, died.id), (PAYMENT, overdue.id), (REFUND, stuck_refund.id)}
    assert count == 4
    assert {(item.kind, item.target_id) for item, _ in queue.work} == expected
    assert all(delay == 0.0 and item.tenant_id == world.tenant_id for item, delay in queue.work)
    enqueued = {item.target_id for item, _ in queue.work}
    assert not enqueued & {later.id, fresh.id, fresh_refund.id, done.id, completed.id}

    # another process gets nothing while the lease is held, and enqueues nothing
    assert await requeue_stuck(lease=lease, owner="worker-2", ttl_seconds=60, in_flight=in_flight, queue=queue,
                               now=world.clock.now(), stuck_after=timedelta(minutes=5)) is None
    assert len(queue.work) == 4

    # the re-enqueued work completes: the lost payment, the one whose worker died, and the refund
    for item, _ in queue.work:
        outcome = await (world.process(item.target_id) if item.kind == PAYMENT
                         else world.process_refund(item.target_id))
        if item.target_id == overdue.id:
            assert outcome.result == WorkResult.RETRY  # its second attempt fails too, and is scheduled again
        else:
            assert outcome.status in (PaymentStatus.COMPLETED, RefundStatus.SUCCEEDED)
    assert world.providers["stripe"].calls.count(("charge", str(died.id))) == 1
    assert world.providers["stripe"].charges[str(died.id)].succeeded
    await world.check()


async def test_requeue_stuck_with_nothing_stuck_enqueues_nothing(world: World) -> None:
    source = await world.account(10_000)
    await world.pay(source.id, 1_000)
    lease, queue = InMemoryLease(world.store), InMemoryTaskQueue()
    count = await requeue_stuck(lease=lease, owner="w", ttl_seconds=60, in_flight=InMemoryInFlight(world.store),
                                queue=queue, now=world.clock.now(), stuck_after=timedelta(minutes=5))
    assert (count, queue.work) == (0, [])
    # the same owner renews its own lease
    assert await requeue_stuck(lease=lease, owner="w", ttl_seconds=60, in_flight=InMemoryInFlight(world.store),
                               queue=queue, now=world.clock.now(), stuck_after=timedelta(minutes=5)) == 0
