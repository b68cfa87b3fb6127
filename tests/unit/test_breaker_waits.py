"""An open breaker's refusal is not an attempt (API.md §6): payments and refunds wait for the breaker, at most
`breaker_max_wait`, then fail `provider_unavailable` into the dead letter queue; declines are not dead-lettered."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from uuid import UUID, uuid4

import attrs
import pytest

from adapters.memory import InMemoryStore
from adapters.memory.providers import InMemoryProvider
from adapters.providers.breaker import BreakerProvider
from app.configuration import load_settings
from app.settings import SettingsError
from core.payments import FailureCode, PaymentStatus
from core.providers import ChargeRequest, ProviderResult, ProviderUnavailable
from core.refunds import RefundStatus
from core.usecases.worker_deps import Deps, Outcome, WorkResult
from core.work import RetryPolicy
from tests.unit.conftest import FakeClock
from tests.unit.payments_fixtures import World
from workers.context import retry_policy

RECOVERY = 30.0
POLICY = RetryPolicy(max_attempts=5, provider_timeout=1.0, breaker_max_wait=100.0)


class LosesAnswers(InMemoryProvider):
    """stripe, whose charges time out while `lose`: it charged (`charged=True`) or not, but the answer is lost."""

    def __init__(self, *, charged: bool) -> None:
        super().__init__("stripe")
        self.charged, self.lose, self.charge_calls = charged, True, 0

    async def charge(self, request: ChargeRequest) -> ProviderResult:
        self.charge_calls += 1
        if not self.lose:
            return await super().charge(request)
        if self.charged:
            await super().charge(request)
        raise ProviderUnavailable("the provider did not answer in time", ambiguous=True)


@attrs.define
class Rig:
    """A world whose stripe provider sits behind a breaker (opens after 2 failures of 2; 30 s to a probe) that
    reads the world's hand-moved clock, so the breaker's time and the payments' time pass together."""

    world: World
    provider: InMemoryProvider
    breaker: BreakerProvider

    @property
    def deps(self) -> Deps:
        return attrs.evolve(self.world.deps(), providers=lambda _: self.breaker)

    async def trip(self) -> None:
        """Open the breaker with failed calls of another payment (the provider down meanwhile)."""
        available, self.provider.available = self.provider.available, False
        for _ in range(2):
            with contextlib.suppress(ProviderUnavailable):
                await self.breaker.find_charge(ChargeRequest(payment_id=uuid4(), amount=1, currency="USD",
                                                             metadata={}, description=None))
        self.provider.available = available
        assert self.breaker.state == "open"

    def advance(self, seconds: float) -> None:
        self.world.clock.advance(timedelta(seconds=seconds))

    async def until_settled(self, process: Callable[[], Awaitable[Outcome]], rounds: int = 50) -> list[Outcome]:
        """Deliver the work again whenever it asks to be retried, moving the clock to when it is due."""
        outcomes = [await process()]
        while outcomes[-1].result == WorkResult.RETRY:
            assert len(outcomes) < rounds, outcomes
            self.advance(outcomes[-1].retry_in or 0.0)
            outcomes.append(await process())
        return outcomes

    def calls(self, kind: str, key: UUID) -> int:
        return self.provider.calls.count((kind, str(key)))


def rig_for(world: World) -> Rig:
    inner = world.providers["stripe"]

    def monotonic() -> float:  # the world's clock, read without moving it
        return world.clock.current.timestamp()

    breaker = BreakerProvider(inner, window=2, failure_rate=1.0, recovery_timeout=RECOVERY, clock=monotonic)
    return Rig(world, inner, breaker)


@pytest.fixture
def world(store: InMemoryStore, clock: FakeClock, tenant_id: UUID) -> World:
    return World(store, clock, tenant_id, policy=POLICY)


@pytest.fixture
def rig(world: World) -> Rig:
    return rig_for(world)


