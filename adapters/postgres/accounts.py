"""Accounts in PostgreSQL: row locks in id order, keyset listing, buffered inserts and updates."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from adapters.cursor import decode_cursor, encode_cursor
from adapters.postgres.rows import insert_rows, update_rows
from core.accounts import Account
from core.errors import FieldError, ValidationFailed
from core.ids import new_id
from core.ports import Page

if TYPE_CHECKING:
    from adapters.postgres.rows import Fragment
    from adapters.postgres.uow import PgUnitOfWork

COLUMNS = "id, tenant_id, kind, user_id, currency, balance, version, status, metadata, created_at, updated_at"

GET = f"SELECT {COLUMNS} FROM accounts WHERE tenant_id = $1 AND id = $2"

# ORDER BY below FOR UPDATE: rows are locked in ascending id order, so no two
# transactions can wait on each other's rows in opposite orders.
LOCK = f"SELECT {COLUMNS} FROM accounts WHERE tenant_id = $1 AND id = ANY($2::uuid[]) ORDER BY id FOR UPDATE"

LOCK_SYSTEM = f"""SELECT {COLUMNS} FROM accounts
WHERE tenant_id = $1 AND kind = $2 AND currency = $3 AND kind <> 'user' FOR UPDATE"""

CREATE_SYSTEM = """INSERT INTO accounts (id, tenant_id, kind, currency, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (tenant_id, kind, currency) WHERE kind <> 'user' DO NOTHING"""

LIST = f"""SELECT {COLUMNS} FROM accounts
WHERE tenant_id = $1 AND kind = 'user' AND ($2::text IS NULL OR user_id = $2)
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
ORDER BY created_at DESC, id DESC LIMIT $5"""

_UPDATED = (("id", "uuid"), ("balance", "bigint"), ("version", "bigint"), ("updated_at", "timestamptz"))


def to_account(row: asyncpg.Record) -> Account:
    return Account(
        id=row["id"], tenant_id=row["tenant_id"], kind=row["kind"], user_id=row["user_id"],
        currency=row["currency"], balance=row["balance"], version=row["version"], status=row["status"],
        metadata=row["metadata"], created_at=row["created_at"], updated_at=row["updated_at"],
    )


class PgAccounts:
    """The `Accounts` port on PostgreSQL."""

    def __init__(self, uow: PgUnitOfWork) -> None:
        self._uow = uow
        self._new: dict[UUID, Account] = {}
        self._dirty: dict[UUID, Account] = {}

    async def get(self, tenant_id: UUID, account_id: UUID) -> Account | None:
        row = await self._uow.fetchrow(GET, tenant_id, account_id)
        return to_account(row) if row else None

    async def lock(self, tenant_id: UUID, account_ids: Sequence[UUID]) -> dict[UUID, Account]:
        wanted = set(account_ids) - set(self._uow.held)
        self._uow.held += await self._uow.local_locks.acquire(wanted)
        rows = await self._uow.fetch(LOCK, tenant_id, sorted(set(account_ids)))
        return {row["id"]: self._current(to_account(row)) for row in rows}

    async def lock_system(self, tenant_id: UUID, kind: str, currency: str) -> Account:
        row = await self._uow.fetchrow(LOCK_SYSTEM, tenant_id, kind, currency)
        if row is None:
            await self._uow.fetch(CREATE_SYSTEM, new_id(), tenant_id, kind, currency, datetime.now(UTC))
            row = await self._uow.fetchrow(LOCK_SYSTEM, tenant_id, kind, currency)
        assert row is not None
        return self._current(to_account(row))

    def _current(self, stored: Account) -> Account:
        """This unit of work's own changes win over the stored row (two postings on one account)."""
        return self._dirty.get(stored.id, stored)

    async def list(self, tenant_id: UUID, *, user_id: str | None, limit: int, cursor: str | None) -> Page[Account]:
        after: list[Any] = [None, None]
        if cursor is not None:
            created, last_id = decode_cursor(cursor, 2)
            after = [_parse_time(created), _parse_uuid(last_id)]
        rows = await self._uow.fetch(LIST, tenant_id, user_id, *after, limit + 1)
        items = [to_account(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_cursor(items[-1].created_at.isoformat(), str(items[-1].id)) if more else None)

    def add(self, account: Account) -> None:
        self._new[account.id] = account

    def save(self, account: Account) -> None:
        if account.id not in self._new:
            self._dirty[account.id] = account

    def flush(self) -> builtins.list[Fragment]:
        fragments: builtins.list[Fragment] = []
        if self._new:
            fragments.append(insert_rows("accounts", COLUMNS, [
                (a.id, a.tenant_id, a.kind, a.user_id, a.currency, a.balance, a.version, a.status, a.metadata,
                 a.created_at, a.updated_at) for a in self._new.values()]))
        if self._dirty:
            fragments.append(update_rows("accounts", _UPDATED, [
                (a.id, a.balance, a.version, a.updated_at) for a in self._dirty.values()]))
        return fragments



def _parse_time(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("a cursor's time is always zoned")
        return parsed.astimezone(UTC)
    except (TypeError, ValueError, OverflowError):
        raise ValidationFailed([FieldError("cursor", "is not a cursor this API returned")]) from None


def _parse_uuid(value: Any) -> UUID:
    try:
        return UUID(value)
    except (TypeError, ValueError, AttributeError):
        raise ValidationFailed([FieldError("cursor", "is not a cursor this API returned")]) from None
