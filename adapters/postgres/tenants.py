"""Tenants and their API keys in PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from adapters.postgres.rows import Fragment
from adapters.postgres.session import PgSession
from core.ids import new_id
from core.tenants import ApiKey, ListedKey, Tenant

GET_TENANT = "SELECT id, name, created_at FROM tenants WHERE name = $1"
CREATE_TENANT = "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING"
KEY_COLUMNS = "k.id, k.tenant_id, k.key_hash, k.prefix, k.scopes, k.created_at, k.revoked_at, k.last4, k.last_used_at"
KEY_BY_HASH = f"SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.key_hash = $1"
KEY_BY_ID = f"SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.id = $1"
LIST_KEYS = f"""SELECT t.name AS tenant, {KEY_COLUMNS} FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
WHERE $1::text IS NULL OR t.name = $1 ORDER BY k.created_at, k.id"""
INSERT_API_KEY = """INSERT INTO api_keys (id, tenant_id, key_hash, prefix, scopes, created_at, last4)
VALUES ($1, $2, $3, $4, $5, $6, $7)"""
REVOKE_KEY = "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL"
MARK_USED = "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)"


def to_key(row: asyncpg.Record) -> ApiKey:
    return ApiKey(id=row["id"], tenant_id=row["tenant_id"], key_hash=row["key_hash"], prefix=row["prefix"],
                  scopes=tuple(row["scopes"]), created_at=row["created_at"], revoked_at=row["revoked_at"],
                  last4=row["last4"], last_used_at=row["last_used_at"])


class PgTenants:
    """The `Tenants` port on PostgreSQL."""

    def __init__(self, session: PgSession) -> None:
        self._session = session
        self._new_keys: list[ApiKey] = []
        self._changes: list[Fragment] = []

    async def get_or_create(self, name: str, now: datetime) -> Tenant:
        row = await self._session.fetchrow(GET_TENANT, name)
        if row is None:
            await self._session.fetch(CREATE_TENANT, new_id(), name, now)
            row = await self._session.fetchrow(GET_TENANT, name)
        assert row is not None
        return Tenant(id=row["id"], name=row["name"], created_at=row["created_at"])

    async def key_by_hash(self, key_hash: bytes) -> ApiKey | None:
        return await self._session.read_one(KEY_BY_HASH, to_key, key_hash)

    async def key_by_id(self, key_id: UUID) -> ApiKey | None:
        return await self._session.read_one(KEY_BY_ID, to_key, key_id)

    async def list_keys(self, tenant: str | None) -> list[ListedKey]:
        return await self._session.read_all(LIST_KEYS, lambda row: ListedKey(tenant=row["tenant"], key=to_key(row)),
                                            tenant)

    def add_key(self, key: ApiKey) -> None:
        self._new_keys.append(key)

    def revoke_key(self, key_id: UUID, now: datetime) -> None:
        self._changes.append((REVOKE_KEY, [key_id, now]))

    def mark_used(self, key_id: UUID, now: datetime) -> None:
        self._changes.append((MARK_USED, [key_id, now]))

    def flush(self) -> list[Fragment]:
        inserts: list[Fragment] = [
            (INSERT_API_KEY, [k.id, k.tenant_id, k.key_hash, k.prefix, list(k.scopes), k.created_at, k.last4])
            for k in self._new_keys]
        return inserts + self._changes
