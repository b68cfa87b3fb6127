"""Tenants and their API keys in PostgreSQL."""

from __future__ import annotations

from datetime import datetime

from adapters.postgres.rows import Fragment
from adapters.postgres.session import PgSession
from core.ids import new_id
from core.tenants import ApiKey, Tenant

GET_TENANT = "SELECT id, name, created_at FROM tenants WHERE name = $1"
CREATE_TENANT = "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING"
KEY_BY_HASH = "SELECT id, tenant_id, key_hash, prefix, scopes, created_at, revoked_at FROM api_keys WHERE key_hash = $1"
INSERT_API_KEY = """INSERT INTO api_keys (id, tenant_id, key_hash, prefix, scopes, created_at)
VALUES ($1, $2, $3, $4, $5, $6)"""


class PgTenants:
    """The `Tenants` port on PostgreSQL."""

    def __init__(self, session: PgSession) -> None:
        self._session = session
        self._new_keys: list[ApiKey] = []

    async def get_or_create(self, name: str, now: datetime) -> Tenant:
        row = await self._session.fetchrow(GET_TENANT, name)
        if row is None:
            await self._session.fetch(CREATE_TENANT, new_id(), name, now)
            row = await self._session.fetchrow(GET_TENANT, name)
        assert row is not None
        return Tenant(id=row["id"], name=row["name"], created_at=row["created_at"])

    async def key_by_hash(self, key_hash: bytes) -> ApiKey | None:
        row = await self._session.fetchrow(KEY_BY_HASH, key_hash)
        if row is None:
            return None
        return ApiKey(id=row["id"], tenant_id=row["tenant_id"], key_hash=row["key_hash"], prefix=row["prefix"],
                      scopes=tuple(row["scopes"]), created_at=row["created_at"], revoked_at=row["revoked_at"])

    def add_key(self, key: ApiKey) -> None:
        self._new_keys.append(key)

    def flush(self) -> list[Fragment]:
        return [(INSERT_API_KEY, [k.id, k.tenant_id, k.key_hash, k.prefix, list(k.scopes), k.created_at])
                for k in self._new_keys]
