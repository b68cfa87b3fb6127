"""Balances at a point in time and statements of a period (API.md §3), read from the account's entries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from uuid import UUID

from core.errors import FieldError, ValidationFailed
from core.ledger import Entry, PostedBalance, Statement
from core.ports import UnitOfWork
from core.usecases.accounts import get_account

#: Entries a statement reads per query while it streams: enough to keep the round trips few, few enough to keep
#: the process's memory flat however many entries the period holds.
STATEMENT_PAGE = 1_000


async def balance_at(tenant_id: UUID, account_id: UUID, at: datetime, *, uow: UnitOfWork) -> PostedBalance:
    """The balance at the instant `at`, entries made at `at` included; `NotFound` as `get_account`."""
    account = await get_account(tenant_id, account_id, uow=uow)
    entry = await uow.ledger.last_before(tenant_id, account_id, at + timedelta(microseconds=1))
    return PostedBalance(account=account, balance=entry.balance_after if entry else 0,
                         version=entry.seq if entry else 0, as_of=at)


async def open_statement(tenant_id: UUID, account_id: UUID, start: datetime, end: datetime, *,
                         uow: UnitOfWork) -> Statement:
    """The statement's account and totals. Raises `ValidationFailed` unless `start < end`, `NotFound`."""
    if start >= end:
        raise ValidationFailed([FieldError("to", "must be after from")])
    account = await get_account(tenant_id, account_id, uow=uow)
    return Statement(account=account, start=start, end=end,
                     window=await uow.ledger.window(tenant_id, account_id, start, end))


async def statement_page(statement: Statement, *, after: Entry | None, uow: UnitOfWork,
                         limit: int = STATEMENT_PAGE) -> Sequence[Entry]:
    """The statement's entries after `after` (the last one read; None: from the first), oldest first (none once
    it is all read)."""
    account, key = statement.account, None if after is None else (after.created_at, after.seq)
    return await uow.ledger.window_entries(account.tenant_id, account.id, statement.window, statement.start,
                                           statement.end, after=key, limit=limit)
