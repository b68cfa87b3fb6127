"""Balances at a point in time and statements of a period (API.md §3), from the entries: the same on the
in-memory and PostgreSQL ledgers."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from core.clock import SystemClock
from core.errors import NotFound, ValidationFailed
from core.ledger import Entry
from core.ports import UnitOfWorkFactory
from core.tenants import Tenant
from core.usecases.statements import balance_at, open_statement, statement_page
from tests.contract.conftest import new_tenant, open_account, transfer

pytestmark = pytest.mark.timeout(60)


async def instant() -> datetime:
    """A time strictly between what was written before and what is written after (clocks tick in µs)."""
    await asyncio.sleep(0.002)
    now = SystemClock().now()
    await asyncio.sleep(0.002)
    return now


async def all_entries(uow_factory: UnitOfWorkFactory, tenant: Tenant, account_id, start, end, page: int) -> list[Entry]:
    async with uow_factory() as uow:
        statement = await open_statement(tenant.id, account_id, start, end, uow=uow)
    found: list[Entry] = []
    after = None
    while True:
        async with uow_factory() as uow:
            entries = list(await statement_page(statement, after=after, uow=uow, limit=page))
        if not entries:
            return found
        found += entries
        after = entries[-1]


async def test_balance_at_an_instant_is_the_balance_of_the_latest_entry_then(uow_factory, clock, tenant) -> None:
    before_all = await instant()
    a = await open_account(uow_factory, clock, tenant.id, 1_000)
    b = await open_account(uow_factory, clock, tenant.id, user_id="bob")
    after_open = await instant()
    await transfer(uow_factory, clock, tenant.id, a.id, b.id, 300)
    after_first = await instant()
    paid = await transfer(uow_factory, clock, tenant.id, a.id, b.id, 200)

    async def at(when: datetime) -> tuple[int, int]:
        async with uow_factory() as uow:
            read = await balance_at(tenant.id, a.id, when, uow=uow)
        assert read.as_of == when and read.account.id == a.id
        return read.balance, read.version

    assert await at(before_all) == (0, 0)
    assert await at(after_open) == (1_000, 1)
    assert await at(after_first) == (700, 2)
    assert await at(paid.created_at) == (500, 3)  # an entry made at exactly `at` counts
    assert await at(paid.created_at - timedelta(microseconds=1)) == (700, 2)
    assert await at(datetime(2999, 1, 1, tzinfo=before_all.tzinfo)) == (500, 3)


async def test_a_statement_adds_up_and_pages_through_its_period_only(uow_factory, clock, tenant) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 10_000)
    b = await open_account(uow_factory, clock, tenant.id, 1_000, user_id="bob")
    await transfer(uow_factory, clock, tenant.id, a.id, b.id, 1)  # before the period
    start = await instant()
    for amount in range(1, 8):  # 7 debits
        await transfer(uow_factory, clock, tenant.id, a.id, b.id, amount)
    for amount in (50, 60):  # 2 credits
        await transfer(uow_factory, clock, tenant.id, b.id, a.id, amount)
    end = await instant()
    await transfer(uow_factory, clock, tenant.id, a.id, b.id, 1_000)  # after it

    async with uow_factory() as uow:
        statement = await open_statement(tenant.id, a.id, start, end, uow=uow)
    window = statement.window
    assert (window.count, window.credits, window.debits) == (9, 110, -28)
    assert (window.opening, window.closing) == (9_999, 9_999 - 28 + 110)
    for page in (1, 2, 4, 1_000):
        entries = await all_entries(uow_factory, tenant, a.id, start, end, page)
        assert [e.amount for e in entries] == [-1, -2, -3, -4, -5, -6, -7, 50, 60], page
        assert entries[0].balance_after - entries[0].amount == window.opening
        assert entries[-1].balance_after == window.closing
        assert all(start <= e.created_at < end for e in entries)


async def test_an_empty_period_opens_and_closes_at_the_balance_then(uow_factory, clock, tenant) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 500)
    start = await instant()
    end = await instant()
    async with uow_factory() as uow:
        statement = await open_statement(tenant.id, a.id, start, end, uow=uow)
    assert (statement.window.count, statement.window.opening, statement.window.closing) == (0, 500, 500)
    assert await all_entries(uow_factory, tenant, a.id, start, end, 10) == []
    async with uow_factory() as uow:
        before = await open_statement(tenant.id, a.id, start - timedelta(days=400), start - timedelta(days=399),
                                      uow=uow)
    assert (before.window.opening, before.window.closing) == (0, 0)


async def test_entries_written_while_a_statement_streams_are_not_in_it(uow_factory, clock, tenant) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 1_000)
    b = await open_account(uow_factory, clock, tenant.id, user_id="bob")
    start = await instant()
    for _ in range(3):
        await transfer(uow_factory, clock, tenant.id, a.id, b.id, 10)
    end = SystemClock().now() + timedelta(days=1)  # a period still running
    async with uow_factory() as uow:
        statement = await open_statement(tenant.id, a.id, start, end, uow=uow)
    await transfer(uow_factory, clock, tenant.id, a.id, b.id, 10)  # after the totals were read
    async with uow_factory() as uow:
        entries = list(await statement_page(statement, after=None, uow=uow))
    assert len(entries) == statement.window.count == 3  # the page agrees with the totals it came with
    assert entries[-1].balance_after == statement.window.closing == 970


async def test_bad_periods_and_other_tenants_accounts_are_refused(uow_factory, clock, tenant) -> None:
    other = await new_tenant(uow_factory, clock)
    theirs = await open_account(uow_factory, clock, other.id, 100)
    mine = await open_account(uow_factory, clock, tenant.id, 100)
    now = SystemClock().now()
    async with uow_factory() as uow:
        with pytest.raises(ValidationFailed):
            await open_statement(tenant.id, mine.id, now, now, uow=uow)
        with pytest.raises(ValidationFailed):
            await open_statement(tenant.id, mine.id, now, now - timedelta(seconds=1), uow=uow)
        with pytest.raises(NotFound):
            await open_statement(tenant.id, theirs.id, now - timedelta(days=1), now, uow=uow)
        with pytest.raises(NotFound):
            await balance_at(tenant.id, theirs.id, now, uow=uow)
