"""Webhooks on the in-memory adapters: subscriptions, fan-out and its event filter, signed deliveries,
retries with backoff until success or give-up, redelivery by hand, secret rotation and the SSRF guard."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import attrs
import pytest

from adapters.memory import InMemoryStore
from adapters.memory.outbox import InMemoryTaskQueue
from adapters.memory.webhooks import FixedResolver, InMemoryWebhookSender, MemoryDueDeliveries
from core.errors import NotFound, ValidationFailed
from core.events import CATALOGUE
from core.ids import new_id
from core.signatures import InvalidSignature, verify_signature
from core.usecases.webhook_attempts import DeliveryOutcome, DeliveryResult, deliver_webhook
from core.usecases.webhook_delivery import FanOut, fan_out_event, schedule_due
from core.usecases.webhook_destinations import check_destination
from core.usecases.webhooks import (
    CreateSubscription,
    UpdateSubscription,
    create_subscription,
    delete_subscription,
    list_deliveries,
    list_subscriptions,
    redeliver,
    rotate_secret,
    update_subscription,
)
from core.webhook_destinations import check_url, is_public_address
from core.webhooks import Delivery, DeliveryPolicy, DeliveryRef, Subscription, check_events
from tests.unit.conftest import FakeClock

URL = "https://hooks.example.com/payments"


@attrs.define
class Hooks:
    store: InMemoryStore
    clock: FakeClock
    tenant_id: UUID
    policy: DeliveryPolicy = attrs.field(factory=lambda: DeliveryPolicy(  # no jitter: exact waits below
        max_attempts=4, min_backoff=10.0, max_backoff=30.0, timeout=5.0, lease=60.0, jitter=0.0))
    sender: InMemoryWebhookSender = attrs.field(factory=InMemoryWebhookSender)
    queue: InMemoryTaskQueue = attrs.field(factory=InMemoryTaskQueue)

    async def subscribe(self, events: tuple[str, ...] = ("*",), *, url: str = URL, enabled: bool = True,
                        tenant_id: UUID | None = None) -> Subscription:
        async with self.store() as uow:
            sub = await create_subscription(CreateSubscription(tenant_id=tenant_id or self.tenant_id, url=url,
                                                               events=events, enabled=enabled),
                                            uow=uow, clock=self.clock)
        return sub

    async def event(self, event_type: str = "payment.completed", *, event_id: UUID | None = None,
                    tenant_id: UUID | None = None) -> list[DeliveryRef]:
        cmd = FanOut(tenant_id=tenant_id or self.tenant_id, event_id=event_id or new_id(), event_type=event_type,
                     created_at="2025-01-01T00:00:00.000Z", data={"object": {"id": "p1", "status": "completed"}},
                     correlation_id="req-42")
        return await fan_out_event(cmd, uow_factory=self.store, clock=self.clock, policy=self.policy)

    async def enable(self, subscription: Subscription, enabled: bool) -> None:
        async with self.store() as uow:
            await update_subscription(UpdateSubscription(tenant_id=self.tenant_id, subscription_id=subscription.id,
                                                         enabled=enabled), uow=uow, clock=self.clock)

    async def deliver(self, ref: DeliveryRef) -> DeliveryOutcome:
        return await deliver_webhook(ref, uow_factory=self.store, sender=self.sender, clock=self.clock,
                                     policy=self.policy)

    async def due(self) -> list[DeliveryRef]:
        self.queue.deliveries.clear()
        await schedule_due(due=MemoryDueDeliveries(self.store), queue=self.queue, clock=self.clock,
                           policy=self.policy)
        return list(self.queue.deliveries)

    def delivery(self, delivery_id: UUID) -> Delivery:
        return self.store.deliveries[delivery_id]


class Raises:
    """A `WebhookSender` that raises instead of answering (a bug, or the worker killed mid-POST)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def post(self, url: str, body: bytes, headers: Any, *, within: float) -> Any:
        raise self.error


KILLED = Raises(SystemExit("worker killed"))
BAD_URL = Raises(ValueError("Invalid IPv4 address: '010.010.010.010'"))


@pytest.fixture
def hooks(store: InMemoryStore, clock: FakeClock) -> Hooks:
    return Hooks(store, clock, uuid4())


# --- rules -------------------------------------------------------------------------------------------

