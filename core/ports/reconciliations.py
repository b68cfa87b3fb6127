"""The port of reconciliations: the runs stored, and what a run reads of the ledger."""

from __future__ import annotations

import builtins
from collections.abc import Collection
from datetime import date, datetime
from typing import Protocol
from uuid import UUID

from core.reconciliation import Booked, Reconciliation


class Reconciliations(Protocol):
    """Reconciliation runs of every tenant, and the ledger as a run sees it.

    `add` is buffered until commit; a reconciliation is stored once, with its result. Reads never return
    another tenant's run. `booked` and `owners` read the ledger and the payments as they are committed.
    """

    def add(self, reconciliation: Reconciliation) -> None: ...

    async def get(self, tenant_id: UUID, reconciliation_id: UUID) -> Reconciliation | None: ...

    async def booked(self, tenant_id: UUID, provider: str, start: datetime, end: datetime) -> builtins.list[Booked]:
        """The entries of the tenant's `settlement:<provider>` accounts (every currency) created in
        [start, end): a credit is the charge of its payment (keyed by the payment id), a debit a refund
        (keyed by the refund id); `reference` is the payment's or the refund's provider reference."""
        ...

    async def owners(self, payment_ids: Collection[UUID]) -> dict[UUID, UUID]:
        """The tenant of each of `payment_ids` that is a payment, whatever its tenant (a provider's report
        covers every tenant: this is how its lines are told apart). Ids of no payment are left out."""
        ...

    async def tenants(self, provider: str, *, name: str | None = None) -> builtins.list[UUID]:
        """The tenants that settle through `provider` (they have its settlement account), oldest first; with
        `name`, only the tenant of that name, settled through it or not (none if there is no such tenant)."""
        ...

    async def due(self, provider: str, day: date, *, failed_before: datetime) -> builtins.list[UUID]:
        """The tenants that settle through `provider` and have no reconciliation of it for `day` that
        completed, nor one that failed at or after `failed_before` (a failed run is tried again later)."""
        ...
