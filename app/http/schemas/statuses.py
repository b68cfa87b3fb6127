"""The status values the API shows and filters on: the core's Enums, which the OpenAPI document lists."""

from __future__ import annotations

from core.accounts import AccountStatus
from core.payments import PaymentStatus
from core.refunds import RefundStatus
from core.webhooks import DeliveryStatus

__all__ = ["PAYMENT_STATUSES", "AccountStatus", "DeliveryStatus", "PaymentStatus", "RefundStatus"]

#: The values of `?status=` on GET /api/v1/payments, in the order the OpenAPI document lists them.
PAYMENT_STATUSES: tuple[str, ...] = tuple(status.value for status in PaymentStatus)
