"""Holds past their expiry, recorded expired under their source's row lock: by whatever locks that account next
(a movement about to weigh what it may spend, a capture) or by the worker's sweep (`holds.expire_holds`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from core.accounts import Account
from core.ports import UnitOfWork
from core.usecases.announcements import announce_hold


async def release_due(uow: UnitOfWork, account: Account, now: datetime) -> int:
    """Record expired the holds of `account` (locked by the caller) that are past their expiry, giving back what
    they reserved; how many. Nothing to read unless the account holds something."""
    if not account.held:
        return 0
    due = await uow.holds.due(account.tenant_id, account.id, now)
    for hold in due:
        hold.expire(now)
        account.release(hold.amount, now)
        uow.holds.save(hold)
        announce_hold(uow, hold, "hold.expired", now)
    if due:
        uow.accounts.save_controls(account)
    return len(due)


async def release_all_due(uow: UnitOfWork, accounts: Iterable[Account], now: datetime) -> None:
    """`release_due` for each locked account: before a debit weighs what the account may spend."""
    for account in accounts:
        await release_due(uow, account, now)
