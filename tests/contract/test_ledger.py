"""Ledger: an account's entries, newest first, keyset-paginated and scoped by tenant."""

from __future__ import annotations

from uuid import uuid4

import pytest

from adapters.cursor import encode_cursor
from core.errors import ValidationFailed
from tests.contract.conftest import new_tenant, open_account, transfer

pytestmark = pytest.mark.timeout(30)


async def test_list_is_newest_first_and_keyset_paginated(uow_factory, clock, tenant) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 1_000)
    b = await open_account(uow_factory, clock, tenant.id, user_id="bob")
    payments = [await transfer(uow_factory, clock, tenant.id, a.id, b.id, amount) for amount in (10, 20, 30, 40)]

    seen, cursor = [], None
    async with uow_factory() as uow:
        while True:
            page = await uow.ledger.list(tenant.id, a.id, limit=2, cursor=cursor)
            assert len(page.items) <= 2
            seen += page.items
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        exact = await uow.ledger.list(tenant.id, a.id, limit=5, cursor=None)
    assert [e.seq for e in seen] == [5, 4, 3, 2, 1]
    assert [e.amount for e in seen] == [-40, -30, -20, -10, 1_000]
    assert [e.balance_after for e in seen] == [900, 940, 970, 990, 1_000]
    assert [e.payment_id for e in seen] == [p.id for p in reversed(payments)] + [None]
    assert [e.type for e in seen] == ["debit"] * 4 + ["credit"]
    assert {(e.tenant_id, e.account_id, e.currency) for e in seen} == {(tenant.id, a.id, "USD")}
    assert len(exact.items) == 5
    assert exact.next_cursor is None


async def test_list_is_scoped_by_tenant_and_account(uow_factory, clock, tenant) -> None:
    other = await new_tenant(uow_factory, clock)
    a = await open_account(uow_factory, clock, tenant.id, 1_000)
    async with uow_factory() as uow:
        assert (await uow.ledger.list(other.id, a.id, limit=10, cursor=None)).items == []
        empty = await uow.ledger.list(tenant.id, uuid4(), limit=10, cursor=None)
        assert (empty.items, empty.next_cursor) == ([], None)


@pytest.mark.parametrize("cursor", [
    "garbage!!", "", encode_cursor(1, 2), encode_cursor("5"), encode_cursor(True), encode_cursor(1.5),
    encode_cursor(None), encode_cursor([3]),
])
async def test_list_refuses_a_malformed_cursor(uow_factory, clock, tenant, cursor) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 1_000)
    async with uow_factory() as uow:
        with pytest.raises(ValidationFailed) as caught:
            await uow.ledger.list(tenant.id, a.id, limit=5, cursor=cursor)
    assert [e.field for e in caught.value.errors] == ["cursor"]


async def test_list_refuses_a_cursor_outside_bigint(request, backend, uow_factory, clock, tenant) -> None:
    a = await open_account(uow_factory, clock, tenant.id, 1_000)
    async with uow_factory() as uow:
        with pytest.raises(ValidationFailed):
            await uow.ledger.list(tenant.id, a.id, limit=5, cursor=encode_cursor(2**63))
