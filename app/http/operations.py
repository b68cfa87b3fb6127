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


DESCRIPTION = """\
A payments API: accounts with a double-entry ledger, synchronous transfers, asynchronous payments through
providers, two-phase holds, batches, webhooks, an events feed and reconciliation.

Every `/api/v1` operation needs `Authorization: Bearer <api key>` (scope `read` to GET, `write` otherwise) and
answers `X-Request-ID`. Errors are RFC 9457 problem details (`application/problem+json`) whose `type` is
`/problems/<slug>`; each error response below names the slugs it may carry, and `GET /problems/<slug>` explains
one. Amounts are sent as decimal strings or JSON numbers with at most the currency's decimal places and answered
as strings. POSTs take an `Idempotency-Key` (required on transfers, payments and refunds): a retry with the same
key and request replays the first answer. Lists take `limit` and `cursor` and answer `data`, `has_more` and
`next_cursor`. The guides are in docs/api/ of the repository."""

#: Each resource's tag, as /docs groups the operations.
TAGS = {
    "accounts": "Accounts in one currency each, their balances, statements and ledger entries (API.md §3, §4)",
    "transfers": "Synchronous transfers between two accounts of the caller's tenant (API.md §5)",
    "payments": "Payments (internal transfers, or external through a provider), their cancellation, refunds and "
                "event history (API.md §6)",
    "holds": "Two-phase transfers: reserve an amount, then capture or void it, or let it expire (API.md §9)",
    "webhooks": "Subscriptions to events, their delivery log, secret rotation and redelivery (API.md §7)",
    "events": "The events feed: every event of the tenant, oldest first, to poll (API.md §11)",
    "reconciliations": "Matching a provider's settlement report for a day against the ledger (API.md §12)",
    "batches": "Many transfers in one request, atomic or not, or a dry run of them (API.md §10)",
}


def openapi_document(version: str) -> dict[str, Any]:
    """The document served at /openapi.json."""
    return build_openapi(OPERATIONS, title="Payments API", version=version, webhooks=WEBHOOKS,
                         description=DESCRIPTION, tags=TAGS)
