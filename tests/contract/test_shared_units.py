"""Units of work that a worker's concurrent payment attempts share (issue 12), on both backends: payments read or
locked several at a time, each attempt's result its own, a failing member failing alone, the ledger unchanged in
what it holds; on PostgreSQL, a group's rows read once."""

from __future__ import annotations

import asyncio
import random
from typing import Any
from uuid import UUID

import pytest

from adapters.memory.locks import InMemoryLocks
from adapters.memory.providers import InMemoryProvider
from adapters.postgres.uow import PgUnitOfWork
from core.accounts import CLEARING, settlement
from core.ids import new_id
from core.money import Money
from core.payments import Payment, PaymentStatus
from core.ports import LedgerAudit, UnitOfWork, UnitOfWorkFactory
from core.usecases.announcements import announce_payment
from core.usecases.external_payments import CreateExternalPayment, create_external_payment
from core.usecases.payment_attempt import process_payment
from core.usecases.postings import move
from core.usecases.shared_attempts import PaymentClaim, lock_for_completion, read_payments, shared_attempts
from core.usecases.shared_units import SharedUnits
from core.usecases.worker_deps import Deps, WorkResult
from core.work import PAYMENT, RetryPolicy, WorkItem
from tests.contract.conftest import balance, open_account, system_balance
from tests.contract.recording import RecordingPool

pytestmark = pytest.mark.timeout(60)


async def _created(uow_factory: UnitOfWorkFactory, clock: Any, tenant_id: UUID, source: UUID,
                   providers: list[str]) -> list[Payment]:
    made = []
    for name in providers:
        async with uow_factory() as uow:
            made.append(await create_external_payment(CreateExternalPayment(
                tenant_id=tenant_id, source_account_id=source, amount=Money(1_000, "USD"), provider=name),
                uow=uow, clock=clock))
    return made


async def _stored(uow_factory: UnitOfWorkFactory, tenant_id: UUID, payment_id: UUID) -> Payment:
    async with uow_factory(read_only=True) as uow:
        found = await uow.payments.get(tenant_id, payment_id)
    assert found is not None
    return found


async def test_get_all_and_lock_all_return_the_payments_found(uow_factory, clock, tenant) -> None:
    source = await open_account(uow_factory, clock, tenant.id, 10_000)
    made = await _created(uow_factory, clock, tenant.id, source.id, ["stripe", "paypal"])
    wanted = [made[1].id, new_id(), made[0].id]
    async with uow_factory(optimistic=True) as uow:
        read = await uow.payments.get_all(tenant.id, wanted)
        assert {key: value.status for key, value in read.items()} == {p.id: PaymentStatus.PENDING for p in made}
        assert (await uow.payments.get(tenant.id, made[0].id)).id == made[0].id
    async with uow_factory() as uow:
        locked = await uow.payments.lock_all(tenant.id, wanted)
        assert set(locked) == {p.id for p in made}
        again = await uow.payments.lock(tenant.id, made[1].id)
        assert again is not None and again.id == made[1].id
        assert await uow.payments.lock(tenant.id, wanted[1]) is None
    async with uow_factory() as uow:  # another tenant's ids find nothing
        assert await uow.payments.lock_all(new_id(), wanted) == {}


async def test_attempts_that_wait_together_share_their_transactions_and_each_settles(
    uow_factory, clock, tenant, audit: LedgerAudit, services
) -> None:
    source = await open_account(uow_factory, clock, tenant.id, 100_000)
    names = ["stripe", "paypal"] * 4
    made = await _created(uow_factory, clock, tenant.id, source.id, names)
    providers = {name: InMemoryProvider(name) for name in ("stripe", "paypal")}
    sizes: dict[str, list[int]] = {"begin": [], "completion": []}
    deps = Deps(uow_factory=uow_factory, providers=lambda name: providers[name], locks=InMemoryLocks(), clock=clock,
                policy=RetryPolicy(), shared=shared_attempts(uow_factory, observe=lambda s, n: sizes[s].append(n)))
    outcomes = await asyncio.gather(*(
        process_payment(WorkItem(kind=PAYMENT, tenant_id=tenant.id, target_id=p.id), deps=deps) for p in made))
    assert [(o.result, o.status) for o in outcomes] == [(WorkResult.DONE, PaymentStatus.COMPLETED)] * len(made)
    assert max(sizes["begin"]) > 1 and max(sizes["completion"]) > 1, sizes  # they did share
    assert sum(sizes["begin"]) == sum(sizes["completion"]) == len(made)
    for p in made:
        stored = await _stored(uow_factory, tenant.id, p.id)
        assert (stored.status, stored.attempts) == (PaymentStatus.COMPLETED, 1)
        async with uow_factory(read_only=True) as uow:
            assert [e.type for e in await uow.payments.events(tenant.id, p.id)] == [
                "payment.created", "payment.processing", "payment.completed"]
    assert await balance(uow_factory, tenant.id, source.id) == 100_000 - 8_000
    assert [await system_balance(uow_factory, services, tenant.id, kind)
            for kind in (settlement("stripe"), settlement("paypal"), CLEARING)] == [4_000, 4_000, 0]
    assert {len(providers[name].charges) for name in providers} == {4}
    assert await audit.drift() == []


