"""Reconciliations in PostgreSQL, and the ledger's settlement entries as a reconciliation reads them."""

from __future__ import annotations

import builtins
from collections.abc import Collection
from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg

from adapters.postgres.rows import Fragment, insert_rows
from adapters.postgres.session import PgSession
from core.accounts import settlement
from core.reconciliation import Booked, Item, MatchResult, Reconciliation

COLUMNS = ("id, tenant_id, provider, day, status, matched, missing_in_ledger, missing_at_provider, amount_mismatch,"
           " items, failure_reason, correlation_id, created_at, completed_at")
GET = f"SELECT {COLUMNS} FROM reconciliations WHERE tenant_id = $1 AND id = $2"

# The entries of the tenant's settlement:<provider> accounts in [start, end): a credit is its payment's charge,
# a debit the refund it names.
BOOKED = """SELECT t.payment_id, t.refund_id, t.amount, t.currency, t.created_at,
       coalesce(r.provider_reference, p.provider_reference) AS reference
  FROM accounts a
  JOIN account_transactions t ON t.account_id = a.id
  JOIN payments p ON p.id = t.payment_id
  LEFT JOIN refunds r ON r.id = t.refund_id
 WHERE a.tenant_id = $1 AND a.kind = $2 AND t.tenant_id = $1 AND t.created_at >= $3 AND t.created_at < $4"""
OWNERS = "SELECT id, tenant_id FROM payments WHERE id = ANY($1::uuid[])"
SETTLING = """SELECT t.id FROM tenants t
 WHERE EXISTS (SELECT 1 FROM accounts a WHERE a.tenant_id = t.id AND a.kind = $1)"""
TENANTS = f"{SETTLING} ORDER BY t.created_at, t.id"
NAMED = "SELECT id FROM tenants WHERE name = $1"
DUE = f"""{SETTLING}
   AND NOT EXISTS (SELECT 1 FROM reconciliations r
                    WHERE r.tenant_id = t.id AND r.provider = $2 AND r.day = $3
                      AND (r.status = 'completed' OR (r.status = 'failed' AND r.created_at >= $4)))
 ORDER BY t.created_at, t.id"""
_ITEM_FIELDS = ("result", "kind", "idempotency_key", "payment_id", "provider_reference", "ledger_amount",
                "provider_amount", "currency", "provider_currency")


class PgReconciliations:
    """The `Reconciliations` port on PostgreSQL (`reconciliations`, read with the ledger's tables)."""

    def __init__(self, session: PgSession) -> None:
        self._session = session
        self._new: builtins.list[Reconciliation] = []

    def add(self, reconciliation: Reconciliation) -> None:
        self._new.append(reconciliation)

    async def get(self, tenant_id: UUID, reconciliation_id: UUID) -> Reconciliation | None:
        return await self._session.read_one(GET, _read, tenant_id, reconciliation_id)

    async def booked(self, tenant_id: UUID, provider: str, start: datetime, end: datetime) -> builtins.list[Booked]:
        rows = await self._session.fetch(BOOKED, tenant_id, settlement(provider), start, end)
        return [Booked(kind="refund" if row["refund_id"] else "charge",
                       idempotency_key=str(row["refund_id"] or row["payment_id"]), payment_id=row["payment_id"],
                       reference=row["reference"], amount=abs(row["amount"]), currency=row["currency"],
                       booked_at=row["created_at"]) for row in rows]

    async def owners(self, payment_ids: Collection[UUID]) -> dict[UUID, UUID]:
        if not payment_ids:
            return {}
        return {row["id"]: row["tenant_id"] for row in await self._session.fetch(OWNERS, list(payment_ids))}

    async def tenants(self, provider: str, *, name: str | None = None) -> builtins.list[UUID]:
        rows = await (self._session.fetch(NAMED, name) if name is not None
                      else self._session.fetch(TENANTS, settlement(provider)))
        return [row["id"] for row in rows]

    async def due(self, provider: str, day: date, *, failed_before: datetime) -> builtins.list[UUID]:
        rows = await self._session.fetch(DUE, settlement(provider), provider, day, failed_before)
        return [row["id"] for row in rows]

    def flush(self) -> builtins.list[Fragment]:
        if not self._new:
            return []
        return [insert_rows("reconciliations", COLUMNS, [_row(r) for r in self._new])]


def _row(r: Reconciliation) -> list[Any]:
    counts = [r.summary.get(result, 0) for result in MatchResult]
    items = [{name: str(value) if isinstance(value, UUID) else value
              for name, value in ((n, getattr(item, n)) for n in _ITEM_FIELDS)} for item in r.items]
    return [r.id, r.tenant_id, r.provider, r.day, r.status, *counts, items, r.failure_reason, r.correlation_id,
            r.created_at, r.completed_at]


def _read(row: asyncpg.Record) -> Reconciliation:
    items = [Item(**{**item, "payment_id": UUID(item["payment_id"]) if item["payment_id"] else None})
             for item in row["items"]]
    return Reconciliation(id=row["id"], tenant_id=row["tenant_id"], provider=row["provider"], day=row["day"],
                          status=row["status"], summary={result: row[result.value] for result in MatchResult},
                          items=items, failure_reason=row["failure_reason"], correlation_id=row["correlation_id"],
                          created_at=row["created_at"], completed_at=row["completed_at"])
