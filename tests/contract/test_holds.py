"""Holds (API.md §9): reserve, capture in full or in part, void, expire; the same on the in-memory and PostgreSQL
adapters, races included. Time is an `InMemoryClock` so that expiry is exact."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import attrs
import pytest

from adapters.local_locks import TURNS_PER_ACCOUNT, LocalLocks
from adapters.memory.clock import InMemoryClock
from app.bootstrap import Services
from core.accounts import AccountStatus
from core.errors import (
    AccountFrozen,
    CoreError,
    InsufficientFunds,
    InvalidStateTransition,
    NotFound,
    SameAccount,
    ValidationFailed,
)
from core.holds import HoldStatus
from core.money import Money
from core.ports import UnitOfWorkFactory
from core.usecases.accounts import UpdateAccount, get_account, update_account
from core.usecases.external_payments import CreateExternalPayment, create_external_payment
from core.usecases.hold_expiry import release_due
from core.usecases.holds import (
    CaptureHold,
    CreateHold,
    capture_hold,
    create_hold,
    expire_holds,
    get_hold,
    list_holds,
    void_hold,
)
from tests.contract.conftest import balance, new_tenant, open_account, transfer
from tests.contract.test_events import feed

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def now() -> InMemoryClock:
    return InMemoryClock(datetime.now(UTC))


async def hold(uow_factory: UnitOfWorkFactory, clock: Any, tenant_id: UUID, source: UUID, destination: UUID,
               minor: int, **extra: Any) -> Any:
    async with uow_factory() as uow:
        return await create_hold(CreateHold(tenant_id=tenant_id, source_account_id=source,
                                            destination_account_id=destination, amount=Money(minor, "USD"), **extra),
                                 uow=uow, clock=clock)


async def capture(uow_factory: UnitOfWorkFactory, clock: Any, tenant_id: UUID, hold_id: UUID,
                  amount: Decimal | None = None) -> Any:
    async with uow_factory() as uow:
        return await capture_hold(CaptureHold(tenant_id=tenant_id, hold_id=hold_id, amount=amount), uow=uow,
                                  clock=clock)


async def void(uow_factory: UnitOfWorkFactory, clock: Any, tenant_id: UUID, hold_id: UUID) -> Any:
    async with uow_factory() as uow:
        return await void_hold(tenant_id, hold_id, uow=uow, clock=clock)


async def seen(uow_factory: UnitOfWorkFactory, clock: Any, tenant_id: UUID, account_id: UUID) -> tuple[int, int, int]:
    """(balance, available_balance, held) as a read shows them now."""
    async with uow_factory(read_only=True) as uow:
        account = await get_account(tenant_id, account_id, uow=uow, now=clock.now())
    return account.balance, account.available_balance, account.held


async def test_a_hold_reserves_and_a_capture_moves_it(uow_factory, now, tenant, audit) -> None:
    a = await open_account(uow_factory, now, tenant.id, 1_000)
    b = await open_account(uow_factory, now, tenant.id, user_id="bob")
    placed = await hold(uow_factory, now, tenant.id, a.id, b.id, 600, description="order 7",
                        metadata={"order": "7"})
    assert (placed.status, placed.amount, placed.expires_at - placed.created_at) == (
        HoldStatus.ACTIVE, 600, timedelta(days=7))
    assert await seen(uow_factory, now, tenant.id, a.id) == (1_000, 400, 600)
    with pytest.raises(InsufficientFunds):  # 401 > available 400
        await transfer(uow_factory, now, tenant.id, a.id, b.id, 401)
    with pytest.raises(InsufficientFunds):
        await hold(uow_factory, now, tenant.id, a.id, b.id, 401)

    captured = await capture(uow_factory, now, tenant.id, placed.id)
    assert (captured.status, captured.captured_amount) == (HoldStatus.CAPTURED, 600)
    assert await seen(uow_factory, now, tenant.id, a.id) == (400, 400, 0)
    assert await balance(uow_factory, tenant.id, b.id) == 600
    async with uow_factory() as uow:
        payment = await uow.payments.get(tenant.id, captured.payment_id)
    assert payment is not None and (payment.status, payment.amount, payment.description, payment.metadata) == (
        "completed", 600, "order 7", {"order": "7"})
    for again in (capture, void):
        with pytest.raises(InvalidStateTransition):
            await again(uow_factory, now, tenant.id, placed.id)
    topics = [e.topic for e in await feed(uow_factory, tenant.id) if e.aggregate_id in (placed.id, payment.id)]
    assert topics == ["hold.created", "transfer.completed", "hold.captured"]
    assert await audit.drift() == []


async def test_a_partial_capture_releases_the_rest(uow_factory, now, tenant, audit) -> None:
    a = await open_account(uow_factory, now, tenant.id, 1_000)
    b = await open_account(uow_factory, now, tenant.id, user_id="bob")
    placed = await hold(uow_factory, now, tenant.id, a.id, b.id, 500)
    for too_much in (Decimal("5.01"), Decimal("0"), Decimal("-1")):
        with pytest.raises(ValidationFailed):
            await capture(uow_factory, now, tenant.id, placed.id, too_much)
    assert await seen(uow_factory, now, tenant.id, a.id) == (1_000, 500, 500)  # nothing moved
    captured = await capture(uow_factory, now, tenant.id, placed.id, Decimal("1.25"))
    assert (captured.captured_amount, await seen(uow_factory, now, tenant.id, a.id)) == (125, (875, 875, 0))
    assert await audit.drift() == []


async def test_a_void_releases_the_whole_hold_once(uow_factory, now, tenant, audit) -> None:
    a = await open_account(uow_factory, now, tenant.id, 1_000)
    b = await open_account(uow_factory, now, tenant.id, user_id="bob")
    placed = await hold(uow_factory, now, tenant.id, a.id, b.id, 700)
    voided = await void(uow_factory, now, tenant.id, placed.id)
    assert (voided.status, await seen(uow_factory, now, tenant.id, a.id)) == (HoldStatus.VOIDED, (1_000, 1_000, 0))
    for again in (capture, void):
        with pytest.raises(InvalidStateTransition):
            await again(uow_factory, now, tenant.id, placed.id)
    assert await audit.drift() == []


async def test_a_hold_expires_at_its_time_for_every_read_and_once_in_the_ledger(uow_factory, now, tenant,
                                                                                 audit) -> None:
    a = await open_account(uow_factory, now, tenant.id, 1_000)
    b = await open_account(uow_factory, now, tenant.id, user_id="bob")
    early = await hold(uow_factory, now, tenant.id, a.id, b.id, 300, expires_in=60)
    late = await hold(uow_factory, now, tenant.id, a.id, b.id, 200, expires_in=3_600)
    now.advance(timedelta(seconds=59))
    assert await seen(uow_factory, now, tenant.id, a.id) == (1_000, 500, 500)
    now.advance(timedelta(seconds=1))  # at expires_at: expired
    assert await seen(uow_factory, now, tenant.id, a.id) == (1_000, 800, 200)  # before anything wrote it
    async with uow_factory(read_only=True) as uow:
        stored = await get_hold(tenant.id, early.id, uow=uow)
        listed = await list_holds(tenant.id, account_id=a.id, status=HoldStatus.EXPIRED, metadata=None,
                                  now=now.now(), limit=10, cursor=None, uow=uow)
    assert (stored.status, stored.effective_status(now.now())) == (HoldStatus.ACTIVE, HoldStatus.EXPIRED)
    assert [h.id for h in listed.items] == [early.id]
    for late_change in (capture, void):
        with pytest.raises(InvalidStateTransition):
            await late_change(uow_factory, now, tenant.id, early.id)

    await transfer(uow_factory, now, tenant.id, a.id, b.id, 800)  # needs what the expired hold reserved
    assert await seen(uow_factory, now, tenant.id, a.id) == (200, 0, 200)
    assert await expire_holds(uow_factory=uow_factory, clock=now) == 0  # the transfer recorded it already
    now.advance(timedelta(hours=1))
    assert await expire_holds(uow_factory=uow_factory, clock=now) == 1  # the sweep records the other
    assert await expire_holds(uow_factory=uow_factory, clock=now) == 0
    assert await seen(uow_factory, now, tenant.id, a.id) == (200, 200, 0)
    expired = [e.aggregate_id for e in await feed(uow_factory, tenant.id) if e.topic == "hold.expired"]
    assert expired == [early.id, late.id]
    assert await audit.drift() == []


async def test_a_hold_this_unit_of_work_expired_is_not_due_again_in_it(uow_factory, now, tenant, audit) -> None:
    """A group commit books several transfers of one source in one unit of work: each releases what is due first,
    and the second must not find (and release again) the hold the first expired."""
    a = await open_account(uow_factory, now, tenant.id, 1_000)
    b = await open_account(uow_factory, now, tenant.id, user_id="bob")
    early = await hold(uow_factory, now, tenant.id, a.id, b.id, 300, expires_in=60)
    await hold(uow_factory, now, tenant.id, a.id, b.id, 200, expires_in=3_600)
    now.advance(timedelta(seconds=61))
    async with uow_factory(lock_accounts=[a.id]) as uow:
        account = (await uow.accounts.lock(tenant.id, [a.id]))[a.id]
        assert [h.id for h in await uow.holds.due(tenant.id, a.id, now.now())] == [early.id]
        assert await release_due(uow, account, now.now()) == 1
        assert await uow.holds.due(tenant.id, a.id, now.now()) == []
        assert await release_due(uow, (await uow.accounts.lock(tenant.id, [a.id]))[a.id], now.now()) == 0
    assert await seen(uow_factory, now, tenant.id, a.id) == (1_000, 800, 200)
    assert await audit.drift() == []


async def test_refusals(uow_factory, now, tenant) -> None:
    a = await open_account(uow_factory, now, tenant.id, 1_000)
    b = await open_account(uow_factory, now, tenant.id, user_id="bob")
    other = await new_tenant(uow_factory, now)
    theirs = await open_account(uow_factory, now, other.id, 1_000)
    with pytest.raises(SameAccount):
        await hold(uow_factory, now, tenant.id, a.id, a.id, 1)
    with pytest.raises(NotFound):
        await hold(uow_factory, now, tenant.id, a.id, theirs.id, 1)
    for expires_in in (59, 2_592_001, 0):
        with pytest.raises(ValidationFailed):
            await hold(uow_factory, now, tenant.id, a.id, b.id, 1, expires_in=expires_in)
    placed = await hold(uow_factory, now, other.id, theirs.id, (await open_account(
        uow_factory, now, other.id, user_id="zed")).id, 10)
    for change in (capture, void):
        with pytest.raises(NotFound):  # another tenant's hold looks missing
            await change(uow_factory, now, tenant.id, placed.id)
        with pytest.raises(NotFound):
            await change(uow_factory, now, tenant.id, uuid4())
    assert await seen(uow_factory, now, tenant.id, a.id) == (1_000, 1_000, 0)


async def test_frozen_and_closing_accounts(uow_factory, now, tenant, audit) -> None:
    a = await open_account(uow_factory, now, tenant.id, 1_000)
    b = await open_account(uow_factory, now, tenant.id, user_id="bob")
    placed = await hold(uow_factory, now, tenant.id, a.id, b.id, 100)
    second = await hold(uow_factory, now, tenant.id, a.id, b.id, 100)

    async def status(account_id: UUID, to: AccountStatus) -> None:
        async with uow_factory() as uow:
            await update_account(UpdateAccount(tenant_id=tenant.id, account_id=account_id, status=to), uow=uow,
                                 clock=now)

    await status(b.id, AccountStatus.FROZEN)
    with pytest.raises(AccountFrozen):  # a capture is a movement to the frozen destination
        await capture(uow_factory, now, tenant.id, placed.id)
    with pytest.raises(AccountFrozen):
        await hold(uow_factory, now, tenant.id, a.id, b.id, 1)
    await void(uow_factory, now, tenant.id, placed.id)  # voiding stays allowed
    await status(b.id, AccountStatus.ACTIVE)
    await transfer(uow_factory, now, tenant.id, a.id, b.id, 900)
    with pytest.raises(InsufficientFunds):  # the other 100 are held
        await transfer(uow_factory, now, tenant.id, a.id, b.id, 1)
    await capture(uow_factory, now, tenant.id, second.id)
    with pytest.raises(InvalidStateTransition):
        await status(b.id, AccountStatus.CLOSED)  # b has a balance
    assert await seen(uow_factory, now, tenant.id, a.id) == (0, 0, 0)
    await status(a.id, AccountStatus.CLOSED)
    assert await audit.drift() == []


async def test_closing_waits_for_an_active_hold(uow_factory, now, tenant) -> None:
    a = await open_account(uow_factory, now, tenant.id)
    b = await open_account(uow_factory, now, tenant.id, user_id="bob")

    async def change(account_id: UUID, **changes: Any) -> Any:
        async with uow_factory() as uow:
            return await update_account(UpdateAccount(tenant_id=tenant.id, account_id=account_id, **changes),
                                        uow=uow, clock=now)

    await change(b.id, overdraft_limit=Decimal("1.00"))
    placed = await hold(uow_factory, now, tenant.id, b.id, a.id, 100)  # b's balance stays 0: held on overdraft
    with pytest.raises(InvalidStateTransition, match="hold"):
        await change(b.id, status=AccountStatus.CLOSED)
    with pytest.raises(ValidationFailed):  # the hold leans on the overdraft: the limit cannot drop under it
        await change(b.id, overdraft_limit=Decimal("0.99"))
    assert (await change(a.id, status=AccountStatus.CLOSED)).status is AccountStatus.CLOSED  # a destination may
    await void(uow_factory, now, tenant.id, placed.id)
    assert (await change(b.id, status=AccountStatus.CLOSED)).status is AccountStatus.CLOSED


async def test_a_hold_is_captured_or_voided_once_however_many_try(uow_factory, now, tenant, audit) -> None:
    a = await open_account(uow_factory, now, tenant.id, 1_000)
    b = await open_account(uow_factory, now, tenant.id, user_id="bob")
    placed = await hold(uow_factory, now, tenant.id, a.id, b.id, 400)

    async def attempt(change: Any) -> Any:
        try:
            return await change(uow_factory, now, tenant.id, placed.id)
        except CoreError as error:
            return error

    outcomes = await asyncio.wait_for(asyncio.gather(*(attempt(capture if n % 2 else void) for n in range(16))), 30)
    done = [o for o in outcomes if not isinstance(o, CoreError)]
    assert len(done) == 1 and all(isinstance(o, InvalidStateTransition) for o in outcomes if o not in done)
    moved = 400 if done[0].status is HoldStatus.CAPTURED else 0
    assert await seen(uow_factory, now, tenant.id, a.id) == (1_000 - moved, 1_000 - moved, 0)
    assert await audit.drift() == []


async def test_holds_transfers_captures_and_voids_racing_never_overspend(uow_factory, now, tenant, audit) -> None:
    """Everything racing on one source: what it holds and what it sends never exceed its balance."""
    a = await open_account(uow_factory, now, tenant.id, 1_000)
    b = await open_account(uow_factory, now, tenant.id, user_id="bob")
    placed: list[Any] = []

    async def act(n: int) -> None:
        try:
            if n % 4 == 0:
                placed.append(await hold(uow_factory, now, tenant.id, a.id, b.id, 150))
            elif n % 4 == 1:
                await transfer(uow_factory, now, tenant.id, a.id, b.id, 90)
            elif placed:
                change = capture if n % 4 == 2 else void
                await change(uow_factory, now, tenant.id, placed[n % len(placed)].id)
        except CoreError:
            pass

    await asyncio.wait_for(asyncio.gather(*(act(n) for n in range(60))), 60)
    balance_now, available, held = await seen(uow_factory, now, tenant.id, a.id)
    assert available >= 0 and held >= 0 and balance_now == available + held
    assert balance_now + (await balance(uow_factory, tenant.id, b.id) or 0) == 1_000
    async with uow_factory(read_only=True) as uow:
        listed = await list_holds(tenant.id, account_id=a.id, status=HoldStatus.ACTIVE, metadata=None,
                                  now=now.now(), limit=100, cursor=None, uow=uow)
    assert held == sum(h.amount for h in listed.items)
    assert await audit.drift() == []



async def test_expiries_and_external_payments_racing_with_holds_never_overspend(uow_factory, now, tenant,
                                                                                 audit) -> None:
    """Holds, transfers and external payments race on one source; then, once some holds are due, captures, voids,
    the expiry sweep and more of the same race on it: it never holds or sends more than it has, no hold ends
    twice, a due hold is never captured, and every cent is accounted for."""
    a = await open_account(uow_factory, now, tenant.id, 2_000)
    b = await open_account(uow_factory, now, tenant.id, user_id="bob")
    placed: list[Any] = []
    paid: list[int] = []

    async def act(n: int) -> None:
        try:
            if n % 4 == 0:
                placed.append(await hold(uow_factory, now, tenant.id, a.id, b.id, 120,
                                         expires_in=60 if n % 8 == 0 else 3_600))
            elif n % 4 == 1:
                await transfer(uow_factory, now, tenant.id, a.id, b.id, 70)
            elif n % 4 == 2:
                async with uow_factory() as uow:
                    await create_external_payment(CreateExternalPayment(
                        tenant_id=tenant.id, source_account_id=a.id, amount=Money(50, "USD"), provider="stripe"),
                        uow=uow, clock=now)
                paid.append(50)
            elif placed:
                change = capture if n % 8 == 3 else void
                await change(uow_factory, now, tenant.id, placed[n % len(placed)].id)
        except CoreError:
            pass

    async def sweep() -> None:
        for _ in range(5):
            await expire_holds(uow_factory=uow_factory, clock=now)
            await asyncio.sleep(0)

    await asyncio.wait_for(asyncio.gather(*(act(n) for n in range(0, 32, 4)), *(act(n) for n in range(1, 24, 4)),
                                          *(act(n) for n in range(2, 24, 4))), 60)
    before = {h.id for h in placed}
    now.advance(timedelta(seconds=61))  # the holds placed for 60 s are due; those for an hour are not
    await asyncio.wait_for(asyncio.gather(*(act(n) for n in range(40)), sweep()), 60)
    await expire_holds(uow_factory=uow_factory, clock=now)

    balance_now, available, held = await seen(uow_factory, now, tenant.id, a.id)
    assert available >= 0 and held >= 0 and balance_now == available + held
    assert balance_now + (await balance(uow_factory, tenant.id, b.id) or 0) + sum(paid) == 2_000
    ended = [await get_one(uow_factory, tenant.id, h.id) for h in placed]
    statuses = {h.status for h in ended if h.id in before}
    assert HoldStatus.EXPIRED in statuses and len(statuses) > 1, statuses  # the race had something to decide
    assert all(h.status is not HoldStatus.ACTIVE or h.expires_at > now.now() for h in ended)
    assert not [h for h in ended if h.status is HoldStatus.CAPTURED and h.expires_at <= now.now()]
    assert held == sum(h.amount for h in ended if h.status is HoldStatus.ACTIVE)
    assert await audit.drift() == []


async def get_one(uow_factory: UnitOfWorkFactory, tenant_id: UUID, hold_id: UUID) -> Any:
    async with uow_factory(read_only=True) as uow:
        return await get_hold(tenant_id, hold_id, uow=uow)


def sweepers(backend: str, uow_factory: UnitOfWorkFactory, services: Services, n: int) -> list[UnitOfWorkFactory]:
    """`n` workers' unit-of-work factories: on PostgreSQL each with in-process locks of its own, as in `n` worker
    processes, so that only the database's row locks keep them apart."""
    if backend == "memory":
        return [uow_factory] * n
    return [attrs.evolve(services, local_locks=LocalLocks(), turns=LocalLocks(TURNS_PER_ACCOUNT)).uow_factory
            for _ in range(n)]


