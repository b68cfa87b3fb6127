"""In-memory payments and their event history: row locks, version-checked saves, filtered listing."""

from __future__ import annotations

import builtins
import copy
from collections.abc import Sequence
from uuid import UUID

from adapters.memory.paging import holds, time_id_page
from adapters.memory.state import MemorySession
from adapters.memory.table import Table
from core.errors import ConcurrencyConflict
from core.payments import Payment, PaymentEvent, PaymentStatus
from core.ports import Page, PaymentFilter
from core.refunds import RefundStatus

IN_FLIGHT = (PaymentStatus.PENDING, PaymentStatus.PROCESSING)


class MemoryPayments:
    """The `Payments` port over `StoreState.payments` and `.events`."""

    def __init__(self, session: MemorySession) -> None:
        self._store = session.state
        self._table = Table(session, session.state.payments, "payment")
        self._pending = self._table.pending
        self.add, self.save = self._pending.add, self._pending.save  # buffered until commit
        self.lock = self._table.lock

    async def get(self, tenant_id: UUID, payment_id: UUID) -> Payment | None:
        return self._table.get(tenant_id, payment_id)

    async def get_all(self, tenant_id: UUID, payment_ids: Sequence[UUID]) -> dict[UUID, Payment]:
        found = {payment_id: self._table.get(tenant_id, payment_id) for payment_id in payment_ids}
        return {payment_id: payment for payment_id, payment in found.items() if payment is not None}

    async def lock_all(self, tenant_id: UUID, payment_ids: Sequence[UUID]) -> dict[UUID, Payment]:
        found = {payment_id: await self.lock(tenant_id, payment_id) for payment_id in sorted(set(payment_ids))}
        return {payment_id: payment for payment_id, payment in found.items() if payment is not None}

    async def list(self, tenant_id: UUID, where: PaymentFilter, *, limit: int, cursor: str | None) -> Page[Payment]:
        rows = [copy.deepcopy(p) for p in self._store.payments.values()
                if p.tenant_id == tenant_id and _matches(p, where)]
        return time_id_page(rows, limit, cursor)

    async def unsettled_for(self, tenant_id: UUID, account_id: UUID) -> bool:
        mine = {p.id for p in self._store.payments.values()
                if p.tenant_id == tenant_id and p.source_account_id == account_id}
        return (any(self._store.payments[p].status in IN_FLIGHT for p in mine)
                or any(r.payment_id in mine and r.status is RefundStatus.PENDING for r in self._store.refunds.values()))

    async def events(self, tenant_id: UUID, payment_id: UUID) -> builtins.list[PaymentEvent]:
        events = [e for e in self._store.events.get(payment_id, []) if e.tenant_id == tenant_id]
        return sorted(events, key=lambda e: e.sequence)

    def check(self) -> None:
        """Raise `ConcurrencyConflict` unless every saved payment is still at the version it was read at."""
        for payment in self._pending.dirty.values():
            stored = self._store.payments.get(payment.id)
            if stored is None or stored.version != payment.stored_version or not payment.events:
                raise ConcurrencyConflict("the payment changed since it was read; retry")

    def apply(self) -> None:
        """Write the buffered payments, their pending events kept apart as the history."""
        for payment in self._pending.changed():
            self._store.events[payment.id].extend(payment.events)
            stored = copy.deepcopy(payment)
            stored.events = []
            self._store.payments[payment.id] = stored


def _matches(p: Payment, where: PaymentFilter) -> bool:
    return ((where.status is None or p.status == where.status)
            and (where.payment_type is None or p.payment_type == where.payment_type)
            and (where.account_id is None or where.account_id in (p.source_account_id, p.destination_account_id))
            and (where.provider is None or p.provider == where.provider)
            and (where.created_after is None or p.created_at >= where.created_after)
            and (where.created_before is None or p.created_at < where.created_before)
            and holds(p.metadata, where.metadata))
