"""Webhook subscriptions and deliveries in PostgreSQL, and the scheduler's query for due deliveries.

Signing secrets are stored sealed (adapters/postgres/sealed_secrets.py): opened as a row is read, sealed again
whenever a subscription is written.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from adapters.crypto import SecretBox
from adapters.postgres.paging import time_id_page
from adapters.postgres.pool import translate_errors
from adapters.postgres.rows import Fragment, Value, fields, reader, write_pending
from adapters.postgres.sealed_secrets import key_errors, open_secret, seal_secret
from adapters.postgres.session import PgSession
from adapters.postgres.table import Table
from core.ports import Page
from core.webhooks import Delivery, DeliveryRef, PreviousSecret, Subscription

SUB_COLUMNS = "id, tenant_id, url, events, description, enabled, secret, previous_secrets, created_at, updated_at"
GET = f"SELECT {SUB_COLUMNS} FROM webhook_subscriptions WHERE tenant_id = $1 AND id = $2"
LOCK = GET + " FOR UPDATE"
LIST = f"""SELECT {SUB_COLUMNS} FROM webhook_subscriptions WHERE tenant_id = $1
AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3::uuid)) ORDER BY created_at DESC, id DESC LIMIT $4"""
LISTENING = f"""SELECT {SUB_COLUMNS} FROM webhook_subscriptions
WHERE tenant_id = $1 AND enabled AND events && ARRAY[$2, '*']::text[] ORDER BY id"""
DELETE = "DELETE FROM webhook_subscriptions WHERE id = $1"
_SUB_UPDATED = (("id", "uuid"), ("url", "text"), ("events", "text[]"), ("description", "text"),
                ("enabled", "boolean"), ("secret", "text"), ("previous_secrets", "jsonb"),
                ("updated_at", "timestamptz"))

DELIVERY_COLUMNS = ("id, tenant_id, subscription_id, event_id, event_type, body, status, attempts, last_status_code,"
                    " last_error, next_attempt_at, delivered_at, correlation_id, trace_context, granted_through,"
                    " queued, created_at, updated_at")
LOCK_DELIVERY = f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
# Many at once, by (tenant, id) pairs: `id = ANY` finds them by primary key; the rows are locked in id order (the
# lock is taken above the sort).
LOCK_DELIVERIES = f"""SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries
WHERE id = ANY($2::uuid[]) AND (tenant_id, id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))
ORDER BY id FOR UPDATE"""
GET_SUBSCRIPTIONS = f"""SELECT {SUB_COLUMNS} FROM webhook_subscriptions
WHERE id = ANY($2::uuid[]) AND (tenant_id, id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[])) ORDER BY id"""
DELIVERIES = f"""SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant_id = $1 AND subscription_id = $2
AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid)) ORDER BY created_at DESC, id DESC LIMIT $5"""
# A subscription deleted since it was read gets no delivery (as the in-memory fake does).
FAN_OUT = f"""INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS})
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[],
                     $8::integer[], $9::integer[], $10::text[], $11::timestamptz[], $12::timestamptz[], $13::text[],
                     $14::jsonb[], $15::integer[], $16::integer[], $17::timestamptz[], $18::timestamptz[])
    AS d({DELIVERY_COLUMNS})
WHERE EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.id = d.subscription_id)
ON CONFLICT ON CONSTRAINT one_delivery_per_event DO NOTHING
RETURNING id"""
_DELIVERY_UPDATED = (("id", "uuid"), ("status", "text"), ("attempts", "integer"), ("last_status_code", "integer"),
                     ("last_error", "text"), ("next_attempt_at", "timestamptz"), ("delivered_at", "timestamptz"),
                     ("granted_through", "integer"), ("queued", "integer"), ("updated_at", "timestamptz"))
# Concurrent schedulers skip each other's rows; moving next_attempt_at to the lease end is the claim.
CLAIM_DUE = """UPDATE webhook_deliveries d
SET next_attempt_at = $1 + make_interval(secs => $2 * power(2, least(d.queued, 5))), queued = d.queued + 1 FROM (
    SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1
    ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) due
