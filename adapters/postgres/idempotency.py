"""Idempotency keys in PostgreSQL: a transaction-scoped advisory lock per key, the first response stored.

A response showing a webhook signing secret (a create or rotate-secret) is stored sealed, like the secret itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from adapters.crypto import SecretBox
from adapters.postgres.accounts import COLUMNS as ACCOUNT_COLUMNS
from adapters.postgres.rows import Fragment, insert_arrays
from adapters.postgres.sealed_secrets import key_errors, response_context
from adapters.postgres.session import PgSession
from core.errors import IdempotencyRequestInProgress
from core.idempotency import IdempotencyRecord, IdempotentRequest, StoredResponse
from core.webhooks import SECRET_PREFIX

_SECRET = SECRET_PREFIX.encode()

# A transaction-scoped advisory lock per (tenant, key) taken together with the
# lookup: a second request with the key fails to take it while the first runs (409)
# and sees the stored response after it commits. A record committed between this
# statement's snapshot and the lock is caught by the primary key at commit.
CLAIM = """SELECT pg_try_advisory_xact_lock($1) AS locked, k.fingerprint, k.status_code, k.response_body,
       k.response_sealed, k.created_at AS key_created_at, k.expires_at
FROM (SELECT 1) AS one LEFT JOIN idempotency_keys k ON k.tenant_id = $2 AND k.key = $3"""

# The claim and the row locks of the accounts the unit of work declared, in one statement (one round trip). The
# accounts are locked only when the claim took the key's advisory lock and found no record (the request is to
# run): a request whose key is in flight answers at once, and a replay waits for no account. They are locked
# in ascending id order (`accounts.LOCK`'s ORDER BY), one row per account with the claim's columns on each (one
# row of NULL accounts when none is locked). The advisory lock is only tried, never waited for, so it cannot
# take part in a deadlock with the row locks.
CLAIM_AND_LOCK = f"""WITH claim AS MATERIALIZED (
  SELECT pg_try_advisory_xact_lock($1) AS locked, k.fingerprint, k.status_code, k.response_body, k.response_sealed,
         k.created_at AS key_created_at, k.expires_at
  FROM (SELECT 1) AS one LEFT JOIN idempotency_keys k ON k.tenant_id = $2 AND k.key = $3),
locked AS MATERIALIZED (
  SELECT {ACCOUNT_COLUMNS} FROM accounts
  WHERE tenant_id = $2 AND id = ANY($4::uuid[]) AND (SELECT locked AND fingerprint IS NULL FROM claim)
  ORDER BY id FOR UPDATE)
SELECT claim.*, locked.* FROM claim LEFT JOIN locked ON true ORDER BY locked.id"""

# The claims of many keys in one statement (a group commit's, `PostingEngine`): one row per request, in order.
CLAIM_ALL = """SELECT pg_try_advisory_xact_lock(r.lock_id) AS locked, k.fingerprint, k.status_code, k.response_body,
       k.response_sealed, k.created_at AS key_created_at, k.expires_at
