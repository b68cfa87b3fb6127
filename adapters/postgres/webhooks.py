"""Webhook subscriptions and deliveries in PostgreSQL, and the scheduler's query for due deliveries."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import asyncpg

from adapters.cursor import time_id_cursor, time_id_key
from adapters.postgres.pool import translate_errors
from adapters.postgres.rows import insert_rows, update_rows
from core.ports import Page
from core.webhooks import Delivery, DeliveryRef, PreviousSecret, Subscription

if TYPE_CHECKING:
    from adapters.postgres.rows import Fragment
    from adapters.postgres.uow import PgUnitOfWork

SUB_COLUMNS = "id, tenant_id, url, events, description, enabled, secret, previous_secrets, created_at, updated_at"
_SUB_FIELDS = SUB_COLUMNS.replace(" ", "").split(",")
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
_DELIVERY_FIELDS = DELIVERY_COLUMNS.replace(" ", "").split(",")
LOCK_DELIVERY = f"SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
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


def to_subscription(row: asyncpg.Record) -> Subscription:
    values = {field: row[field] for field in _SUB_FIELDS}
    values["events"] = tuple(values["events"])
    values["previous_secrets"] = tuple(PreviousSecret(p["secret"], datetime.fromisoformat(p["expires_at"]))
                                       for p in values["previous_secrets"])
    return Subscription(**values)


def _sub_value(subscription: Subscription, field: str) -> Any:
    if field == "previous_secrets":
        return [{"secret": p.secret, "expires_at": p.expires_at.isoformat()} for p in subscription.previous_secrets]
    return getattr(subscription, field)


def to_delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(**{field: row[field] for field in _DELIVERY_FIELDS})


class PgWebhooks:
    """The `Webhooks` port on PostgreSQL."""

    def __init__(self, uow: PgUnitOfWork) -> None:
        self._uow = uow
        self._new: dict[UUID, Subscription] = {}
        self._dirty: dict[UUID, Subscription] = {}
        self._removed: dict[UUID, Subscription] = {}
        self._deliveries: dict[UUID, Delivery] = {}

    async def get(self, tenant_id: UUID, subscription_id: UUID) -> Subscription | None:
        row = await self._uow.fetchrow(GET, tenant_id, subscription_id)
        return None if row is None else to_subscription(row)

    async def lock(self, tenant_id: UUID, subscription_id: UUID) -> Subscription | None:
        row = await self._uow.fetchrow(LOCK, tenant_id, subscription_id)
        return None if row is None else self._dirty.get(subscription_id) or to_subscription(row)

    async def list(self, tenant_id: UUID, *, limit: int, cursor: str | None) -> Page[Subscription]:
        after: builtins.list[Any] = [None, None] if cursor is None else builtins.list(time_id_key(cursor))
        rows = await self._uow.fetch(LIST, tenant_id, *after, limit + 1)
        items = [to_subscription(row) for row in rows[:limit]]
        return Page(items, time_id_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None)

    async def listening(self, tenant_id: UUID, event_type: str) -> builtins.list[Subscription]:
        return [s for s in map(to_subscription, await self._uow.fetch(LISTENING, tenant_id, event_type))
                if s.matches(event_type)]

    def add(self, subscription: Subscription) -> None:
        self._new[subscription.id] = subscription

    def save(self, subscription: Subscription) -> None:
        if subscription.id not in self._new:
            self._dirty[subscription.id] = subscription

    def remove(self, subscription: Subscription) -> None:
        self._new.pop(subscription.id, None)
        self._dirty.pop(subscription.id, None)
        self._removed[subscription.id] = subscription

    async def fan_out(self, deliveries: builtins.list[Delivery]) -> builtins.list[DeliveryRef]:
        if not deliveries:
            return []
        columns = [[getattr(d, field) for d in deliveries] for field in _DELIVERY_FIELDS]
        inserted = {row["id"] for row in await self._uow.fetch(FAN_OUT, *columns)}
        return [d.ref() for d in deliveries if d.id in inserted]

    async def lock_delivery(self, tenant_id: UUID, delivery_id: UUID) -> Delivery | None:
        row = await self._uow.fetchrow(LOCK_DELIVERY, tenant_id, delivery_id)
        return None if row is None else self._deliveries.get(delivery_id) or to_delivery(row)

    async def deliveries(
        self, tenant_id: UUID, subscription_id: UUID, *, limit: int, cursor: str | None
    ) -> Page[Delivery]:
        after: builtins.list[Any] = [None, None] if cursor is None else builtins.list(time_id_key(cursor))
        rows = await self._uow.fetch(DELIVERIES, tenant_id, subscription_id, *after, limit + 1)
        items = [to_delivery(row) for row in rows[:limit]]
        return Page(items, time_id_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None)

    def save_delivery(self, delivery: Delivery) -> None:
        self._deliveries[delivery.id] = delivery

    def flush(self) -> builtins.list[Fragment]:
        fragments: builtins.list[Fragment] = []
        if self._new:
            fragments.append(insert_rows("webhook_subscriptions", SUB_COLUMNS, [
                [_sub_value(s, f) for f in _SUB_FIELDS] for s in self._new.values()]))
        if self._dirty:
            fragments.append(update_rows("webhook_subscriptions", _SUB_UPDATED, [
                [_sub_value(s, name) for name, _ in _SUB_UPDATED] for s in self._dirty.values()]))
        if self._deliveries:
            fragments.append(update_rows("webhook_deliveries", _DELIVERY_UPDATED, [
                [getattr(d, name) for name, _ in _DELIVERY_UPDATED] for d in self._deliveries.values()]))
        fragments.extend((DELETE, [s.id]) for s in self._removed.values())
        return fragments


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
