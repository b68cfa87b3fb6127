"""The shapes of /api/v1/webhooks, and of the events the API POSTs to subscribers."""

from __future__ import annotations

from typing import Any

import attrs

from app.http.schemas.fields import DESCRIPTION, TIME, UUID
from app.http.schemas.statuses import DeliveryStatus
from core.events import CATALOGUE

_EVENTS = {"openapi": {"minItems": 1, "items": {"type": "string", "enum": ["*", *CATALOGUE]},
                       "description": "Event types to receive, or [\"*\"] for all",
                       "examples": [["payment.completed"]]}}
_URL = {"openapi": {"format": "uri", "maxLength": 2048, "examples": ["https://example.com/hooks/payments"],
                    "description": "http(s) URL; private, loopback and link-local hosts are refused unless allowed"}}


@attrs.frozen(kw_only=True)
class WebhookRequest:
    __openapi_strict__ = True
    url: str = attrs.field(metadata=_URL)
    events: list[str] = attrs.field(metadata=_EVENTS)
    description: str | None = attrs.field(default=None, metadata=DESCRIPTION)
    enabled: bool = True


@attrs.frozen(kw_only=True)
class EmptyRequest:
    """No fields: the body may be left out or be `{}`."""

    __openapi_strict__ = True


@attrs.frozen(kw_only=True)
class WebhookUpdate:
    """`PATCH /webhooks/{id}`: each field given changes, a field left out stays. `url`, `events` and `enabled`
    cannot be null; a null `description` clears it."""

    __openapi_strict__ = True
    url: str | None = attrs.field(default=None, metadata={**_URL, "not_null": True})
    events: list[str] | None = attrs.field(default=None, metadata={**_EVENTS, "not_null": True})
    description: str | None = attrs.field(default=None, metadata={"openapi": {
        **DESCRIPTION["openapi"], "description": "null clears it"}})
    enabled: bool | None = attrs.field(default=None, metadata={"not_null": True})


@attrs.frozen(kw_only=True)
class Webhook:
    id: str = attrs.field(metadata=UUID)
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    previous_secret_expires_at: str | None = attrs.field(metadata=TIME)
    created_at: str = attrs.field(metadata=TIME)
    updated_at: str = attrs.field(metadata=TIME)


@attrs.frozen(kw_only=True)
class WebhookWithSecret(Webhook):
    """A webhook as created or rotated: with its signing secret, shown this once."""

    secret: str = attrs.field(metadata={"openapi": {"pattern": "^whsec_", "description": "Shown only here",
                                                         "examples": ["whsec_3vQb8Kx2mT9pLr4Zc7Yw1nHs5Ud6Ef0A"]}})


@attrs.frozen(kw_only=True)
class WebhookDelivery:
    id: str = attrs.field(metadata=UUID)
    webhook_id: str = attrs.field(metadata=UUID)
    event_id: str = attrs.field(metadata=UUID)
    event_type: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: str | None = attrs.field(metadata=TIME)
    delivered_at: str | None = attrs.field(metadata=TIME)
    created_at: str = attrs.field(metadata=TIME)
    updated_at: str = attrs.field(metadata=TIME)


@attrs.frozen(kw_only=True)
class WebhookEventData:
    object: dict[str, Any] = attrs.field(metadata={"openapi": {
        "description": "The resource as the API shows it after the event (a payment, refund or account)"}})


@attrs.frozen(kw_only=True)
class WebhookEvent:
    """The body of a webhook delivery: the same bytes, and the same `id`, on every attempt."""

    id: str = attrs.field(metadata={"openapi": {"format": "uuid", "description": "The event id: deduplicate on it"}})
    type: str = attrs.field(metadata={"openapi": {"enum": list(CATALOGUE)}})
    created_at: str = attrs.field(metadata=TIME)
    data: WebhookEventData
