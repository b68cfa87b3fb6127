"""The OpenAPI description of every /api/v1 operation."""

from __future__ import annotations

from typing import Any

from app.http import schemas as s
from app.http.openapi import Operation, Parameter, Webhook, build_openapi

_LIST = (Parameter(name="limit", schema={"type": "integer", "minimum": 1, "maximum": 100, "default": 20}),
         Parameter(name="cursor", schema={"type": "string", "minLength": 1}))
_USER_ID = Parameter(name="user_id", schema={"type": "string", "minLength": 1, "maxLength": 255})
_PAYMENT_FILTERS = (
    Parameter(name="status", schema={"type": "string", "enum": ["pending", "processing", "completed", "failed",
                                                               "cancelled", "partially_refunded", "refunded"]}),
    Parameter(name="payment_type", schema={"type": "string", "enum": ["internal_transfer", "external_payment"]}),
    Parameter(name="account_id", schema={"type": "string", "format": "uuid"}),
    Parameter(name="provider", schema={"type": "string", "enum": ["stripe", "paypal"]}),
    Parameter(name="created_after", schema={"type": "string", "format": "date-time"}),
    Parameter(name="created_before", schema={"type": "string", "format": "date-time"}),
)
_ACCOUNT = "/api/v1/accounts/{account_id}"
_PAYMENT = "/api/v1/payments/{payment_id}"
_COMMON = (429, 503)
_WEBHOOK = "/api/v1/webhooks/{webhook_id}"

OPERATIONS = (
    Operation(method="post", path="/api/v1/accounts", summary="Open an account", tag="accounts",
              operation_id="createAccount", request=s.CreateAccountRequest, response=s.Account, response_status=201,
              idempotency="optional", errors=(409, *_COMMON)),
    Operation(method="get", path="/api/v1/accounts", summary="List accounts", tag="accounts",
              operation_id="listAccounts", response=s.Account, list_response=True,
              query=(_USER_ID, *_LIST), errors=(422, *_COMMON)),
    Operation(method="get", path=_ACCOUNT, summary="Get an account", tag="accounts", operation_id="getAccount",
              response=s.Account, errors=(404, *_COMMON)),
    Operation(method="get", path=f"{_ACCOUNT}/balance", summary="Get an account's balance", tag="accounts",
              operation_id="getBalance", response=s.Balance, errors=(404, *_COMMON)),
    Operation(method="get", path=f"{_ACCOUNT}/transactions", summary="List an account's ledger entries",
              tag="accounts", operation_id="listTransactions", response=s.LedgerEntry, list_response=True,
              query=_LIST, errors=(404, 422, *_COMMON)),
    Operation(method="post", path="/api/v1/transfers", summary="Transfer between two accounts", tag="transfers",
              operation_id="createTransfer", request=s.TransferRequest, response=s.Payment, response_status=201,
              idempotency="required", errors=(404, 409, *_COMMON)),
    Operation(method="post", path="/api/v1/payments",
              summary="Create a payment (internal: 201 completed; external: 202 pending)", tag="payments",
              operation_id="createPayment", request=s.PaymentRequest, response=s.Payment, response_status=201,
              also=(202,), idempotency="required", errors=(404, 409, *_COMMON)),
    Operation(method="get", path="/api/v1/payments", summary="List payments", tag="payments",
              operation_id="listPayments", response=s.Payment, list_response=True,
              query=(*_PAYMENT_FILTERS, *_LIST), errors=(422, *_COMMON)),
    Operation(method="post", path=f"{_PAYMENT}/cancel", summary="Cancel a pending payment", tag="payments",
              operation_id="cancelPayment", request=s.CancelRequest, body_optional=True, response=s.Payment,
              idempotency="optional",
              errors=(404, 409, *_COMMON)),
    Operation(method="post", path=f"{_PAYMENT}/refund",
              summary="Refund a payment (external: 202 pending; internal transfer: 201 succeeded)", tag="payments",
              operation_id="refundPayment", request=s.RefundRequest, body_optional=True, response=s.Refund,
              response_status=202,
              also=(201,), idempotency="required", errors=(404, 409, *_COMMON)),
    Operation(method="get", path=f"{_PAYMENT}/refunds", summary="A payment's refunds", tag="payments",
              operation_id="listRefunds", response=s.Refund, list_response=True, query=_LIST,
              errors=(404, 422, *_COMMON)),
    Operation(method="get", path=_PAYMENT, summary="Get a payment", tag="payments", operation_id="getPayment",
              response=s.Payment, errors=(404, *_COMMON)),
    Operation(method="get", path=f"{_PAYMENT}/events", summary="A payment's event history", tag="payments",
              operation_id="listPaymentEvents", response=s.PaymentEvents, errors=(404, *_COMMON)),
    Operation(method="post", path="/api/v1/webhooks", summary="Subscribe an endpoint to events (secret shown once)",
              tag="webhooks", operation_id="createWebhook", request=s.WebhookRequest, response=s.WebhookWithSecret,
              response_status=201, idempotency="optional", errors=(409, *_COMMON)),
    Operation(method="get", path="/api/v1/webhooks", summary="List webhooks", tag="webhooks",
              operation_id="listWebhooks", response=s.Webhook, list_response=True, query=_LIST,
              errors=(422, *_COMMON)),
    Operation(method="get", path=_WEBHOOK, summary="Get a webhook", tag="webhooks", operation_id="getWebhook",
              response=s.Webhook, errors=(404, *_COMMON)),
    Operation(method="patch", path=_WEBHOOK, summary="Change a webhook's url, events, description or enabled",
              tag="webhooks", operation_id="updateWebhook", request=s.WebhookUpdate, response=s.Webhook,
              idempotency="optional", errors=(404, 409, *_COMMON)),
    Operation(method="delete", path=_WEBHOOK, summary="Delete a webhook and its delivery log", tag="webhooks",
              operation_id="deleteWebhook", response_status=204, idempotency="optional",
              errors=(404, 409, 422, *_COMMON)),
    Operation(method="post", path=f"{_WEBHOOK}/rotate-secret",
              summary="New signing secret (shown once); the old one also signs for 24 h", tag="webhooks",
              operation_id="rotateWebhookSecret", request=s.EmptyRequest, body_optional=True,
              response=s.WebhookWithSecret, idempotency="optional", errors=(404, 409, *_COMMON)),
    Operation(method="get", path=f"{_WEBHOOK}/deliveries", summary="A webhook's delivery log", tag="webhooks",
              operation_id="listWebhookDeliveries", response=s.WebhookDelivery, list_response=True, query=_LIST,
              errors=(404, 422, *_COMMON)),
    Operation(method="post", path=f"{_WEBHOOK}/deliveries/{{delivery_id}}/retry",
              summary="Redeliver now (one more attempt, even after a give-up)", tag="webhooks",
              operation_id="retryWebhookDelivery", request=s.EmptyRequest, body_optional=True,
              response=s.WebhookDelivery, response_status=202,
              idempotency="optional", errors=(404, 409, 422, *_COMMON)),
)


_SIGNATURE = Parameter(name="Payments-Signature", location="header", required=True, schema={
    "type": "string", "pattern": "^t=[0-9]+(,v1=[0-9a-f]{64})+$"}, description=(
    "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<raw body>\")>, one v1 per live secret (two while a "
    "rotated-out secret is still valid); check it with verify_signature(secret, header, body, tolerance=300)"))
WEBHOOKS = (
    Webhook(name="event", summary="An event a subscription hears, POSTed to its URL", body=s.WebhookEvent,
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
    return build_openapi(OPERATIONS, title="Payments API", version=version, webhooks=WEBHOOKS)
