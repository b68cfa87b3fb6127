"""Ports of payments and their refunds."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

import attrs

from core.payments import Payment, PaymentEvent
from core.ports.paging import Page
from core.refunds import Refund


@attrs.frozen(kw_only=True)
class PaymentFilter:
    """API.md §6 list filters; None means any."""

    status: str | None = None
    payment_type: str | None = None
    account_id: UUID | None = None
    provider: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    #: Every key given must be in the payment's metadata with that value (API.md §1); None or empty: any.
    metadata: Mapping[str, str] | None = None


class Payments(Protocol):
    """Payments and their event history; `add`/`save` write the payment's pending events too.

    `lock` takes the payment's row lock until the unit of work ends. `save` writes
    the changed payment at commit only if its stored version is still the one it
    was read at; otherwise commit raises `ConcurrencyConflict`.
    """

    async def get(self, tenant_id: UUID, payment_id: UUID) -> Payment | None: ...

    async def lock(self, tenant_id: UUID, payment_id: UUID) -> Payment | None: ...

    async def get_all(self, tenant_id: UUID, payment_ids: Sequence[UUID]) -> dict[UUID, Payment]:
        """`get` of each (those found, by id), in one statement on PostgreSQL, where this unit of work's later
        `get` of one of them then reads it from memory."""
        ...

    async def lock_all(self, tenant_id: UUID, payment_ids: Sequence[UUID]) -> dict[UUID, Payment]:
        """`lock` of each (those found, by id), in ascending id order (as any two units of work that lock several
        payments must), in one statement on PostgreSQL, where this unit of work's later `lock` or `get` of one of
        them then takes nothing more."""
        ...

    async def list(
        self, tenant_id: UUID, where: PaymentFilter, *, limit: int, cursor: str | None
    ) -> Page[Payment]:
        """Newest first. Raises `ValidationFailed` for a malformed cursor."""
        ...

    def add(self, payment: Payment) -> None: ...

    def save(self, payment: Payment) -> None: ...

    async def events(self, tenant_id: UUID, payment_id: UUID) -> builtins.list[PaymentEvent]: ...

    async def unsettled_for(self, tenant_id: UUID, account_id: UUID) -> bool:
        """Whether money may still move on the account without a new request: an external payment from it
        still `pending` or `processing`, or a refund of a payment from it still `pending`."""
        ...


class Refunds(Protocol):
    """Refunds of payments. `add`/`save` are buffered until commit; `for_payment` is newest first."""

    async def lock(self, tenant_id: UUID, refund_id: UUID) -> Refund | None: ...

    async def for_payment(self, tenant_id: UUID, payment_id: UUID) -> builtins.list[Refund]: ...

    async def list(self, tenant_id: UUID, payment_id: UUID, *, limit: int, cursor: str | None) -> Page[Refund]:
        """Newest first. Raises `ValidationFailed` for a malformed cursor."""
        ...

    def add(self, refund: Refund) -> None: ...

    def save(self, refund: Refund) -> None: ...
