"""The `Reconciliations` port: one suite over the in-memory store and PostgreSQL.

Settlement entries are made by the real use cases (a payment created, charged through an in-memory provider,
refunded), so `booked` is checked against what the ledger really holds.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from adapters.memory.locks import InMemoryLocks
from adapters.memory.providers import InMemoryProvider
from core.money import Money
from core.providers import ChargeRequest
from core.reconciliation import Item, MatchResult, Reconciliation, ReconciliationStatus, Reports
from core.usecases.external_payments import CreateExternalPayment, create_external_payment
from core.usecases.late_charges import LATE_DETECTED
from core.usecases.payment_attempt import process_payment
from core.usecases.reconciliation import Reconcile, fetch_reports, run_reconciliation
from core.usecases.refund_attempt import process_refund
from core.usecases.refund_requests import RequestRefund, request_refund
from core.usecases.worker_deps import Deps
from core.work import PAYMENT, REFUND, RetryPolicy, WorkItem
from tests.contract.conftest import new_tenant, open_account

pytestmark = pytest.mark.timeout(60)
DAY = date(2031, 5, 6)


def reconciliation(tenant_id: UUID, *, provider: str = "stripe", day: date = DAY,
                   status: ReconciliationStatus = ReconciliationStatus.COMPLETED,
                   at: datetime | None = None) -> Reconciliation:
    at = at or datetime.now(UTC)
    made = Reconciliation(id=uuid4(), tenant_id=tenant_id, provider=provider, day=day,
                          status=ReconciliationStatus.RUNNING, correlation_id="req-☃", created_at=at)
    if status == ReconciliationStatus.FAILED:
        made.fail("the settlement report could not be read: 503", at)
    else:
        counts = {MatchResult.MATCHED: 3, MatchResult.MISSING_IN_LEDGER: 1, MatchResult.MISSING_AT_PROVIDER: 1,
                  MatchResult.AMOUNT_MISMATCH: 0}
        items = [Item(result=MatchResult.MISSING_IN_LEDGER, kind="refund", idempotency_key="stray key é",
                      payment_id=uuid4(), provider_reference="re_1", ledger_amount=None, provider_amount=2**53 - 1,
                      currency="USD", provider_currency=None),
                 Item(result=MatchResult.MISSING_AT_PROVIDER, kind="charge", idempotency_key=str(uuid4()),
                      payment_id=None, provider_reference=None, ledger_amount=5, provider_amount=None,
                      currency="JPY", provider_currency="EUR")]
        made.complete(counts, items, at + timedelta(milliseconds=5))
    return made


async def add(uow_factory, *rows: Reconciliation) -> None:
    async with uow_factory() as uow:
        for row in rows:
            uow.reconciliations.add(row)


async def test_add_then_get_round_trips_every_field_in_its_tenant_only(uow_factory, tenant) -> None:
    made, failed = reconciliation(tenant.id), reconciliation(tenant.id, status=ReconciliationStatus.FAILED)
    await add(uow_factory, made, failed)
    async with uow_factory(read_only=True) as uow:
        assert await uow.reconciliations.get(tenant.id, made.id) == made
        assert await uow.reconciliations.get(tenant.id, failed.id) == failed
        assert await uow.reconciliations.get(uuid4(), made.id) is None
        assert await uow.reconciliations.get(tenant.id, uuid4()) is None


async def test_a_rolled_back_unit_of_work_stores_nothing(uow_factory, tenant) -> None:
    lost = reconciliation(tenant.id)
    with pytest.raises(RuntimeError):
        async with uow_factory() as uow:
            uow.reconciliations.add(lost)
            raise RuntimeError("roll back")
    async with uow_factory(read_only=True) as uow:
        assert await uow.reconciliations.get(tenant.id, lost.id) is None


async def settle(uow_factory, clock, tenant_id: UUID, source: UUID, amount: int, provider: InMemoryProvider):
    """A payment charged through `provider`: its settlement entry credits settlement:<provider>."""
    async with uow_factory() as uow:
        payment = await create_external_payment(CreateExternalPayment(
            tenant_id=tenant_id, source_account_id=source, amount=Money(amount, "USD"), provider=provider.name),
            uow=uow, clock=clock)
    deps = Deps(uow_factory=uow_factory, providers=lambda _: provider, locks=InMemoryLocks(), clock=clock,
                policy=RetryPolicy())
    outcome = await process_payment(WorkItem(kind=PAYMENT, tenant_id=tenant_id, target_id=payment.id), deps=deps)
    assert outcome.status == "completed"
    return payment, deps


async def test_booked_reads_the_settlement_entries_of_the_tenant_and_provider_in_the_window(
        uow_factory, clock, tenant) -> None:
    stripe, paypal = InMemoryProvider("stripe"), InMemoryProvider("paypal")
    source = await open_account(uow_factory, clock, tenant.id, 100_000)
    charged, deps = await settle(uow_factory, clock, tenant.id, source.id, 6_000, stripe)
    await settle(uow_factory, clock, tenant.id, source.id, 1_000, paypal)
    async with uow_factory() as uow:
        refund = await request_refund(RequestRefund(tenant_id=tenant.id, payment_id=charged.id, amount="25.00"),
                                      uow=uow, clock=clock)
    await process_refund(WorkItem(kind=REFUND, tenant_id=tenant.id, target_id=refund.id), deps=deps)
    other = await new_tenant(uow_factory, clock)
    other_source = await open_account(uow_factory, clock, other.id, 100_000)
    await settle(uow_factory, clock, other.id, other_source.id, 3_000, stripe)
    now = clock.now()
    async with uow_factory(read_only=True) as uow:
        found = await uow.reconciliations.booked(tenant.id, "stripe", now - timedelta(hours=1), now)
        earlier = await uow.reconciliations.booked(tenant.id, "stripe", now - timedelta(hours=2),
                                                   now - timedelta(hours=1))
        stored = await uow.payments.get(tenant.id, charged.id)
    assert earlier == []
    assert sorted((b.kind, b.idempotency_key, b.payment_id, b.reference, b.amount, b.currency) for b in found) == [
        ("charge", str(charged.id), charged.id, stored.provider_reference, 6_000, "USD"),
        ("refund", str(refund.id), charged.id, stripe.refunds[str(refund.id)].reference, 2_500, "USD")]
    assert all(now - timedelta(hours=1) <= b.booked_at < now and b.booked_at.utcoffset() == timedelta(0)
               for b in found)


async def test_owners_tell_whose_payment_an_id_is_across_tenants(uow_factory, clock, tenant) -> None:
    stripe = InMemoryProvider("stripe")
    other = await new_tenant(uow_factory, clock)
    mine, _ = await settle(uow_factory, clock, tenant.id, (await open_account(uow_factory, clock, tenant.id,
                                                                              10_000)).id, 100, stripe)
    theirs, _ = await settle(uow_factory, clock, other.id, (await open_account(uow_factory, clock, other.id,
                                                                               10_000)).id, 100, stripe)
    async with uow_factory(read_only=True) as uow:
        assert await uow.reconciliations.owners({mine.id, theirs.id, uuid4()}) == {mine.id: tenant.id,
                                                                                 theirs.id: other.id}
        assert await uow.reconciliations.owners(set()) == {}


async def test_tenants_and_due_name_who_settles_through_a_provider_and_is_not_reconciled_yet(
        uow_factory, clock) -> None:
    stripe = InMemoryProvider("stripe")
    first, second, idle = [await new_tenant(uow_factory, clock) for _ in range(3)]
    for tenant in (first, second):
        await settle(uow_factory, clock, tenant.id, (await open_account(uow_factory, clock, tenant.id,
                                                                        10_000)).id, 100, stripe)
    mine = {first.id, second.id, idle.id}
    now = datetime.now(UTC)
    async with uow_factory(read_only=True) as uow:
        assert [t for t in await uow.reconciliations.tenants("stripe") if t in mine] == [first.id, second.id]
        assert [t for t in await uow.reconciliations.tenants("paypal") if t in mine] == []
        assert await uow.reconciliations.tenants("stripe", name=idle.name) == [idle.id]
        assert await uow.reconciliations.tenants("stripe", name=f"no-such-{uuid4()}") == []
    await add(uow_factory, reconciliation(first.id, day=DAY),
              reconciliation(second.id, day=DAY, status=ReconciliationStatus.FAILED, at=now))
    async with uow_factory(read_only=True) as uow:
        recently = await uow.reconciliations.due("stripe", DAY, failed_before=now - timedelta(minutes=5))
        later = await uow.reconciliations.due("stripe", DAY, failed_before=now + timedelta(minutes=5))
        other_day = await uow.reconciliations.due("stripe", DAY + timedelta(days=1), failed_before=now)
        paypal = await uow.reconciliations.due("paypal", DAY, failed_before=now)
    assert [t for t in recently if t in mine] == []  # one completed, one failed a moment ago
    assert [t for t in later if t in mine] == [second.id]  # the failure is old enough to try again
    assert [t for t in other_day if t in mine] == [first.id, second.id]
    assert [t for t in paypal if t in mine] == []


async def _waits_for(pool: Any, holder: int, deadline: float = 10.0) -> None:
    """Until another session waits for a lock that the backend `holder` holds, or fails after `deadline` s."""
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline
    while not await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                                  holder):
        assert loop.time() < until, "nobody waited for the group's lock"
        await asyncio.sleep(0.02)


async def test_on_postgresql_reconciliation_and_a_group_of_completions_lock_payments_in_one_order(
        services, clock) -> None:
    """A group of completions locks its payments in one statement, in ascending ids; a reconciliation flagging late
    charges locks its payments one by one. Half way through the group's statement (the lower id locked) the
    reconciliation starts and must wait for that same lower id, holding nothing the group still needs: in the
    report's order (descending here) it would hold the higher id and the two would deadlock."""
    uow_factory = services.uow_factory
    tenant = await new_tenant(uow_factory, clock)
    source = await open_account(uow_factory, clock, tenant.id, 10_000)
    stripe = InMemoryProvider("stripe", clock=clock.now)
    deps = Deps(uow_factory=uow_factory, providers=lambda _: stripe, locks=InMemoryLocks(), clock=clock,
                policy=RetryPolicy())
    failed = []
    for _ in range(2):
        async with uow_factory() as uow:
            payment = await create_external_payment(CreateExternalPayment(
                tenant_id=tenant.id, source_account_id=source.id, amount=Money(1_000, "USD"), provider="stripe",
                metadata={"mock_outcome": "decline"}), uow=uow, clock=clock)
        outcome = await process_payment(WorkItem(kind=PAYMENT, tenant_id=tenant.id, target_id=payment.id), deps=deps)
        assert outcome.status == "failed"
        failed.append(payment)
    low, high = sorted(failed, key=lambda p: p.id.int)
    for payment in (high, low):  # the declines forgotten; both charge late, the higher id first
        del stripe.charges[str(payment.id)]
        await stripe.charge(ChargeRequest(payment_id=payment.id, amount=1_000, currency="USD", description=None,
                                          metadata={}))
    today = clock.now().date()
    reports = await fetch_reports(stripe, today, today=today)
    assert isinstance(reports, Reports)
    assert [line.charge_key for line in reports.items] == [str(high.id), str(low.id)]
    cmd = Reconcile(tenant_id=tenant.id, provider="stripe", day=today, correlation_id="req-race")

    reconciling: asyncio.Future[Any] | None = None
    try:
        async with uow_factory() as group:
            assert await group.payments.lock(tenant.id, low.id) is not None  # the group's statement, half way
            reconciling = asyncio.ensure_future(run_reconciliation(cmd, reports, uow_factory=uow_factory,
                                                                   clock=clock, grace=timedelta(hours=1)))
            holder = group._session.conn.get_server_pid()  # type: ignore[attr-defined]
            await _waits_for(services.pool, holder)  # the reconciliation, waiting for `low`
            locked = await asyncio.wait_for(group.payments.lock_all(tenant.id, [low.id, high.id]), 10)
            assert set(locked) == {low.id, high.id}  # no deadlock: nothing of the group's was taken
        done = await asyncio.wait_for(reconciling, 10)
    finally:
        if reconciling is not None and not reconciling.done():
            reconciling.cancel()
    assert {(item.result, item.payment_id) for item in done.items} == {
        (MatchResult.MISSING_IN_LEDGER, low.id), (MatchResult.MISSING_IN_LEDGER, high.id)}
    async with uow_factory(read_only=True) as uow:
        for payment in (low, high):
            events = [e.type for e in await uow.payments.events(tenant.id, payment.id)]
            assert events.count(LATE_DETECTED) == 1, events
