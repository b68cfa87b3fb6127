"""Synchronous internal transfers between two accounts of one tenant (API.md §5), alone or as a batch's legs."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

import attrs

from core.accounts import Account
from core.errors import CurrencyMismatch, NotFound, SameAccount
from core.ids import new_id
from core.payments import Payment, PaymentStatus, PaymentType
from core.ports import Clock, UnitOfWork
from core.usecases.announcements import announce_payment
from core.usecases.hold_expiry import release_all_due
from core.usecases.postings import MoneyOut, move


@attrs.frozen(kw_only=True)
class MakeTransfer(MoneyOut):
    """Move `amount` from one user account to another."""

    destination_account_id: UUID

    @property
    def locked_accounts(self) -> tuple[UUID, UUID]:
        """The accounts `make_transfer` locks: declare them to the `UnitOfWorkFactory` (`lock_accounts`) so
        that the request waits for its turn on a hot account before it takes a connection."""
        return (self.source_account_id, self.destination_account_id)


async def make_transfer(cmd: MakeTransfer, *, uow: UnitOfWork, clock: Clock) -> Payment:
    """Lock both accounts (ascending id order), post the entries and record a completed payment.

    Raises `SameAccount`, `NotFound`, `AccountFrozen`, `AccountClosed`, `CurrencyMismatch` or `InsufficientFunds`.
    """
    if cmd.source_account_id == cmd.destination_account_id:
        raise SameAccount("source and destination must be different accounts")
    locked = await uow.accounts.lock(cmd.tenant_id, cmd.locked_accounts)
    now = clock.now()
    await release_all_due(uow, locked.values(), now)
    return book_transfer(cmd, locked, uow=uow, at=now)


def movable_pair(tenant_id: UUID, source_id: UUID, destination_id: UUID, currency: str,
                 locked: Mapping[UUID, Account]) -> tuple[Account, Account]:
    """The two locked accounts of a movement between them (a transfer, a hold), checked as API.md §5 checks a
    transfer's: distinct, the tenant's user accounts, neither frozen nor closed, both in `currency`. Raises
    `SameAccount`, `NotFound`, `AccountFrozen`, `AccountClosed` or `CurrencyMismatch`."""
    if source_id == destination_id:
        raise SameAccount("source and destination must be different accounts")
    source, destination = locked.get(source_id), locked.get(destination_id)
    for account_id, account in ((source_id, source), (destination_id, destination)):
        if account is None or not account.is_user or account.tenant_id != tenant_id:
            raise NotFound(f"account {account_id} not found")
    assert source is not None and destination is not None
    for account in (source, destination):
        account.ensure_movable()
        if account.currency != currency:
            raise CurrencyMismatch(f"account {account.id} holds {account.currency}, not {currency}")
    return source, destination


def book_transfer(cmd: MakeTransfer, locked: Mapping[UUID, Account], *, uow: UnitOfWork, at: datetime) -> Payment:
    """Check a transfer against accounts already locked, post its entries and record its completed payment.

    The one posting path of a transfer, alone or as a leg of a batch (`core.usecases.batches`): every check
    runs before anything changes, so a refused transfer leaves the accounts and the unit of work as they
    were. Raises `SameAccount`, `NotFound`, `AccountFrozen`, `AccountClosed`, `CurrencyMismatch`,
    `InsufficientFunds` or `ValidationFailed`.
    """
    source, destination = movable_pair(cmd.tenant_id, cmd.source_account_id, cmd.destination_account_id,
                                       cmd.amount.currency, locked)
    payment = Payment(
        id=new_id(), tenant_id=cmd.tenant_id, payment_type=PaymentType.INTERNAL_TRANSFER,
        status=PaymentStatus.PENDING, source_account_id=source.id, destination_account_id=destination.id,
        amount=cmd.amount.minor, currency=cmd.amount.currency, description=cmd.description, metadata=cmd.metadata,
        correlation_id=cmd.correlation_id, created_at=at, updated_at=at,
    )
    payment.record("payment.created", at)
    move(uow, [(source, -cmd.amount.minor), (destination, cmd.amount.minor)], at, payment_id=payment.id)
    payment.complete_internal(at)
    uow.payments.add(payment)
    announce_payment(uow, payment, "transfer.completed", at)
    return payment