async def test_a_member_that_fails_fails_alone_and_the_others_keep_their_results(uow_factory, clock, tenant) -> None:
    source = await open_account(uow_factory, clock, tenant.id, 10_000)
    made = await _created(uow_factory, clock, tenant.id, source.id, ["stripe"] * 3)
    units = SharedUnits[PaymentClaim](uow_factory=uow_factory, optimistic=True, prepare=read_payments)

    def begin(payment_id: UUID, *, fail: bool = False) -> Any:
        async def work(uow: UnitOfWork) -> str:
            found = await uow.payments.get(tenant.id, payment_id)
            assert found is not None
            found.transition(PaymentStatus.PROCESSING, clock.now())
            uow.payments.save(found)
            announce_payment(uow, found, "payment.processing", clock.now())
            if fail:
                raise ValueError("this one's own bug")
            return f"begun {payment_id}"
        return units.run(work, tenant_id=tenant.id, claim=PaymentClaim(payment_id=payment_id))

    first, failing, last = await asyncio.gather(begin(made[0].id), begin(made[1].id, fail=True), begin(made[2].id),
                                                return_exceptions=True)
    assert (first, last) == (f"begun {made[0].id}", f"begun {made[2].id}")
    assert isinstance(failing, ValueError)
    statuses = [(await _stored(uow_factory, tenant.id, p.id)).status for p in made]
    assert statuses == [PaymentStatus.PROCESSING, PaymentStatus.PENDING, PaymentStatus.PROCESSING]


async def test_a_group_that_conflicts_at_its_write_runs_each_alone(uow_factory, clock, tenant) -> None:
    """One member read a payment that changed before the group wrote: the shared write is refused whole, then each
    runs again alone, and only that member sees the conflict."""
    source = await open_account(uow_factory, clock, tenant.id, 10_000)
    made = await _created(uow_factory, clock, tenant.id, source.id, ["stripe"] * 3)
    units = SharedUnits[PaymentClaim](uow_factory=uow_factory, optimistic=True, prepare=read_payments)
    runs: list[UUID] = []

    def begin(payment_id: UUID, *, meddle: bool = False) -> Any:
        async def work(uow: UnitOfWork) -> PaymentStatus:
            runs.append(payment_id)
            found = await uow.payments.get(tenant.id, payment_id)
            assert found is not None
            if found.status != PaymentStatus.PENDING:
                return found.status
            if meddle and runs.count(payment_id) == 1:  # in the group: someone cancels it between read and write
                async with uow_factory() as other:
                    cancelled = await other.payments.lock(tenant.id, payment_id)
                    assert cancelled is not None
                    cancelled.transition(PaymentStatus.CANCELLED, clock.now())
                    other.payments.save(cancelled)
                    announce_payment(other, cancelled, "payment.cancelled", clock.now())
            found.transition(PaymentStatus.PROCESSING, clock.now())
            uow.payments.save(found)
            announce_payment(uow, found, "payment.processing", clock.now())
            return found.status
        return units.run(work, tenant_id=tenant.id, claim=PaymentClaim(payment_id=payment_id))

    head = asyncio.ensure_future(begin(made[0].id))  # runs alone at once; the next two queue behind it, together
    results = await asyncio.gather(begin(made[1].id), begin(made[2].id, meddle=True))
    assert await head == PaymentStatus.PROCESSING
    assert results == [PaymentStatus.PROCESSING, PaymentStatus.CANCELLED]  # alone, the third finds it cancelled
    assert runs == [made[0].id, made[1].id, made[2].id, made[1].id, made[2].id]  # the group's run, then each alone
    statuses = [(await _stored(uow_factory, tenant.id, p.id)).status for p in made]
    assert statuses == [PaymentStatus.PROCESSING, PaymentStatus.PROCESSING, PaymentStatus.CANCELLED]
    async with uow_factory(read_only=True) as uow:
        assert [e.type for e in await uow.payments.events(tenant.id, made[2].id)] == [
            "payment.created", "payment.cancelled"]