WHERE d.id = due.id RETURNING d.id, d.tenant_id, d.attempts, d.correlation_id, d.trace_context"""


def subscription_reader(box: SecretBox) -> Callable[[asyncpg.Record], Subscription]:
    """Rows into subscriptions, their secrets opened (`Unavailable` when no configured key opens one)."""

    def read(row: asyncpg.Record) -> Subscription:
        values = {field: row[field] for field in fields(SUB_COLUMNS)}
        values["events"] = tuple(values["events"])
        with key_errors():
            values["secret"] = open_secret(box, row["secret"], row["id"])
            values["previous_secrets"] = tuple(
                PreviousSecret(open_secret(box, p["secret"], row["id"]), datetime.fromisoformat(p["expires_at"]))
                for p in row["previous_secrets"])
        return Subscription(**values)

    return read


def subscription_values(box: SecretBox) -> Value:
    """A subscription's column values as stored: its secrets sealed (each time anew)."""

    def value(subscription: Subscription, field: str) -> Any:
        if field == "secret":
            return seal_secret(box, subscription.secret, subscription.id)
        if field == "previous_secrets":
            return [{"secret": seal_secret(box, p.secret, subscription.id), "expires_at": p.expires_at.isoformat()}
                    for p in subscription.previous_secrets]
        return getattr(subscription, field)

    return value


to_delivery = reader(Delivery, DELIVERY_COLUMNS)


class PgWebhooks:
    """The `Webhooks` port on PostgreSQL."""

    def __init__(self, session: PgSession, box: SecretBox) -> None:
        self._session = session
        self._read, self._value = subscription_reader(box), subscription_values(box)
        subscriptions = Table(session, self._read, get=GET, lock=LOCK)
        deliveries = Table(session, to_delivery, lock=LOCK_DELIVERY)  # only updated: `fan_out` inserts at once
        self._pending, self._deliveries = subscriptions.pending, deliveries.pending
        self._removed: dict[UUID, Subscription] = {}
        self.get, self.lock, self.lock_delivery = subscriptions.get, subscriptions.lock, deliveries.lock
        self.add, self.save, self.save_delivery = self._pending.add, self._pending.save, self._deliveries.save

    async def list(self, tenant_id: UUID, *, limit: int, cursor: str | None) -> Page[Subscription]:
        return await time_id_page(self._session, LIST, self._read, tenant_id, limit=limit, cursor=cursor)

    async def listening(self, tenant_id: UUID, event_type: str) -> builtins.list[Subscription]:
        return [s for s in await self._session.read_all(LISTENING, self._read, tenant_id, event_type)
                if s.matches(event_type)]

    async def lock_deliveries(self, keys: Collection[tuple[UUID, UUID]]) -> builtins.list[Delivery]:
        if not keys:
            return []
        tenants, ids = zip(*keys, strict=True)
        rows = await self._session.read_all(LOCK_DELIVERIES, to_delivery, list(tenants), list(ids))
        return [self._deliveries.current(row) for row in rows]

    async def get_subscriptions(self, keys: Collection[tuple[UUID, UUID]]) -> builtins.list[Subscription]:
        if not keys:
            return []
        tenants, ids = zip(*keys, strict=True)
        return await self._session.read_all(GET_SUBSCRIPTIONS, self._read, list(tenants), list(ids))

    def remove(self, subscription: Subscription) -> None:
        self._pending.drop(subscription.id)
        self._removed[subscription.id] = subscription

    async def fan_out(self, deliveries: builtins.list[Delivery]) -> builtins.list[DeliveryRef]:
        if not deliveries:
            return []
        columns = [[getattr(d, field) for d in deliveries] for field in fields(DELIVERY_COLUMNS)]
        inserted = {row["id"] for row in await self._session.fetch(FAN_OUT, *columns)}
        return [d.ref() for d in deliveries if d.id in inserted]

    async def deliveries(
        self, tenant_id: UUID, subscription_id: UUID, *, limit: int, cursor: str | None
    ) -> Page[Delivery]:
        return await time_id_page(self._session, DELIVERIES, to_delivery, tenant_id, subscription_id, limit=limit,
                                  cursor=cursor)

    def flush(self) -> builtins.list[Fragment]:
        with key_errors():
            subscriptions = write_pending("webhook_subscriptions", SUB_COLUMNS, _SUB_UPDATED, self._pending,
                                          self._value)
        return [*subscriptions,
                *write_pending("webhook_deliveries", DELIVERY_COLUMNS, _DELIVERY_UPDATED, self._deliveries),
                *[(DELETE, [s.id]) for s in self._removed.values()]]


class PgDueDeliveries:
    """The `DueDeliveries` port on PostgreSQL (its own short transaction per claim)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def claim_due(self, now: datetime, lease_seconds: float, limit: int) -> builtins.list[DeliveryRef]:
        with translate_errors():
            rows = await self._pool.fetch(CLAIM_DUE, now, lease_seconds, limit)
        return [DeliveryRef(id=row["id"], tenant_id=row["tenant_id"], attempt=row["attempts"],
                            correlation_id=row["correlation_id"], trace_context=row["trace_context"] or {})
                for row in rows]