def test_default_policy_retries_for_about_three_days() -> None:
    policy = DeliveryPolicy()
    waits = policy.schedule()
    assert len(waits) == policy.max_attempts - 1
    assert waits[:3] == [60.0, 120.0, 240.0] and max(waits) == 6 * 3600.0
    assert 2.5 * 86400 <= sum(waits) <= 3.5 * 86400
    assert all(a <= b for a, b in itertools.pairwise(waits))


def test_waits_are_jittered_down_never_up() -> None:
    policy = DeliveryPolicy()
    waits = [policy.wait_after(3) for _ in range(200)]
    assert all(0.8 * 240.0 <= w <= 240.0 for w in waits) and len(set(waits)) > 100
    assert DeliveryPolicy(jitter=0.0).wait_after(3) == 240.0


def test_event_names_come_from_the_catalogue() -> None:
    assert check_events(["payment.completed", "refund.failed", "payment.completed"]) == (
        "payment.completed", "refund.failed")
    assert check_events(["*"]) == ("*",)
    for bad in ([], ["payment.exploded"], "payment.completed", [""], ["PAYMENT.COMPLETED"]):
        with pytest.raises(ValidationFailed) as caught:
            check_events(bad)
        assert caught.value.errors[0].field == "events"
    for name in ("account.created", "transfer.completed", "payment.created", "payment.processing",
                 "payment.completed", "payment.failed", "payment.cancelled", "refund.created", "refund.succeeded",
                 "refund.failed"):
        assert name in CATALOGUE


@pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com/hook", "https://", "http:///path",
                                 "https://exa mple.com/", "https://example.com:99999/", "https://x.com/" + "a" * 2048,
                                 "javascript:alert(1)"])
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationFailed):
        check_url(url)


@pytest.mark.parametrize(("address", "public"), [
    ("127.0.0.1", False), ("127.8.9.10", False), ("10.1.2.3", False), ("172.16.0.1", False),
    ("192.168.1.1", False), ("169.254.169.254", False), ("0.0.0.0", False), ("100.64.0.1", False),
    ("224.0.0.1", False), ("255.255.255.255", False), ("::1", False), ("fe80::1", False), ("fc00::1", False),
    ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False), ("::", False), ("not-an-ip", False),
    ("64:ff9b::a9fe:a9fe", False), ("64:ff9b::a00:1", False), ("64:ff9b:1::a00:1", False), ("::7f00:1", False),
    ("2002:7f00:1::", False), ("2002:a00:1::1", False), ("fec0::1", False),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo, client 10.0.0.1
    ("64:ff9b:1:abcd:a:0:100:0", False), ("64:ff9b:1:a00:0:100:808:808", False),  # local-use NAT64: refused
    ("::ffff:0:7f00:1", False), ("::ffff:0:808:808", True),  # IPv4-translated
    ("64:ff9b::808:808", True), ("2002:808:808::1", True),
    ("8.8.8.8", True), ("93.184.216.34", True), ("2606:4700:4700::1111", True), ("::ffff:8.8.8.8", True),
])
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(address) is public


async def test_the_ssrf_guard_at_subscription_time() -> None:
    resolver = FixedResolver({"hooks.example.com": ["93.184.216.34"], "internal.example.com": ["10.0.0.7"],
                              "mixed.example.com": ["93.184.216.34", "127.0.0.1"], "localhost": ["127.0.0.1"]})
    await check_destination("https://hooks.example.com/x", resolver=resolver, allow_private=False)
    for url in ("http://localhost:8000/x", "http://127.0.0.1/x", "http://[::1]/x", "http://169.254.169.254/latest",
                "https://internal.example.com/x", "https://mixed.example.com/x", "https://nowhere.invalid/x"):
        with pytest.raises(ValidationFailed) as caught:
            await check_destination(url, resolver=resolver, allow_private=False)
        assert caught.value.errors[0].field == "url"
    for url in ("http://localhost:8000/x", "http://10.0.0.7/x", "https://nowhere.invalid/x"):
        await check_destination(url, resolver=resolver, allow_private=True)  # allowed by configuration


# --- subscriptions -----------------------------------------------------------------------------------

