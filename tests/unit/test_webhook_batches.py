"""Batched webhook deliveries on the in-memory adapters: one claim and one record per batch, each delivery with its
own outcome in a mixed batch, the worker's slots and what goes back to the queue when none frees."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Collection, Mapping
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from adapters.memory import InMemoryStore
from adapters.memory.store import InMemoryUnitOfWork
from core.errors import Unavailable, Unreachable
from core.patience import patiently
from core.signatures import verify_signature
from core.usecases.webhook_attempts import (
    Admission,
    DeliverWebhooks,
    DeliveryOutcome,
    DeliveryResult,
    deliver_webhooks,
)
from core.usecases.webhooks import delete_subscription
from core.webhooks import DeliveryRef, SendResult
from tests.unit.conftest import FakeClock
from tests.unit.test_webhooks import BAD_URL, URL, Hooks

OTHER, FAILING, SLOW = "https://b.example.com/x", "https://c.example.com/x", "https://d.example.com/x"


@pytest.fixture
def hooks(store: InMemoryStore, clock: FakeClock) -> Hooks:
    return Hooks(store, clock, uuid4())


async def _deliver(hooks: Hooks, refs: list[DeliveryRef], admission: Admission | None = None
                   ) -> dict[str, DeliveryOutcome]:
    delivered = await deliver_webhooks(DeliverWebhooks(refs=tuple(refs)), uow_factory=hooks.store,
                                       sender=hooks.sender, clock=hooks.clock, policy=hooks.policy,
                                       admission=admission)
    return {str(ref.id): outcome for ref, outcome in delivered.outcomes}


async def test_a_mixed_batch_gives_each_delivery_its_own_outcome(hooks: Hooks) -> None:
    ok, disabled, gone = await hooks.subscribe(), await hooks.subscribe(url=OTHER), await hooks.subscribe(url=OTHER)
    failing, slow = await hooks.subscribe(url=FAILING), await hooks.subscribe(url=SLOW)
    other_tenant = await hooks.subscribe(tenant_id=uuid4())
    hooks.sender.answers |= {FAILING: [500], SLOW: ["timed out after 5 s"]}
    refs = [*await hooks.event(), *await hooks.event(tenant_id=other_tenant.tenant_id)]
    by_sub = {hooks.delivery(r.id).subscription_id: r for r in refs}
    done = by_sub[ok.id]
    assert (await _deliver(hooks, [done]))[str(done.id)].result == DeliveryResult.SUCCEEDED  # delivered already
    await hooks.enable(disabled, False)
    async with hooks.store() as uow:
        await delete_subscription(hooks.tenant_id, gone.id, uow=uow)
    stale_gone = by_sub[gone.id]  # its row went with its subscription
    sent_before = len(hooks.sender.sent)

    outcomes = await _deliver(hooks, [*refs, refs[1]])  # a duplicate ref in the batch does nothing more

    assert {hooks.delivery(r.id).subscription_id: outcomes[str(r.id)].result for r in refs if r is not stale_gone} == {
        ok.id: DeliveryResult.SKIPPED, disabled.id: DeliveryResult.FAILED, failing.id: DeliveryResult.RETRYING,
        slow.id: DeliveryResult.RETRYING, other_tenant.id: DeliveryResult.SUCCEEDED}
    assert outcomes[str(stale_gone.id)] == DeliveryOutcome(result=DeliveryResult.SKIPPED)
    assert hooks.delivery(by_sub[disabled.id].id).last_error == "the webhook is disabled"
    failed, timed_out = hooks.delivery(by_sub[failing.id].id), hooks.delivery(by_sub[slow.id].id)
    assert (failed.status, failed.attempts, failed.last_status_code, failed.last_error) == ("pending", 1, 500,
                                                                                            "HTTP 500")
    assert (timed_out.status, timed_out.attempts, timed_out.last_error) == ("pending", 1, "timed out after 5 s")
    assert failed.next_attempt_at == hooks.clock.current + timedelta(seconds=10)  # backoff, as one by one
    assert hooks.delivery(by_sub[other_tenant.id].id).status == "succeeded"
    sent = hooks.sender.sent[sent_before:]
    assert sorted(s.url for s in sent) == sorted([FAILING, SLOW, URL])  # one POST each, none to disabled or done
    for request in sent:  # each signed with its own subscription's secret, with its own headers
        delivery = hooks.delivery(UUID(request.headers["Payments-Delivery-Id"]))
        secret = hooks.store.subscriptions[delivery.subscription_id].secret
        assert verify_signature(secret, request.headers["Payments-Signature"], request.body,
                                now=hooks.clock.current.timestamp())
        assert request.headers["Payments-Delivery-Attempt"] == "1" and request.headers["X-Request-ID"] == "req-42"
        assert json.loads(request.body)["type"] == "payment.completed"


async def test_one_claim_and_one_record_per_batch(hooks: Hooks) -> None:
    subs = [await hooks.subscribe() for _ in range(5)]
    refs = await hooks.event()
    assert len(refs) == len(subs)
    units: list[bool] = []

    def counting(*, read_only: bool = False, lock_accounts: Collection[UUID] = ()) -> InMemoryUnitOfWork:
        units.append(read_only)
        return hooks.store(read_only=read_only, lock_accounts=lock_accounts)

    delivered = await deliver_webhooks(DeliverWebhooks(refs=tuple(refs)), uow_factory=counting,
                                       sender=hooks.sender, clock=hooks.clock, policy=hooks.policy)
    assert [o.result for _, o in delivered.outcomes] == [DeliveryResult.SUCCEEDED] * 5
    assert units == [False, False] and delivered.requeued == []  # the claim, the record


async def test_answers_in_early_are_recorded_before_the_slowest_post_ends(hooks: Hooks) -> None:
    await hooks.subscribe()
    slow_sub = await hooks.subscribe(url=SLOW)
    refs = await hooks.event()
    (slow,) = [r for r in refs if hooks.delivery(r.id).subscription_id == slow_sub.id]
    (fast,) = [r for r in refs if r is not slow]
    release = asyncio.Event()
    units: list[bool] = []

    def counting(*, read_only: bool = False, lock_accounts: Collection[UUID] = ()) -> InMemoryUnitOfWork:
        units.append(read_only)
        return hooks.store(read_only=read_only, lock_accounts=lock_accounts)

    class Slow:
        async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, within: float) -> SendResult:
            if url == SLOW:
                await release.wait()
            return await hooks.sender.post(url, body, headers, within=within)

    batch = asyncio.create_task(deliver_webhooks(DeliverWebhooks(refs=tuple(refs)), uow_factory=counting,
                                                 sender=Slow(), clock=hooks.clock, policy=hooks.policy,
                                                 record_after=0.05))
    for _ in range(200):
        if hooks.delivery(fast.id).status == "succeeded":
            break
        await asyncio.sleep(0.01)
    # the fast receiver's answer is recorded while the slow one still has its POST open
    assert (hooks.delivery(fast.id).status, hooks.delivery(slow.id).status) == ("succeeded", "pending")
    assert not batch.done() and units == [False, False]
    release.set()
    delivered = await batch
    assert [o.result for _, o in delivered.outcomes] == [DeliveryResult.SUCCEEDED] * 2
    assert hooks.delivery(slow.id).status == "succeeded" and units == [False, False, False]


async def test_a_cancelled_batch_leaves_no_post_running(hooks: Hooks) -> None:
    for _ in range(3):
        await hooks.subscribe()
    refs = await hooks.event()
    started, cancelled = asyncio.Event(), []

    class Hanging:
        async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, within: float) -> SendResult:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(url)
                raise
            raise AssertionError("never answered")

    batch = asyncio.create_task(deliver_webhooks(DeliverWebhooks(refs=tuple(refs)), uow_factory=hooks.store,
                                                 sender=Hanging(), clock=hooks.clock, policy=hooks.policy))
    await started.wait()
    await asyncio.sleep(0.01)
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    await asyncio.sleep(0)
    assert len(cancelled) == 3  # the claim's lease covers them: the scheduler retries them after it
    assert {hooks.delivery(r.id).status for r in refs} == {"pending"}


async def test_a_sender_that_raises_fails_only_its_own_delivery(hooks: Hooks) -> None:
    await hooks.subscribe()
    await hooks.subscribe(url=OTHER)
    refs = await hooks.event()

    class Picky:
        async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, within: float) -> SendResult:
            return await (BAD_URL.post(url, body, headers, within=within) if url == OTHER
                          else hooks.sender.post(url, body, headers, within=within))

    delivered = await deliver_webhooks(DeliverWebhooks(refs=tuple(refs)), uow_factory=hooks.store, sender=Picky(),
                                       clock=hooks.clock, policy=hooks.policy)
    results = {hooks.store.subscriptions[hooks.delivery(r.id).subscription_id].url: o.result
               for r, o in delivered.outcomes}
    assert results == {URL: DeliveryResult.SUCCEEDED, OTHER: DeliveryResult.RETRYING}


async def test_posts_run_concurrently_and_never_more_than_the_slots(hooks: Hooks) -> None:
    for _ in range(6):
        await hooks.subscribe()
    refs = await hooks.event()
    in_flight, most = 0, 0
    gate = asyncio.Event()

    class Gated:
        async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, within: float) -> SendResult:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            if most == 3:
                gate.set()
            await gate.wait()  # the first three wait for each other: only concurrent POSTs get past
            in_flight -= 1
            return await hooks.sender.post(url, body, headers, within=within)

    admission = Admission(slots=asyncio.Semaphore(3), queue=hooks.queue, wait=5.0)
    delivered = await deliver_webhooks(DeliverWebhooks(refs=tuple(refs)), uow_factory=hooks.store, sender=Gated(),
                                       clock=hooks.clock, policy=hooks.policy, admission=admission)
    assert [o.result for _, o in delivered.outcomes] == [DeliveryResult.SUCCEEDED] * 6
    assert most == 3 and not admission.slots.locked() and hooks.queue.deliveries == []


async def test_with_every_slot_busy_the_batch_goes_back_to_the_queue_unclaimed(hooks: Hooks) -> None:
    await hooks.subscribe()
    await hooks.subscribe(url=OTHER)
    refs = await hooks.event()
    slots = asyncio.Semaphore(1)
    await slots.acquire()  # a slow receiver's POST holds the only slot
    admission = Admission(slots=slots, queue=hooks.queue, wait=0.0, requeue_delay=0.25)
    delivered = await deliver_webhooks(DeliverWebhooks(refs=tuple(refs)), uow_factory=hooks.store,
                                       sender=hooks.sender, clock=hooks.clock, policy=hooks.policy,
                                       admission=admission)
    assert delivered.outcomes == [] and delivered.requeued == refs
    assert hooks.queue.deliveries == refs and hooks.queue.delivery_delays == [0.25, 0.25]
    assert all(hooks.delivery(r.id).attempts == 0 for r in refs) and hooks.sender.sent == []


async def test_deliveries_left_without_a_slot_are_taken_back_and_requeued(hooks: Hooks) -> None:
    for url in (URL, OTHER, FAILING):
        await hooks.subscribe(url=url)
    refs = await hooks.event()
    admission = Admission(slots=asyncio.Semaphore(1), queue=hooks.queue, wait=0.0, requeue_delay=0.25)
    delivered = await deliver_webhooks(DeliverWebhooks(refs=tuple(refs)), uow_factory=hooks.store,
                                       sender=hooks.sender, clock=hooks.clock, policy=hooks.policy,
                                       admission=admission)
    # the first took the one slot; the next found it taken and no wait allowed: it and the rest go back
    assert [(r, o.result) for r, o in delivered.outcomes] == [(refs[0], DeliveryResult.SUCCEEDED)]
    assert delivered.requeued == refs[1:] and hooks.queue.deliveries == refs[1:]
    assert len(hooks.sender.sent) == 1 and not admission.slots.locked()
    for ref in refs[1:]:  # their attempt was taken back: the requeued refs are current, and their lease holds them
        delivery = hooks.delivery(ref.id)
        assert (delivery.status, delivery.attempts) == ("pending", ref.attempt)
        assert delivery.next_attempt_at is not None  # the claim's lease (the clock ticks a microsecond a read)
        assert delivery.next_attempt_at > hooks.clock.current + timedelta(seconds=hooks.policy.lease - 1)
    again = await _deliver(hooks, hooks.queue.deliveries)
    assert [o.result for o in again.values()] == [DeliveryResult.SUCCEEDED] * 2
    assert [hooks.delivery(r.id).attempts for r in refs] == [1, 1, 1]


async def test_a_delivery_that_moved_on_between_claim_and_record_is_left_alone(hooks: Hooks) -> None:
    """The record transaction checks each row again: one whose lease ran out and whose next attempt began meanwhile
    (a POST slower than the lease) keeps that attempt's state; the batch's other deliveries are recorded."""
    slow = await hooks.subscribe(url=SLOW)
    await hooks.subscribe()
    refs = await hooks.event()
    (late,) = [r for r in refs if hooks.delivery(r.id).subscription_id == slow.id]

    class OutlivesItsLease:
        async def post(self, url: str, body: bytes, headers: Mapping[str, str], *, within: float) -> SendResult:
            if url == SLOW:
                async with hooks.store() as uow:  # another worker's attempt 2 begins
                    delivery = await uow.webhooks.lock_delivery(hooks.tenant_id, late.id)
                    assert delivery is not None
                    delivery.begin_attempt(hooks.clock.now(), hooks.policy)
                    uow.webhooks.save_delivery(delivery)
            return await hooks.sender.post(url, body, headers, within=within)

    delivered = await deliver_webhooks(DeliverWebhooks(refs=tuple(refs)), uow_factory=hooks.store,
                                       sender=OutlivesItsLease(), clock=hooks.clock, policy=hooks.policy)
    results = {r.id: o.result for r, o in delivered.outcomes}
    assert results == {r.id: DeliveryResult.SKIPPED if r is late else DeliveryResult.SUCCEEDED for r in refs}
    assert (hooks.delivery(late.id).status, hooks.delivery(late.id).attempts) == ("pending", 2)


async def test_a_delivery_named_twice_is_attempted_once_in_the_batchs_order(hooks: Hooks) -> None:
    for url in (URL, OTHER):
        await hooks.subscribe(url=url)
    first, second = await hooks.event()
    delivered = await deliver_webhooks(DeliverWebhooks(refs=(first, second, first)), uow_factory=hooks.store,
                                       sender=hooks.sender, clock=hooks.clock, policy=hooks.policy)
    assert [(r, o.result) for r, o in delivered.outcomes] == [(first, DeliveryResult.SUCCEEDED),
                                                             (second, DeliveryResult.SUCCEEDED)]
    assert len(hooks.sender.sent) == 2 and hooks.delivery(first.id).attempts == 1


def _down_for(hooks: Hooks, units: list[bool], down: set[int], error: type[Unavailable] = Unreachable
              ) -> Callable[..., InMemoryUnitOfWork]:
    """A unit-of-work factory whose units numbered in `down` (0 the claim) raise `error`: by default the database
    cannot be reached (restarting)."""
    def factory(*, read_only: bool = False, lock_accounts: Collection[UUID] = ()) -> InMemoryUnitOfWork:
        units.append(read_only)
        if len(units) - 1 in down:
            raise error("the database is unavailable; retry later")
        return hooks.store(read_only=read_only, lock_accounts=lock_accounts)
    return factory


async def test_answers_are_recorded_once_the_database_is_back_and_not_sent_again(hooks: Hooks) -> None:
    await hooks.subscribe()
    (ref,) = await hooks.event()
    units: list[bool] = []
    delivered = await deliver_webhooks(DeliverWebhooks(refs=(ref,)), uow_factory=_down_for(hooks, units, {1, 2}),
                                       sender=hooks.sender, clock=hooks.clock, policy=hooks.policy,
                                       record_patience=5)
    assert [o.result for _, o in delivered.outcomes] == [DeliveryResult.SUCCEEDED]
    assert len(units) == 4  # the claim, the record twice refused (the database restarting), then recorded
    assert (hooks.delivery(ref.id).status, hooks.delivery(ref.id).attempts) == ("succeeded", 1)
    assert len(hooks.sender.sent) == 1


async def test_a_database_down_longer_than_the_patience_leaves_the_delivery_to_its_lease(hooks: Hooks) -> None:
    await hooks.subscribe()
    (ref,) = await hooks.event()
    units: list[bool] = []
    started = asyncio.get_running_loop().time()
    with pytest.raises(Unreachable):
        await deliver_webhooks(DeliverWebhooks(refs=(ref,)), uow_factory=_down_for(hooks, units, set(range(1, 99))),
                               sender=hooks.sender, clock=hooks.clock, policy=hooks.policy, record_patience=0.5)
    assert 0.1 <= asyncio.get_running_loop().time() - started < 3
    # the claim, then the record at once, 0.1 s later and (unless the machine stalled) 0.2 s after that; the next
    # wait (0.4 s) would end past the 0.5 s
    assert 3 <= len(units) <= 4
    held = hooks.delivery(ref.id)  # the attempt counted and held: the scheduler sends it again after the lease
    assert (held.status, held.attempts, len(hooks.sender.sent)) == ("pending", 1, 1)
    assert held.next_attempt_at == hooks.clock.current + timedelta(seconds=hooks.policy.lease)


async def test_a_record_that_timed_out_under_load_is_not_tried_again(hooks: Hooks) -> None:
    # the pool's acquire timeout (Unavailable, not Unreachable): waiting more would add to the load
    await hooks.subscribe()
    (ref,) = await hooks.event()
    units: list[bool] = []
    with pytest.raises(Unavailable) as raised:
        await deliver_webhooks(DeliverWebhooks(refs=(ref,)), uow_factory=_down_for(hooks, units, {1}, Unavailable),
                               sender=hooks.sender, clock=hooks.clock, policy=hooks.policy, record_patience=5)
    assert type(raised.value) is Unavailable and len(units) == 2  # the claim, the record once
    assert (hooks.delivery(ref.id).status, hooks.delivery(ref.id).attempts) == ("pending", 1)


async def test_patiently_raises_other_errors_at_once() -> None:
    calls: list[int] = []

    async def broken() -> None:
        calls.append(1)
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        await patiently(broken, patience=5)
    assert calls == [1]


async def test_a_record_that_committed_before_its_connection_was_lost_is_not_recorded_twice(hooks: Hooks) -> None:
    await hooks.subscribe()
    (ref,) = await hooks.event()
    units: list[bool] = []

    class CommitsThenLost:
        def __init__(self, uow: InMemoryUnitOfWork) -> None:
            self._uow = uow

        async def __aenter__(self) -> InMemoryUnitOfWork:
            return await self._uow.__aenter__()

        async def __aexit__(self, *exc: object) -> None:
            await self._uow.__aexit__(*exc)  # type: ignore[arg-type]
            raise Unreachable("the database connection was lost; retry later")

    def factory(*, read_only: bool = False, lock_accounts: Collection[UUID] = ()) -> Any:
        units.append(read_only)
        uow = hooks.store(read_only=read_only, lock_accounts=lock_accounts)
        return CommitsThenLost(uow) if len(units) == 2 else uow

    delivered = await deliver_webhooks(DeliverWebhooks(refs=(ref,)), uow_factory=factory, sender=hooks.sender,
                                       clock=hooks.clock, policy=hooks.policy, record_patience=5)
    # run again, the record finds its own success: left as it is, and not counted a second time
    assert [o.result for _, o in delivered.outcomes] == [DeliveryResult.SKIPPED] and len(units) == 3
    assert (hooks.delivery(ref.id).status, hooks.delivery(ref.id).attempts, len(hooks.sender.sent)) == (
        "succeeded", 1, 1)
