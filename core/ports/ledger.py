"""Ports of the money itself: accounts, their ledger entries and the audit of the ledger's invariants."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from core.accounts import Account, AccountStatus
from core.ledger import Entry, Window
from core.ports.paging import Page


class Accounts(Protocol):
    """User and system accounts of every tenant.

    Reads never return another tenant's account. `lock` takes row locks that last
    until the unit of work ends, in ascending id order, so two units of work that
    lock overlapping sets can never deadlock; it returns the accounts found, as this
    unit of work sees them (its own buffered changes included), and locking again
    accounts it holds already returns them so without waiting (PostgreSQL reads
    nothing again). `add` and `save` are buffered and written when the unit of
    work commits.
    """

    async def get(self, tenant_id: UUID, account_id: UUID) -> Account | None: ...

    async def lock(self, tenant_id: UUID, account_ids: Sequence[UUID]) -> dict[UUID, Account]: ...

    async def lock_system(self, tenant_id: UUID, kind: str, currency: str) -> Account:
        """Lock a row of the tenant's system account of `kind` in `currency`, creating it if needed.

        A system account is `SYSTEM_SHARDS` rows (API.md §4: a hot row spread): the first call in a unit of work
        picks one at random, and every later call in it returns that row (locked already: no round trip on
        PostgreSQL), so each unit of work moves one row of each system account it touches, and concurrent ones
        mostly different rows. The account's balance is the sum of its rows; a row's own balance means nothing."""
        ...

    async def lock_systems(self, tenant_id: UUID, kinds: Sequence[str], currency: str) -> list[Account]:
        """`lock_system` for each of `kinds` (distinct), in that order, which is the order of their row locks: the
        accounts, in the same order. PostgreSQL locks those that exist in one statement (one round trip)."""
        ...

    async def list(
        self, tenant_id: UUID, *, user_id: str | None, status: AccountStatus | None = None,
        metadata: Mapping[str, str] | None = None, limit: int, cursor: str | None,
    ) -> Page[Account]:
        """User accounts, newest first, optionally of one user, one status and holding every (key, value) of
        `metadata`. Raises `ValidationFailed` for a malformed cursor."""
        ...

    def add(self, account: Account) -> None: ...

    def save(self, account: Account) -> None:
        """Buffer what a posting changed: the balance, version, `updated_at` and chain head."""
        ...

    def save_controls(self, account: Account) -> None:
        """Buffer what `PATCH /accounts/{id}` changed: status, overdraft limit, metadata and `updated_at`."""
        ...


class Ledger(Protocol):
    """Append-only ledger entries. `add` is buffered until commit."""

    def add(self, entries: Sequence[Entry]) -> None: ...

    async def list(self, tenant_id: UUID, account_id: UUID, *, limit: int, cursor: str | None) -> Page[Entry]:
        """An account's entries, newest first. Raises `ValidationFailed` for a malformed cursor."""
        ...

    async def last_before(self, tenant_id: UUID, account_id: UUID, at: datetime) -> Entry | None:
        """The account's latest entry with `created_at < at` (the one whose `balance_after` was its balance
        then), or None."""
        ...

    async def window(self, tenant_id: UUID, account_id: UUID, start: datetime, end: datetime) -> Window:
        """What the account's entries with `start ≤ created_at < end` add up to."""
        ...

    async def window_entries(
        self, tenant_id: UUID, account_id: UUID, window: Window, start: datetime, end: datetime, *,
        after: tuple[datetime, int] | None, limit: int,
    ) -> Sequence[Entry]:
        """The window's entries (`seq ≤ window.last_seq`) oldest first, by (created_at, seq), from after the
        entry `after` names, at most `limit`: a statement page, read by keyset on the index by time."""
        ...


class LedgerAudit(Protocol):
    """Verifies the invariants of API.md §4 over the whole store."""

    async def drift(self) -> list[str]:
        """One human-readable line per broken invariant; empty when the ledger is sound."""
        ...