async def test_sweeps_racing_expire_each_hold_once(backend, uow_factory, services, now, tenant, audit) -> None:
    """Any number of workers may sweep at once: each hold is recorded expired, given back and announced once."""
    sources = [await open_account(uow_factory, now, tenant.id, 1_000, user_id=f"s{n}") for n in range(3)]
    destination = await open_account(uow_factory, now, tenant.id, user_id="bob")
    placed = [await hold(uow_factory, now, tenant.id, source.id, destination.id, 100 * (n + 1), expires_in=60)
              for source in sources for n in range(3)]
    now.advance(timedelta(seconds=60))
    swept = await asyncio.wait_for(asyncio.gather(*(expire_holds(uow_factory=factory, clock=now)
                                                    for factory in sweepers(backend, uow_factory, services, 8))), 30)
    assert sum(swept) >= len(placed)  # (on PostgreSQL the sweep also sees other tests' due holds)
    async with uow_factory(read_only=True) as uow:
        stored = [(await get_hold(tenant.id, h.id, uow=uow)).status for h in placed]
        written = [await get_account(tenant.id, source.id, uow=uow) for source in sources]  # `held` as stored
    assert stored == [HoldStatus.EXPIRED] * len(placed)
    assert [(a.balance, a.held) for a in written] == [(1_000, 0)] * len(sources)
    expired = [e.aggregate_id for e in await feed(uow_factory, tenant.id) if e.topic == "hold.expired"]
    assert sorted(expired) == sorted(h.id for h in placed)  # once each
    assert await audit.drift() == []