async def test_subscriptions_are_created_listed_changed_and_deleted(hooks: Hooks) -> None:
    first = await hooks.subscribe(("payment.completed",))
    second = await hooks.subscribe(("*",))
    await hooks.subscribe(("*",), tenant_id=uuid4())  # another tenant's
    assert first.secret.startswith("whsec_") and len(first.secret) > 40 and first.secret != second.secret
    async with hooks.store(read_only=True) as uow:
        page = await list_subscriptions(hooks.tenant_id, uow=uow, limit=1, cursor=None)
        assert [s.id for s in page.items] == [second.id] and page.next_cursor
        rest = await list_subscriptions(hooks.tenant_id, uow=uow, limit=5, cursor=page.next_cursor)
        assert [s.id for s in rest.items] == [first.id] and rest.next_cursor is None
    async with hooks.store() as uow:
        changed = await update_subscription(UpdateSubscription(
            tenant_id=hooks.tenant_id, subscription_id=first.id, events=("refund.failed",), enabled=False,
            description="ops"), uow=uow, clock=hooks.clock)
    assert (changed.events, changed.enabled, changed.description, changed.url) == (
        ("refund.failed",), False, "ops", URL)
    async with hooks.store() as uow:
        with pytest.raises(NotFound):  # another tenant's id looks missing
            await delete_subscription(uuid4(), first.id, uow=uow)
        await delete_subscription(hooks.tenant_id, first.id, uow=uow)
    assert set(hooks.store.subscriptions) == {second.id} | {s.id for s in hooks.store.subscriptions.values()
                                                             if s.tenant_id != hooks.tenant_id}


# --- fan-out -------------------------------------------------------------------------------------------

async def test_an_event_fans_out_only_to_subscriptions_that_hear_it(hooks: Hooks) -> None:
    exact = await hooks.subscribe(("payment.completed", "payment.failed"))
    everything = await hooks.subscribe(("*",))
    await hooks.subscribe(("refund.created",))
    await hooks.subscribe(("payment.completed",), enabled=False)
    await hooks.subscribe(("*",), tenant_id=uuid4())
    event_id = new_id()
    refs = await hooks.event("payment.completed", event_id=event_id)
    assert {hooks.delivery(r.id).subscription_id for r in refs} == {exact.id, everything.id}
    assert all(r.attempt == 0 and r.correlation_id == "req-42" for r in refs)
    assert await hooks.event("payment.completed", event_id=event_id) == []  # redelivered event: once
    assert len(hooks.store.deliveries) == 2
    assert [hooks.delivery(r.id).subscription_id for r in await hooks.event("refund.succeeded")] == [everything.id]
    assert await hooks.event("payment.late_charge_detected") == []  # internal events are not sent, even to *


# --- deliveries -----------------------------------------------------------------------------------------

async def test_a_delivery_is_signed_and_carries_the_event(hooks: Hooks) -> None:
    sub = await hooks.subscribe(("payment.completed",))
    event_id = new_id()
    (ref,) = await hooks.event(event_id=event_id)
    outcome = await hooks.deliver(ref)
    assert outcome == DeliveryOutcome(result=DeliveryResult.SUCCEEDED, status_code=200, attempt=1)
    (sent,) = hooks.sender.sent
    assert sent.url == URL
    assert json.loads(sent.body) == {"id": str(event_id), "type": "payment.completed",
                                     "created_at": "2025-01-01T00:00:00.000Z",
                                     "data": {"object": {"id": "p1", "status": "completed"}}}
    assert sent.headers["Payments-Event-Id"] == str(event_id)
    assert sent.headers["X-Request-ID"] == "req-42"
    assert sent.headers["Content-Type"] == "application/json"
    assert verify_signature(sub.secret, sent.headers["Payments-Signature"], sent.body,
                            now=hooks.clock.current.timestamp())
    with pytest.raises(InvalidSignature):
        verify_signature("whsec_other", sent.headers["Payments-Signature"], sent.body,
                         now=hooks.clock.current.timestamp())
    stored = hooks.delivery(ref.id)
    assert (stored.status, stored.attempts, stored.last_status_code, stored.next_attempt_at) == (
        "succeeded", 1, 200, None)
    assert stored.delivered_at is not None
    # a duplicate message does nothing
    assert await hooks.deliver(ref) == DeliveryOutcome(result=DeliveryResult.SKIPPED)
    assert len(hooks.sender.sent) == 1


