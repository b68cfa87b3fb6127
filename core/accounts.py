"""Accounts: user accounts (never below their overdraft limit, with a status that can stop their movements) and
per-tenant system accounts."""

from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

import attrs

from core.errors import (
    AccountClosed,
    AccountFrozen,
    FieldError,
    InsufficientFunds,
    InvalidStateTransition,
    ValidationFailed,
)
from core.hash_chain import GENESIS

USER = "user"
FUNDING = "funding"
CLEARING = "clearing"
SETTLEMENT_PREFIX = "settlement:"
#: How many rows each system account (funding, clearing, settlement:<provider>) of a tenant and currency is split
#: into (API.md §4): a unit of work locks one, picked at random, so concurrent ones mostly lock different rows
#: instead of queueing on one. The account is the sum of its rows; one row's balance alone means nothing.
SYSTEM_SHARDS = 8


class AccountStatus(enum.StrEnum):
    """Whether an account takes part in movements (API.md §3): `active` ⇄ `frozen`, either → `closed` (final)."""

    ACTIVE = "active"
    FROZEN = "frozen"
    CLOSED = "closed"


def settlement(provider: str) -> str:
    """The kind of the system account money paid out through `provider` lands in."""
    return SETTLEMENT_PREFIX + provider


def check_metadata(metadata: object, field: str = "metadata") -> dict[str, str]:
    """Validate API.md §3 metadata: at most 20 string keys (≤ 40 chars) to string values (≤ 500)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise ValidationFailed([FieldError(field, "must be an object of string keys to string values")])
    errors = []
    if len(metadata) > 20:
        errors.append(FieldError(field, "may hold at most 20 keys"))
    for key, value in metadata.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 40:
            errors.append(FieldError(f"{field}.{key}", "keys must be strings of 1 to 40 characters"))
        elif not isinstance(value, str) or len(value) > 500:
            errors.append(FieldError(f"{field}.{key}", "values must be strings of at most 500 characters"))
    if errors:
        raise ValidationFailed(errors)
    return dict(metadata)


@attrs.define(kw_only=True)
class Account:
    """A balance in one currency; `version` counts the ledger entries applied to it."""

    id: UUID
    tenant_id: UUID
    kind: str
    currency: str
    user_id: str | None = None
    balance: int = 0
    version: int = 0
    status: AccountStatus = attrs.field(default=AccountStatus.ACTIVE, converter=AccountStatus)
    #: How far below zero a debit may take the balance, in minor units (≥ 0; user accounts only).
    overdraft_limit: int = 0
    #: What its active holds reserve (API.md §9), in minor units; part of the balance it cannot spend.
    held: int = 0
    metadata: dict[str, str] = attrs.field(factory=dict)
    created_at: datetime
    updated_at: datetime
    #: The hash of the account's latest ledger entry (GENESIS before the first): the next entry chains from it.
    last_entry_hash: bytes = GENESIS
    #: Which row of its system account this is (0 to SYSTEM_SHARDS - 1); a user account is one row, shard 0.
    shard: int = 0

    @property
    def is_user(self) -> bool:
        """User accounts are bounded below by their overdraft limit; system accounts carry the other side."""
        return self.kind == USER

    @property
    def available_balance(self) -> int:
        """What the account may spend before its overdraft: its balance less what its active holds reserve."""
        return self.balance - self.held

    def reserve(self, amount: int, at: datetime) -> None:
        """Hold `amount` (a debit to come): `InsufficientFunds` unless `amount ≤ available + overdraft_limit`."""
        self.check_funds(-amount)
        self.held += amount
        self.updated_at = at

    def release(self, amount: int, at: datetime) -> None:
        """Give back what a hold reserved (captured, voided or expired)."""
        if not 0 < amount <= self.held:
            raise ValueError(f"account {self.id} holds {self.held}, cannot release {amount}")
        self.held -= amount
        self.updated_at = at

    def check_funds(self, delta: int) -> None:
        """A debit of a user account needs `amount ≤ available_balance + overdraft_limit` (API.md §3), else
        `InsufficientFunds`; a credit is always taken (it may leave an overdrawn balance still below zero)."""
        if delta < 0 and self.is_user and -delta > self.available_balance + self.overdraft_limit:
            raise InsufficientFunds(f"account {self.id} has insufficient funds")

    def apply(self, delta: int, at: datetime) -> int:
        """Add a signed amount (`check_funds` first), bump the version and return the balance after."""
        self.check_funds(delta)
        balance = self.balance + delta
        self.balance = balance
        self.version += 1
        self.updated_at = at
        return balance

    def ensure_movable(self) -> None:
        """Refuse a new movement (transfer, payment, batch leg) of a frozen or closed account, either side."""
        self.ensure_not_closed()
        if self.status is AccountStatus.FROZEN:
            raise AccountFrozen(f"account {self.id} is frozen")

    def ensure_not_closed(self) -> None:
        """Refuse any movement of a closed account, a refund's included (`AccountClosed`)."""
        if self.status is AccountStatus.CLOSED:
            raise AccountClosed(f"account {self.id} is closed")

    def change_status(self, to: AccountStatus, at: datetime) -> bool:
        """Move to `to` if API.md §3 allows it; whether anything changed.

        `active` ⇄ `frozen`, and either → `closed` with a zero balance; a closed account changes no more
        (`AccountClosed`). What else closing needs (nothing of it still in flight) the caller checks.
        """
        if self.status is AccountStatus.CLOSED:
            raise AccountClosed(f"account {self.id} is closed: its status can change no more")
        if to is self.status:
            return False
        if to is AccountStatus.CLOSED and self.balance != 0:
            raise InvalidStateTransition(f"account {self.id} can be closed only at a zero balance")
        if to is AccountStatus.CLOSED and self.held:
            raise InvalidStateTransition(f"account {self.id} cannot close while a hold on it is active")
        self.status, self.updated_at = to, at
        return True

    def change_overdraft_limit(self, limit: int, at: datetime) -> bool:
        """Set the overdraft limit (minor units, ≥ 0); whether it changed. It cannot go below what the account
        already owes (`ValidationFailed`), and a closed account's cannot change (`AccountClosed`)."""
        self.ensure_not_closed()
        if limit == self.overdraft_limit:
            return False
        if self.available_balance < -limit:
            raise ValidationFailed([FieldError(
                "overdraft_limit", "must cover what the account already owes (its balance is below minus it)")])
        self.overdraft_limit, self.updated_at = limit, at
        return True

    def replace_metadata(self, metadata: dict[str, str], at: datetime) -> bool:
        """Replace the whole metadata object (API.md §3); whether it changed."""
        if metadata == self.metadata:
            return False
        self.metadata, self.updated_at = dict(metadata), at
        return True


@attrs.frozen
class BalanceAt:
    """An account as read at `as_of` (`GET /accounts/{id}/balance`)."""

    account: Account
    as_of: datetime
