"""Accounts in PostgreSQL: row locks in id order, keyset listing, buffered inserts and updates."""

from __future__ import annotations

import builtins
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from adapters.cursor import decode_cursor, encode_cursor
from adapters.pending import Pending
from adapters.postgres.rows import Fragment, insert_entities, reader, update_entities
from adapters.postgres.session import PgSession
from core.accounts import SYSTEM_SHARDS, Account, AccountStatus
from core.errors import FieldError, ValidationFailed
from core.ids import new_id
from core.ports import Page

COLUMNS = ("id, tenant_id, kind, user_id, currency, balance, version, status, overdraft_limit, held, metadata,"
           " created_at, updated_at, last_entry_hash, shard")

GET = f"SELECT {COLUMNS} FROM accounts WHERE tenant_id = $1 AND id = $2"

# ORDER BY below FOR UPDATE: rows are locked in ascending id order, so no two
# transactions can wait on each other's rows in opposite orders.
LOCK = f"SELECT {COLUMNS} FROM accounts WHERE tenant_id = $1 AND id = ANY($2::uuid[]) ORDER BY id FOR UPDATE"

#: Several rows, one per (kind, shard) of $2 and $4, locked in that order: ORDER BY runs below FOR UPDATE.
LOCK_SYSTEMS = f"""SELECT {", ".join("a." + c.strip() for c in COLUMNS.split(","))}
FROM unnest($2::text[], $4::smallint[]) WITH ORDINALITY AS w (kind, shard, n)
JOIN accounts a ON a.tenant_id = $1 AND a.kind = w.kind AND a.currency = $3 AND a.shard = w.shard AND a.kind <> 'user'
ORDER BY w.n FOR UPDATE OF a"""

#: The rows of $3/$5 (kind, shard) not there yet; RETURNING those this statement inserted. A row another transaction
#: is inserting makes it wait for that one's end, holding no row lock of its own meanwhile (it runs before the lock).
CREATE_SYSTEMS = """INSERT INTO accounts (id, tenant_id, kind, currency, shard, created_at, updated_at)
SELECT w.id, $2, w.kind, $4, w.shard, $6, $6 FROM unnest($1::uuid[], $3::text[], $5::smallint[]) AS w (id, kind, shard)
ON CONFLICT (tenant_id, kind, currency, shard) WHERE kind <> 'user' DO NOTHING RETURNING kind, shard"""

#: System rows known to exist, in this process (tenant, kind, currency, shard): they are never deleted, so locking
#: them needs no insert first. Rows this process inserted are added once a later unit of work finds them there.
Slot = tuple[UUID, str, str, int]
_EXISTING: set[Slot] = set()

LIST = f"""SELECT {COLUMNS} FROM accounts
WHERE tenant_id = $1 AND kind = 'user' AND ($2::text IS NULL OR user_id = $2) AND ($3::text IS NULL OR status = $3)
  AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
ORDER BY created_at DESC, id DESC LIMIT $6"""
#: With a metadata filter (API.md §1): the partial GIN index `accounts_metadata` (migration 0014) serves it; the
#: `<> '{}'` repeats the index's predicate so that the planner may use it.
LIST_BY_METADATA = LIST.replace("\nORDER BY", "\n  AND metadata <> '{}'::jsonb AND metadata @> $7::jsonb\nORDER BY")

#: What a posting changes (`save`), and besides it what `PATCH /accounts/{id}` changes (`save_controls`): a
#: transfer's write does not carry the controls it never changes.
_UPDATED = (("id", "uuid"), ("balance", "bigint"), ("version", "bigint"), ("updated_at", "timestamptz"),
            ("last_entry_hash", "bytea"))
_CONTROLLED = (*_UPDATED, ("status", "text"), ("overdraft_limit", "bigint"), ("held", "bigint"), ("metadata", "jsonb"))

to_account = reader(Account, COLUMNS)
_UNKNOWN = object()