async def test_failures_are_retried_with_backoff_until_success(hooks: Hooks) -> None:
    await hooks.subscribe()
    hooks.sender.answers[URL] = [500, "timed out after 5 s", 200]
    (ref,) = await hooks.event()
    first = await hooks.deliver(ref)
    assert (first.result, first.retry_in, first.status_code) == (DeliveryResult.RETRYING, 10.0, 500)
    delivery = hooks.delivery(ref.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        "pending", 1, 500, "HTTP 500")
    assert await hooks.due() == []  # not yet
    hooks.clock.advance(timedelta(seconds=10))
    (again,) = await hooks.due()
    assert again.attempt == 1
    assert await hooks.due() == []  # claimed: a second scheduler does not take it too
    second = await hooks.deliver(again)
    assert (second.result, second.retry_in, second.status_code) == (DeliveryResult.RETRYING, 20.0, None)
    assert hooks.delivery(ref.id).last_error == "timed out after 5 s"
    hooks.clock.advance(timedelta(seconds=20))
    (third,) = await hooks.due()
    assert (await hooks.deliver(third)).result == DeliveryResult.SUCCEEDED
    delivery = hooks.delivery(ref.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.last_error) == (
        "succeeded", 3, 200, None)
    assert len({s.headers["Payments-Event-Id"] for s in hooks.sender.sent}) == 1
    assert [s.headers["Payments-Delivery-Attempt"] for s in hooks.sender.sent] == ["1", "2", "3"]


async def test_a_delivery_gives_up_after_its_attempts_and_can_be_redelivered_by_hand(hooks: Hooks) -> None:
    sub = await hooks.subscribe()
    hooks.sender.answers[URL] = [503]
    (ref,) = await hooks.event()
    results = [(await hooks.deliver(ref)).result]
    for _ in range(3):
        hooks.clock.advance(timedelta(seconds=30))
        (ref,) = await hooks.due()
        results.append((await hooks.deliver(ref)).result)
    assert results == [DeliveryResult.RETRYING, DeliveryResult.RETRYING, DeliveryResult.RETRYING, DeliveryResult.FAILED]
    delivery = hooks.delivery(ref.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code, delivery.next_attempt_at) == (
        "failed", 4, 503, None)
    hooks.clock.advance(timedelta(days=10))
    assert await hooks.due() == []  # given up: never sent again by itself
    async with hooks.store() as uow:
        with pytest.raises(NotFound):
            await redeliver(hooks.tenant_id, uuid4(), ref.id, uow=uow, clock=hooks.clock)
        with pytest.raises(NotFound):  # another tenant's delivery looks missing
            await redeliver(uuid4(), sub.id, ref.id, uow=uow, clock=hooks.clock)
        again = await redeliver(hooks.tenant_id, sub.id, ref.id, uow=uow, clock=hooks.clock)
    assert again.status == "pending"
    (ref,) = await hooks.due()  # one more attempt: it fails, and the delivery has failed again
    assert (await hooks.deliver(ref)).result == DeliveryResult.FAILED
    assert (hooks.delivery(ref.id).status, hooks.delivery(ref.id).attempts) == ("failed", 5)
    async with hooks.store() as uow:
        await redeliver(hooks.tenant_id, sub.id, ref.id, uow=uow, clock=hooks.clock)
    hooks.sender.answers[URL] = [204]
    (ref,) = await hooks.due()
    assert (await hooks.deliver(ref)).result == DeliveryResult.SUCCEEDED
    async with hooks.store(read_only=True) as uow:
        log = await list_deliveries(hooks.tenant_id, sub.id, uow=uow, limit=10, cursor=None)
    assert [(d.status, d.attempts, d.last_status_code) for d in log.items] == [("succeeded", 6, 204)]


async def test_a_worker_dying_mid_post_leaves_the_delivery_to_be_retried_after_its_lease(hooks: Hooks) -> None:
    await hooks.subscribe()
    (ref,) = await hooks.event()

    with pytest.raises(SystemExit):
        await deliver_webhook(ref, uow_factory=hooks.store, sender=KILLED, clock=hooks.clock, policy=hooks.policy)
    assert hooks.delivery(ref.id).attempts == 1
    hooks.clock.advance(timedelta(seconds=59))
    assert await hooks.due() == []
    hooks.clock.advance(timedelta(seconds=2))
    (retry,) = await hooks.due()
    assert retry.attempt == 1 and (await hooks.deliver(retry)).result == DeliveryResult.SUCCEEDED
    assert await hooks.deliver(ref) == DeliveryOutcome(result=DeliveryResult.SKIPPED)  # the old message, stale


