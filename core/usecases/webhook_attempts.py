"""Attempts of webhook deliveries, many at once: claim a batch in one transaction, POST concurrently in the
worker's webhook slots, record every outcome in one transaction."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

import attrs

from core.patience import patiently
from core.ports import Clock, TaskQueue, UnitOfWork, UnitOfWorkFactory, WebhookSender
from core.signatures import sign
from core.webhooks import Delivery, DeliveryPolicy, DeliveryRef, DeliveryStatus, SendResult, Subscription

USER_AGENT = "payments-webhooks/1"
#: Seconds a batch waits for all its POSTs before it records the answers in so far (the rest when they come): a
#: slow receiver does not hold back the record of the batch's others, nor leave them to be sent again should the
#: worker stop meanwhile.
RECORD_AFTER = 1.0
#: Seconds a batch keeps trying to record the answers it got while the database cannot be reached (a restart, a
#: failover) before it leaves them to the lease: the receivers have had those POSTs, and an answer recorded late
#: is not sent again, where one given up is sent again once the lease ends.
RECORD_PATIENCE = 10.0


class DeliveryResult(enum.StrEnum):
    """What one delivery attempt came to: the POST succeeded, another attempt is scheduled, the delivery
    failed for good, or the message was stale and nothing was done."""

    SUCCEEDED = "succeeded"
    RETRYING = "retrying"
    FAILED = "failed"
    SKIPPED = "skipped"


@attrs.frozen(kw_only=True)
class DeliveryOutcome:
    """What one attempt came to; `retry_in` is set when another attempt is scheduled."""

    result: DeliveryResult
    status_code: int | None = None
    error: str | None = None
    retry_in: float | None = None
    attempt: int = 0


@attrs.frozen(kw_only=True)
class DeliverWebhooks:
    """One message's delivery refs (of any tenants): attempt `ref.attempt + 1` of each."""

    refs: tuple[DeliveryRef, ...]


@attrs.frozen(kw_only=True)
class Admission:
    """A worker's webhook slots (`PAYMENTS_WEBHOOKS_CONCURRENCY` POSTs in flight at most, so a slow receiver
    cannot take every thread from payments): a delivery waits up to `wait` seconds for one; if none frees, it and
    the rest of its batch go back to `queue` for `requeue_delay` seconds."""

    slots: asyncio.Semaphore
    queue: TaskQueue
    wait: float = 0.2
    requeue_delay: float = 0.25


@attrs.frozen(kw_only=True)
class Delivered:
    """What became of a batch: each ref's outcome (in the message's order), and the refs sent back to the queue
    because no slot freed in time."""

    outcomes: list[tuple[DeliveryRef, DeliveryOutcome]]
    requeued: list[DeliveryRef]


