"""An optimistic unit of work (the worker's `pending -> processing`): reads lock nothing, the version-checked
write refuses a change read before a concurrent one and leaves no trace; on PostgreSQL it is one read and one
write, with no BEGIN and no COMMIT (issue 12), and writes that need several statements still land all or nothing."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from adapters.postgres import rows
from adapters.postgres.uow import PgUnitOfWork
from core.accounts import CLEARING
from core.errors import ConcurrencyConflict
from core.events import OutboxMessage
from core.payments import PaymentStatus
from core.usecases.announcements import announce_payment
from tests.contract.builders import add, payment
from tests.contract.conftest import new_tenant, open_account
from tests.contract.recording import RecordingPool

pytestmark = pytest.mark.timeout(30)


async def _pending(uow_factory: Any, clock: Any, tenant_id: Any) -> Any:
    source = await open_account(uow_factory, clock, tenant_id, 5_000)
    made = payment(tenant_id, source.id)
    await add(uow_factory, made)
    return made


async def _topics(uow_factory: Any, tenant_id: Any, payment_id: Any) -> list[str]:
    async with uow_factory(read_only=True) as uow:
        return [event.type for event in await uow.payments.events(tenant_id, payment_id)]


async def test_an_optimistic_change_lands_whole(uow_factory, clock, tenant) -> None:
    made = await _pending(uow_factory, clock, tenant.id)
    async with uow_factory(optimistic=True) as uow:
        read = await uow.payments.get(tenant.id, made.id)
        read.transition(PaymentStatus.PROCESSING, clock.now())
        uow.payments.save(read)
        announce_payment(uow, read, "payment.processing", clock.now())
    async with uow_factory(read_only=True) as uow:
        stored = await uow.payments.get(tenant.id, made.id)
    assert (stored.status, stored.version) == (PaymentStatus.PROCESSING, made.version + 1)
    assert await _topics(uow_factory, tenant.id, made.id) == ["payment.created", "payment.processing"]


async def test_an_optimistic_change_read_before_a_concurrent_one_is_refused_and_leaves_no_trace(
    uow_factory, clock, tenant
) -> None:
    made = await _pending(uow_factory, clock, tenant.id)
    with pytest.raises(ConcurrencyConflict):
        async with uow_factory(optimistic=True) as uow:
            read = await uow.payments.get(tenant.id, made.id)
            async with uow_factory() as other:  # the read locked nothing: another unit of work cancels meanwhile
                cancelled = await other.payments.lock(tenant.id, made.id)
                cancelled.transition(PaymentStatus.CANCELLED, clock.now())
                other.payments.save(cancelled)
                announce_payment(other, cancelled, "payment.cancelled", clock.now())
            read.transition(PaymentStatus.PROCESSING, clock.now())
            uow.payments.save(read)
            announce_payment(uow, read, "payment.processing", clock.now())
    async with uow_factory(read_only=True) as uow:
        assert (await uow.payments.get(tenant.id, made.id)).status == PaymentStatus.CANCELLED
    assert await _topics(uow_factory, tenant.id, made.id) == ["payment.created", "payment.cancelled"]


async def test_on_postgresql_an_optimistic_change_is_one_read_and_one_write(services, clock) -> None:
    tenant = await new_tenant(services.uow_factory, clock)
    made = await _pending(services.uow_factory, clock, tenant.id)
    pool = RecordingPool(services.pool)
    async with PgUnitOfWork(pool, read_only=False, acquire_timeout=5, secret_box=services.secret_box,  # type: ignore[arg-type]
                            optimistic=True) as uow:
        read = await uow.payments.get(tenant.id, made.id)
        assert read is not None
        read.transition(PaymentStatus.PROCESSING, clock.now())
        uow.payments.save(read)
        announce_payment(uow, read, "payment.processing", clock.now())
    assert pool.sent == ["SELECT", "WITH"]  # no BEGIN, no row lock, no COMMIT
    assert await _topics(services.uow_factory, tenant.id, made.id) == ["payment.created", "payment.processing"]
    pool.sent.clear()
    async with PgUnitOfWork(pool, read_only=False, acquire_timeout=5,  # type: ignore[arg-type]
                            secret_box=services.secret_box) as uow:  # an ordinary one, for comparison
        locked = await uow.payments.lock(tenant.id, made.id)
        assert locked is not None
        locked.transition(PaymentStatus.COMPLETED, clock.now(), reference="ch_1")
        uow.payments.save(locked)
    assert pool.sent == ["BEGIN", "SELECT", "WITH", "COMMIT"]


async def test_on_postgresql_optimistic_writes_of_several_statements_land_all_or_nothing(
    services, clock, monkeypatch
) -> None:
    """Writes beyond one statement's parameters get a transaction of their own: a failure in the last statement
    takes back the first."""
    tenant = await new_tenant(services.uow_factory, clock)
    made = await _pending(services.uow_factory, clock, tenant.id)
    monkeypatch.setattr(rows, "MAX_PARAMETERS", 24)  # the update and its event (20), then the outbox rows
    with pytest.raises(asyncpg.UniqueViolationError):
        async with services.uow_factory(optimistic=True) as uow:
            read = await uow.payments.get(tenant.id, made.id)
            read.transition(PaymentStatus.PROCESSING, clock.now())
            uow.payments.save(read)
            announce_payment(uow, read, "payment.processing", clock.now())
            message = OutboxMessage.new(tenant_id=tenant.id, topic="payment.processing", aggregate_id=made.id,
                                        payload={}, correlation_id=None, at=clock.now())
            uow.outbox.add(message)
            uow.outbox.add(message)  # the same id twice: the last statement fails
    async with services.uow_factory(read_only=True) as uow:
        assert (await uow.payments.get(tenant.id, made.id)).status == PaymentStatus.PENDING
    assert await _topics(services.uow_factory, tenant.id, made.id) == ["payment.created"]


async def test_an_optimistic_unit_of_work_refuses_row_locks(uow_factory, clock, tenant) -> None:
    """Outside a transaction a row lock would protect nothing: asking for one is a bug in the work, on every adapter."""
    made = await _pending(uow_factory, clock, tenant.id)
    for lock in (lambda uow: uow.payments.lock(tenant.id, made.id),
                 lambda uow: uow.accounts.lock(tenant.id, [made.source_account_id]),
                 lambda uow: uow.accounts.lock_system(tenant.id, CLEARING, "USD")):
        with pytest.raises(RuntimeError, match="takes no row lock"):
            async with uow_factory(optimistic=True) as uow:
                await lock(uow)
    async with uow_factory(optimistic=True) as uow:  # reads are what it is for
        assert (await uow.payments.get(tenant.id, made.id)).status == PaymentStatus.PENDING
        assert (await uow.accounts.get(tenant.id, made.source_account_id)).balance == 5_000