async def test_a_disabled_or_deleted_subscription_is_not_sent_to(hooks: Hooks) -> None:
    sub = await hooks.subscribe()
    (ref,) = await hooks.event()
    await hooks.enable(sub, False)
    assert (await hooks.deliver(ref)).result == DeliveryResult.FAILED
    assert hooks.delivery(ref.id).last_error == "the webhook is disabled" and hooks.sender.sent == []
    assert await hooks.event() == []
    async with hooks.store() as uow:
        await delete_subscription(hooks.tenant_id, sub.id, uow=uow)
    assert hooks.store.deliveries == {}  # the log goes with it


async def test_rotation_signs_with_both_secrets_for_the_overlap_then_only_the_new_one(hooks: Hooks) -> None:
    sub = await hooks.subscribe()
    async with hooks.store() as uow:
        rotated = await rotate_secret(hooks.tenant_id, sub.id, uow=uow, clock=hooks.clock,
                                      overlap=timedelta(hours=24))
    assert rotated.secret != sub.secret and [p.secret for p in rotated.previous_secrets] == [sub.secret]
    (ref,) = await hooks.event()
    await hooks.deliver(ref)
    during = hooks.sender.sent[-1]
    at = hooks.clock.current.timestamp()
    assert during.headers["Payments-Signature"].count("v1=") == 2
    assert verify_signature(sub.secret, during.headers["Payments-Signature"], during.body, now=at)
    assert verify_signature(rotated.secret, during.headers["Payments-Signature"], during.body, now=at)
    hooks.clock.advance(timedelta(hours=24, seconds=1))
    (ref,) = await hooks.event()
    await hooks.deliver(ref)
    after = hooks.sender.sent[-1]
    at = hooks.clock.current.timestamp()
    assert after.headers["Payments-Signature"].count("v1=") == 1
    assert verify_signature(rotated.secret, after.headers["Payments-Signature"], after.body, now=at)
    with pytest.raises(InvalidSignature):
        verify_signature(sub.secret, after.headers["Payments-Signature"], after.body, now=at)


async def test_the_ssrf_guard_at_delivery_time(hooks: Hooks) -> None:
    hooks.sender = InMemoryWebhookSender(resolver=FixedResolver({"hooks.example.com": ["10.9.8.7"]}),
                                         allow_private=False)
    await hooks.subscribe()  # the name resolved to a public address when subscribed; now it does not
    (ref,) = await hooks.event()
    outcome = await hooks.deliver(ref)
    assert outcome.result == DeliveryResult.RETRYING and hooks.sender.sent == []
    assert (hooks.delivery(ref.id).last_error or "").startswith("refused: hooks.example.com resolves to a private")


async def test_rotating_twice_keeps_each_rotated_out_secret_for_its_whole_overlap(hooks: Hooks) -> None:
    s0 = await hooks.subscribe()
    secrets_seen = [s0.secret]
    for _ in range(2):  # S0 -> S1 at T, S1 -> S2 an hour later
        async with hooks.store() as uow:
            rotated = await rotate_secret(hooks.tenant_id, s0.id, uow=uow, clock=hooks.clock,
                                          overlap=timedelta(hours=24))
        secrets_seen.append(rotated.secret)
        hooks.clock.advance(timedelta(hours=1))
    now = hooks.clock.current
    assert rotated.signing_secrets(now) == [secrets_seen[2], secrets_seen[1], secrets_seen[0]]
    assert rotated.signing_secrets(now + timedelta(hours=22, minutes=30)) == [secrets_seen[2], secrets_seen[1]]
    assert rotated.signing_secrets(now + timedelta(hours=24)) == [secrets_seen[2]]
    assert rotated.previous_secrets_expire_at == now + timedelta(hours=23)


async def test_a_sender_that_raises_is_a_failed_attempt_and_the_limit_holds(hooks: Hooks) -> None:
    await hooks.subscribe()
    (ref,) = await hooks.event()

    results = []
    for _ in range(hooks.policy.max_attempts):
        results.append((await deliver_webhook(ref, uow_factory=hooks.store, sender=BAD_URL, clock=hooks.clock,
                                              policy=hooks.policy)).result)
        hooks.clock.advance(timedelta(seconds=30))
        ref = next(iter(await hooks.due()), ref)
    assert results == [DeliveryResult.RETRYING] * (hooks.policy.max_attempts - 1) + [DeliveryResult.FAILED]
    assert hooks.delivery(ref.id).last_error == "ValueError: Invalid IPv4 address: '010.010.010.010'"