def delivery_headers(delivery: Delivery, secrets: list[str], timestamp: int) -> dict[str, str]:
    """Signed with every live secret; the same event id on every attempt; the request's id carried along."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Payments-Signature": sign(secrets, delivery.body.encode(), timestamp),
        "Payments-Event-Id": str(delivery.event_id),
        "Payments-Delivery-Id": str(delivery.id),
        "Payments-Delivery-Attempt": str(delivery.attempts),
        "X-Request-ID": delivery.correlation_id or str(delivery.id),
    }


async def deliver_webhooks(
    cmd: DeliverWebhooks, *, uow_factory: UnitOfWorkFactory, sender: WebhookSender, clock: Clock,
    policy: DeliveryPolicy, admission: Admission | None = None, record_after: float = RECORD_AFTER,
    record_patience: float = RECORD_PATIENCE,
) -> Delivered:
    """Make attempt `ref.attempt + 1` of each delivery of the batch, each with its own outcome, as
    `deliver_webhook` makes one: transaction 1 claims them all (a stale or duplicate ref does nothing; one whose
    subscription is gone or disabled, or whose attempts are spent, is given up), the POSTs run concurrently
    outside any transaction, each in one of the `admission` slots (none: no limit), and transaction 2 records
    every answer; when some POSTs still run `record_after` seconds after the last one started, the answers in
    by then are recorded first, in a transaction of their own. When every slot is busy, the batch waits up to
    `admission.wait` before claiming anything, else it goes back to the queue whole; a claimed delivery that then
    waits as long for a slot has its attempt taken back in transaction 2 and goes back to the queue with the rest
    after it. While the database cannot be reached (`Unreachable`), transaction 2 is tried again for up to
    `record_patience` seconds (then the error is raised, and the lease covers the rest)."""
    refs = _first_of_each(cmd.refs)
    if admission is not None and not await _slot_frees(admission):
        await admission.queue.enqueue_deliveries(refs, delay_seconds=admission.requeue_delay)
        return Delivered(outcomes=[], requeued=refs)
    claimed, outcomes = await _claim(refs, uow_factory=uow_factory, clock=clock, policy=policy)
    posts, unsent = await _start_posts(claimed, sender, policy, admission)
    try:
        done, _ = await asyncio.wait([post for _, post in posts], timeout=record_after) if posts else (set(), set())
        if done and len(done) < len(posts):  # the answers in so far are recorded without waiting for the slowest
            early = [(delivery, post.result()) for delivery, post in posts if post in done]
            outcomes |= await patiently(lambda: _record(early, [], uow_factory=uow_factory, clock=clock,
                                                        policy=policy), patience=record_patience)
            posts = [(delivery, post) for delivery, post in posts if post not in done]
        sent = [(delivery, await post) for delivery, post in posts]
    except BaseException:  # cancelled (the worker stops): no POST outlives its batch; the lease covers the rest
        for _, post in posts:
            post.cancel()
        raise
    outcomes |= await patiently(lambda: _record(sent, unsent, uow_factory=uow_factory, clock=clock, policy=policy),
                                patience=record_patience)
    left = {delivery.id for delivery, _ in unsent}
    requeued = [ref for ref in refs if ref.id in left]
    if requeued and admission is not None:
        await admission.queue.enqueue_deliveries(requeued, delay_seconds=admission.requeue_delay)
    return Delivered(outcomes=[(ref, outcomes[ref.id]) for ref in refs if ref.id in outcomes], requeued=requeued)


async def deliver_webhook(
    ref: DeliveryRef, *, uow_factory: UnitOfWorkFactory, sender: WebhookSender, clock: Clock, policy: DeliveryPolicy
) -> DeliveryOutcome:
    """Make attempt `ref.attempt + 1` of one delivery: count it, POST outside any transaction, record the answer.

    A ref that is stale (the delivery moved on, or was redelivered by hand meanwhile) does nothing,
    so duplicate messages are harmless. The attempt is counted before the POST: a worker that dies
    mid-POST leaves the delivery held until its lease ends, then the scheduler retries it.
    """
    delivered = await deliver_webhooks(DeliverWebhooks(refs=(ref,)), uow_factory=uow_factory, sender=sender,
                                       clock=clock, policy=policy)
    ((_, outcome),) = delivered.outcomes
    return outcome


Claimed = tuple[Delivery, Subscription]


def _first_of_each(refs: Sequence[DeliveryRef]) -> list[DeliveryRef]:
    """The refs in order, a delivery named twice only once (its first ref)."""
    first: dict[UUID, DeliveryRef] = {}
    for ref in refs:
        first.setdefault(ref.id, ref)
    return list(first.values())


async def _claim(
    refs: Sequence[DeliveryRef], *, uow_factory: UnitOfWorkFactory, clock: Clock, policy: DeliveryPolicy
) -> tuple[list[Claimed], dict[UUID, DeliveryOutcome]]:
    """Transaction 1: count the attempt of each live delivery and hold it for the lease (a worker dying mid-POST
    leaves it to the scheduler after the lease); give up the ones that cannot be sent; skip the stale refs."""
    claimed: list[Claimed] = []
    outcomes: dict[UUID, DeliveryOutcome] = {}
    async with uow_factory() as uow:
        found = {d.id: d for d in await uow.webhooks.lock_deliveries([(r.tenant_id, r.id) for r in refs])}
        live = [(ref, d) for ref in refs if (d := found.get(ref.id)) is not None
                and d.status == DeliveryStatus.PENDING and d.attempts == ref.attempt]
        subscriptions = {s.id: s for s in await uow.webhooks.get_subscriptions(
            {(d.tenant_id, d.subscription_id) for _, d in live})} if live else {}
        now = clock.now()
        for ref in refs:
            outcomes[ref.id] = DeliveryOutcome(result=DeliveryResult.SKIPPED)
        for ref, delivery in live:
            subscription = subscriptions.get(delivery.subscription_id)
            if subscription is None or not subscription.enabled or delivery.spent(policy):
                # spent: its last attempt never recorded an answer (the worker stopped mid-POST, again and again)
                delivery.give_up("no answer was recorded for the last attempt; its attempts are spent"
                                 if subscription is not None and subscription.enabled else "the webhook is disabled",
                                 now)
                outcomes[ref.id] = DeliveryOutcome(result=DeliveryResult.FAILED, error=delivery.last_error,
                                                   attempt=delivery.attempts)
            else:
                delivery.begin_attempt(now, policy)
                claimed.append((delivery, subscription))
                del outcomes[ref.id]
            uow.webhooks.save_delivery(delivery)
    return claimed, outcomes


Started = tuple[Delivery, "asyncio.Future[SendResult]"]


async def _start_posts(
    claimed: list[Claimed], sender: WebhookSender, policy: DeliveryPolicy, admission: Admission | None
) -> tuple[list[Started], list[Claimed]]:
    """Start POSTing the claimed deliveries concurrently, each in a slot taken in order: each one's POST, and the
    ones left unsent because no slot freed within the wait."""
    posts: list[Started] = []
    for index, (delivery, subscription) in enumerate(claimed):
        if admission is not None and not await _take_slot(admission):
            return posts, claimed[index:]
        post = _post(delivery, subscription, sender, policy, admission)
        if len(claimed) == 1:  # no concurrency to gain: POST in this task (what it raises propagates as is)
            answered: asyncio.Future[SendResult] = asyncio.get_running_loop().create_future()
            answered.set_result(await post)
            return [(delivery, answered)], []
        posts.append((delivery, asyncio.ensure_future(post)))
    return posts, []


async def _post(
    delivery: Delivery, subscription: Subscription, sender: WebhookSender, policy: DeliveryPolicy,
    admission: Admission | None,
) -> SendResult:
    """One POST (in the slot taken for it, released as soon as it answered); never raises for a failed one."""
    now = delivery.updated_at
    headers = delivery_headers(delivery, subscription.signing_secrets(now), int(now.timestamp()))
    try:
        return await sender.post(subscription.url, delivery.body.encode(), headers, within=policy.timeout)
    except Exception as error:  # a sender bug or a URL it cannot use: a failed attempt, never a stuck delivery
        return SendResult(error=f"{type(error).__name__}: {error}"[:1000])
    finally:
        if admission is not None:
            admission.slots.release()


async def _record(
    sent: list[tuple[Delivery, SendResult]], unsent: list[Claimed], *, uow_factory: UnitOfWorkFactory, clock: Clock,
    policy: DeliveryPolicy,
) -> dict[UUID, DeliveryOutcome]:
    """Transaction 2: every answer, and the attempts of the unsent deliveries taken back. A delivery that moved
    on meanwhile (redelivered by hand, or taken by the scheduler after a lease that ran out) is left as it is. Run
    again after a COMMIT whose connection was lost once the server had committed, it finds the rows it wrote: a
    success or a give-up is left as it is (SKIPPED: not counted again), a failed POST's next attempt is
    scheduled again from now."""
    if not sent and not unsent:
        return {}
    attempted = {d.id: d for d, _ in [*sent, *unsent]}
    outcomes: dict[UUID, DeliveryOutcome] = {}
    async with uow_factory() as uow:
        current = {d.id: d for d in await uow.webhooks.lock_deliveries([(d.tenant_id, d.id) for d in
                                                                        attempted.values()])}
        now = clock.now()
        for delivery, result in sent:
            outcomes[delivery.id] = _answered(uow, current.get(delivery.id), delivery, result, now=now,
                                              policy=policy)
        for delivery, _ in unsent:
            if (stored := current.get(delivery.id)) is not None and _unchanged(stored, delivery):
                stored.release_attempt(now)
                uow.webhooks.save_delivery(stored)
    return outcomes


def _unchanged(stored: Delivery, attempted: Delivery) -> bool:
    return stored.attempts == attempted.attempts and stored.status == DeliveryStatus.PENDING


def _answered(uow: UnitOfWork, stored: Delivery | None, attempted: Delivery, sent: SendResult, *, now: datetime,
              policy: DeliveryPolicy) -> DeliveryOutcome:
    if stored is None or not _unchanged(stored, attempted):
        return DeliveryOutcome(result=DeliveryResult.SKIPPED, status_code=sent.status_code, error=sent.error)
    retry_in = None
    if sent.ok:
        assert sent.status_code is not None
        stored.succeeded(sent.status_code, now)
    else:
        retry_in = stored.attempt_failed(sent.status_code, sent.error or f"HTTP {sent.status_code}", now, policy)
    uow.webhooks.save_delivery(stored)
    result = DeliveryResult.SUCCEEDED if sent.ok else (
        DeliveryResult.RETRYING if retry_in is not None else DeliveryResult.FAILED)
    return DeliveryOutcome(result=result, status_code=sent.status_code, error=sent.error, retry_in=retry_in,
                           attempt=stored.attempts)


async def _slot_frees(admission: Admission) -> bool:
    """Whether a slot is free, or frees within the wait (none is taken: the first POST takes one)."""
    if not admission.slots.locked():
        return True
    if not await _take_slot(admission):
        return False
    admission.slots.release()
    return True


async def _take_slot(admission: Admission) -> bool:
    """Take a slot, waiting at most `admission.wait` for one; whether it was taken."""
    if not admission.slots.locked():
        await admission.slots.acquire()
        return True
    try:
        async with asyncio.timeout(admission.wait):
            await admission.slots.acquire()
    except TimeoutError:
        return False
    return True
