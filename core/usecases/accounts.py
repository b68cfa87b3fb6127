"""Open accounts (funded from the tenant's funding account) and read them back."""

from __future__ import annotations

from uuid import UUID

import attrs

from core.accounts import FUNDING, USER, Account
from core.commands import Command
from core.errors import NotFound
from core.events import OutboxMessage
from core.ids import new_id
from core.ledger import Entry, post
from core.money import Money
from core.ports import Clock, Page, UnitOfWork
from core.views import account_view


@attrs.frozen(kw_only=True)
class CreateAccount(Command):
    """Open a user account, optionally with an initial balance (≥ 0)."""

    user_id: str
    """The caller's own id for the account's holder (not unique: a user may hold several accounts)."""
    currency: str
    initial_balance: Money | None = None
    """In the account's currency; posted from the tenant's funding account, so the ledger stays balanced."""
    metadata: dict[str, str] = attrs.field(factory=dict)


async def create_account(cmd: CreateAccount, *, uow: UnitOfWork, clock: Clock) -> Account:
    """Insert the account; a positive initial balance is a posting from the funding account."""
    now = clock.now()
    account = Account(
        id=new_id(), tenant_id=cmd.tenant_id, kind=USER, currency=cmd.currency, user_id=cmd.user_id,
        metadata=cmd.metadata, created_at=now, updated_at=now,
    )
    uow.accounts.add(account)
    if cmd.initial_balance is not None and cmd.initial_balance.minor > 0:
        funding = await uow.accounts.lock_system(cmd.tenant_id, FUNDING, cmd.currency)
        amount = cmd.initial_balance.minor
        uow.ledger.add(post([(funding, -amount), (account, amount)], at=now))
        uow.accounts.save(funding)
    uow.outbox.add(OutboxMessage.new(
        tenant_id=cmd.tenant_id, topic="account.created", aggregate_id=account.id,
        payload=account_view(account), correlation_id=cmd.correlation_id, at=now,
    ))
    return account


async def get_account(tenant_id: UUID, account_id: UUID, *, uow: UnitOfWork) -> Account:
    """The caller's user account, or `NotFound` (also for other tenants' and system accounts)."""
    account = await uow.accounts.get(tenant_id, account_id)
    if account is None or not account.is_user:
        raise NotFound(f"account {account_id} not found")
    return account


async def list_accounts(
    tenant_id: UUID, *, user_id: str | None, limit: int, cursor: str | None, uow: UnitOfWork
) -> Page[Account]:
    """The caller's user accounts, newest first, optionally of one user."""
    return await uow.accounts.list(tenant_id, user_id=user_id, limit=limit, cursor=cursor)


async def list_transactions(
    tenant_id: UUID, account_id: UUID, *, limit: int, cursor: str | None, uow: UnitOfWork
) -> Page[Entry]:
    """An account's ledger entries, newest first; `NotFound` for an account not the caller's."""
    await get_account(tenant_id, account_id, uow=uow)
    return await uow.ledger.list(tenant_id, account_id, limit=limit, cursor=cursor)