async def test_a_worker_dying_mid_post_every_time_still_gives_up_at_the_limit(hooks: Hooks) -> None:
    await hooks.subscribe()
    (ref,) = await hooks.event()

    for _ in range(hooks.policy.max_attempts):
        with pytest.raises(SystemExit):
            await deliver_webhook(ref, uow_factory=hooks.store, sender=KILLED, clock=hooks.clock, policy=hooks.policy)
        hooks.clock.advance(timedelta(seconds=61))
        (ref,) = await hooks.due()
    assert hooks.delivery(ref.id).attempts == hooks.policy.max_attempts
    assert (await hooks.deliver(ref)).result == DeliveryResult.FAILED  # no answer recorded, attempts spent: given up
    delivery = hooks.delivery(ref.id)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 4, None)
    assert "no answer was recorded" in (delivery.last_error or "") and hooks.sender.sent == []


async def test_a_queued_delivery_is_queued_again_less_and_less_often(hooks: Hooks) -> None:
    await hooks.subscribe()
    (ref,) = await hooks.event()  # fanned out: held for one lease, its message never consumed
    waits = []
    for _ in range(7):
        due_at = hooks.delivery(ref.id).next_attempt_at
        assert due_at is not None
        hooks.clock.current = due_at
        (ref,) = await hooks.due()
        waits.append((hooks.delivery(ref.id).next_attempt_at - hooks.clock.current).total_seconds())
    assert [round(w) for w in waits] == [60, 120, 240, 480, 960, 1920, 1920]
    # any of those messages still does the work once
    assert (await hooks.deliver(ref)).result == DeliveryResult.SUCCEEDED


async def test_the_fake_sender_guards_hosts_as_the_real_one_does() -> None:
    sender = InMemoryWebhookSender(resolver=FixedResolver(), allow_private=False)
    for url in ("http://[::1]/x", "http://u@10.0.0.1/x", "http://127.0.0.1:8080/x", "http://[::ffff:10.0.0.1]/x"):
        result = await sender.post(url, b"{}", {}, within=1)
        assert result.error and result.error.startswith("refused:"), url
    assert sender.sent == []


async def test_a_redelivery_always_gets_an_attempt_and_clicking_again_grants_no_more(hooks: Hooks) -> None:
    sub = await hooks.subscribe()
    hooks.sender.answers[URL] = [500]
    (ref,) = await hooks.event()
    for _ in range(hooks.policy.max_attempts - 1):  # three answered 500 ...
        await hooks.deliver(ref)
        hooks.clock.advance(timedelta(seconds=30))
        (ref,) = await hooks.due()
    with pytest.raises(SystemExit):  # ... and the worker died during the last one: pending, attempts spent
        await deliver_webhook(ref, uow_factory=hooks.store, sender=KILLED, clock=hooks.clock, policy=hooks.policy)
    assert (hooks.delivery(ref.id).status, hooks.delivery(ref.id).attempts) == ("pending", 4)
    for _ in range(3):  # asked three times before anything ran
        async with hooks.store() as uow:
            await redeliver(hooks.tenant_id, sub.id, ref.id, uow=uow, clock=hooks.clock)
    hooks.sender.answers[URL] = [200]
    sent = len(hooks.sender.sent)
    (ref,) = await hooks.due()
    assert (await hooks.deliver(ref)).result == DeliveryResult.SUCCEEDED and len(hooks.sender.sent) == sent + 1
    assert hooks.delivery(ref.id).granted_through == 5  # one attempt, not three


async def test_a_delivery_given_up_while_disabled_resumes_its_schedule_when_redelivered(hooks: Hooks) -> None:
    sub = await hooks.subscribe()
    (ref,) = await hooks.event()
    await hooks.enable(sub, False)
    assert (await hooks.deliver(ref)).result == DeliveryResult.FAILED and hooks.delivery(ref.id).attempts == 0
    await hooks.enable(sub, True)
    async with hooks.store() as uow:
        await redeliver(hooks.tenant_id, sub.id, ref.id, uow=uow, clock=hooks.clock)
    hooks.sender.answers[URL] = [503]
    (ref,) = await hooks.due()
    outcome = await hooks.deliver(ref)
    # its ordinary schedule, not a last try
    assert (outcome.result, outcome.retry_in) == (DeliveryResult.RETRYING, 10.0)
