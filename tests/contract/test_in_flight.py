"""The `InFlight` port: one suite over the in-memory store and PostgreSQL.

Every row here is dated in 2001, long before anything else in the session's database, and deleted
afterwards, so that `stuck` (which reads every tenant) finds only the current test's work.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from adapters.memory.outbox import InMemoryInFlight
from app.bootstrap import Services
from core.payments import PaymentStatus
from core.refunds import RefundStatus
from core.work import PAYMENT, REFUND, WorkItem
from tests.contract.builders import T0, add, letter, payment, refund
from tests.contract.conftest import new_tenant, open_account

pytestmark = pytest.mark.timeout(60)

BEFORE = T0 + timedelta(hours=1)  # the housekeeping job's "untouched since"


@pytest.fixture
async def in_flight(backend: str, uow_factory: Any, services: Services) -> Any:
    return InMemoryInFlight(uow_factory) if backend == "memory" else services.in_flight


@pytest.fixture
async def world(uow_factory, clock, cleanup) -> Any:
    """A tenant with an account, and a completed payment to refund."""
    tenant = await new_tenant(uow_factory, clock)
    cleanup.tenants.add(tenant.id)
    account = await open_account(uow_factory, clock, tenant.id)
    paid = payment(tenant.id, account.id, status=PaymentStatus.COMPLETED, at=T0 - timedelta(days=1))
    await add(uow_factory, paid)
    return tenant, account, paid


def work(row: Any) -> WorkItem:
    kind = REFUND if hasattr(row, "payment_id") else PAYMENT
    return WorkItem(kind=kind, tenant_id=row.tenant_id, target_id=row.id, correlation_id=row.correlation_id)


async def test_unfinished_work_untouched_since_before_is_stuck(uow_factory, in_flight, world) -> None:
    tenant, account, paid = world
    old = T0 + timedelta(minutes=10)
    pending = payment(tenant.id, account.id, at=old, correlation_id="req-1")
    processing = payment(tenant.id, account.id, at=old + timedelta(seconds=1), status=PaymentStatus.PROCESSING)
    waiting_refund = refund(paid, at=old, correlation_id="req-r")
    await add(uow_factory, pending, processing, waiting_refund)
    assert await in_flight.stuck(BEFORE, 10) == [work(pending), work(processing), work(waiting_refund)]


async def test_finished_recent_and_scheduled_work_is_not_stuck(uow_factory, clock, in_flight, world) -> None:
    tenant, account, paid = world
    other = await open_account(uow_factory, clock, tenant.id, user_id="bob")
    old = T0 + timedelta(minutes=10)
    finished = [payment(tenant.id, account.id, at=old, status=status)
                for status in (PaymentStatus.COMPLETED, PaymentStatus.FAILED, PaymentStatus.CANCELLED)]
    transfer = payment(tenant.id, account.id, at=old, destination=other.id)  # settles at once: never work
    touched = payment(tenant.id, account.id, at=old, updated_at=BEFORE)  # `before` itself is not "since before"
    scheduled = payment(tenant.id, account.id, at=old, next_attempt_at=BEFORE + timedelta(seconds=1))
    refunds = [refund(paid, at=old, status=RefundStatus.SUCCEEDED), refund(paid, at=old, status=RefundStatus.FAILED),
               refund(paid, at=old, updated_at=BEFORE + timedelta(minutes=1)),
               refund(paid, at=old, next_attempt_at=BEFORE)]
    due = payment(tenant.id, account.id, at=old, next_attempt_at=BEFORE - timedelta(seconds=1))  # retry overdue
    await add(uow_factory, *finished, transfer, touched, scheduled, *refunds, due)
    assert await in_flight.stuck(BEFORE, 100) == [work(due)]


async def test_oldest_first_and_at_most_limit_of_each_kind(uow_factory, in_flight, world) -> None:
    tenant, account, paid = world
    payments = [payment(tenant.id, account.id, at=T0 + timedelta(minutes=n)) for n in (30, 10, 20)]
    refunds = [refund(paid, at=T0 + timedelta(minutes=n)) for n in (25, 5, 15)]
    await add(uow_factory, *payments, *refunds)
    stuck = await in_flight.stuck(BEFORE, 2)
    assert [w for w in stuck if w.kind == PAYMENT] == [work(payments[1]), work(payments[2])]
    assert [w for w in stuck if w.kind == REFUND] == [work(refunds[1]), work(refunds[2])]
    assert len(stuck) == 4
    assert await in_flight.stuck(T0 + timedelta(minutes=12), 10) == [work(payments[1]), work(refunds[1])]
    assert await in_flight.stuck(T0, 10) == []


async def test_work_waiting_in_the_dead_letter_queue_is_left_to_the_operator(uow_factory, in_flight, world) -> None:
    tenant, account, paid = world
    lettered = payment(tenant.id, account.id, at=T0 + timedelta(minutes=1))
    lettered_refund = refund(paid, at=T0 + timedelta(minutes=2))
    redriven = payment(tenant.id, account.id, at=T0 + timedelta(minutes=3))
    await add(uow_factory, lettered, lettered_refund, redriven)
    old_letter = letter(tenant.id, PAYMENT, redriven.id)
    await add(uow_factory, letter(tenant.id, PAYMENT, lettered.id), letter(tenant.id, REFUND, lettered_refund.id),
              old_letter)
    assert await in_flight.stuck(BEFORE, 10) == []
    async with uow_factory() as uow:  # an operator re-drove it: the letter no longer holds it back
        uow.dead_letters.mark_retried(old_letter)
    assert await in_flight.stuck(BEFORE, 10) == [work(redriven)]


async def test_every_tenants_work_is_found(uow_factory, clock, cleanup, in_flight, world) -> None:
    tenant, account, _ = world
    other = await new_tenant(uow_factory, clock)
    cleanup.tenants.add(other.id)
    theirs = await open_account(uow_factory, clock, other.id)
    mine = payment(tenant.id, account.id, at=T0 + timedelta(minutes=1))
    their = payment(other.id, theirs.id, at=T0 + timedelta(minutes=2), correlation_id="req-theirs")
    await add(uow_factory, mine, their)
    assert await in_flight.stuck(BEFORE, 10) == [work(mine), work(their)]
