"""The shapes of /api/v1/holds (API.md §9): placing a hold, capturing it, and a hold."""

from __future__ import annotations

from decimal import Decimal

import attrs

from app.http.schemas.fields import AMOUNT, CURRENCY_OUT, DESCRIPTION, METADATA, MONEY_OUT, TIME, UUID
from app.http.schemas.payments import Movement
from core.holds import DEFAULT_EXPIRY, MAX_EXPIRY, MIN_EXPIRY, HoldStatus


@attrs.frozen(kw_only=True)
class HoldRequest(Movement):
    expires_in: int | None = attrs.field(default=None, metadata={"openapi": {
        "minimum": MIN_EXPIRY, "maximum": MAX_EXPIRY, "default": DEFAULT_EXPIRY,
        "description": "Seconds until the hold expires (60 s to 30 days; default 7 days)"}})
    description: str | None = attrs.field(default=None, metadata=DESCRIPTION)
    metadata: dict[str, str] | None = attrs.field(default=None, metadata=METADATA)


@attrs.frozen(kw_only=True)
class CaptureRequest:
    __openapi_strict__ = True
    amount: Decimal | None = attrs.field(default=None, metadata={"openapi": {
        **AMOUNT["openapi"], "description": "At most the held amount (the default); the rest is released"}})


@attrs.frozen(kw_only=True)
class VoidRequest:
    """`POST /holds/{id}/void` takes no field; the body may be left out."""

    __openapi_strict__ = True


@attrs.frozen(kw_only=True)
class Hold:
    id: str = attrs.field(metadata=UUID)
    status: HoldStatus
    source_account_id: str = attrs.field(metadata=UUID)
    destination_account_id: str = attrs.field(metadata=UUID)
    amount: str = attrs.field(metadata=MONEY_OUT)
    captured_amount: str = attrs.field(metadata=MONEY_OUT)
    currency: str = attrs.field(metadata=CURRENCY_OUT)
    payment_id: str | None = attrs.field(metadata={"openapi": {
        "format": "uuid", "description": "The completed internal transfer its capture made"}})
    expires_at: str = attrs.field(metadata=TIME)
    description: str | None
    metadata: dict[str, str]
    created_at: str = attrs.field(metadata=TIME)
    updated_at: str = attrs.field(metadata=TIME)
