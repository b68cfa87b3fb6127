"""The OpenAPI description of the API: every operation the route modules declare, and the webhooks it sends."""

from __future__ import annotations

from typing import Any

from app.http.endpoints import declared
from app.http.openapi import Parameter, Webhook, build_openapi
from app.http.routes import accounts, batches, events, holds, payments, reconciliations, webhooks
from app.http.schemas.webhooks import WebhookEvent

#: In the document's order: accounts, then transfers and payments, then webhooks, then the events feed, then
#: reconciliations, then batches.
OPERATIONS = (*declared(accounts.bp), *declared(payments.bp), *declared(holds.bp), *declared(webhooks.bp),
              *declared(events.bp),
              *declared(reconciliations.bp), *declared(batches.bp))

_SIGNATURE = Parameter(name="Payments-Signature", location="header", required=True, schema={
    "type": "string", "pattern": "^t=[0-9]+(,v1=[0-9a-f]{64})+$"}, description=(
    "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<raw body>\")>, one v1 per live secret (two while a "
    "rotated-out secret is still valid); check it with verify_signature(secret, header, body, tolerance=300)"))
WEBHOOKS = (
    Webhook(name="event", summary="An event a subscription hears, POSTed to its URL", body=WebhookEvent,
            headers=(_SIGNATURE,
                     Parameter(name="Payments-Event-Id", location="header", required=True,
                               schema={"type": "string", "format": "uuid"}, description="Equal to the body's id"),
                     Parameter(name="Payments-Delivery-Id", location="header", required=True,
                               schema={"type": "string", "format": "uuid"}),
                     Parameter(name="Payments-Delivery-Attempt", location="header", required=True,
                               schema={"type": "integer", "minimum": 1}),
                     Parameter(name="X-Request-ID", location="header", required=True, schema={"type": "string"},
                               description="The id of the request that caused the event"))),
)


def openapi_document(version: str) -> dict[str, Any]:
    """The document served at /openapi.json."""
    return build_openapi(OPERATIONS, title="Payments API", version=version, webhooks=WEBHOOKS)
