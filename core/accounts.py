"""Accounts: user accounts that may never go negative and per-tenant system accounts."""

from __future__ import annotations

import enum
from datetime import datetime
from uuid import UUID

import attrs

from core.errors import FieldError, InsufficientFunds, ValidationFailed
from core.hash_chain import GENESIS

USER = "user"
FUNDING = "funding"
CLEARING = "clearing"
SETTLEMENT_PREFIX = "settlement:"


class AccountStatus(enum.StrEnum):
    """Whether an account takes postings; every account opened today is active."""

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
    metadata: dict[str, str] = attrs.field(factory=dict)
    created_at: datetime
    updated_at: datetime
    #: The hash of the account's latest ledger entry (GENESIS before the first): the next entry chains from it.
    last_entry_hash: str = GENESIS

    @property
    def is_user(self) -> bool:
        """User accounts can never be overdrawn; system accounts carry the other side."""
        return self.kind == USER

    def apply(self, delta: int, at: datetime) -> int:
        """Add a signed amount, bump the version and return the balance after."""
        balance = self.balance + delta
        if balance < 0 and self.is_user:
            raise InsufficientFunds(f"account {self.id} has insufficient funds")
        self.balance = balance
        self.version += 1
        self.updated_at = at
        return balance
