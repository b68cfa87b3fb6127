"""The events feed's use cases on the in-memory store, and the one body shared by the feed and webhooks."""

from __future__ import annotations

import json
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from adapters.dramatiq.broker import event_message
from adapters.memory import InMemoryStore
from app.http.io import dumps
from core.errors import NotFound, UnknownEvent, ValidationFailed
from core.events import CATALOGUE, OutboxMessage, event_body
from core.money import Money
from core.usecases.accounts import CreateAccount, create_account
from core.usecases.events import check_event_type, get_event, read_feed
from core.usecases.external_payments import CreateExternalPayment, cancel_payment, create_external_payment
from core.usecases.webhook_delivery import FanOut
from core.views import payment_view
from core.webhooks import webhook_body
from tests.unit.conftest import FakeClock


async def history(store: InMemoryStore, clock: FakeClock, tenant_id: UUID) -> tuple[UUID, UUID]:
    """An account opened with 10.00, an external payment of 4.00 from it, cancelled: four events."""
    async with store() as uow:
        account = await create_account(CreateAccount(tenant_id=tenant_id, user_id="alice", currency="USD",
                                                     initial_balance=Money(1_000, "USD")), uow=uow, clock=clock)
    clock.advance(timedelta(seconds=1))
    async with store() as uow:
        payment = await create_external_payment(CreateExternalPayment(
            tenant_id=tenant_id, source_account_id=account.id, amount=Money(400, "USD"), provider="stripe"),
            uow=uow, clock=clock)
    clock.advance(timedelta(seconds=1))
    async with store() as uow:
        await cancel_payment(tenant_id, payment.id, uow=uow, clock=clock)
    return account.id, payment.id


async def test_the_feed_tells_what_happened_oldest_first(store: InMemoryStore, clock: FakeClock,
                                                         tenant_id: UUID) -> None:
    account_id, payment_id = await history(store, clock, tenant_id)
    async with store(read_only=True) as uow:
        page = await read_feed(tenant_id, after=None, event_type=None, limit=20, uow=uow)
        assert [(e.topic, e.aggregate_id) for e in page.items] == [
            ("account.created", account_id), ("payment.created", payment_id), ("payment.cancelled", payment_id)]
        assert page.next_cursor is None
        assert (page.items[0].payload["id"], page.items[0].payload["balance"]) == (str(account_id), "10.00")
        assert page.items[2].payload == payment_view(store.payments[payment_id])  # the payment as it now is
        assert page.items[1].payload["status"] == "pending"  # ...and as it was then
        cancelled = await read_feed(tenant_id, after=None, event_type="payment.cancelled", limit=20, uow=uow)
        assert cancelled.items == page.items[2:]
        first = await read_feed(tenant_id, after=None, event_type=None, limit=1, uow=uow)
        assert (first.items, first.next_cursor) == (page.items[:1], str(page.items[0].id))
        rest = await read_feed(tenant_id, after=page.items[0].id, event_type=None, limit=20, uow=uow)
        assert rest.items == page.items[1:]
        assert (await read_feed(uuid4(), after=None, event_type=None, limit=20, uow=uow)).items == []


async def test_an_unknown_after_names_the_parameter_it_came_in(store: InMemoryStore, clock: FakeClock,
                                                               tenant_id: UUID) -> None:
    await history(store, clock, tenant_id)
    theirs = store.outbox[0].id
    async with store(read_only=True) as uow:
        for field in ("after", "cursor"):
            with pytest.raises(UnknownEvent) as refused:
                await read_feed(tenant_id, after=uuid4(), event_type=None, limit=5, uow=uow, after_field=field)
            assert (refused.value.code, [e.field for e in refused.value.errors]) == ("validation_error", [field])
        with pytest.raises(UnknownEvent):
            await read_feed(uuid4(), after=theirs, event_type=None, limit=5, uow=uow)  # another tenant's event


@pytest.mark.parametrize("event_type", ["payment.exploded", "payment.late_charge_detected", "", "*"])
async def test_a_type_outside_the_catalogue_is_a_validation_error(store: InMemoryStore, tenant_id: UUID,
                                                                  event_type: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_event_type(event_type)
    assert [e.field for e in refused.value.errors] == ["type"]
    async with store(read_only=True) as uow:
        with pytest.raises(ValidationFailed):
            await read_feed(tenant_id, after=None, event_type=event_type, limit=5, uow=uow)


def test_the_catalogue_holds_every_type_of_api_md() -> None:
    assert {"account.created", "account.updated", "transfer.completed", "payment.created", "payment.processing",
            "payment.attempt_failed", "payment.completed", "payment.failed", "payment.cancelled",
            "payment.partially_refunded", "payment.refunded", "refund.created", "refund.succeeded", "refund.failed",
            "hold.created", "hold.captured", "hold.voided", "hold.expired"} == set(CATALOGUE)


async def test_get_event_hides_internal_events_and_other_tenants(store: InMemoryStore, clock: FakeClock,
                                                                 tenant_id: UUID) -> None:
    await history(store, clock, tenant_id)
    internal = OutboxMessage.new(tenant_id=tenant_id, topic="payment.late_charge_detected", aggregate_id=uuid4(),
                                 payload={}, correlation_id=None, at=clock.now())
    async with store() as uow:
        uow.outbox.add(internal)
    first = store.outbox[0]
    async with store(read_only=True) as uow:
        assert await get_event(tenant_id, first.id, uow=uow) == first
        for tenant, event_id in ((uuid4(), first.id), (tenant_id, internal.id), (tenant_id, uuid4())):
            with pytest.raises(NotFound):
                await get_event(tenant, event_id, uow=uow)


async def test_the_feed_entry_is_the_webhook_body_byte_for_byte(store: InMemoryStore, clock: FakeClock,
                                                                tenant_id: UUID) -> None:
    """The fan-out builds a delivery's body from the relayed Dramatiq message; the feed renders the outbox row.
    Both start from `event_body`, and the JSON the API writes for the feed equals the bytes delivered."""
    await history(store, clock, tenant_id)
    for message in store.outbox:
        (event,) = event_message(message).args
        fan_out = FanOut(tenant_id=UUID(event["tenant_id"]), event_id=UUID(event["id"]), event_type=event["type"],
                         created_at=event["created_at"], data=event["data"])
        delivered = webhook_body(str(fan_out.event_id), fan_out.event_type, fan_out.created_at, fan_out.data)
        served = dumps(event_body(message)).decode()  # what GET /events/{id} answers
        assert delivered == served
        assert set(json.loads(served)) == {"id", "type", "created_at", "data"}