async def test_a_waiter_that_stops_waiting_does_not_stop_its_group(uow_factory, clock, tenant) -> None:
    source = await open_account(uow_factory, clock, tenant.id, 10_000)
    made = await _created(uow_factory, clock, tenant.id, source.id, ["stripe"] * 3)
    units = SharedUnits[PaymentClaim](uow_factory=uow_factory, optimistic=True, prepare=read_payments)
    release = asyncio.Event()

    def begin(payment_id: UUID) -> Any:
        async def work(uow: UnitOfWork) -> UUID:
            await release.wait()
            found = await uow.payments.get(tenant.id, payment_id)
            assert found is not None
            found.transition(PaymentStatus.PROCESSING, clock.now())
            uow.payments.save(found)
            announce_payment(uow, found, "payment.processing", clock.now())
            return payment_id
        return asyncio.ensure_future(units.run(work, tenant_id=tenant.id, claim=PaymentClaim(payment_id=payment_id)))

    waiting = [begin(p.id) for p in made]
    await asyncio.sleep(0)
    waiting[1].cancel()
    release.set()
    assert [await waiting[0], await waiting[2]] == [made[0].id, made[2].id]
    with pytest.raises(asyncio.CancelledError):
        await waiting[1]
    statuses = {(await _stored(uow_factory, tenant.id, p.id)).status for p in made}
    assert statuses == {PaymentStatus.PROCESSING}  # its work ran in the group all the same (what a retry sees)


async def test_on_postgresql_a_group_reads_and_locks_its_rows_once(services, clock, monkeypatch) -> None:
    """The group's prepare locks every payment in one statement and the system accounts in one more; each member's
    own `lock` and `lock_systems` then send nothing: BEGIN, two reads, the write and COMMIT for three completions."""
    monkeypatch.setattr(random, "randrange", lambda stop: 0)  # every unit of work the same system rows (made once)
    uow_factory = services.uow_factory
    async with uow_factory() as uow:
        tenant = await uow.tenants.get_or_create(f"contract-{new_id().hex[:12]}", clock.now())
    source = await open_account(uow_factory, clock, tenant.id, 10_000)
    made = await _created(uow_factory, clock, tenant.id, source.id, ["stripe", "paypal", "stripe"])
    for _ in range(2):  # the system rows exist, and the process knows it (the first charge of a provider creates
        async with uow_factory() as uow:  # its row; a later unit of work finding it there needs no insert first)
            await uow.accounts.lock_systems(tenant.id, [settlement("paypal"), settlement("stripe"), CLEARING], "USD")
    async with uow_factory(optimistic=True) as uow:  # processing, as the begin leaves them
        for p in (await uow.payments.get_all(tenant.id, [p.id for p in made])).values():
            p.transition(PaymentStatus.PROCESSING, clock.now())
            uow.payments.save(p)
            announce_payment(uow, p, "payment.processing", clock.now())
    pool = RecordingPool(services.pool)
    claims = [PaymentClaim(payment_id=p.id, currency="USD", provider=p.provider) for p in made]
    async with PgUnitOfWork(pool, read_only=False, acquire_timeout=5,  # type: ignore[arg-type]
                            secret_box=services.secret_box) as uow:
        await lock_for_completion(uow, tenant.id, claims)
        for p in made:
            locked = await uow.payments.lock(tenant.id, p.id)
            assert locked is not None
            paid_out, clearing = await uow.accounts.lock_systems(
                tenant.id, [settlement(locked.provider or ""), CLEARING], "USD")
            move(uow, [(clearing, -locked.amount), (paid_out, locked.amount)], clock.now(), payment_id=locked.id)
            locked.complete(f"ch_{locked.id}", clock.now())
            uow.payments.save(locked)
            announce_payment(uow, locked, "payment.completed", clock.now())
    assert pool.sent == ["BEGIN", "SELECT", "SELECT", "WITH", "COMMIT"]
    assert [await system_balance(uow_factory, services, tenant.id, kind)
            for kind in (settlement("stripe"), settlement("paypal"), CLEARING)] == [2_000, 1_000, 0]
