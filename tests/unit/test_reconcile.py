"""Unknown outcomes: a payment is failed only when nothing can have been charged, or the provider says so;
a charge that arrives after its payment failed is refunded, and that debt survives a crash."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import attrs
import pytest

from adapters.memory import InMemoryStore
from adapters.memory.outbox import InMemoryTaskQueue
from adapters.memory.providers import InMemoryProvider
from core.payments import PaymentStatus, owed_reversals
from core.providers import (
    ChargeRequest,
    ProviderResult,
    ProviderUnavailable,
    RefundRequest,
)
from core.usecases.dlq import retry_dead_letter
from core.usecases.worker_deps import WorkResult
from core.work import RetryPolicy
from tests.unit.conftest import FakeClock
from tests.unit.payments_fixtures import World, refunds


@pytest.fixture
def world(store: InMemoryStore, clock: FakeClock, tenant_id: UUID) -> World:
    return World(store, clock, tenant_id, policy=RetryPolicy(max_attempts=2))


@attrs.define
class LostAnswers:
    """A provider that does its work but whose answers are lost on the way back (a timeout after the fact),
    and whose lookups can be made to fail."""

    inner: InMemoryProvider
    lookups_fail: bool = False
    refunds_fail: int = 0

    @property
    def name(self) -> str:
        return self.inner.name

    async def charge(self, request: ChargeRequest) -> ProviderResult:
        await self.inner.charge(request)
        raise ProviderUnavailable("the answer was lost", ambiguous=True)

    async def refund(self, request: RefundRequest) -> ProviderResult:
        if self.refunds_fail > 0:
            self.refunds_fail -= 1
            raise ProviderUnavailable("refunds are down", ambiguous=False)
        return await self.inner.refund(request)

    async def find_charge(self, request: ChargeRequest) -> ProviderResult | None:
        if self.lookups_fail:
            raise ProviderUnavailable("lookups are down", ambiguous=False)
        return await self.inner.find_charge(request)

    async def find_refund(self, request: RefundRequest) -> ProviderResult | None:
        return await self.inner.find_refund(request)


async def run_until_settled(world: World, payment_id: UUID, deps: object = None, rounds: int = 10) -> None:
    for _ in range(rounds):
        outcome = await world.process(payment_id, deps)  # type: ignore[arg-type]
        if outcome.result != WorkResult.RETRY:
            return
        world.clock.advance(timedelta(seconds=outcome.retry_in or 0))


async def test_a_charge_whose_answers_were_lost_completes_once_the_provider_is_asked(world: World) -> None:
    stripe = world.providers["stripe"]
    world.providers["stripe"] = LostAnswers(stripe)  # type: ignore[assignment]
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500)
    await run_until_settled(world, payment.id)
    stored = await world.payment(payment.id)
    assert stored.status == PaymentStatus.COMPLETED and stored.provider_reference
    assert (world.balance(source.id), world.settled()) == (7_500, 2_500)
    assert [c.succeeded for c in stripe.charges.values()] == [True]
    await world.check()


async def test_nothing_is_failed_while_the_provider_cannot_say_whether_it_charged(world: World) -> None:
    lost = LostAnswers(world.providers["stripe"], lookups_fail=True)
    world.providers["stripe"] = lost  # type: ignore[assignment]
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500)
    await run_until_settled(world, payment.id, rounds=6)
    stored = await world.payment(payment.id)
    assert stored.status == PaymentStatus.PROCESSING and stored.attempts >= 3  # past max_attempts, still not failed
    assert world.clearing() == 2_500 and world.letters(payment.id) == []
    errors = [e.data["error"] for e in await world.events(payment.id) if e.type == "payment.attempt_failed"]
    assert "not known yet" in errors[-1]
    lost.lookups_fail = False
    await run_until_settled(world, payment.id)
    assert (await world.payment(payment.id)).status == PaymentStatus.COMPLETED
    await world.check()


async def test_failures_that_cannot_have_charged_fail_without_asking(world: World) -> None:
    stripe = world.providers["stripe"]
    stripe.available = False  # injected failures: the provider certainly did nothing
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500)
    await run_until_settled(world, payment.id)
    assert (await world.payment(payment.id)).status == PaymentStatus.FAILED
    assert not any(kind.startswith("find") for kind, _ in stripe.calls)
    assert world.balance(source.id) == 10_000
    await world.check()


async def test_a_late_charge_is_refunded_even_if_the_first_refund_attempt_fails(world: World) -> None:
    """A success met on a payment that already failed is a debt committed (`payment.late_charge_detected`)
    before the refund is tried: a failed refund (or a crash) leaves it owed, the next delivery pays it, and
    the DLQ may re-drive it although the payment is final."""
    from core.usecases.late_charges import reverse_late_charge
    from core.usecases.payment_outcome import record_charge_outcome
    from core.work import DeadLetter

    world.providers["stripe"].available = False
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500)
    await run_until_settled(world, payment.id)
    failed = await world.payment(payment.id)
    assert failed.status == PaymentStatus.FAILED and world.balance(source.id) == 10_000
    world.providers["stripe"].available = True
    charged = await world.providers["stripe"].charge(ChargeRequest(
        payment_id=payment.id, amount=payment.amount, currency="USD", description=None, metadata={}))

    assert (await record_charge_outcome(failed, charged.reference, None, world.deps())).result == "late"
    assert owed_reversals(await world.events(payment.id)) == [charged.reference]
    lost = LostAnswers(world.providers["stripe"], refunds_fail=1)
    with pytest.raises(ProviderUnavailable):
        await reverse_late_charge(failed, charged.reference, lost, world.deps())
    assert owed_reversals(await world.events(payment.id)) == [charged.reference]  # still owed

    queue = InMemoryTaskQueue()
    (letter,) = [x for x in world.store.dead_letters.values() if x.target_id == payment.id]
    assert isinstance(letter, DeadLetter)
    assert "re-enqueued" in await retry_dead_letter(letter.id, uow_factory=world.store, queue=queue,
                                                    clock=world.clock)
    assert [item.target_id for item, _ in queue.work] == [payment.id]

    assert (await world.process(payment.id)).result == WorkResult.DONE  # the re-driven delivery pays the debt
    assert owed_reversals(await world.events(payment.id)) == []
    assert [r.charge_reference for r in refunds(world)] == [charged.reference]
    assert (await world.process(payment.id)).result == "skipped"  # nothing owed any more
    assert (await world.event_types(payment.id))[-2:] == ["payment.late_charge_detected",
                                                         "payment.late_charge_reversed"]
    assert world.balance(source.id) == 10_000
    await world.check()