async def test_refusals_are_not_attempts_and_the_payment_completes_once_the_provider_recovers(rig: Rig) -> None:
    world = rig.world
    world.policy = attrs.evolve(POLICY, breaker_max_wait=3600.0)
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500)
    await rig.trip()

    refused = await world.process(payment.id, rig.deps)
    assert (refused.result, refused.status, refused.retry_in) == (WorkResult.RETRY, PaymentStatus.PROCESSING,
                                                                  pytest.approx(RECOVERY, abs=1e-3))
    for _ in range(5):  # the breaker stays open: every other probe fails, the payment's calls are refused
        rig.advance(RECOVERY)
        await rig.trip()
        again = await world.process(payment.id, rig.deps)
        assert again.result == WorkResult.RETRY
    waiting = await world.payment(payment.id)
    assert (waiting.status, waiting.attempts) == (PaymentStatus.PROCESSING, 0)
    assert rig.calls("charge", payment.id) == 0
    history = await world.events(payment.id)
    assert [e.type for e in history].count("payment.waiting_for_provider") == 6
    assert "payment.attempt_failed" not in [e.type for e in history]
    assert {e.data["waiting_since"] for e in history if e.type == "payment.waiting_for_provider"} == {
        history[2].data["waiting_since"]}  # every wait counts from the first refusal
    assert "circuit open" in history[-1].data["error"]
    assert world.topics(payment.id) == ["payment.created", "payment.processing"]  # waits are not webhooks

    outcomes = await rig.until_settled(lambda: world.process(payment.id, rig.deps))  # the provider is back

    assert outcomes[-1].status == PaymentStatus.COMPLETED
    done = await world.payment(payment.id)
    assert (done.status, done.attempts) == (PaymentStatus.COMPLETED, 1)  # one call reached the provider: one attempt
    assert rig.calls("charge", payment.id) == 1
    assert (world.balance(source.id), world.settled()) == (7_500, 2_500)
    assert world.letters(payment.id) == []
    await world.check()


async def test_a_payment_that_waits_out_the_breaker_fails_provider_unavailable_into_the_dlq(rig: Rig) -> None:
    """The provider stays down: the payment's probes are real attempts (counted), the refusals between them are
    not, and once it has waited `breaker_max_wait` since its first refusal it fails, its money back."""
    world = rig.world
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500)
    await rig.trip()
    rig.provider.available = False

    outcomes = await rig.until_settled(lambda: world.process(payment.id, rig.deps))

    failed = await world.payment(payment.id)
    assert (failed.status, failed.failure_code) == (PaymentStatus.FAILED, FailureCode.PROVIDER_UNAVAILABLE)
    assert failed.failure_reason is not None and "stayed unavailable" in failed.failure_reason
    types = await world.event_types(payment.id)
    made = rig.calls("charge", payment.id)
    assert 0 < made < POLICY.max_attempts  # the attempts were not burned by refusals
    assert failed.attempts == made == types.count("payment.attempt_failed")
    assert types.count("payment.waiting_for_provider") > made
    assert outcomes[-1].status == PaymentStatus.FAILED
    assert (world.balance(source.id), world.clearing()) == (10_000, 0)
    [letter] = world.letters(payment.id)
    assert (letter.error, letter.attempts) == (failed.failure_reason, made)
    assert world.topics(payment.id)[-1] == "payment.failed"
    await world.check()


@pytest.mark.parametrize("charged", [True, False])
async def test_after_an_ambiguous_attempt_the_wait_ends_only_when_the_provider_says(world: World,
                                                                                   charged: bool) -> None:
    """An attempt timed out, then the breaker opened: failing the payment unasked could leave the money in two
    places, so past `breaker_max_wait` it keeps waiting; when the breaker lets a call through, it only asks."""
    world.providers["stripe"] = lossy = LosesAnswers(charged=charged)
    rig = rig_for(world)
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500)
    assert (await world.process(payment.id, rig.deps)).retry_in == POLICY.backoff(1)  # attempt 1: no answer
    await rig.trip()
    lossy.lose = False
    for _ in range(5):  # well past breaker_max_wait, the breaker kept open
        rig.advance(RECOVERY)
        await rig.trip()
        assert (await world.process(payment.id, rig.deps)).result == WorkResult.RETRY
    waiting = await world.payment(payment.id)
    assert (waiting.status, waiting.attempts, world.clearing()) == (PaymentStatus.PROCESSING, 1, 2_500)
    assert world.letters(payment.id) == []

    await rig.until_settled(lambda: world.process(payment.id, rig.deps))

    assert lossy.charge_calls == 1  # never charged again: only asked
    assert rig.calls("find_charge", payment.id) == 1
    final = await world.payment(payment.id)
    if charged:
        assert final.status == PaymentStatus.COMPLETED and world.settled() == 2_500
        assert world.letters(payment.id) == []
    else:
        assert (final.status, final.failure_code) == (PaymentStatus.FAILED, FailureCode.PROVIDER_UNAVAILABLE)
        assert world.balance(source.id) == 10_000 and len(world.letters(payment.id)) == 1
    await world.check()


