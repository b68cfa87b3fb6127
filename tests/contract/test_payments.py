"""The `Payments` port: one suite over the in-memory store and PostgreSQL.

Payments here are dated in 2090, so the housekeeping of another suite sharing the database never
finds them in flight.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from adapters.cursor import encode_cursor
from core.errors import ConcurrencyConflict, ValidationFailed
from core.payments import PaymentStatus, PaymentType
from core.ports import PaymentFilter
from tests.contract.builders import add, blocked, payment
from tests.contract.conftest import new_tenant, open_account

pytestmark = pytest.mark.timeout(60)

T1 = datetime(2090, 3, 4, 5, 6, 7, 123000, tzinfo=UTC)


async def test_add_then_get_round_trips_every_field_and_event(uow_factory, clock, tenant) -> None:
    account = await open_account(uow_factory, clock, tenant.id)
    made = payment(tenant.id, account.id, at=T1, correlation_id="req-7", next_attempt_at=T1 + timedelta(seconds=3))
    events = list(made.events)
    await add(uow_factory, made)
    async with uow_factory() as uow:
        stored = await uow.payments.get(tenant.id, made.id)
        assert stored == made  # every field (events are not part of a payment's equality)
        assert stored.events == []  # a read payment carries no unsaved events
        assert (stored.status, stored.payment_type, stored.metadata) == (
            PaymentStatus.PENDING, PaymentType.EXTERNAL_PAYMENT, {"order": "7", "note": "é"})
        assert await uow.payments.events(tenant.id, made.id) == events


async def test_another_tenants_payment_looks_missing(uow_factory, clock, tenant) -> None:
    other = await new_tenant(uow_factory, clock)
    account = await open_account(uow_factory, clock, tenant.id)
    made = payment(tenant.id, account.id, at=T1)
    await add(uow_factory, made)
    async with uow_factory() as uow:
        assert await uow.payments.get(other.id, made.id) is None
        assert await uow.payments.lock(other.id, made.id) is None
        assert await uow.payments.events(other.id, made.id) == []
        assert (await uow.payments.list(other.id, PaymentFilter(), limit=10, cursor=None)).items == []
        assert await uow.payments.get(tenant.id, uuid4()) is None
        assert await uow.payments.lock(tenant.id, uuid4()) is None
        assert await uow.payments.events(tenant.id, uuid4()) == []


async def test_list_is_newest_first_in_pages(uow_factory, clock, tenant) -> None:
    account = await open_account(uow_factory, clock, tenant.id)
    made = [payment(tenant.id, account.id, at=T1 + timedelta(seconds=n % 3)) for n in range(7)]  # ties on time
    await add(uow_factory, *made)
    expected = sorted(made, key=lambda p: (p.created_at, p.id), reverse=True)
    seen, cursor = [], None
    async with uow_factory() as uow:
        for size in (3, 3, 1):
            page = await uow.payments.list(tenant.id, PaymentFilter(), limit=3, cursor=cursor)
            assert len(page.items) == size
            seen += page.items
            cursor = page.next_cursor
            if size == 1:
                assert cursor is None
            else:
                assert cursor is not None
        whole = await uow.payments.list(tenant.id, PaymentFilter(), limit=7, cursor=None)
    assert seen == expected
    assert whole.items == expected and whole.next_cursor is None


async def test_list_filters(uow_factory, clock, tenant) -> None:
    alice = await open_account(uow_factory, clock, tenant.id)
    bob = await open_account(uow_factory, clock, tenant.id, user_id="bob")
    carol = await open_account(uow_factory, clock, tenant.id, user_id="carol")
    stripe = payment(tenant.id, alice.id, at=T1, status=PaymentStatus.COMPLETED)
    paypal = payment(tenant.id, bob.id, at=T1 + timedelta(seconds=1), provider="paypal")
    transfer = payment(tenant.id, bob.id, at=T1 + timedelta(seconds=2), destination=carol.id,
                       status=PaymentStatus.COMPLETED)
    await add(uow_factory, stripe, paypal, transfer)

    async def ids(**where) -> set:
        async with uow_factory() as uow:
            page = await uow.payments.list(tenant.id, PaymentFilter(**where), limit=10, cursor=None)
        return {p.id for p in page.items}

    assert await ids(status=PaymentStatus.COMPLETED) == {stripe.id, transfer.id}
    assert await ids(status=PaymentStatus.REFUNDED) == set()
    assert await ids(payment_type=PaymentType.INTERNAL_TRANSFER) == {transfer.id}
    assert await ids(account_id=bob.id) == {paypal.id, transfer.id}  # as source
    assert await ids(account_id=carol.id) == {transfer.id}  # as destination
    assert await ids(provider="paypal") == {paypal.id}
    assert await ids(created_after=T1 + timedelta(seconds=1)) == {paypal.id, transfer.id}  # inclusive
    assert await ids(created_before=T1 + timedelta(seconds=1)) == {stripe.id}  # exclusive
    assert await ids(status=PaymentStatus.COMPLETED, account_id=bob.id) == {transfer.id}


@pytest.mark.parametrize("cursor", ["not-a-cursor", encode_cursor("yesterday", "x"), encode_cursor(1)])
async def test_a_malformed_cursor_is_a_validation_error(uow_factory, tenant, cursor: str) -> None:
    async with uow_factory() as uow:
        with pytest.raises(ValidationFailed):
            await uow.payments.list(tenant.id, PaymentFilter(), limit=10, cursor=cursor)


async def test_save_writes_the_change_and_its_events(uow_factory, clock, tenant) -> None:
    account = await open_account(uow_factory, clock, tenant.id)
    made = payment(tenant.id, account.id, at=T1)
    await add(uow_factory, made)
    async with uow_factory() as uow:
        locked = await uow.payments.lock(tenant.id, made.id)
        assert locked == made
        locked.attempts += 1
        locked.transition(PaymentStatus.PROCESSING, T1 + timedelta(seconds=1))
        locked.complete("pi_123", T1 + timedelta(seconds=2))
        uow.payments.save(locked)
        assert await uow.payments.lock(tenant.id, made.id) is locked  # its own change, not the stored row
    async with uow_factory() as uow:
        stored = await uow.payments.get(tenant.id, made.id)
        events = await uow.payments.events(tenant.id, made.id)
    assert (stored.status, stored.version, stored.attempts, stored.provider_reference, stored.completed_at) == (
        PaymentStatus.COMPLETED, 2, 1, "pi_123", T1 + timedelta(seconds=2))
    assert [(e.sequence, e.type) for e in events] == [
        (0, "payment.created"), (1, "payment.processing"), (2, "payment.completed")]


async def test_a_rolled_back_unit_of_work_writes_nothing(uow_factory, clock, tenant) -> None:
    account = await open_account(uow_factory, clock, tenant.id)
    kept = payment(tenant.id, account.id, at=T1)
    await add(uow_factory, kept)
    lost = payment(tenant.id, account.id, at=T1)
    with pytest.raises(RuntimeError):
        async with uow_factory() as uow:
            uow.payments.add(lost)
            changed = await uow.payments.lock(tenant.id, kept.id)
            changed.transition(PaymentStatus.CANCELLED, T1 + timedelta(seconds=1))
            uow.payments.save(changed)
            raise RuntimeError("roll back")
    async with uow_factory() as uow:
        assert await uow.payments.get(tenant.id, lost.id) is None
        assert (await uow.payments.get(tenant.id, kept.id)).status == PaymentStatus.PENDING
        assert [e.type for e in await uow.payments.events(tenant.id, kept.id)] == ["payment.created"]


async def test_saving_a_stale_read_is_a_concurrency_conflict(uow_factory, clock, tenant) -> None:
    account = await open_account(uow_factory, clock, tenant.id)
    made = payment(tenant.id, account.id, at=T1)
    await add(uow_factory, made)
    with pytest.raises(ConcurrencyConflict):
        async with uow_factory() as first:
            stale = await first.payments.get(tenant.id, made.id)  # read, not locked
            async with uow_factory() as second:
                winner = await second.payments.get(tenant.id, made.id)
                winner.transition(PaymentStatus.CANCELLED, T1 + timedelta(seconds=1))
                second.payments.save(winner)
            stale.transition(PaymentStatus.PROCESSING, T1 + timedelta(seconds=2))
            first.payments.save(stale)
    async with uow_factory() as uow:
        stored = await uow.payments.get(tenant.id, made.id)
        events = await uow.payments.events(tenant.id, made.id)
    assert (stored.status, stored.version) == (PaymentStatus.CANCELLED, 1)
    assert [e.type for e in events] == ["payment.created", "payment.cancelled"]


async def test_many_payments_saved_in_one_unit_of_work_each_get_their_own_change(uow_factory, clock, tenant) -> None:
    account = await open_account(uow_factory, clock, tenant.id)
    made = [payment(tenant.id, account.id, at=T1) for _ in range(3)]
    for one in made:
        await add(uow_factory, one)
    async with uow_factory() as uow:
        locked = [await uow.payments.lock(tenant.id, one.id) for one in made]
        locked[0].transition(PaymentStatus.PROCESSING, T1 + timedelta(seconds=1))
        locked[1].transition(PaymentStatus.PROCESSING, T1 + timedelta(seconds=1))
        locked[1].complete("pi_2", T1 + timedelta(seconds=2))
        locked[2].attempts = 4
        locked[2].transition(PaymentStatus.CANCELLED, T1 + timedelta(seconds=3))
        for one in locked:
            uow.payments.save(one)
    async with uow_factory() as uow:
        stored = [await uow.payments.get(tenant.id, one.id) for one in made]
    assert [(p.status, p.version, p.attempts, p.provider_reference, p.updated_at) for p in stored] == [
        (PaymentStatus.PROCESSING, 1, 0, None, T1 + timedelta(seconds=1)),
        (PaymentStatus.COMPLETED, 2, 0, "pi_2", T1 + timedelta(seconds=2)),
        (PaymentStatus.CANCELLED, 1, 4, None, T1 + timedelta(seconds=3))]


async def test_a_stale_payment_saved_beside_a_fresh_one_fails_both(uow_factory, clock, tenant) -> None:
    account = await open_account(uow_factory, clock, tenant.id)
    fresh, contested = payment(tenant.id, account.id, at=T1), payment(tenant.id, account.id, at=T1)
    await add(uow_factory, fresh)
    await add(uow_factory, contested)
    with pytest.raises(ConcurrencyConflict):
        async with uow_factory() as first:
            mine = await first.payments.lock(tenant.id, fresh.id)
            stale = await first.payments.get(tenant.id, contested.id)  # read, not locked
            async with uow_factory() as second:
                winner = await second.payments.get(tenant.id, contested.id)
                winner.transition(PaymentStatus.CANCELLED, T1 + timedelta(seconds=1))
                second.payments.save(winner)
            for one in (mine, stale):
                one.transition(PaymentStatus.PROCESSING, T1 + timedelta(seconds=2))
                first.payments.save(one)
    async with uow_factory() as uow:
        assert (await uow.payments.get(tenant.id, fresh.id)).status == PaymentStatus.PENDING  # all or nothing
        assert (await uow.payments.get(tenant.id, contested.id)).status == PaymentStatus.CANCELLED
        assert [e.type for e in await uow.payments.events(tenant.id, fresh.id)] == ["payment.created"]


async def test_lock_holds_off_a_second_writer_until_the_first_ends(
    uow_factory, clock, tenant, backend, services,
) -> None:
    account = await open_account(uow_factory, clock, tenant.id)
    made = payment(tenant.id, account.id, at=T1)
    await add(uow_factory, made)
    acquired = asyncio.Event()

    async def second() -> tuple[PaymentStatus, int]:
        async with uow_factory() as uow:
            locked = await uow.payments.lock(tenant.id, made.id)
            acquired.set()
            return locked.status, locked.version

    async with uow_factory() as first:
        locked = await first.payments.lock(tenant.id, made.id)
        task = asyncio.create_task(second())
        await asyncio.wait_for(blocked(backend, uow_factory, services, ("payment", made.id)), 10)
        assert not acquired.is_set()  # waiting on the row lock, not merely slow
        locked.transition(PaymentStatus.PROCESSING, T1 + timedelta(seconds=1))
        first.payments.save(locked)
    assert await asyncio.wait_for(task, 10) == (PaymentStatus.PROCESSING, 1)  # it read what the first committed


async def test_concurrent_writers_that_lock_never_lose_an_update(uow_factory, clock, tenant) -> None:
    account = await open_account(uow_factory, clock, tenant.id)
    made = payment(tenant.id, account.id, at=T1)
    await add(uow_factory, made)

    async def note(n: int) -> None:
        async with uow_factory() as uow:
            locked = await uow.payments.lock(tenant.id, made.id)
            await asyncio.sleep(0)  # let the other writers run between this read and its write
            locked.attempts += 1
            locked.attempt_failed(f"try {n}", T1 + timedelta(seconds=n), None)
            uow.payments.save(locked)

    await asyncio.wait_for(asyncio.gather(*(note(n) for n in range(10))), 30)
    async with uow_factory() as uow:
        stored = await uow.payments.get(tenant.id, made.id)
        events = await uow.payments.events(tenant.id, made.id)
    assert (stored.version, stored.attempts) == (10, 10)
    assert [e.sequence for e in events] == list(range(11))
    assert sorted(e.data["error"] for e in events[1:]) == sorted(f"try {n}" for n in range(10))
