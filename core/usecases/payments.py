"""Read payments and their event history."""

from __future__ import annotations

from uuid import UUID

from core.errors import found
from core.payments import Payment, PaymentEvent
from core.ports import Page, PaymentFilter, UnitOfWork


async def get_payment(tenant_id: UUID, payment_id: UUID, *, uow: UnitOfWork) -> Payment:
    """The caller's payment or `NotFound`."""
    return found(await uow.payments.get(tenant_id, payment_id), f"payment {payment_id}")


async def list_payment_events(tenant_id: UUID, payment_id: UUID, *, uow: UnitOfWork) -> list[PaymentEvent]:
    """The payment's full, ordered event history; `NotFound` for a payment not the caller's."""
    await get_payment(tenant_id, payment_id, uow=uow)
    return await uow.payments.events(tenant_id, payment_id)


async def list_payments(
    tenant_id: UUID, where: PaymentFilter, *, uow: UnitOfWork, limit: int, cursor: str | None
) -> Page[Payment]:
    """The caller's payments matching every given filter, newest first."""
    return await uow.payments.list(tenant_id, where, limit=limit, cursor=cursor)