async def test_a_refunds_refusals_are_not_attempts_and_it_succeeds_once_the_provider_recovers(rig: Rig) -> None:
    world = rig.world
    world.policy = attrs.evolve(POLICY, breaker_max_wait=3600.0)
    source = await world.account(10_000)
    payment = await world.completed(source.id, 10_000)
    refund = await world.refund(payment.id, "40.00")
    await rig.trip()
    for _ in range(3):
        assert (await world.process_refund(refund.id, rig.deps)).result == WorkResult.RETRY
        rig.advance(RECOVERY)
        await rig.trip()
    waiting = world.store.refunds[refund.id]
    assert (waiting.status, waiting.attempts) == (RefundStatus.PENDING, 0)
    assert (await world.event_types(payment.id)).count("refund.waiting_for_provider") == 3
    assert world.topics(refund.id) == ["refund.created"]

    await rig.until_settled(lambda: world.process_refund(refund.id, rig.deps))

    done = world.store.refunds[refund.id]
    assert (done.status, done.attempts) == (RefundStatus.SUCCEEDED, 1)
    assert rig.calls("refund", refund.id) == 1
    assert (world.balance(source.id), world.settled()) == (4_000, 6_000)
    await world.check()


async def test_a_refund_that_waits_out_the_breaker_fails_into_the_dlq_and_moves_nothing(rig: Rig) -> None:
    world = rig.world
    source = await world.account(10_000)
    payment = await world.completed(source.id, 10_000)
    refund = await world.refund(payment.id, "40.00")
    await rig.trip()
    rig.provider.available = False

    await rig.until_settled(lambda: world.process_refund(refund.id, rig.deps))

    failed = world.store.refunds[refund.id]
    assert failed.status == RefundStatus.FAILED and "stayed unavailable" in (failed.failure_reason or "")
    assert 0 < failed.attempts == rig.calls("refund", refund.id) < POLICY.max_attempts
    history = await world.events(payment.id)
    assert history[-1].type == "refund.failed"
    assert history[-1].data["refund"]["failure_code"] == FailureCode.PROVIDER_UNAVAILABLE
    assert [letter.attempts for letter in world.letters(refund.id)] == [failed.attempts]
    assert (await world.payment(payment.id)).status == PaymentStatus.COMPLETED
    assert (world.balance(source.id), world.settled()) == (0, 10_000)
    await world.check()


@pytest.mark.parametrize(("outcome", "code", "dead_lettered"), [
    ("decline", FailureCode.DECLINED, False),
    ("fail_transient:9", FailureCode.RETRIES_EXHAUSTED, True),
])
async def test_a_decline_is_not_dead_lettered_and_exhausted_retries_are(
    rig: Rig, outcome: str, code: FailureCode, dead_lettered: bool
) -> None:
    """Payments and refunds alike: the provider's answer is final and nobody's fault; running out of retries is.
    (No breaker here: it would open on the transient failures.)"""
    world = rig.world
    source = await world.account(10_000)
    payment = await world.pay(source.id, 2_500, metadata={"mock_outcome": outcome})
    await rig.until_settled(lambda: world.process(payment.id))
    charged = await world.completed(source.id, 5_000, mock_refund_outcome=outcome)
    refund = await world.refund(charged.id, "10.00")
    await rig.until_settled(lambda: world.process_refund(refund.id))

    failed = await world.payment(payment.id)
    assert (failed.status, failed.failure_code) == (PaymentStatus.FAILED, code)
    assert world.store.refunds[refund.id].status == RefundStatus.FAILED
    assert (await world.events(charged.id))[-1].data["refund"]["failure_code"] == code
    assert (len(world.letters(payment.id)), len(world.letters(refund.id))) == (dead_lettered, dead_lettered)
    assert world.balance(source.id) == 5_000
    await world.check()


def test_the_max_wait_is_a_setting_given_to_the_workers() -> None:
    assert retry_policy(load_settings({})).breaker_max_wait == 3600.0
    assert retry_policy(load_settings({"PAYMENTS_PAYMENT_BREAKER_MAX_WAIT": "90s"})).breaker_max_wait == 90.0
    with pytest.raises(SettingsError, match="PAYMENTS_PAYMENT_BREAKER_MAX_WAIT"):
        load_settings({"PAYMENTS_PAYMENT_BREAKER_MAX_WAIT": "0s"})