class PgAccounts:
    """The `Accounts` port on PostgreSQL."""

    def __init__(self, session: PgSession) -> None:
        self._session = session
        self._pending = Pending[Account]()
        self.add, self.save = self._pending.add, self._pending.save  # buffered until commit
        self._controlled: set[UUID] = set()
        #: The rows this unit of work has row-locked (by tenant, then id; None: asked for, not found): they stay
        #: locked until it ends, so locking them again reads nothing (a group commit's requests lock theirs
        #: after the group locked them all).
        self._locked: dict[tuple[UUID, UUID], Account | None] = {}
        #: The system accounts it has row-locked, by (tenant, kind, currency): locking one again reads nothing (the
        #: completions a worker shares in one unit of work lock theirs after the group locked them).
        self._systems: dict[tuple[UUID, str, str], Account] = {}

    async def get(self, tenant_id: UUID, account_id: UUID) -> Account | None:
        return await self._session.read_one(GET, to_account, tenant_id, account_id)

    async def lock(self, tenant_id: UUID, account_ids: Sequence[UUID]) -> dict[UUID, Account]:
        ids = sorted(set(account_ids))
        known = [self._locked.get((tenant_id, account_id), _UNKNOWN) for account_id in ids]
        if _UNKNOWN not in known:  # every one locked already by this unit of work
            return {account.id: self._pending.current(account) for account in known if isinstance(account, Account)}
        if (prelocked := self._session.take_prelocked(tenant_id, ids)) is not None:  # locked by the claim
            rows = [to_account(row) for row in prelocked]
        else:
            await self._session.hold_local(account_ids)
            rows = await self._session.read_all(LOCK, to_account, tenant_id, ids)
        self._locked.update(dict.fromkeys(((tenant_id, account_id) for account_id in ids), None))
        self._locked.update(((tenant_id, row.id), row) for row in rows)
        return {row.id: self._pending.current(row) for row in rows}

    async def lock_system(self, tenant_id: UUID, kind: str, currency: str) -> Account:
        return (await self.lock_systems(tenant_id, [kind], currency))[0]

    async def lock_systems(self, tenant_id: UUID, kinds: Sequence[str], currency: str) -> builtins.list[Account]:
        assert len(set(kinds)) == len(kinds), "each system account once"
        held = [self._systems.get((tenant_id, kind, currency)) for kind in kinds]
        if all(account is not None for account in held):  # locked by this unit of work already (a shared one)
            return [self._pending.current(account) for account in held if account is not None]
        # The row of each: the one this unit of work holds, else one picked at random (then held, so kept).
        slots = [(tenant_id, kind, currency, account.shard if account is not None else random.randrange(SYSTEM_SHARDS))
                 for kind, account in zip(kinds, held, strict=True)]
        inserted = await self._create_missing(slots)
        rows = await self._session.fetch(LOCK_SYSTEMS, tenant_id, builtins.list(kinds), currency,
                                         [slot[3] for slot in slots])
        if len(rows) < len(kinds):  # cannot happen: every row exists now, or this unit of work inserted it
            _EXISTING.difference_update(slots)
            raise RuntimeError(f"system accounts {kinds} ({currency}) of tenant {tenant_id} vanished while locked")
        _EXISTING.update(slot for slot in slots if slot not in inserted)
        return [self._pending.current(self._hold_system(to_account(row))) for row in rows]

    async def _create_missing(self, slots: builtins.list[Slot]) -> set[Slot]:
        """Insert the rows not known to exist, before any of them is locked, and return those inserted. Were a
        missing row created after the others were locked (as it used to be), a unit of work could hold `clearing`
        while it waits for another's insert of a settlement row, and that one wait for `clearing`: a deadlock
        that PostgreSQL breaks after `deadlock_timeout` (seen in bench/payments.py while a tenant's first payments
        created its system rows)."""
        missing = [slot for slot in slots if slot not in _EXISTING]
        if not missing:
            return set()
        tenant_id, currency = missing[0][0], missing[0][2]
        rows = await self._session.fetch(CREATE_SYSTEMS, [new_id() for _ in missing], tenant_id,
                                         [slot[1] for slot in missing], currency, [slot[3] for slot in missing],
                                         datetime.now(UTC))
        return {(tenant_id, row["kind"], currency, row["shard"]) for row in rows}

    def _hold_system(self, account: Account) -> Account:
        """The row kept for the unit of work: the first one read (entities are mutable; a later read is stale)."""
        return self._systems.setdefault((account.tenant_id, account.kind, account.currency), account)

    def save_controls(self, account: Account) -> None:
        self._pending.save(account)
        self._controlled.add(account.id)

    async def list(self, tenant_id: UUID, *, user_id: str | None, status: AccountStatus | None = None,
                   metadata: Mapping[str, str] | None = None, limit: int, cursor: str | None) -> Page[Account]:
        after: list[Any] = [None, None]
        if cursor is not None:
            created, last_id = decode_cursor(cursor, 2)
            after = [_parse_time(created), _parse_uuid(last_id)]
        by_metadata = (LIST_BY_METADATA, dict(metadata)) if metadata else (LIST,)
        rows = await self._session.fetch(by_metadata[0], tenant_id, user_id, status, *after, limit + 1,
                                         *by_metadata[1:])
        items = [to_account(row) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_cursor(items[-1].created_at.isoformat(), str(items[-1].id)) if more else None)

    def flush(self) -> builtins.list[Fragment]:
        dirty = self._pending.dirty.values()
        return [*insert_entities("accounts", COLUMNS, self._pending.new.values()),
                *update_entities("accounts", _UPDATED, [a for a in dirty if a.id not in self._controlled]),
                *update_entities("accounts", _CONTROLLED, [a for a in dirty if a.id in self._controlled])]


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