FROM unnest($1::bigint[], $2::uuid[], $3::text[]) WITH ORDINALITY AS r(lock_id, tenant_id, key, n)
LEFT JOIN idempotency_keys k ON k.tenant_id = r.tenant_id AND k.key = r.key
ORDER BY r.n"""

DELETE_EXPIRED = "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND expires_at <= $3"

KEY_COLUMNS = "tenant_id, key, fingerprint, status_code, response_body, response_sealed, created_at, expires_at"
KEY_TYPES = ("uuid", "text", "bytea", "integer", "bytea", "boolean", "timestamptz", "timestamptz")


def lock_id(request: IdempotentRequest) -> int:
    """A signed 64-bit advisory lock id for the (tenant, key) pair."""
    digest = hashlib.blake2b(request.tenant_id.bytes + request.key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PgIdempotencyKeys:
    """The `IdempotencyKeys` port on PostgreSQL."""

    def __init__(self, session: PgSession, box: SecretBox) -> None:
        self._session, self._box = session, box
        self._new: list[IdempotencyRecord] = []

    async def claim(self, request: IdempotentRequest, now: datetime) -> IdempotencyRecord | None:
        """The key's live record, if any, after taking its advisory lock; in the same round trip, the row locks
        of the accounts the unit of work declared (`PgSession.prelock`), kept for `accounts.lock`."""
        row: asyncpg.Record | None
        # The accounts' local locks come first, as in `accounts.lock`; only when they are free now: a request
        # queueing behind another of this process on them claims alone (and answers at once if its key is held).
        if (prelock := self._session.prelock) and await self._session.try_hold_local(prelock):
            rows = await self._session.fetch(CLAIM_AND_LOCK, lock_id(request), request.tenant_id, request.key, prelock)
            row = rows[0] if rows else None
            if row is not None and row["locked"] and row["fingerprint"] is None:  # the accounts were locked
                self._session.prelocked = (request.tenant_id, prelock, [r for r in rows if r["id"] is not None])
        else:
            row = await self._session.fetchrow(CLAIM, lock_id(request), request.tenant_id, request.key)
        if row is None or not row["locked"]:
            raise IdempotencyRequestInProgress("a request with this Idempotency-Key is still in progress")
        return await self._found(request, row, now)

    async def claim_all(self, requests: Sequence[IdempotentRequest],
                        now: datetime) -> list[IdempotencyRecord | IdempotencyRequestInProgress | None]:
        """`claim` for each of `requests` (distinct keys), in one round trip: a key held elsewhere is reported as
        `IdempotencyRequestInProgress` in its place instead of raised."""
        if len({(r.tenant_id, r.key) for r in requests}) != len(requests):  # the session's own lock would pass twice
            raise ValueError("claim_all takes each key once")
        rows = await self._session.fetch(CLAIM_ALL, [lock_id(r) for r in requests], [r.tenant_id for r in requests],
                                         [r.key for r in requests])
        return [await self._found(request, row, now) if row["locked"] else
                IdempotencyRequestInProgress("a request with this Idempotency-Key is still in progress")
                for request, row in zip(requests, rows, strict=True)]

    async def _found(self, request: IdempotentRequest, row: asyncpg.Record, now: datetime) -> IdempotencyRecord | None:
        """The live record a claim's row holds, if any (an expired one is deleted)."""
        if row["fingerprint"] is None:
            return None
        if row["expires_at"] <= now:
            await self._session.fetch(DELETE_EXPIRED, request.tenant_id, request.key, now)
            return None
        stored = IdempotentRequest(tenant_id=request.tenant_id, key=request.key, fingerprint=row["fingerprint"])
        body = row["response_body"]
        if row["response_sealed"]:
            with key_errors():
                body = self._box.open(body.decode(), response_context(request.tenant_id, request.key)).encode()
        response = StoredResponse(status=row["status_code"], body=body)
        return IdempotencyRecord(request=stored, response=response, created_at=row["key_created_at"],
                                 expires_at=row["expires_at"])

    def add(self, record: IdempotencyRecord) -> None:
        self._new.append(record)

    def flush(self) -> list[Fragment]:
        """The records added, as one insert (a group commit adds one per request)."""
        if not self._new:
            return []
        rows = [(r.request.tenant_id, r.request.key, r.request.fingerprint, r.response.status, *self._stored(r),
                 r.created_at, r.expires_at) for r in self._new]
        # one array per column: one prepared statement whatever the group's size
        return [insert_arrays("idempotency_keys", KEY_COLUMNS, KEY_TYPES, rows)]

    def _stored(self, record: IdempotencyRecord) -> tuple[bytes, bool]:
        """The response body as stored, and whether it is sealed: sealed when it shows a signing secret."""
        body = record.response.body
        if _SECRET not in body:
            return body, False
        with key_errors():
            return self._box.seal(body.decode(), response_context(record.request.tenant_id, record.request.key)
                                  ).encode(), True
