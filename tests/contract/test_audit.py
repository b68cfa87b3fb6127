"""LedgerAudit: silent after real traffic, loud when a balance or version drifts from the entries."""

from __future__ import annotations

import pytest

from core.accounts import CLEARING
from core.errors import InsufficientFunds
from core.money import Money
from core.usecases.accounts import CreateAccount, create_account
from tests.contract.conftest import open_account, transfer

pytestmark = pytest.mark.timeout(30)


async def test_no_drift_after_a_mix_of_operations(uow_factory, clock, tenant, audit) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 10_000)
    b = await open_account(uow_factory, clock, tenant.id, 500, user_id="bob")
    c = await open_account(uow_factory, clock, tenant.id, user_id="carol")
    y1 = await open_account(uow_factory, clock, tenant.id, 1_000, currency="JPY")
    y2 = await open_account(uow_factory, clock, tenant.id, 1, currency="JPY", user_id="bob")
    await transfer(uow_factory, clock, tenant.id, a.id, b.id, 1_234)
    await transfer(uow_factory, clock, tenant.id, b.id, c.id, 1_734)
    await transfer(uow_factory, clock, tenant.id, y1.id, y2.id, 999, "JPY")
    with pytest.raises(InsufficientFunds):
        await transfer(uow_factory, clock, tenant.id, c.id, a.id, 1_735)
    async with uow_factory() as uow:  # rolled back half-way
        await create_account(CreateAccount(tenant_id=tenant.id, user_id="x", currency="USD",
                                           initial_balance=Money(5, "USD")), uow=uow, clock=clock)
    async with uow_factory() as uow:  # a system account with no entries yet
        await uow.accounts.lock_system(tenant.id, CLEARING, "USD")
    assert await audit.drift() == []


@pytest.mark.parametrize("change", [{"balance": 1}, {"balance": -1}, {"version": 1}])
async def test_drift_names_an_account_whose_balance_or_version_left_its_entries(
    uow_factory, clock, tenant, audit, probe, change
) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 100)
    await probe.shift(a.id, **change)
    try:
        problems = await audit.drift()
    finally:
        await probe.shift(a.id, **{field: -delta for field, delta in change.items()})
    assert any(str(a.id) in line for line in problems)
    assert await audit.drift() == []


async def test_drift_of_a_system_account_row_names_the_account_it_belongs_to(
    uow_factory, clock, tenant, audit, probe,
) -> None:
    async with uow_factory() as uow:
        row = await uow.accounts.lock_system(tenant.id, CLEARING, "USD")
    user = await open_account(uow_factory, clock, tenant.id, 100)
    await probe.shift(row.id, balance=5)
    await probe.shift(user.id, balance=5)
    try:
        problems = await audit.drift()
    finally:
        await probe.shift(row.id, balance=-5)
        await probe.shift(user.id, balance=-5)
    [system_line] = [line for line in problems if str(row.id) in line]
    assert system_line.startswith(
        f"account {row.id} (row {row.shard} of tenant {tenant.id}'s {CLEARING} USD account): balance ")
    [user_line] = [line for line in problems if str(user.id) in line and "balance" in line]
    assert user_line.startswith(f"account {user.id}: ")  # a user account is one row: named by its id alone
    assert await audit.drift() == []
