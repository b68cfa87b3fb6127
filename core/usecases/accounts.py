"""Open accounts (funded from the tenant's funding account), change their controls, and read them back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import attrs

from core.accounts import FUNDING, USER, Account, AccountStatus, BalanceAt
from core.commands import Command
from core.errors import InvalidStateTransition, NotFound
from core.events import OutboxMessage
from core.ids import new_id
from core.ledger import Entry, post
from core.money import Money, parse_amount
from core.ports import Clock, Page, UnitOfWork
from core.usecases.hold_expiry import release_due
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


@attrs.frozen(kw_only=True)
class UpdateAccount(Command):
    """`PATCH /accounts/{id}` (API.md §3): what is given changes, what is not stays."""

    account_id: UUID
    metadata: dict[str, str] | None = None
    """Replaces the whole object."""
    status: AccountStatus | None = attrs.field(default=None, converter=attrs.converters.optional(AccountStatus))
    overdraft_limit: Decimal | None = None
    """A decimal amount in the account's currency, ≥ 0 (parsed once the account, hence its currency, is read)."""

    @property
    def locked_accounts(self) -> tuple[UUID]:
        """The account `update_account` locks (declare it as `lock_accounts`)."""
        return (self.account_id,)


async def update_account(cmd: UpdateAccount, *, uow: UnitOfWork, clock: Clock) -> Account:
    """Change an account's overdraft limit, metadata and status under its row lock, so that no movement of it
    runs meanwhile, and announce `account.updated` if anything changed.

    Closing needs a zero balance and nothing of the account still in flight (an external payment from it, a
    refund to it): else `InvalidStateTransition`. Raises `NotFound`, `AccountClosed` (a closed account's status
    and limit change no more; its metadata may), `ValidationFailed` (a limit that is no amount of the account's
    currency, or below what the account owes).
    """
    account = (await uow.accounts.lock(cmd.tenant_id, cmd.locked_accounts)).get(cmd.account_id)
    if account is None or not account.is_user:
        raise NotFound(f"account {cmd.account_id} not found")
    now, changed = clock.now(), False
    changed |= await release_due(uow, account, now) > 0
    if cmd.overdraft_limit is not None:
        limit = parse_amount(cmd.overdraft_limit, account.currency, field="overdraft_limit", allow_zero=True)
        changed |= account.change_overdraft_limit(limit.minor, now)
    if cmd.metadata is not None:
        changed |= account.replace_metadata(cmd.metadata, now)
    if cmd.status is not None:
        closing = cmd.status is AccountStatus.CLOSED and account.status is not AccountStatus.CLOSED
        if closing and account.balance == 0 and await uow.payments.unsettled_for(cmd.tenant_id, account.id):
            raise InvalidStateTransition(
                f"account {account.id} cannot close while a payment from it or a refund to it is in flight")
        changed |= account.change_status(cmd.status, now)
    if changed:
        uow.accounts.save_controls(account)
        uow.outbox.add(OutboxMessage.new(
            tenant_id=cmd.tenant_id, topic="account.updated", aggregate_id=account.id,
            payload=account_view(account), correlation_id=cmd.correlation_id, at=now,
        ))
    return account


async def get_account(tenant_id: UUID, account_id: UUID, *, uow: UnitOfWork, now: datetime | None = None
                      ) -> Account:
    """The caller's user account, or `NotFound` (also for other tenants' and system accounts). Given `now`, as
    a read shows it then: what its holds past their expiry reserved is no longer held, recorded or not."""
    account = await uow.accounts.get(tenant_id, account_id)
    if account is None or not account.is_user:
        raise NotFound(f"account {account_id} not found")
    return await _as_read(account, uow, now)


async def _as_read(account: Account, uow: UnitOfWork, now: datetime | None) -> Account:
    """`account` as a read shows it at `now`: what its holds past their expiry reserved is no longer held."""
    if now is not None and account.held:
        account.held -= sum(hold.amount for hold in await uow.holds.due(account.tenant_id, account.id, now))
    return account


async def get_balance(tenant_id: UUID, account_id: UUID, *, uow: UnitOfWork, clock: Clock) -> BalanceAt:
    """The caller's user account and the time it was read at; `NotFound` as `get_account`."""
    now = clock.now()
    return BalanceAt(await get_account(tenant_id, account_id, uow=uow, now=now), now)


async def list_accounts(
    tenant_id: UUID, *, user_id: str | None, status: AccountStatus | None = None,
    metadata: Mapping[str, str] | None = None, limit: int, cursor: str | None, uow: UnitOfWork,
    now: datetime | None = None,
) -> Page[Account]:
    """The caller's user accounts, newest first, optionally of one user, one status and matching `metadata`;
    given `now`, what holds past their expiry reserved is no longer held (as `get_account`)."""
    page = await uow.accounts.list(tenant_id, user_id=user_id, status=status, metadata=metadata or None,
                                   limit=limit, cursor=cursor)
    for account in page.items:
        await _as_read(account, uow, now)
    return page


async def list_transactions(
    tenant_id: UUID, account_id: UUID, *, limit: int, cursor: str | None, uow: UnitOfWork
) -> Page[Entry]:
    """An account's ledger entries, newest first; `NotFound` for an account not the caller's."""
    await get_account(tenant_id, account_id, uow=uow)
    return await uow.ledger.list(tenant_id, account_id, limit=limit, cursor=cursor)
