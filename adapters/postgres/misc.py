"""Small PostgreSQL repositories: outbox, idempotency keys, tenants and API keys."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING

from adapters.postgres.rows import insert_rows
from adapters.telemetry import trace_carrier
from core.errors import IdempotencyRequestInProgress
from core.events import OutboxMessage
from core.idempotency import IdempotencyRecord, IdempotentRequest, StoredResponse
from core.ids import new_id
from core.tenants import ApiKey, Tenant

if TYPE_CHECKING:
    from adapters.postgres.rows import Fragment
    from adapters.postgres.uow import PgUnitOfWork

OUTBOX_COLUMNS = "id, tenant_id, topic, aggregate_id, payload, correlation_id, created_at, trace_context"


class PgOutbox:
    """The `Outbox` port on PostgreSQL."""

    def __init__(self) -> None:
        self._new: list[OutboxMessage] = []

    def add(self, message: OutboxMessage) -> None:
        self._new.append(message)

    def flush(self) -> list[Fragment]:
        if not self._new:
            return []
        carrier = trace_carrier()  # the request's or message's trace: the work these events start joins it
        rows = [(x.id, x.tenant_id, x.topic, x.aggregate_id, x.payload, x.correlation_id, x.created_at,
                 x.trace_context or carrier) for x in self._new]
        return [insert_rows("outbox", OUTBOX_COLUMNS, rows)]


# A transaction-scoped advisory lock per (tenant, key) taken together with the
# lookup: a second request with the key fails to take it while the first runs (409)
# and sees the stored response after it commits. A record committed between this
# statement's snapshot and the lock is caught by the primary key at commit.
CLAIM = """SELECT pg_try_advisory_xact_lock($1) AS locked, k.fingerprint, k.status_code, k.response_body,
       k.created_at, k.expires_at
FROM (SELECT 1) AS one LEFT JOIN idempotency_keys k ON k.tenant_id = $2 AND k.key = $3"""

DELETE_EXPIRED = "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND expires_at <= $3"

INSERT_KEY = """INSERT INTO idempotency_keys
(tenant_id, key, fingerprint, status_code, response_body, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)"""


def lock_id(request: IdempotentRequest) -> int:
    """A signed 64-bit advisory lock id for the (tenant, key) pair."""
    digest = hashlib.blake2b(request.tenant_id.bytes + request.key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PgIdempotencyKeys:
    """The `IdempotencyKeys` port on PostgreSQL."""

    def __init__(self, uow: PgUnitOfWork) -> None:
        self._uow = uow
        self._new: list[IdempotencyRecord] = []

    async def claim(self, request: IdempotentRequest, now: datetime) -> IdempotencyRecord | None:
        row = await self._uow.fetchrow(CLAIM, lock_id(request), request.tenant_id, request.key)
        if row is None or not row["locked"]:
            raise IdempotencyRequestInProgress("a request with this Idempotency-Key is still in progress")
        if row["fingerprint"] is None:
            return None
        if row["expires_at"] <= now:
            await self._uow.fetch(DELETE_EXPIRED, request.tenant_id, request.key, now)
            return None
        stored = IdempotentRequest(tenant_id=request.tenant_id, key=request.key, fingerprint=row["fingerprint"])
        response = StoredResponse(status=row["status_code"], body=row["response_body"])
        return IdempotencyRecord(request=stored, response=response, created_at=row["created_at"],
                                 expires_at=row["expires_at"])

    def add(self, record: IdempotencyRecord) -> None:
        self._new.append(record)

    def flush(self) -> list[Fragment]:
        return [(INSERT_KEY, [
            r.request.tenant_id, r.request.key, r.request.fingerprint, r.response.status, r.response.body,
            r.created_at, r.expires_at,
        ]) for r in self._new]


GET_TENANT = "SELECT id, name, created_at FROM tenants WHERE name = $1"
CREATE_TENANT = "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING"
KEY_BY_HASH = "SELECT id, tenant_id, key_hash, prefix, scopes, created_at, revoked_at FROM api_keys WHERE key_hash = $1"
INSERT_API_KEY = """INSERT INTO api_keys (id, tenant_id, key_hash, prefix, scopes, created_at)
VALUES ($1, $2, $3, $4, $5, $6)"""


class PgTenants:
    """The `Tenants` port on PostgreSQL."""

    def __init__(self, uow: PgUnitOfWork) -> None:
        self._uow = uow
        self._new_keys: list[ApiKey] = []

    async def get_or_create(self, name: str, now: datetime) -> Tenant:
        row = await self._uow.fetchrow(GET_TENANT, name)
        if row is None:
            await self._uow.fetch(CREATE_TENANT, new_id(), name, now)
            row = await self._uow.fetchrow(GET_TENANT, name)
        assert row is not None
        return Tenant(id=row["id"], name=row["name"], created_at=row["created_at"])

    async def key_by_hash(self, key_hash: bytes) -> ApiKey | None:
        row = await self._uow.fetchrow(KEY_BY_HASH, key_hash)
        if row is None:
            return None
        return ApiKey(id=row["id"], tenant_id=row["tenant_id"], key_hash=row["key_hash"], prefix=row["prefix"],
                      scopes=tuple(row["scopes"]), created_at=row["created_at"], revoked_at=row["revoked_at"])

    def add_key(self, key: ApiKey) -> None:
        self._new_keys.append(key)

    def flush(self) -> list[Fragment]:
        return [(INSERT_API_KEY, [k.id, k.tenant_id, k.key_hash, k.prefix, list(k.scopes), k.created_at])
                for k in self._new_keys]
