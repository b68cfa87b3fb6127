"""Holds (API.md §9): reserve now, capture (a completed internal transfer) or void later, expire on time.

Every change of a hold runs under its source account's row lock, the lock every movement of that account takes:
so `held` is always the sum of the account's active holds, no two changes of one hold interleave (it is captured
or released once), and a source's active holds never exceed `balance + overdraft_limit` (`Account.reserve`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import attrs

from core.accounts import Account
from core.commands import Command
from core.errors import SameAccount, found
from core.holds import Hold, HoldStatus, expiry
from core.ids import new_id
from core.money import Money, parse_amount
from core.ports import Clock, Page, UnitOfWork, UnitOfWorkFactory
from core.usecases.announcements import announce_hold
from core.usecases.hold_expiry import release_due
from core.usecases.postings import MoneyOut
from core.usecases.transfers import MakeTransfer, book_transfer, movable_pair


@attrs.frozen(kw_only=True)
class CreateHold(MoneyOut):
    """Reserve `amount` of the source for the destination, until `expires_in` seconds from now."""

    destination_account_id: UUID
    expires_in: int | None = None

    @property
    def locked_accounts(self) -> tuple[UUID, UUID]:
        return (self.source_account_id, self.destination_account_id)


@attrs.frozen(kw_only=True)
class CaptureHold(Command):
    """Move `amount` (default: all of it) of an active hold to its destination; the rest is released."""

    hold_id: UUID
    amount: Decimal | None = None


async def create_hold(cmd: CreateHold, *, uow: UnitOfWork, clock: Clock) -> Hold:
    """Checks as a transfer (§5), then reserve the amount on the source. Raises `SameAccount`, `NotFound`,
    `AccountFrozen`, `AccountClosed`, `CurrencyMismatch`, `InsufficientFunds` or `ValidationFailed`."""
    if cmd.source_account_id == cmd.destination_account_id:
        raise SameAccount("source and destination must be different accounts")
    locked = await uow.accounts.lock(cmd.tenant_id, cmd.locked_accounts)
    source, destination = movable_pair(cmd.tenant_id, cmd.source_account_id, cmd.destination_account_id,
                                       cmd.amount.currency, locked)
    now = clock.now()
    expires_at = expiry(cmd.expires_in, now)
    await release_due(uow, source, now)
    source.reserve(cmd.amount.minor, now)
    uow.accounts.save_controls(source)
    hold = Hold(id=new_id(), tenant_id=cmd.tenant_id, source_account_id=source.id,
                destination_account_id=destination.id, amount=cmd.amount.minor, currency=cmd.amount.currency,
                expires_at=expires_at, description=cmd.description, metadata=cmd.metadata,
                correlation_id=cmd.correlation_id, created_at=now, updated_at=now)
    uow.holds.add(hold)
    announce_hold(uow, hold, "hold.created", now)
    return hold


async def _locked_hold(tenant_id: UUID, hold_id: UUID, uow: UnitOfWork,
                       *, destination: bool) -> tuple[Hold, dict[UUID, Account]]:
    """The hold, read again once its source (and its destination) are locked: every change of it holds them."""
    seen = found(await uow.holds.get(tenant_id, hold_id), f"hold {hold_id}")
    ids = [seen.source_account_id, *([seen.destination_account_id] if destination else [])]
    locked = await uow.accounts.lock(tenant_id, ids)
    hold = await uow.holds.get(tenant_id, hold_id)
    assert hold is not None  # holds are never deleted
    return hold, locked


async def capture_hold(cmd: CaptureHold, *, uow: UnitOfWork, clock: Clock) -> Hold:
    """Release the hold and make the completed transfer of the captured amount in one unit of work. Raises
    `NotFound`, `InvalidStateTransition` (not active, or expired), `ValidationFailed` (more than held),
    `AccountFrozen` or `AccountClosed` (either side)."""
    hold, locked = await _locked_hold(cmd.tenant_id, cmd.hold_id, uow, destination=True)
    now = clock.now()
    amount = hold.amount if cmd.amount is None else parse_amount(cmd.amount, hold.currency).minor
    hold.ensure_capturable(amount, now)  # before anything moves
    source = locked[hold.source_account_id]
    source.release(hold.amount, now)
    uow.accounts.save_controls(source)
    transfer = MakeTransfer(tenant_id=cmd.tenant_id, source_account_id=hold.source_account_id,
                            destination_account_id=hold.destination_account_id, amount=Money(amount, hold.currency),
                            description=hold.description, metadata=hold.metadata,
                            correlation_id=cmd.correlation_id or hold.correlation_id)
    payment = book_transfer(transfer, locked, uow=uow, at=now)
    hold.capture(amount, payment.id, now)
    uow.holds.save(hold)
    announce_hold(uow, hold, "hold.captured", now, correlation_id=cmd.correlation_id)
    return hold


async def void_hold(tenant_id: UUID, hold_id: UUID, *, uow: UnitOfWork, clock: Clock,
                    correlation_id: str | None = None) -> Hold:
    """Release the whole hold (also on a frozen account). Raises `NotFound`, `InvalidStateTransition`."""
    hold, locked = await _locked_hold(tenant_id, hold_id, uow, destination=False)
    now = clock.now()
    hold.void(now)
    source = locked[hold.source_account_id]
    source.release(hold.amount, now)
    uow.accounts.save_controls(source)
    uow.holds.save(hold)
    announce_hold(uow, hold, "hold.voided", now, correlation_id=correlation_id)
    return hold


async def get_hold(tenant_id: UUID, hold_id: UUID, *, uow: UnitOfWork) -> Hold:
    return found(await uow.holds.get(tenant_id, hold_id), f"hold {hold_id}")


async def list_holds(
    tenant_id: UUID, *, account_id: UUID | None, status: HoldStatus | None, metadata: Mapping[str, str] | None,
    now: datetime, limit: int, cursor: str | None, uow: UnitOfWork,
) -> Page[Hold]:
    return await uow.holds.list(tenant_id, account_id=account_id, status=status, metadata=metadata or None,
                                now=now, limit=limit, cursor=cursor)


async def expire_holds(*, uow_factory: UnitOfWorkFactory, clock: Clock, limit: int = 500) -> int:
    """The worker's sweep: record expired every hold past its expiry (found through their index), each account
    under its row lock; how many. A hold a movement already expired is not expired twice."""
    async with uow_factory(read_only=True) as uow:
        due = await uow.holds.expiring(clock.now(), limit)
    expired = 0
    for tenant_id, account_id in dict.fromkeys(due):
        async with uow_factory(lock_accounts=[account_id]) as uow:
            account = (await uow.accounts.lock(tenant_id, [account_id])).get(account_id)
            if account is not None:
                expired += await release_due(uow, account, clock.now())
    return expired
