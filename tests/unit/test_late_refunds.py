"""Late refunds: a refund the provider confirms after it was recorded `failed` is posted as the provider says,
once; one that no longer fits in the payment is held for a person instead of creating money."""

from __future__ import annotations

from uuid import UUID

import pytest

from adapters.memory import InMemoryStore
from core.payments import PaymentStatus
from core.providers import RefundRequest
from core.refunds import Refund, RefundStatus
from core.usecases.refund_outcome import record_refund_outcome
from core.usecases.worker_deps import WorkResult
from core.work import REFUND, RetryPolicy
from tests.unit.conftest import FakeClock
from tests.unit.payments_fixtures import World, refunds


@pytest.fixture
def world(store: InMemoryStore, clock: FakeClock, tenant_id: UUID) -> World:
    return World(store, clock, tenant_id, policy=RetryPolicy(max_attempts=1))


async def failed_refund(world: World, amount: str = "40.00", paid: int = 10_000) -> tuple[UUID, UUID, Refund]:
    """A completed payment of `paid` from a new account, and a refund of it that failed: the provider was down
    for its only attempt. (source id, payment id, the failed refund)"""
    source = await world.account(10_000)
    payment = await world.completed(source.id, paid)
    refund = await world.refund(payment.id, amount)
    world.providers["stripe"].available = False
    assert (await world.process_refund(refund.id)).status == RefundStatus.FAILED
    world.providers["stripe"].available = True
    assert len(world.letters(refund.id)) == 1
    return source.id, payment.id, world.store.refunds[refund.id]


async def refund_at_provider(world: World, refund: Refund) -> str:
    """The provider refunds under the refund's own key after all (the reference it answers with)."""
    payment = await world.payment(refund.payment_id)
    done = await world.providers["stripe"].refund(RefundRequest(
        refund_id=refund.id, payment_id=payment.id, charge_reference=payment.provider_reference or "",
        amount=refund.amount, currency=refund.currency, reason=None, metadata={}))
    return done.reference


async def test_a_late_answer_posts_the_refund_as_the_provider_says_once(world: World) -> None:
    source, payment_id, failed = await failed_refund(world)
    assert (world.balance(source), world.settled()) == (0, 10_000)
    reference = await refund_at_provider(world, failed)

    late = await record_refund_outcome(world.tenant_id, payment_id, failed, (reference, None), world.deps())

    assert (late.result, late.status) == (WorkResult.DONE, RefundStatus.SUCCEEDED)
    posted = world.store.refunds[failed.id]
    assert (posted.status, posted.provider_reference, posted.failure_reason) == (
        RefundStatus.SUCCEEDED, reference, None)
    stored = await world.payment(payment_id)
    assert (stored.status, stored.refunded_amount) == (PaymentStatus.PARTIALLY_REFUNDED, 4_000)
    assert (world.balance(source), world.settled()) == (4_000, 6_000)
    assert (await world.event_types(payment_id))[-3:] == [
        "refund.failed", "refund.late_success_detected", "payment.partially_refunded"]
    assert world.topics(failed.id) == ["refund.created", "refund.failed", "refund.succeeded"]
    assert world.topics(payment_id)[-1] == "payment.partially_refunded"

    again = await record_refund_outcome(world.tenant_id, payment_id, failed, (reference, None), world.deps())
    assert again.result == WorkResult.SKIPPED  # a repeated answer changes nothing
    assert (world.balance(source), world.settled()) == (4_000, 6_000)
    assert len([e for e in world.store.entries if e.refund_id == failed.id]) == 2
    await world.check()


async def test_a_later_delivery_looks_a_failed_refund_up_and_the_ledger_follows(world: World) -> None:
    source, payment_id, failed = await failed_refund(world, "100.00")
    stripe = world.providers["stripe"]
    assert (await world.process_refund(failed.id)).result == WorkResult.SKIPPED  # asked; nothing there
    reference = await refund_at_provider(world, failed)  # e.g. the provider's search had not caught up

    found = await world.process_refund(failed.id)  # a duplicate or redelivered message

    assert (found.result, found.status) == (WorkResult.DONE, RefundStatus.SUCCEEDED)
    assert world.store.refunds[failed.id].provider_reference == reference
    stored = await world.payment(payment_id)
    assert (stored.status, stored.refunded_amount) == (PaymentStatus.REFUNDED, 10_000)
    assert (world.balance(source), world.settled()) == (10_000, 0)
    assert (await world.process_refund(failed.id)).result == WorkResult.SKIPPED
    key = str(failed.id)
    assert stripe.calls.count(("find_refund", key)) == 2  # asked twice while failed, never after
    assert [r.key for r in refunds(world)] == [key]  # refunded once, by the provider, never again by us
    await world.check()


async def test_a_declined_refund_is_never_looked_up(world: World) -> None:
    refund = await world.declined_refund()
    calls = list(world.providers["stripe"].calls)

    assert (await world.process_refund(refund.id)).result == WorkResult.SKIPPED

    assert world.providers["stripe"].calls == calls
    assert world.letters(refund.id) == []
    await world.check()


@pytest.mark.parametrize("other", ["succeeded", "pending"])
async def test_a_late_refund_that_would_exceed_the_payment_is_held_for_a_person(world: World, other: str) -> None:
    """While the first refund was failed, a second took the whole payment: posting the first as well would
    return money that was never paid. It is held: dead letter, history, nothing moved, idempotently."""
    source, payment_id, failed = await failed_refund(world, "60.00")
    second = await world.refund(payment_id)  # what is left: everything, the failed refund no longer counts
    assert second.amount == 10_000
    if other == "succeeded":
        assert (await world.process_refund(second.id)).status == RefundStatus.SUCCEEDED
    before = (world.balance(source), world.settled(), (await world.payment(payment_id)).refunded_amount)

    for _ in range(2):  # the late answer, and a repeat of it
        held = await record_refund_outcome(world.tenant_id, payment_id, failed, ("stripe_re_late", None),
                                           world.deps())
        assert (held.result, held.status) == (WorkResult.DONE, RefundStatus.FAILED)

    assert world.store.refunds[failed.id].status == RefundStatus.FAILED
    assert (world.balance(source), world.settled(), (await world.payment(payment_id)).refunded_amount) == before
    assert [e for e in world.store.entries if e.refund_id == failed.id] == []
    letters = world.letters(failed.id)
    assert len(letters) == 2  # the failure's, and one (not two) for the late success
    assert letters[-1].kind == REFUND and "stripe_re_late" in letters[-1].error and "settle it" in letters[-1].error
    assert (await world.event_types(payment_id)).count("refund.late_success_held") == 1
    await world.check()
