"""The shapes of /api/v1/reconciliations (API.md §12)."""

from __future__ import annotations

from typing import Literal

import attrs

from app.http.schemas.fields import CURRENCY_OUT, MONEY_OUT, TIME, UUID
from core.reconciliation import MatchResult, ReconciliationStatus

_DATE = {"openapi": {"format": "date", "examples": ["2026-01-31"],
                     "description": "The UTC day whose settlement report to reconcile (YYYY-MM-DD), up to today"}}


@attrs.frozen(kw_only=True)
class ReconciliationRequest:
    __openapi_strict__ = True
    provider: Literal["stripe", "paypal"]
    date: str = attrs.field(metadata=_DATE)


@attrs.frozen(kw_only=True)
class ReconciliationSummary:
    """How many items ended in each result."""

    matched: int
    missing_in_ledger: int
    missing_at_provider: int
    amount_mismatch: int


@attrs.frozen(kw_only=True)
class ReconciliationItem:
    """An item that did not match; amounts are the ledger's and the provider's, in `currency` (the provider's in
    `provider_currency` when it settled in another one)."""

    result: MatchResult
    type: Literal["charge", "refund"]
    idempotency_key: str = attrs.field(metadata={"openapi": {
        "description": "The key the charge (the payment id) or the refund (the refund id) was sent under"}})
    payment_id: str | None = attrs.field(metadata=UUID)
    provider_reference: str | None
    ledger_amount: str | None = attrs.field(metadata=MONEY_OUT)
    provider_amount: str | None = attrs.field(metadata=MONEY_OUT)
    currency: str = attrs.field(metadata=CURRENCY_OUT)
    provider_currency: str | None = None


@attrs.frozen(kw_only=True)
class Reconciliation:
    id: str = attrs.field(metadata=UUID)
    provider: str = attrs.field(metadata={"openapi": {"examples": ["stripe"]}})
    date: str = attrs.field(metadata={"openapi": {"format": "date"}})
    status: ReconciliationStatus
    summary: ReconciliationSummary
    items: list[ReconciliationItem]
    failure_reason: str | None = attrs.field(metadata={"openapi": {
        "description": "Why a failed reconciliation failed (its settlement report could not be read)"}})
    created_at: str = attrs.field(metadata=TIME)
    completed_at: str | None = attrs.field(metadata=TIME)
