"""The shapes of /api/v1/transfers and /api/v1/payments: payments, their refunds and their event history."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar, Literal

import attrs

from app.http.schemas.fields import AMOUNT, CURRENCY, CURRENCY_OUT, DESCRIPTION, METADATA, MONEY_OUT, TIME, UUID
from app.http.schemas.statuses import PaymentStatus, RefundStatus
from core.payments import FailureCode, PaymentType


@attrs.frozen(kw_only=True)
class Movement:
    """What a transfer and a hold both name first: from where, to where, how much."""

    __openapi_strict__ = True
    source_account_id: str = attrs.field(metadata=UUID)
    destination_account_id: str = attrs.field(metadata=UUID)
    amount: Decimal = attrs.field(metadata=AMOUNT)
    currency: str = attrs.field(metadata=CURRENCY)


@attrs.frozen(kw_only=True)
class TransferRequest(Movement):
    description: str | None = attrs.field(default=None, metadata=DESCRIPTION)
    metadata: dict[str, str] | None = attrs.field(default=None, metadata=METADATA)


@attrs.frozen(kw_only=True)
class InternalPaymentRequest(TransferRequest):
    """An internal transfer: to `destination_account_id`, no `provider` (answers as `POST /transfers`)."""

    payment_type: Literal["internal_transfer"]
    provider: None = attrs.field(default=None, metadata={"openapi": {"type": "null",
                                                                     "description": "Absent (or null)"}})


@attrs.frozen(kw_only=True)
class ExternalPaymentRequest:
    """An external payment: through `provider`, no `destination_account_id` (answers 202 pending)."""

    __openapi_strict__ = True
    payment_type: Literal["external_payment"]
    source_account_id: str = attrs.field(metadata=UUID)
    destination_account_id: None = attrs.field(default=None, metadata={"openapi": {
        "type": "null", "description": "Absent (or null)"}})
    amount: Decimal = attrs.field(metadata=AMOUNT)
    currency: str = attrs.field(metadata=CURRENCY)
    provider: Literal["stripe", "paypal"]
    description: str | None = attrs.field(default=None, metadata=DESCRIPTION)
    metadata: dict[str, str] | None = attrs.field(default=None, metadata=METADATA)


@attrs.frozen(kw_only=True)
class PaymentRequest:
    """An internal transfer or an external payment, as `payment_type` says."""

    __openapi_strict__ = True
    __openapi_one_of__ = ("payment_type", {"internal_transfer": InternalPaymentRequest,
                                           "external_payment": ExternalPaymentRequest})
    payment_type: Literal["internal_transfer", "external_payment"]
    source_account_id: str = attrs.field(metadata=UUID)
    destination_account_id: str | None = attrs.field(default=None, metadata=UUID)
    amount: Decimal = attrs.field(metadata=AMOUNT)
    currency: str = attrs.field(metadata=CURRENCY)
    provider: Literal["stripe", "paypal"] | None = None
    description: str | None = attrs.field(default=None, metadata=DESCRIPTION)
    metadata: dict[str, str] | None = attrs.field(default=None, metadata=METADATA)


@attrs.frozen(kw_only=True)
class CancelRequest:
    """Cancel takes no fields; an empty body or `{}`."""

    __openapi_strict__ = True


@attrs.frozen(kw_only=True)
class RefundRequest:
    __openapi_strict__ = True
    amount: Decimal | None = attrs.field(default=None, metadata={"openapi": {
        **AMOUNT["openapi"], "examples": ["5.00"],
        "description": "Decimal amount > 0 in the payment's currency; absent: everything not yet refunded"}})
    reason: str | None = attrs.field(default=None, metadata=DESCRIPTION)


@attrs.frozen(kw_only=True)
class Payment:
    __openapi_example__: ClassVar[dict[str, Any] | None] = {
        "id": "0190a6a4-5b2c-7e41-8a3f-6c1d2e3f4a5b", "payment_type": "internal_transfer", "status": "completed",
        "source_account_id": "0190a6a4-3c1e-7d2a-9b1e-2f6a4c8d0e11",
        "destination_account_id": "0190a6a4-41d7-7c3b-a2e9-8f0b1c2d3e4f", "amount": "25.00", "currency": "USD",
        "provider": None, "provider_reference": None, "refunded_amount": "0.00", "failure_code": None,
        "failure_reason": None, "description": "Rent, March", "metadata": {"invoice": "INV-1042"},
        "created_at": "2026-01-31T12:00:00Z", "updated_at": "2026-01-31T12:00:00Z",
        "completed_at": "2026-01-31T12:00:00Z"}
    id: str = attrs.field(metadata=UUID)
    payment_type: PaymentType
    status: PaymentStatus
    source_account_id: str = attrs.field(metadata=UUID)
    destination_account_id: str | None = attrs.field(metadata=UUID)
    amount: str = attrs.field(metadata=MONEY_OUT)
    currency: str = attrs.field(metadata=CURRENCY_OUT)
    provider: str | None
    provider_reference: str | None
    refunded_amount: str = attrs.field(metadata=MONEY_OUT)
    failure_code: FailureCode | None
    failure_reason: str | None
    description: str | None
    metadata: dict[str, str]
    created_at: str = attrs.field(metadata=TIME)
    updated_at: str = attrs.field(metadata=TIME)
    completed_at: str | None = attrs.field(metadata=TIME)


@attrs.frozen(kw_only=True)
class Refund:
    id: str = attrs.field(metadata=UUID)
    payment_id: str = attrs.field(metadata=UUID)
    amount: str = attrs.field(metadata=MONEY_OUT)
    currency: str = attrs.field(metadata=CURRENCY_OUT)
    status: RefundStatus
    reason: str | None
    provider_reference: str | None
    failure_reason: str | None
    created_at: str = attrs.field(metadata=TIME)
    updated_at: str = attrs.field(metadata=TIME)
    completed_at: str | None = attrs.field(metadata=TIME)


@attrs.frozen(kw_only=True)
class PaymentEvent:
    id: str = attrs.field(metadata=UUID)
    payment_id: str = attrs.field(metadata=UUID)
    sequence: int
    type: str = attrs.field(metadata={"openapi": {"examples": ["payment.created"]}})
    data: dict[str, Any]
    correlation_id: str | None
    created_at: str = attrs.field(metadata=TIME)


@attrs.frozen(kw_only=True)
class PaymentEvents:
    data: list[PaymentEvent]
