"""Receiving webhooks: a delivery's body checked against its `Payments-Signature` and parsed into its event."""

from __future__ import annotations

import json

from app.http.schemas.webhooks import WebhookEvent
from core.signatures import verify_signature
from payments.client.codec import decode


def construct_event(body: bytes | str, signature: str | None, secret: str, *, tolerance: int = 300) -> WebhookEvent:
    """The event a delivery carries, once its `Payments-Signature` header (`signature`) is checked against the
    subscription's `secret` by the server's own `verify_signature` (API.md §7); raises `InvalidSignature` if the
    header is missing, malformed, older or newer than `tolerance` seconds, or signs another body. Pass the raw
    body, byte for byte, not re-serialised JSON. Deduplicate on the event's `id`: delivery is at least once."""
    verify_signature(secret, signature, body, tolerance)  # type: ignore[arg-type]  # None: refused as missing
    return decode(json.loads(body), WebhookEvent)
