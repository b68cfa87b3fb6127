"""The `Refunds` port: one suite over the in-memory store and PostgreSQL.

Refunds here are dated in 2090, so the housekeeping of another suite sharing the database never
finds them in flight.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from adapters.cursor import encode_cursor
from core.errors import ValidationFailed
from core.payments import PaymentStatus
from core.refunds import RefundStatus
from tests.contract.builders import add, blocked, payment, refund
from tests.contract.conftest import new_tenant, open_account

pytestmark = pytest.mark.timeout(60)

T1 = datetime(2090, 5, 6, 7, 8, 9, 456000, tzinfo=UTC)


@pytest.fixture
async def paid(uow_factory, clock, tenant):
    """A completed payment of the tenant's, to refund."""
    account = await open_account(uow_factory, clock, tenant.id)
    made = payment(tenant.id, account.id, at=T1, status=PaymentStatus.COMPLETED, amount=10_000)
    await add(uow_factory, made)
    return made


async def test_add_then_lock_round_trips_every_field(uow_factory, paid) -> None:
    made = refund(paid, at=T1, amount=250, correlation_id="req-r", next_attempt_at=T1 + timedelta(seconds=4))
    await add(uow_factory, made)
    async with uow_factory() as uow:
        assert await uow.refunds.lock(paid.tenant_id, made.id) == made
        assert await uow.refunds.for_payment(paid.tenant_id, paid.id) == [made]


async def test_another_tenants_refund_looks_missing(uow_factory, clock, paid) -> None:
    other = await new_tenant(uow_factory, clock)
    made = refund(paid, at=T1)
    await add(uow_factory, made)
    async with uow_factory() as uow:
        assert await uow.refunds.lock(other.id, made.id) is None
        assert await uow.refunds.for_payment(other.id, paid.id) == []
        assert (await uow.refunds.list(other.id, paid.id, limit=10, cursor=None)).items == []
        assert await uow.refunds.lock(paid.tenant_id, uuid4()) is None
        assert await uow.refunds.for_payment(paid.tenant_id, uuid4()) == []


async def test_for_payment_and_list_are_newest_first_and_only_that_payments(uow_factory, clock, paid) -> None:
    account = await open_account(uow_factory, clock, paid.tenant_id, user_id="bob")
    elsewhere = payment(paid.tenant_id, account.id, at=T1, status=PaymentStatus.COMPLETED)
    await add(uow_factory, elsewhere)
    made = [refund(paid, at=T1 + timedelta(seconds=n % 3), amount=100 + n) for n in range(7)]  # ties on time
    await add(uow_factory, *made, refund(elsewhere, at=T1 + timedelta(days=1)))
    expected = sorted(made, key=lambda r: (r.created_at, r.id), reverse=True)
    seen, cursor = [], None
    async with uow_factory() as uow:
        assert await uow.refunds.for_payment(paid.tenant_id, paid.id) == expected
        for size in (3, 3, 1):
            page = await uow.refunds.list(paid.tenant_id, paid.id, limit=3, cursor=cursor)
            assert len(page.items) == size
            seen += page.items
            cursor = page.next_cursor
            assert (cursor is None) is (size == 1)
        whole = await uow.refunds.list(paid.tenant_id, paid.id, limit=7, cursor=None)
    assert seen == expected
    assert whole.items == expected and whole.next_cursor is None


@pytest.mark.parametrize("cursor", ["%%%", encode_cursor("2090-01-01T00:00:00+00:00", "not-a-uuid"), encode_cursor()])
async def test_a_malformed_cursor_is_a_validation_error(uow_factory, paid, cursor: str) -> None:
    async with uow_factory() as uow:
        with pytest.raises(ValidationFailed):
            await uow.refunds.list(paid.tenant_id, paid.id, limit=10, cursor=cursor)


async def test_save_writes_the_change(uow_factory, paid) -> None:
    made = refund(paid, at=T1)
    await add(uow_factory, made)
    async with uow_factory() as uow:
        locked = await uow.refunds.lock(paid.tenant_id, made.id)
        locked.attempts += 1
        locked.succeed("re_42", T1 + timedelta(seconds=5))
        uow.refunds.save(locked)
        assert await uow.refunds.lock(paid.tenant_id, made.id) is locked  # its own change, not the stored row
    async with uow_factory() as uow:
        stored = await uow.refunds.lock(paid.tenant_id, made.id)
    assert (stored.status, stored.attempts, stored.provider_reference, stored.updated_at, stored.completed_at) == (
        RefundStatus.SUCCEEDED, 1, "re_42", T1 + timedelta(seconds=5), T1 + timedelta(seconds=5))
    assert stored.next_attempt_at is None and stored.failure_reason is None


async def test_a_refund_changed_after_add_is_written_as_it_ends(uow_factory, paid) -> None:
    made = refund(paid, at=T1)
    async with uow_factory() as uow:
        uow.refunds.add(made)
        made.fail("card closed", T1 + timedelta(seconds=1))  # an internal transfer's refund settles at once
        uow.refunds.save(made)
    async with uow_factory() as uow:
        stored = await uow.refunds.lock(paid.tenant_id, made.id)
    assert (stored.status, stored.failure_reason) == (RefundStatus.FAILED, "card closed")


async def test_a_rolled_back_unit_of_work_writes_nothing(uow_factory, paid) -> None:
    kept = refund(paid, at=T1)
    await add(uow_factory, kept)
    lost = refund(paid, at=T1)
    with pytest.raises(RuntimeError):
        async with uow_factory() as uow:
            uow.refunds.add(lost)
            changed = await uow.refunds.lock(paid.tenant_id, kept.id)
            changed.fail("no", T1 + timedelta(seconds=1))
            uow.refunds.save(changed)
            raise RuntimeError("roll back")
    async with uow_factory() as uow:
        assert await uow.refunds.lock(paid.tenant_id, lost.id) is None
        assert (await uow.refunds.lock(paid.tenant_id, kept.id)).status == RefundStatus.PENDING


async def test_lock_holds_off_a_second_writer_until_the_first_ends(uow_factory, paid, backend, services) -> None:
    made = refund(paid, at=T1)
    await add(uow_factory, made)
    acquired = asyncio.Event()

    async def second() -> RefundStatus:
        async with uow_factory() as uow:
            locked = await uow.refunds.lock(paid.tenant_id, made.id)
            acquired.set()
            return locked.status

    async with uow_factory() as first:
        locked = await first.refunds.lock(paid.tenant_id, made.id)
        task = asyncio.create_task(second())
        await asyncio.wait_for(blocked(backend, uow_factory, services, ("refund", made.id)), 10)
        assert not acquired.is_set()  # waiting on the row lock, not merely slow
        locked.succeed("re_1", T1 + timedelta(seconds=1))
        first.refunds.save(locked)
    assert await asyncio.wait_for(task, 10) == RefundStatus.SUCCEEDED  # it read what the first committed


async def test_concurrent_writers_that_lock_never_lose_an_update(uow_factory, paid) -> None:
    made = refund(paid, at=T1)
    await add(uow_factory, made)

    async def attempt() -> None:
        async with uow_factory() as uow:
            locked = await uow.refunds.lock(paid.tenant_id, made.id)
            await asyncio.sleep(0)  # let the other writers run between this read and its write
            locked.attempts += 1
            uow.refunds.save(locked)

    await asyncio.wait_for(asyncio.gather(*(attempt() for _ in range(10))), 30)
    async with uow_factory() as uow:
        assert (await uow.refunds.lock(paid.tenant_id, made.id)).attempts == 10
