"""Account controls (API.md §3): overdraft limits, frozen and closed accounts, `account.updated`, the status
filter. The same rules on the in-memory and PostgreSQL adapters, races included."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from core.accounts import AccountStatus
from core.clock import SystemClock
from core.errors import (
    AccountClosed,
    AccountFrozen,
    CoreError,
    InsufficientFunds,
    InvalidStateTransition,
    NotFound,
    ValidationFailed,
)
from core.money import Money
from core.payments import PaymentStatus
from core.ports import UnitOfWorkFactory
from core.refunds import RefundStatus
from core.tenants import Tenant
from core.usecases.accounts import UpdateAccount, list_accounts, update_account
from core.usecases.external_payments import CreateExternalPayment, create_external_payment
from core.usecases.refund_requests import RequestRefund, request_refund
from tests.contract.builders import Cleanup, add, payment, refund
from tests.contract.conftest import balance, new_tenant, open_account, transfer
from tests.contract.test_events import feed

pytestmark = pytest.mark.timeout(60)


async def update(uow_factory: UnitOfWorkFactory, clock: SystemClock, tenant_id: UUID, account_id: UUID,
                 **changes: Any) -> Any:
    async with uow_factory() as uow:
        return await update_account(UpdateAccount(tenant_id=tenant_id, account_id=account_id, **changes),
                                    uow=uow, clock=clock)


async def stored(uow_factory: UnitOfWorkFactory, tenant_id: UUID, account_id: UUID) -> Any:
    async with uow_factory() as uow:
        return await uow.accounts.get(tenant_id, account_id)


async def pay_out(uow_factory: UnitOfWorkFactory, clock: SystemClock, tenant_id: UUID, source: UUID,
                  minor: int) -> Any:
    async with uow_factory() as uow:
        return await create_external_payment(CreateExternalPayment(
            tenant_id=tenant_id, source_account_id=source, amount=Money(minor, "USD"), provider="stripe"),
            uow=uow, clock=clock)


async def test_an_overdraft_lets_debits_reach_minus_the_limit_and_no_further(uow_factory, clock, tenant, audit) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 1_000)
    b = await open_account(uow_factory, clock, tenant.id, user_id="bob")
    with pytest.raises(InsufficientFunds):
        await transfer(uow_factory, clock, tenant.id, a.id, b.id, 1_001)

    changed = await update(uow_factory, clock, tenant.id, a.id, overdraft_limit=Decimal("5.00"))
    assert (changed.overdraft_limit, changed.balance, changed.available_balance) == (500, 1_000, 1_000)
    await transfer(uow_factory, clock, tenant.id, a.id, b.id, 1_400)
    with pytest.raises(InsufficientFunds):  # -400 - 101 is past -500
        await transfer(uow_factory, clock, tenant.id, a.id, b.id, 101)
    await transfer(uow_factory, clock, tenant.id, a.id, b.id, 100)  # exactly -500
    assert await balance(uow_factory, tenant.id, a.id) == -500
    with pytest.raises(InsufficientFunds):
        await pay_out(uow_factory, clock, tenant.id, a.id, 1)
    await transfer(uow_factory, clock, tenant.id, b.id, a.id, 200)  # a credit of an overdrawn account is taken
    assert await balance(uow_factory, tenant.id, a.id) == -300
    assert await audit.drift() == []


async def test_the_limit_cannot_drop_below_what_the_account_owes(uow_factory, clock, tenant) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 100)
    b = await open_account(uow_factory, clock, tenant.id, user_id="bob")
    await update(uow_factory, clock, tenant.id, a.id, overdraft_limit=Decimal("10"))
    await transfer(uow_factory, clock, tenant.id, a.id, b.id, 600)  # balance -500
    for too_low in (Decimal("0"), Decimal("4.99")):
        with pytest.raises(ValidationFailed) as refused:
            await update(uow_factory, clock, tenant.id, a.id, overdraft_limit=too_low)
        assert refused.value.errors[0].field == "overdraft_limit"
    assert (await stored(uow_factory, tenant.id, a.id)).overdraft_limit == 1_000  # unchanged
    assert (await update(uow_factory, clock, tenant.id, a.id, overdraft_limit=Decimal("5"))).overdraft_limit == 500
    await transfer(uow_factory, clock, tenant.id, b.id, a.id, 500)
    assert (await update(uow_factory, clock, tenant.id, a.id, overdraft_limit=0)).overdraft_limit == 0


@pytest.mark.parametrize("limit", ["-1", "0.001", "abc", "9007199254740992"])
async def test_a_limit_that_is_no_amount_of_the_accounts_currency_is_refused(uow_factory, clock, tenant, limit) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 100)
    with pytest.raises(ValidationFailed) as refused:
        await update(uow_factory, clock, tenant.id, a.id, overdraft_limit=limit)
    assert refused.value.errors[0].field == "overdraft_limit"


async def test_a_frozen_account_takes_part_in_no_movement_until_unfrozen(uow_factory, clock, tenant, audit) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 1_000)
    b = await open_account(uow_factory, clock, tenant.id, 1_000, user_id="bob")
    frozen = await update(uow_factory, clock, tenant.id, a.id, status=AccountStatus.FROZEN)
    assert frozen.status is AccountStatus.FROZEN
    for source, destination in ((a.id, b.id), (b.id, a.id)):
        with pytest.raises(AccountFrozen):
            await transfer(uow_factory, clock, tenant.id, source, destination, 10)
    with pytest.raises(AccountFrozen):
        await pay_out(uow_factory, clock, tenant.id, a.id, 10)
    assert (await balance(uow_factory, tenant.id, a.id), await balance(uow_factory, tenant.id, b.id)) == (1_000, 1_000)

    await update(uow_factory, clock, tenant.id, a.id, status=AccountStatus.ACTIVE)
    await transfer(uow_factory, clock, tenant.id, a.id, b.id, 10)
    await transfer(uow_factory, clock, tenant.id, b.id, a.id, 5)
    assert await balance(uow_factory, tenant.id, a.id) == 995
    assert await audit.drift() == []


async def test_closing_needs_a_zero_balance_and_is_final(uow_factory, clock, tenant) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 300)
    b = await open_account(uow_factory, clock, tenant.id, 1_000, user_id="bob")
    with pytest.raises(InvalidStateTransition):
        await update(uow_factory, clock, tenant.id, a.id, status=AccountStatus.CLOSED)
    await transfer(uow_factory, clock, tenant.id, a.id, b.id, 300)
    await update(uow_factory, clock, tenant.id, a.id, status=AccountStatus.FROZEN)  # frozen → closed is allowed too
    closed = await update(uow_factory, clock, tenant.id, a.id, status=AccountStatus.CLOSED)
    assert (closed.status, closed.balance) == (AccountStatus.CLOSED, 0)

    refusals: list[Any] = [
        lambda: transfer(uow_factory, clock, tenant.id, b.id, a.id, 1),
        lambda: transfer(uow_factory, clock, tenant.id, a.id, b.id, 1),
        lambda: pay_out(uow_factory, clock, tenant.id, a.id, 1),
        *(lambda status=status: update(uow_factory, clock, tenant.id, a.id, status=status) for status in AccountStatus),
        lambda: update(uow_factory, clock, tenant.id, a.id, overdraft_limit=Decimal("1")),
    ]
    for refused in refusals:
        with pytest.raises(AccountClosed):
            await refused()
    relabelled = await update(uow_factory, clock, tenant.id, a.id, metadata={"closed_because": "customer asked"})
    assert (relabelled.status, relabelled.metadata) == (AccountStatus.CLOSED, {"closed_because": "customer asked"})
    assert (await balance(uow_factory, tenant.id, a.id), await balance(uow_factory, tenant.id, b.id)) == (0, 1_300)


async def test_closing_waits_for_what_is_still_in_flight(uow_factory, clock, tenant, backend, services) -> None:
    done = Cleanup(services.pool if backend == "postgres" else None)
    done.tenants.add(tenant.id)
    try:
        a = await open_account(uow_factory, clock, tenant.id)  # its payment took the whole balance to clearing
        await add(uow_factory, payment(tenant.id, a.id, status=PaymentStatus.PROCESSING))
        with pytest.raises(InvalidStateTransition, match="in flight"):
            await update(uow_factory, clock, tenant.id, a.id, status=AccountStatus.CLOSED)
        assert (await stored(uow_factory, tenant.id, a.id)).status is AccountStatus.ACTIVE
    finally:
        await done()


async def test_unsettled_for_sees_payments_in_flight_and_pending_refunds_of_the_account_only(
    uow_factory, clock, tenant, backend, services
) -> None:
    done = Cleanup(services.pool if backend == "postgres" else None)
    other = await new_tenant(uow_factory, clock)
    done.tenants |= {tenant.id, other.id}
    try:
        a = await open_account(uow_factory, clock, tenant.id)
        b = await open_account(uow_factory, clock, tenant.id, user_id="bob")

        async def unsettled(tenant_id: UUID, account_id: UUID) -> bool:
            async with uow_factory() as uow:
                return await uow.payments.unsettled_for(tenant_id, account_id)

        completed = payment(tenant.id, a.id, status=PaymentStatus.COMPLETED)
        failed = payment(tenant.id, a.id, status=PaymentStatus.FAILED)
        await add(uow_factory, completed, failed, refund(completed, status=RefundStatus.SUCCEEDED),
                  refund(completed, status=RefundStatus.FAILED))
        assert not await unsettled(tenant.id, a.id)
        await add(uow_factory, payment(tenant.id, b.id, status=PaymentStatus.PROCESSING))
        assert (await unsettled(tenant.id, a.id), await unsettled(tenant.id, b.id)) == (False, True)
        assert not await unsettled(other.id, b.id)  # another tenant's look is empty
        await add(uow_factory, refund(completed, status=RefundStatus.PENDING))
        assert await unsettled(tenant.id, a.id)
        c = await open_account(uow_factory, clock, tenant.id, user_id="carol")
        await add(uow_factory, payment(tenant.id, c.id, status=PaymentStatus.PENDING))
        assert await unsettled(tenant.id, c.id)
    finally:
        await done()


async def test_a_refund_never_moves_money_of_a_closed_account(uow_factory, clock, tenant) -> None:
    a = await open_account(uow_factory, clock, tenant.id)
    b = await open_account(uow_factory, clock, tenant.id, 100, user_id="bob")
    paid_out = payment(tenant.id, a.id, status=PaymentStatus.COMPLETED)  # settled: nothing of it is in flight
    await add(uow_factory, paid_out)
    internal = await transfer(uow_factory, clock, tenant.id, b.id, a.id, 100)
    await transfer(uow_factory, clock, tenant.id, a.id, b.id, 100)
    await update(uow_factory, clock, tenant.id, a.id, status=AccountStatus.CLOSED)
    for refunded in (paid_out.id, internal.id):
        with pytest.raises(AccountClosed):
            async with uow_factory() as uow:
                await request_refund(RequestRefund(tenant_id=tenant.id, payment_id=refunded), uow=uow, clock=clock)
    async with uow_factory() as uow:
        assert await uow.refunds.for_payment(tenant.id, paid_out.id) == []
    assert (await balance(uow_factory, tenant.id, a.id), await balance(uow_factory, tenant.id, b.id)) == (0, 100)


async def test_a_frozen_account_still_takes_refunds(uow_factory, clock, tenant, audit) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 100)
    b = await open_account(uow_factory, clock, tenant.id, user_id="bob")
    internal = await transfer(uow_factory, clock, tenant.id, a.id, b.id, 100)
    await update(uow_factory, clock, tenant.id, b.id, status=AccountStatus.FROZEN)
    async with uow_factory() as uow:
        await request_refund(RequestRefund(tenant_id=tenant.id, payment_id=internal.id), uow=uow, clock=clock)
    assert (await balance(uow_factory, tenant.id, a.id), await balance(uow_factory, tenant.id, b.id)) == (100, 0)
    assert await audit.drift() == []


async def test_every_change_announces_account_updated_and_a_no_op_announces_nothing(
    uow_factory, clock, tenant
) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 100)
    await update(uow_factory, clock, tenant.id, a.id, metadata={"tier": "gold"})
    await update(uow_factory, clock, tenant.id, a.id, metadata={"tier": "gold"}, status=AccountStatus.ACTIVE,
                 overdraft_limit=Decimal("0"))  # all as they are: nothing to announce
    await update(uow_factory, clock, tenant.id, a.id, status=AccountStatus.FROZEN, overdraft_limit=Decimal("2.50"))
    events = [e for e in await feed(uow_factory, tenant.id) if e.aggregate_id == a.id]
    assert [e.topic for e in events] == ["account.created", "account.updated", "account.updated"]
    first, second = (e.payload for e in events[1:])
    assert (first["metadata"], first["status"], first["overdraft_limit"]) == ({"tier": "gold"}, "active", "0.00")
    assert (second["status"], second["overdraft_limit"], second["available_balance"]) == ("frozen", "2.50", "1.00")
    account = await stored(uow_factory, tenant.id, a.id)
    assert (account.status, account.overdraft_limit, account.metadata) == (AccountStatus.FROZEN, 250, {"tier": "gold"})
    assert account.updated_at > a.updated_at and account.version == a.version  # controls are no ledger entry


async def test_another_tenants_account_cannot_be_changed(uow_factory, clock, tenant) -> None:
    other: Tenant = await new_tenant(uow_factory, clock)
    theirs = await open_account(uow_factory, clock, other.id, 100)
    with pytest.raises(NotFound):
        await update(uow_factory, clock, tenant.id, theirs.id, status=AccountStatus.FROZEN)
    assert (await stored(uow_factory, other.id, theirs.id)).status is AccountStatus.ACTIVE


async def test_accounts_list_by_status(uow_factory, clock, tenant) -> None:
    a = await open_account(uow_factory, clock, tenant.id)
    b = await open_account(uow_factory, clock, tenant.id, user_id="bob")
    c = await open_account(uow_factory, clock, tenant.id, user_id="carol")
    await update(uow_factory, clock, tenant.id, b.id, status=AccountStatus.FROZEN)
    await update(uow_factory, clock, tenant.id, c.id, status=AccountStatus.CLOSED)

    async def listed(status: AccountStatus | None, user_id: str | None = None) -> list[UUID]:
        async with uow_factory() as uow:
            page = await list_accounts(tenant.id, user_id=user_id, status=status, limit=10, cursor=None, uow=uow)
        return [account.id for account in page.items]

    assert await listed(None) == [c.id, b.id, a.id]
    assert (await listed(AccountStatus.ACTIVE), await listed(AccountStatus.FROZEN)) == ([a.id], [b.id])
    assert await listed(AccountStatus.CLOSED) == [c.id]
    assert (await listed(AccountStatus.FROZEN, "bob"), await listed(AccountStatus.FROZEN, "alice")) == ([b.id], [])


async def test_a_freeze_racing_transfers_stops_every_one_that_follows_it(uow_factory, clock, tenant, audit) -> None:
    """The freeze takes the account's row lock: every transfer is wholly before it (and went through) or wholly
    after it (and was refused); none slips through after the freeze committed."""
    a = await open_account(uow_factory, clock, tenant.id, 10_000)
    b = await open_account(uow_factory, clock, tenant.id, user_id="bob")

    async def attempt() -> Any:
        try:
            return await transfer(uow_factory, clock, tenant.id, a.id, b.id, 10)
        except CoreError as error:
            return error

    before = [asyncio.create_task(attempt()) for _ in range(15)]
    freeze = asyncio.create_task(update(uow_factory, clock, tenant.id, a.id, status=AccountStatus.FROZEN))
    after = [asyncio.create_task(attempt()) for _ in range(15)]
    outcomes = await asyncio.wait_for(asyncio.gather(*before, *after), 30)
    frozen = await freeze
    made = [o for o in outcomes if not isinstance(o, CoreError)]
    assert {type(o) for o in outcomes if isinstance(o, CoreError)} <= {AccountFrozen}
    assert all(p.created_at <= frozen.updated_at for p in made)
    assert await balance(uow_factory, tenant.id, a.id) == 10_000 - 10 * len(made)
    assert await balance(uow_factory, tenant.id, b.id) == 10 * len(made)
    assert await audit.drift() == []


@pytest.mark.parametrize("ahead", [0, 2])
async def test_a_close_racing_deposits_leaves_a_closed_account_empty(uow_factory, clock, tenant, audit, ahead) -> None:
    """Deposits into an empty account race its closing: the account ends either closed and empty (every
    deposit after the close refused) or open with every deposit that went through; money is conserved."""
    a = await open_account(uow_factory, clock, tenant.id)
    b = await open_account(uow_factory, clock, tenant.id, 10_000, user_id="bob")

    async def attempt(call: Any) -> Any:
        try:
            return await call()
        except CoreError as error:
            return error

    def deposit() -> asyncio.Task[Any]:
        return asyncio.create_task(attempt(lambda: transfer(uow_factory, clock, tenant.id, b.id, a.id, 7)))

    first = [deposit() for _ in range(ahead)]  # deposits queued up before the close, and more after it
    close = asyncio.create_task(attempt(lambda: update(uow_factory, clock, tenant.id, a.id,
                                                       status=AccountStatus.CLOSED)))
    outcomes = await asyncio.wait_for(asyncio.gather(*first, *(deposit() for _ in range(20 - ahead))), 30)
    closing = await close
    made = [o for o in outcomes if not isinstance(o, CoreError)]
    assert {type(o) for o in outcomes if isinstance(o, CoreError)} <= {AccountClosed}
    final = await balance(uow_factory, tenant.id, a.id)
    assert final == 7 * len(made) and await balance(uow_factory, tenant.id, b.id) == 10_000 - final
    if isinstance(closing, CoreError):
        assert isinstance(closing, InvalidStateTransition) and made  # a deposit came first
    else:
        assert final == 0 and not made and closing.status is AccountStatus.CLOSED
    assert await audit.drift() == []


async def test_accounts_and_payments_list_by_metadata(uow_factory, clock, tenant, backend, services) -> None:
    """`?metadata[key]=value` (API.md §1): every pair given must be in the row's metadata, with that value."""
    from core.ports import PaymentFilter

    done = Cleanup(services.pool if backend == "postgres" else None)
    done.tenants.add(tenant.id)
    try:
        gold_eu = await open_account(uow_factory, clock, tenant.id)
        await update(uow_factory, clock, tenant.id, gold_eu.id, metadata={"tier": "gold", "region": "eu"})
        gold_us = await open_account(uow_factory, clock, tenant.id, user_id="bob")
        await update(uow_factory, clock, tenant.id, gold_us.id, metadata={"tier": "gold", "region": "us"})
        plain = await open_account(uow_factory, clock, tenant.id, user_id="carol")
        other = await new_tenant(uow_factory, clock)
        done.tenants.add(other.id)
        theirs = await open_account(uow_factory, clock, other.id)
        await update(uow_factory, clock, other.id, theirs.id, metadata={"tier": "gold"})

        async def accounts(metadata: dict[str, str] | None, user_id: str | None = None) -> list[UUID]:
            async with uow_factory() as uow:
                page = await list_accounts(tenant.id, user_id=user_id, metadata=metadata, limit=10, cursor=None,
                                           uow=uow)
            return [account.id for account in page.items]

        assert await accounts(None) == [plain.id, gold_us.id, gold_eu.id]
        assert await accounts({}) == [plain.id, gold_us.id, gold_eu.id]
        assert await accounts({"tier": "gold"}) == [gold_us.id, gold_eu.id]
        assert await accounts({"tier": "gold", "region": "eu"}) == [gold_eu.id]
        assert await accounts({"tier": "gold", "region": "asia"}) == []
        assert await accounts({"tier": "Gold"}) == []  # values match exactly
        assert await accounts({"tier": "gold"}, user_id="bob") == [gold_us.id]

        order = payment(tenant.id, gold_eu.id, status=PaymentStatus.COMPLETED)  # {"order": "7", "note": "é"}
        bare = payment(tenant.id, gold_eu.id, status=PaymentStatus.COMPLETED)
        bare.metadata = {}
        await add(uow_factory, order, bare, payment(other.id, theirs.id, status=PaymentStatus.COMPLETED))

        async def payments(metadata: dict[str, str] | None) -> list[UUID]:
            async with uow_factory() as uow:
                page = await uow.payments.list(tenant.id, PaymentFilter(metadata=metadata), limit=10, cursor=None)
            return [p.id for p in page.items]

        assert await payments({"order": "7"}) == [order.id]
        assert await payments({"order": "7", "note": "é"}) == [order.id]
        assert await payments({"order": "8"}) == []
        assert set(await payments(None)) == {order.id, bare.id}
    finally:
        await done()
