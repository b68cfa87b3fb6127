"""Reconciliation on the in-memory adapters: matching a settlement report against the ledger, the midnight
margins, late charges of failed payments handed to the late-charge path, and the daily run."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from adapters.memory import InMemoryStore
from adapters.memory.lease import InMemoryLease
from adapters.memory.providers import InMemoryProvider
from adapters.memory.table import Table
from core.errors import ValidationFailed
from core.events import work_for
from core.providers import ProviderUnavailable, RefundRequest
from core.reconciliation import Booked, MatchResult, Reports, Settled, match
from core.usecases.daily_reconciliation import DailyReconciliation, reconcile_yesterday
from core.usecases.late_charges import LATE_DETECTED, LATE_REVERSED, reversal_id
from core.usecases.late_refunds import LATE_REFUND_SUSPECTED
from core.usecases.reconciliation import Reconcile, check_reconcile, fetch_reports, run_reconciliation
from core.work import PAYMENT, REFUND, RetryPolicy
from tests.unit.conftest import FakeClock
from tests.unit.payments_fixtures import World

DAY = date(2025, 3, 10)
NOON = datetime(2025, 3, 10, 12, tzinfo=UTC)
GRACE = timedelta(hours=1)


def settled(key: str, amount: int = 1_000, at: datetime = NOON, *, kind: str = "charge", charge_key: str = "",
            currency: str = "USD") -> Settled:
    return Settled(kind=kind, idempotency_key=key, charge_key=charge_key or key, reference=f"ref-{key}",
                   charge_reference="ref-c" if kind == "refund" else None, amount=amount, currency=currency,
                   settled_at=at)


def booked(key: str, amount: int = 1_000, at: datetime = NOON, *, currency: str = "USD") -> Booked:
    return Booked(kind="charge", idempotency_key=key, payment_id=uuid4(), reference=f"ref-{key}", amount=amount,
                  currency=currency, booked_at=at)


def results(items: list) -> dict[str, str]:
    return {item.idempotency_key: item.result for item in items}


def test_each_result_is_found_and_only_mismatches_are_listed() -> None:
    report = Reports(day=DAY, items=[settled("same"), settled("stray"), settled("more", 1_200),
                                     settled("euro", currency="EUR")])
    ledger = [booked("same"), booked("more"), booked("euro"), booked("lost")]
    counts, items = match(report, ledger, grace=GRACE)
    assert counts == {MatchResult.MATCHED: 1, MatchResult.MISSING_IN_LEDGER: 1, MatchResult.AMOUNT_MISMATCH: 2,
                      MatchResult.MISSING_AT_PROVIDER: 1}
    assert results(items) == {"stray": "missing_in_ledger", "more": "amount_mismatch", "euro": "amount_mismatch",
                              "lost": "missing_at_provider"}
    more = next(i for i in items if i.idempotency_key == "more")
    assert (more.ledger_amount, more.provider_amount, more.provider_currency) == (1_000, 1_200, None)
    euro = next(i for i in items if i.idempotency_key == "euro")
    assert (euro.currency, euro.provider_currency) == ("USD", "EUR")
    stray = next(i for i in items if i.idempotency_key == "stray")
    assert (stray.payment_id, stray.ledger_amount, stray.provider_amount) == (None, None, 1_000)


def test_a_charge_settled_before_midnight_and_booked_after_it_matches_on_its_day_and_not_the_next() -> None:
    late_evening = datetime(2025, 3, 10, 23, 59, 59, tzinfo=UTC)
    after_midnight = datetime(2025, 3, 11, 0, 0, 1, tzinfo=UTC)
    line, entry = settled("edge", at=late_evening), booked("edge", at=after_midnight)
    counts, items = match(Reports(day=DAY, items=[line]), [entry], grace=GRACE)
    assert (counts[MatchResult.MATCHED], items) == (1, [])
    # the next day: its ledger holds the entry, its report does not, the previous day's does
    next_day = Reports(day=DAY + timedelta(days=1), items=[], previous=[line])
    assert match(next_day, [entry], grace=GRACE) == (dict.fromkeys(MatchResult, 0), [])
    # without the previous day's report it would be missing at the provider: the neighbour is what saves it
    alone = match(Reports(day=DAY + timedelta(days=1), items=[]), [entry], grace=GRACE)
    assert results(alone[1]) == {"edge": "missing_at_provider"}


def test_entries_in_the_margins_or_beyond_the_grace_belong_to_other_days() -> None:
    margin = booked("margin", at=datetime(2025, 3, 11, 0, 30, tzinfo=UTC))  # unmatched, in the next day
    far = booked("far", at=datetime(2025, 3, 11, 3, tzinfo=UTC))  # beyond the grace: not even read
    line = settled("far", at=datetime(2025, 3, 10, 23, tzinfo=UTC))
    counts, items = match(Reports(day=DAY, items=[line]), [margin, far], grace=GRACE)
    assert results(items) == {"far": "missing_in_ledger"}
    assert counts[MatchResult.MISSING_AT_PROVIDER] == 0
    # an entry of the day that the next day's report has, but far from midnight, is missing here
    noon_entry = booked("drift", at=NOON)
    found = match(Reports(day=DAY, items=[], following=[settled("drift")]), [noon_entry], grace=GRACE)
    assert results(found[1]) == {"drift": "missing_at_provider"}


def test_a_reconciliation_needs_a_known_provider_and_a_day_not_to_come() -> None:
    tenant = uuid4()
    check_reconcile(Reconcile(tenant_id=tenant, provider="stripe", day=DAY), today=DAY)
    with pytest.raises(ValidationFailed) as refused:
        check_reconcile(Reconcile(tenant_id=tenant, provider="visa", day=DAY + timedelta(days=1)), today=DAY)
    assert [e.field for e in refused.value.errors] == ["provider", "date"]
    with pytest.raises(ValidationFailed):
        check_reconcile(Reconcile(tenant_id=tenant, provider="paypal", day=date(1999, 12, 31)), today=DAY)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOON)


@pytest.fixture
async def world(store: InMemoryStore, clock: FakeClock) -> World:
    async with store() as uow:
        tenant = await uow.tenants.get_or_create(f"recon-{uuid4().hex[:6]}", clock.now())
    providers = {name: InMemoryProvider(name, clock=clock.now) for name in ("stripe", "paypal")}
    return World(store, clock, tenant.id, policy=RetryPolicy(max_attempts=2), providers=providers)


async def reconcile(world: World, day: date = DAY, provider: str = "stripe"):
    cmd = Reconcile(tenant_id=world.tenant_id, provider=provider, day=day, correlation_id="req-recon")
    reports = await fetch_reports(world.providers[provider], day, today=world.clock.now().date())
    return await run_reconciliation(cmd, reports, uow_factory=world.store, clock=world.clock, grace=GRACE)


async def test_payments_and_refunds_the_ledger_settled_all_match(world: World) -> None:
    source = await world.account(50_000)
    paid = await world.completed(source.id, 10_000)
    refund = await world.refund(paid.id, "30.00")
    await world.process_refund(refund.id)
    done = await reconcile(world)
    assert (done.status, done.summary[MatchResult.MATCHED], done.mismatches, done.items) == ("completed", 2, 0, [])
    async with world.store(read_only=True) as uow:
        stored = await uow.reconciliations.get(world.tenant_id, done.id)
        assert await uow.reconciliations.get(uuid4(), done.id) is None  # another tenant's: missing
    assert stored == done
    assert (await reconcile(world, DAY - timedelta(days=1))).summary[MatchResult.MATCHED] == 0


async def test_stray_charges_missed_refunds_and_misreported_amounts_are_each_reported(world: World) -> None:
    source = await world.account(50_000)
    paid = await world.completed(source.id, 10_000)
    misreported = await world.completed(source.id, 5_000, mock_settled_amount="4999")
    stripe = world.providers["stripe"]
    stray = await stripe.charge(world_charge(uuid4(), 777))
    missed = await stripe.refund(RefundRequest(refund_id=uuid4(), payment_id=paid.id, amount=2_000, currency="USD",
                                               charge_reference=paid.provider_reference or "", reason=None,
                                               metadata={}))
    done = await reconcile(world)
    by_key = {item.idempotency_key: item for item in done.items}
    assert done.summary == {MatchResult.MATCHED: 1, MatchResult.MISSING_IN_LEDGER: 2,
                            MatchResult.MISSING_AT_PROVIDER: 0, MatchResult.AMOUNT_MISMATCH: 1}
    stray_item = next(i for i in done.items if i.provider_reference == stray.reference)
    assert (stray_item.result, stray_item.kind, stray_item.payment_id) == ("missing_in_ledger", "charge", None)
    missed_item = next(i for i in done.items if i.provider_reference == missed.reference)
    assert (missed_item.result, missed_item.kind, missed_item.payment_id) == ("missing_in_ledger", "refund", paid.id)
    amount = by_key[str(misreported.id)]
    assert (amount.result, amount.ledger_amount, amount.provider_amount) == ("amount_mismatch", 5_000, 4_999)


def world_charge(payment_id: UUID, amount: int):
    from core.providers import ChargeRequest

    return ChargeRequest(payment_id=payment_id, amount=amount, currency="USD", description=None, metadata={})


async def test_a_charge_for_a_failed_payment_is_flagged_and_refunded_by_the_late_charge_path(world: World) -> None:
    source = await world.account(50_000)
    failed = await world.pay(source.id, 3_000, metadata={"mock_outcome": "decline"})
    assert (await world.process(failed.id)).status == "failed"
    stripe = world.providers["stripe"]
    del stripe.charges[str(failed.id)]  # the decline forgotten: the key charges now, as a late answer would
    late = await stripe.charge(world_charge(failed.id, 3_000))
    done = await reconcile(world)
    assert [(i.result, i.payment_id, i.provider_reference) for i in done.items] == [
        ("missing_in_ledger", failed.id, late.reference)]
    assert (await world.event_types(failed.id))[-1] == LATE_DETECTED
    message = next(m for m in world.store.outbox if m.topic == LATE_DETECTED and m.aggregate_id == failed.id)
    work = work_for(message)
    assert work is not None and (work.kind, work.target_id) == (PAYMENT, failed.id)
    # a second run does not flag it twice
    await reconcile(world)
    assert (await world.event_types(failed.id)).count(LATE_DETECTED) == 1
    # the payment's work (started by that event) refunds the charge in full: the late-charge path
    outcome = await world.process(failed.id)
    assert outcome.result == "done" and (await world.event_types(failed.id))[-1] == LATE_REVERSED
    reversal = stripe.refunds[str(reversal_id(failed.id, late.reference))]
    assert (reversal.amount, reversal.charge_reference) == (3_000, late.reference)
    assert world.balance(source.id) == 50_000  # the ledger returned the money when it failed: nothing moves
    # the charge and its reversal are now both known to the payment's history: everything matches
    again = await reconcile(world)
    assert (again.summary[MatchResult.MATCHED], again.items) == (2, [])
    await world.check()


async def test_late_charges_lock_their_payments_in_ascending_ids_whatever_the_reports_order(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # as a worker's group of completions locks several payments (Payments.lock_all): the two cannot deadlock
    source = await world.account(50_000)
    failed = []
    for _ in range(3):
        payment = await world.pay(source.id, 1_000, metadata={"mock_outcome": "decline"})
        assert (await world.process(payment.id)).status == "failed"
        failed.append(payment)
    stripe = world.providers["stripe"]
    for payment in reversed(failed):  # charged late in descending ids: the report lists them so
        del stripe.charges[str(payment.id)]
        await stripe.charge(world_charge(payment.id, 1_000))
    locked: list[UUID] = []
    real_lock = Table.lock

    async def spy(table: Table, tenant_id: UUID, row_id: UUID):  # type: ignore[no-untyped-def]
        locked.append(row_id)
        return await real_lock(table, tenant_id, row_id)

    monkeypatch.setattr(Table, "lock", spy)
    done = await reconcile(world)
    assert [i.payment_id for i in done.items] == [p.id for p in reversed(failed)]  # the report's order
    assert [row for row in locked if row in {p.id for p in failed}] == sorted(p.id for p in failed)


async def test_a_refund_recorded_failed_that_the_provider_settled_is_posted_by_the_late_refund_path(
        world: World) -> None:
    source = await world.account(50_000)
    paid = await world.completed(source.id, 10_000)
    stripe = world.providers["stripe"]
    refund = await world.refund(paid.id, "40.00")
    stripe.available = False  # its only attempt fails: recorded failed (retries exhausted), not declined
    world.policy = RetryPolicy(max_attempts=1)
    assert (await world.process_refund(refund.id)).status == "failed"
    stripe.available = True
    await stripe.refund(RefundRequest(refund_id=refund.id, payment_id=paid.id, amount=4_000, currency="USD",
                                      charge_reference=paid.provider_reference or "", reason=None, metadata={}))
    assert world.balance(source.id) == 40_000  # the ledger does not know yet

    done = await reconcile(world)

    assert [(i.result, i.kind, i.idempotency_key) for i in done.items] == [
        ("missing_in_ledger", "refund", str(refund.id))]
    assert (await world.event_types(paid.id))[-1] == LATE_REFUND_SUSPECTED
    message = next(m for m in world.store.outbox if m.topic == LATE_REFUND_SUSPECTED)
    work = work_for(message)
    assert work is not None and (work.kind, work.target_id) == (REFUND, refund.id)
    await reconcile(world)  # a second run does not announce it twice
    assert (await world.event_types(paid.id)).count(LATE_REFUND_SUSPECTED) == 1
    # the refund's work (started by that event) looks it up and posts it: the late-refund path, once
    refunds_asked = stripe.calls.count(("refund", str(refund.id)))
    assert (await world.process_refund(refund.id)).status == "succeeded"
    assert world.balance(source.id) == 44_000
    assert stripe.calls.count(("refund", str(refund.id))) == refunds_asked  # looked up, never refunded again
    assert stripe.calls.count(("find_refund", str(refund.id))) >= 1
    again = await reconcile(world)
    assert (again.summary[MatchResult.MATCHED], again.items) == (2, [])
    await world.check()


async def test_a_report_that_cannot_be_read_is_a_failed_reconciliation(world: World) -> None:
    world.providers["stripe"].available = False
    done = await reconcile(world)
    assert done.status == "failed" and "could not be read" in (done.failure_reason or "")
    assert done.items == [] and done.mismatches == 0 and done.completed_at is not None


async def test_other_tenants_payments_are_left_out_and_strays_are_everyones(world: World, store, clock) -> None:
    source = await world.account(50_000)
    await world.completed(source.id, 10_000)
    async with store() as uow:
        other_tenant = await uow.tenants.get_or_create("recon-other", clock.now())
    other = World(store, clock, other_tenant.id, providers=world.providers)
    other_source = await other.account(50_000)
    await other.completed(other_source.id, 4_000)
    await world.providers["stripe"].charge(world_charge(uuid4(), 99))
    mine, theirs = await reconcile(world), await reconcile(other)
    assert mine.summary[MatchResult.MATCHED] == theirs.summary[MatchResult.MATCHED] == 1
    assert [i.provider_amount for i in mine.items] == [i.provider_amount for i in theirs.items] == [99]


async def test_the_daily_run_reconciles_yesterday_once_per_provider_and_tenant(world: World) -> None:
    source = await world.account(50_000)
    await world.completed(source.id, 10_000)
    await world.completed(source.id, 2_000)  # paypal below
    paypal = await world.pay(source.id, 1_500, provider="paypal")
    await world.process(paypal.id)
    lease, policy = InMemoryLease(world.store), DailyReconciliation(run_after=timedelta(hours=2))

    async def daily():
        return await reconcile_yesterday(lease=lease, owner="w1", ttl_seconds=60, uow_factory=world.store,
                                         providers=lambda name: world.providers[name], clock=world.clock,
                                         policy=policy)

    world.clock.advance(timedelta(hours=12, minutes=30))  # 00:30 the next day: too early
    assert await daily() == []
    world.clock.advance(timedelta(hours=2))
    made = await daily()
    assert sorted((r.provider, r.day, r.summary[MatchResult.MATCHED]) for r in made) == [
        ("paypal", DAY, 1), ("stripe", DAY, 2)]
    assert await daily() == []  # done for the day
    assert await reconcile_yesterday(lease=lease, owner="w2", ttl_seconds=60, uow_factory=world.store,
                                     providers=lambda name: world.providers[name], clock=world.clock,
                                     policy=policy) is None  # another worker holds the lease
    disabled = DailyReconciliation(enabled=False)
    world.clock.advance(timedelta(days=1))
    assert await reconcile_yesterday(lease=lease, owner="w1", ttl_seconds=60, uow_factory=world.store,
                                     providers=lambda name: world.providers[name], clock=world.clock,
                                     policy=disabled) == []


async def test_a_failed_daily_run_is_tried_again_after_retry_after(world: World) -> None:
    source = await world.account(50_000)
    await world.completed(source.id, 10_000)
    lease = InMemoryLease(world.store)
    policy = DailyReconciliation(run_after=timedelta(0), retry_after=timedelta(hours=1))
    world.clock.advance(timedelta(hours=13))
    world.providers["stripe"].fail_next = 1

    async def daily():
        return await reconcile_yesterday(lease=lease, owner="w1", ttl_seconds=60, uow_factory=world.store,
                                         providers=lambda name: world.providers[name], clock=world.clock,
                                         policy=policy)

    assert [r.status for r in await daily()] == ["failed"]
    assert await daily() == []  # not before retry_after
    world.clock.advance(timedelta(hours=1, seconds=1))
    assert [(r.status, r.summary[MatchResult.MATCHED]) for r in await daily()] == [("completed", 1)]


async def test_fetching_asks_no_report_of_a_day_to_come(world: World) -> None:
    stripe = world.providers["stripe"]
    await fetch_reports(stripe, DAY, today=DAY)
    assert [call for call in stripe.calls if call[0] == "settlements"] == [
        ("settlements", "2025-03-10"), ("settlements", "2025-03-09")]
    stripe.available = False
    assert isinstance(await fetch_reports(stripe, DAY, today=DAY), ProviderUnavailable)
