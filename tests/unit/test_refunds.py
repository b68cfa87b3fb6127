"""Refunds on the memory adapters: requested through the API, settled by a worker, internal ones at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from adapters.memory import InMemoryStore
from core.errors import InsufficientFunds, InvalidStateTransition, NotFound, RefundExceedsPayment, ValidationFailed
from core.events import work_for
from core.payments import PaymentStatus
from core.refunds import RefundStatus
from core.usecases.refund_requests import list_refunds
from core.usecases.worker_deps import WorkResult
from core.views import refund_view
from core.work import REFUND, RetryPolicy, WorkItem
from tests.unit.conftest import FakeClock
from tests.unit.payments_fixtures import World, refunds, snapshot


@pytest.fixture
def world(store: InMemoryStore, clock: FakeClock, tenant_id: UUID) -> World:
    return World(store, clock, tenant_id)


# --- external payments ---------------------------------------------------------------------------


async def test_a_partial_then_the_remaining_refund_go_through_the_provider(world: World) -> None:
    source = await world.account(20_000)
    payment = await world.completed(source.id, 10_000)
    assert (world.balance(source.id), world.clearing(), world.settled()) == (10_000, 0, 10_000)

    first = await world.refund(payment.id, "30.00", reason="damaged")

    assert (first.status, first.amount, first.currency, first.reason, first.payment_id) == (
        RefundStatus.PENDING, 3_000, "USD", "damaged", payment.id)
    assert world.store.refunds[first.id].status == RefundStatus.PENDING
    stored = await world.payment(payment.id)
    assert (stored.status, stored.refunded_amount) == (PaymentStatus.COMPLETED, 0)
    assert (world.balance(source.id), world.settled()) == (10_000, 10_000)  # nothing moves until the provider says so
    [created] = [m for m in world.store.outbox if m.aggregate_id == first.id]
    assert created.topic == "refund.created" and created.payload == refund_view(world.store.refunds[first.id])
    assert created.correlation_id == "req-refund"
    assert work_for(created) == WorkItem(kind=REFUND, tenant_id=world.tenant_id, target_id=first.id,
                                         correlation_id="req-refund")
    await world.check()

    outcome = await world.process_refund(first.id)

    assert (outcome.result, outcome.status, outcome.retry_in) == (WorkResult.DONE, RefundStatus.SUCCEEDED, None)
    settled = world.store.refunds[first.id]
    [provider_refund] = refunds(world)
    assert (provider_refund.key, provider_refund.amount) == (str(first.id), 3_000)
    assert (settled.status, settled.attempts, settled.provider_reference) == (
        RefundStatus.SUCCEEDED, 1, provider_refund.reference)
    assert settled.completed_at is not None and settled.failure_reason is None
    stored = await world.payment(payment.id)
    assert (stored.status, stored.refunded_amount) == (PaymentStatus.PARTIALLY_REFUNDED, 3_000)
    assert (world.balance(source.id), world.clearing(), world.settled()) == (13_000, 0, 7_000)
    refund_entries = [(e.account_id, e.amount) for e in world.store.entries if e.refund_id == first.id]
    [(paid_out, debit), credit] = sorted(refund_entries, key=lambda x: x[1])
    assert (world.store.accounts[paid_out].kind, debit, credit) == ("settlement:stripe", -3_000, (source.id, 3_000))
    assert world.topics(first.id) == ["refund.created", "refund.succeeded"]

    rest = await world.refund(payment.id)  # no amount: whatever is left
    assert (rest.amount, rest.status) == (7_000, RefundStatus.PENDING)
    assert (await world.process_refund(rest.id)).status == RefundStatus.SUCCEEDED

    stored = await world.payment(payment.id)
    assert (stored.status, stored.refunded_amount) == (PaymentStatus.REFUNDED, 10_000)
    assert (world.balance(source.id), world.clearing(), world.settled()) == (20_000, 0, 0)
    assert await world.event_types(payment.id) == [
        "payment.created", "payment.processing", "payment.completed",
        "refund.created", "payment.partially_refunded", "refund.created", "payment.refunded"]
    assert world.topics(payment.id) == [
        "payment.created", "payment.processing", "payment.completed", "payment.partially_refunded",
        "payment.refunded"]
    assert sorted(r.key for r in refunds(world)) == sorted([str(first.id), str(rest.id)])
    async with world.store() as uow:
        page = await list_refunds(world.tenant_id, payment.id, uow=uow, limit=10, cursor=None)
        newest = await list_refunds(world.tenant_id, payment.id, uow=uow, limit=1, cursor=None)
        assert newest.next_cursor is not None
        oldest = await list_refunds(world.tenant_id, payment.id, uow=uow, limit=1, cursor=newest.next_cursor)
    assert [(r.id, r.status) for r in page.items] == [(rest.id, RefundStatus.SUCCEEDED),
                                                      (first.id, RefundStatus.SUCCEEDED)]
    assert page.next_cursor is None
    assert ([r.id for r in newest.items], [r.id for r in oldest.items], oldest.next_cursor) == (
        [rest.id], [first.id], None)
    assert world.store.dead_letters == {}
    # a fully refunded payment takes no more refunds
    with pytest.raises(InvalidStateTransition):
        await world.refund(payment.id, "0.01")
    await world.check()


async def test_processing_a_refund_again_is_skipped_and_refunds_once(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.completed(source.id, 10_000)
    refund = await world.refund(payment.id, "10.00")
    assert (await world.process_refund(refund.id)).result == WorkResult.DONE
    before = snapshot(world.store)

    assert (await world.process_refund(refund.id)).result == WorkResult.SKIPPED
    assert (await world.process_refund(uuid4())).result == WorkResult.SKIPPED

    assert snapshot(world.store) == before
    assert len(refunds(world)) == 1
    await world.check()


async def test_concurrent_refund_deliveries_refund_once(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.completed(source.id, 10_000)
    refund = await world.refund(payment.id, "25.00")

    outcomes = await asyncio.gather(*(world.process_refund(refund.id) for _ in range(4)))

    assert [o.result for o in outcomes].count(WorkResult.DONE) == 1
    assert len(refunds(world)) == 1
    assert (await world.payment(payment.id)).refunded_amount == 2_500
    assert (world.balance(source.id), world.settled()) == (2_500, 7_500)
    await world.check()


async def test_the_default_amount_is_what_remains_and_pending_refunds_count(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.completed(source.id, 10_000)
    first = await world.refund(payment.id, "30")
    assert first.amount == 3_000

    rest = await world.refund(payment.id)

    assert rest.amount == 7_000  # the pending 30.00 already counts against the payment
    before = snapshot(world.store)
    for amount in ("0.01", None):
        with pytest.raises(RefundExceedsPayment):
            await world.refund(payment.id, amount)
    assert snapshot(world.store) == before
    await world.check()


async def test_refunds_never_exceed_the_payment(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.completed(source.id, 10_000)
    before = snapshot(world.store)
    with pytest.raises(RefundExceedsPayment):
        await world.refund(payment.id, "100.01")
    assert snapshot(world.store) == before

    sixty = await world.refund(payment.id, "60.00")
    with pytest.raises(RefundExceedsPayment):  # while the 60.00 is still pending
        await world.refund(payment.id, "40.01")
    assert (await world.process_refund(sixty.id)).status == RefundStatus.SUCCEEDED
    with pytest.raises(RefundExceedsPayment):  # and once it succeeded
        await world.refund(payment.id, "40.01")
    forty = await world.refund(payment.id, "40.00")
    assert (await world.process_refund(forty.id)).status == RefundStatus.SUCCEEDED

    assert (await world.payment(payment.id)).status == PaymentStatus.REFUNDED
    assert sum(r.amount for r in world.store.refunds.values() if r.status == RefundStatus.SUCCEEDED) == 10_000
    assert (world.balance(source.id), world.settled()) == (10_000, 0)
    await world.check()


async def test_concurrent_refund_requests_never_exceed_the_payment(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.completed(source.id, 10_000)

    async def ask() -> str:
        try:
            await world.refund(payment.id, "30.00")
        except RefundExceedsPayment:
            return "refused"
        return "accepted"

    results = await asyncio.gather(*(ask() for _ in range(5)))

    assert sorted(results) == ["accepted"] * 3 + ["refused"] * 2
    assert sum(r.amount for r in world.store.refunds.values()) == 9_000
    await world.check()


@pytest.mark.parametrize("outcome", ["pending", "failed", "cancelled"])
async def test_only_completed_payments_can_be_refunded(world: World, outcome: str) -> None:
    source = await world.account(10_000)
    payment = await world.pay(source.id, 1_000, metadata={"mock_outcome": "decline"})
    if outcome == "failed":
        assert (await world.process(payment.id)).status == PaymentStatus.FAILED
    elif outcome == "cancelled":
        assert (await world.cancel(payment.id)).status == PaymentStatus.CANCELLED
    assert (await world.payment(payment.id)).status == {
        "pending": PaymentStatus.PENDING, "failed": PaymentStatus.FAILED, "cancelled": PaymentStatus.CANCELLED}[outcome]
    before = snapshot(world.store)

    for amount in ("1.00", None):
        with pytest.raises(InvalidStateTransition):
            await world.refund(payment.id, amount)

    assert snapshot(world.store) == before
    await world.check()


async def test_refunding_an_unknown_or_foreign_payment_is_not_found(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.completed(source.id, 10_000)
    before = snapshot(world.store)
    with pytest.raises(NotFound):
        await world.refund(uuid4())
    with pytest.raises(NotFound):
        await world.refund(payment.id, tenant_id=uuid4())
    async with world.store() as uow:
        with pytest.raises(NotFound):
            await list_refunds(uuid4(), payment.id, uow=uow, limit=10, cursor=None)
        with pytest.raises(NotFound):
            await list_refunds(world.tenant_id, uuid4(), uow=uow, limit=10, cursor=None)
    assert snapshot(world.store) == before


@pytest.mark.parametrize("amount", ["10.001", "0.001", "0", "0.00", "-1.00", "abc", ""])
async def test_a_malformed_refund_amount_is_a_validation_error(world: World, amount: str) -> None:
    source = await world.account(10_000)
    payment = await world.completed(source.id, 10_000)
    before = snapshot(world.store)
    with pytest.raises(ValidationFailed):
        await world.refund(payment.id, amount)
    assert snapshot(world.store) == before


async def test_a_declined_refund_fails_moves_nothing_and_is_not_dead_lettered(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.completed(source.id, 10_000, mock_refund_outcome="decline")
    refund = await world.refund(payment.id, "40.00")

    outcome = await world.process_refund(refund.id)

    assert (outcome.result, outcome.status, outcome.retry_in) == (WorkResult.DONE, RefundStatus.FAILED, None)
    failed = world.store.refunds[refund.id]
    assert (failed.status, failed.attempts, failed.provider_reference) == (RefundStatus.FAILED, 1, None)
    assert failed.failure_reason
    stored = await world.payment(payment.id)
    assert (stored.status, stored.refunded_amount) == (PaymentStatus.COMPLETED, 0)
    assert (world.balance(source.id), world.clearing(), world.settled()) == (0, 0, 10_000)
    assert [e for e in world.store.entries if e.refund_id == refund.id] == []
    assert await world.event_types(payment.id) == [
        "payment.created", "payment.processing", "payment.completed", "refund.created", "refund.failed"]
    assert world.topics(refund.id) == ["refund.created", "refund.failed"]
    assert world.letters(refund.id) == []  # a decline is an answer, not a fault (API.md §6)
    assert (await world.events(payment.id))[-1].data["refund"]["failure_code"] == "declined"
    assert refunds(world) == []
    assert world.providers["stripe"].refunds[str(refund.id)].status == "declined"
    # a failed refund no longer counts against the payment; another delivery does nothing
    assert (await world.process_refund(refund.id)).result == WorkResult.SKIPPED
    again = await world.refund(payment.id)
    assert again.amount == 10_000
    await world.check()


async def test_transient_refund_failures_are_retried(world: World) -> None:
    source = await world.account(10_000)
    payment = await world.completed(source.id, 10_000, mock_refund_outcome="fail_transient:1")
    refund = await world.refund(payment.id, "10.00")

    first = await world.process_refund(refund.id)

    assert (first.result, first.status, first.retry_in) == (WorkResult.RETRY, RefundStatus.PENDING, 1.0)
    pending = world.store.refunds[refund.id]
    assert (pending.status, pending.attempts) == (RefundStatus.PENDING, 1)
    assert pending.next_attempt_at == pending.updated_at + timedelta(seconds=1)
    early = await world.process_refund(refund.id)  # an early duplicate: back on the queue until it is due
    assert (early.result, early.retry_in) == (WorkResult.RETRY, pytest.approx(1.0, abs=1e-3))
    world.clock.advance(timedelta(seconds=1))
    second = await world.process_refund(refund.id)
    assert (second.result, second.status) == (WorkResult.DONE, RefundStatus.SUCCEEDED)
    assert world.store.refunds[refund.id].attempts == 2
    assert await world.event_types(payment.id) == [
        "payment.created", "payment.processing", "payment.completed", "refund.created",
        "refund.attempt_failed", "payment.partially_refunded"]
    assert (world.balance(source.id), world.settled()) == (1_000, 9_000)
    await world.check()


async def test_a_refund_whose_attempts_run_out_fails(world: World) -> None:
    world.policy = RetryPolicy(max_attempts=2)
    source = await world.account(10_000)
    payment = await world.completed(source.id, 10_000, mock_refund_outcome="fail_transient:5")
    refund = await world.refund(payment.id, "10.00")

    assert (await world.process_refund(refund.id)).result == WorkResult.RETRY
    world.clock.advance(timedelta(seconds=1))
    last = await world.process_refund(refund.id)

    assert (last.result, last.status) == (WorkResult.DONE, RefundStatus.FAILED)
    failed = world.store.refunds[refund.id]
    assert failed.failure_reason is not None and "2 attempts" in failed.failure_reason
    assert [letter.attempts for letter in world.letters(refund.id)] == [2]
    assert (await world.payment(payment.id)).status == PaymentStatus.COMPLETED
    assert (world.balance(source.id), world.settled()) == (0, 10_000)
    await world.check()


async def test_a_paypal_refund_in_a_zero_decimal_currency(world: World) -> None:
    source = await world.account(50_000, currency="JPY")
    payment = await world.pay(source.id, 5_000, provider="paypal", currency="JPY")
    assert (await world.process(payment.id)).status == PaymentStatus.COMPLETED
    assert (world.settled("paypal", "JPY"), world.settled("stripe", "JPY")) == (5_000, 0)
    with pytest.raises(ValidationFailed):
        await world.refund(payment.id, "10.5")

    refund = await world.refund(payment.id, "1200")
    assert (await world.process_refund(refund.id)).status == RefundStatus.SUCCEEDED

    assert refund.amount == 1_200 and refund_view(world.store.refunds[refund.id])["amount"] == "1200"
    assert (world.balance(source.id), world.settled("paypal", "JPY"), world.clearing("JPY")) == (46_200, 3_800, 0)
    assert [r.key for r in refunds(world, "paypal")] == [str(refund.id)]
    assert (await world.payment(payment.id)).refunded_amount == 1_200
    await world.check()


async def test_refund_events_show_amounts_as_decimal_strings(world: World) -> None:
    """API.md §1: in responses every amount is a string with the currency's minor-unit digits; the events of
    `GET /payments/{id}/events` are responses too (their `refunded_amount` already is one)."""
    source = await world.account(10_000)
    payment = await world.completed(source.id, 10_000)
    refund = await world.refund(payment.id, "30.00")
    await world.process_refund(refund.id)

    events = [e for e in await world.events(payment.id) if "refund" in e.data]

    assert [e.type for e in events] == ["refund.created", "payment.partially_refunded"]
    assert events[-1].data["refunded_amount"] == "30.00"
    assert [e.data["refund"]["amount"] for e in events] == ["30.00", "30.00"]


# --- internal transfers ----------------------------------------------------------------------


async def test_an_internal_transfer_is_refunded_synchronously(world: World) -> None:
    alice = await world.account(10_000)
    bob = await world.account(0, user_id="bob")
    payment = await world.transfer(alice.id, bob.id, 2_500)

    refund = await world.refund(payment.id, "10.00", reason="oops")

    assert (refund.status, refund.amount, refund.provider_reference, refund.reason) == (
        RefundStatus.SUCCEEDED, 1_000, None, "oops")
    assert refund.completed_at is not None
    assert world.store.refunds[refund.id].status == RefundStatus.SUCCEEDED
    assert (world.balance(alice.id), world.balance(bob.id)) == (8_500, 1_500)
    assert sorted((e.account_id, e.amount) for e in world.store.entries if e.refund_id == refund.id) == sorted(
        [(alice.id, 1_000), (bob.id, -1_000)])
    stored = await world.payment(payment.id)
    assert (stored.status, stored.refunded_amount) == (PaymentStatus.PARTIALLY_REFUNDED, 1_000)
    assert world.topics(refund.id) == ["refund.succeeded"]  # no refund.created: no work for a worker
    assert all(work_for(m) is None for m in world.store.outbox if m.aggregate_id in (refund.id, payment.id))

    rest = await world.refund(payment.id)

    assert (rest.status, rest.amount) == (RefundStatus.SUCCEEDED, 1_500)
    assert (world.balance(alice.id), world.balance(bob.id)) == (10_000, 0)
    stored = await world.payment(payment.id)
    assert (stored.status, stored.refunded_amount) == (PaymentStatus.REFUNDED, 2_500)
    assert await world.event_types(payment.id) == [
        "payment.created", "payment.completed", "payment.partially_refunded", "payment.refunded"]
    assert world.topics(payment.id) == ["transfer.completed", "payment.partially_refunded", "payment.refunded"]
    assert refunds(world) == []
    with pytest.raises(InvalidStateTransition):
        await world.refund(payment.id, "0.01")
    await world.check()


async def test_an_internal_refund_fails_when_the_destination_spent_the_money(world: World) -> None:
    alice = await world.account(10_000)
    bob = await world.account(0, user_id="bob")
    carol = await world.account(0, user_id="carol")
    payment = await world.transfer(alice.id, bob.id, 2_500)
    await world.transfer(bob.id, carol.id, 2_000)
    before = snapshot(world.store)

    with pytest.raises(InsufficientFunds):
        await world.refund(payment.id)

    assert snapshot(world.store) == before
    assert (await world.payment(payment.id)).status == PaymentStatus.COMPLETED
    # what is left on bob can still come back
    refund = await world.refund(payment.id, "5.00")
    assert refund.status == RefundStatus.SUCCEEDED
    assert (world.balance(alice.id), world.balance(bob.id)) == (8_000, 0)
    await world.check()
