"""In-memory reconciliations, and the ledger's settlement entries as a reconciliation reads them."""

from __future__ import annotations

import builtins
import copy
from collections.abc import Collection
from datetime import date, datetime
from uuid import UUID

from adapters.memory.pending import Pending, tenants_copy
from core.accounts import settlement
from core.reconciliation import Booked, Reconciliation, ReconciliationStatus


class MemoryReconciliations(Pending[Reconciliation]):
    """The `Reconciliations` port over `StoreState.reconciliations` (and its accounts, entries, payments)."""

    async def get(self, tenant_id: UUID, reconciliation_id: UUID) -> Reconciliation | None:
        return tenants_copy(self._store.reconciliations.get(reconciliation_id), tenant_id)

    async def booked(self, tenant_id: UUID, provider: str, start: datetime, end: datetime) -> builtins.list[Booked]:
        accounts = {a.id for a in self._store.accounts.values()
                    if a.tenant_id == tenant_id and a.kind == settlement(provider)}
        found = []
        for entry in self._store.entries:
            if entry.account_id not in accounts or not start <= entry.created_at < end or entry.payment_id is None:
                continue
            refund = self._store.refunds.get(entry.refund_id) if entry.refund_id else None
            payment = self._store.payments[entry.payment_id]
            found.append(Booked(kind="refund" if refund else "charge",
                                idempotency_key=str(refund.id if refund else payment.id), payment_id=payment.id,
                                reference=refund.provider_reference if refund else payment.provider_reference,
                                amount=abs(entry.amount), currency=entry.currency, booked_at=entry.created_at))
        return found

    async def owners(self, payment_ids: Collection[UUID]) -> dict[UUID, UUID]:
        return {pid: self._store.payments[pid].tenant_id for pid in payment_ids if pid in self._store.payments}

    async def tenants(self, provider: str, *, name: str | None = None) -> builtins.list[UUID]:
        if name is not None:
            return [self._store.tenants[name].id] if name in self._store.tenants else []
        settling = {a.tenant_id for a in self._store.accounts.values() if a.kind == settlement(provider)}
        ordered = sorted(self._store.tenants.values(), key=lambda t: (t.created_at, t.id))
        return [tenant.id for tenant in ordered if tenant.id in settling]

    async def due(self, provider: str, day: date, *, failed_before: datetime) -> builtins.list[UUID]:
        done = {r.tenant_id for r in self._store.reconciliations.values() if r.provider == provider and r.day == day
                and (r.status == ReconciliationStatus.COMPLETED
                     or (r.status == ReconciliationStatus.FAILED and r.created_at >= failed_before))}
        return [tenant for tenant in await self.tenants(provider) if tenant not in done]

    def apply(self) -> None:
        for reconciliation in self.new:
            self._store.reconciliations[reconciliation.id] = copy.deepcopy(reconciliation)
