"""The client's table of the API's operations: method, path, body and answer shapes, idempotency, paging.

The shapes are the server's own attrs classes (`app.http.schemas`), imported rather than copied, and
`tests/unit/test_client_drift.py` checks every row against the server's `Operation` declarations, so the client
cannot drift from the routes it calls.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs

from app.http.schemas.accounts import (
    Account,
    Balance,
    CreateAccountRequest,
    LedgerEntry,
    Statement,
    UpdateAccountRequest,
)
from app.http.schemas.batches import Batch, BatchRequest
from app.http.schemas.events import EventPage
from app.http.schemas.holds import CaptureRequest, Hold, HoldRequest, VoidRequest
from app.http.schemas.payments import (
    CancelRequest,
    Payment,
    PaymentEvents,
    PaymentRequest,
    Refund,
    RefundRequest,
    TransferRequest,
)
from app.http.schemas.reconciliations import Reconciliation, ReconciliationRequest
from app.http.schemas.webhooks import (
    EmptyRequest,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
    WebhookRequest,
    WebhookUpdate,
    WebhookWithSecret,
)

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class Route:
    """One operation as the client calls it."""

    operation_id: str
    method: str
    path: str
    request: type | None = None
    response: type | None = None
    #: The answer is a page `{"data", "has_more", "next_cursor"}` of `response` (API.md §1).
    list_response: bool = False
    #: "required" or "optional": the client sends an Idempotency-Key (one per logical call, kept across retries).
    idempotency: str = "none"

    def url(self, **path: str) -> str:
        """The path with its `{name}` parameters filled in."""
        return self.path.format(**path)


@attrs.frozen(kw_only=True)
class Page(Generic[T]):
    """One page of a list (API.md §1): newest first; pass `next_cursor` as `cursor` for the next one."""

    data: list[T]
    has_more: bool
    next_cursor: str | None


_ONE_ACCOUNT = "/api/v1/accounts/{account_id}"
_ONE_PAYMENT = "/api/v1/payments/{payment_id}"
_ONE_HOLD = "/api/v1/holds/{hold_id}"
_ONE_WEBHOOK = "/api/v1/webhooks/{webhook_id}"


def _route(operation_id: str, method: str, path: str, request: type | None = None, response: type | None = None,
           *, list_response: bool = False, idempotency: str = "none") -> Route:
    return Route(operation_id=operation_id, method=method, path=path, request=request, response=response,
                 list_response=list_response, idempotency=idempotency)


#: Every operation of the API by its `operation_id` (the server's declarations are the reference).
ROUTES: dict[str, Route] = {r.operation_id: r for r in (
    _route("createAccount", "post", "/api/v1/accounts", CreateAccountRequest, Account, idempotency="optional"),
    _route("listAccounts", "get", "/api/v1/accounts", response=Account, list_response=True),
    _route("getAccount", "get", _ONE_ACCOUNT, response=Account),
    _route("updateAccount", "patch", _ONE_ACCOUNT, UpdateAccountRequest, Account, idempotency="optional"),
    _route("getBalance", "get", f"{_ONE_ACCOUNT}/balance", response=Balance),
    _route("getStatement", "get", f"{_ONE_ACCOUNT}/statement", response=Statement),
    _route("listTransactions", "get", f"{_ONE_ACCOUNT}/transactions", response=LedgerEntry, list_response=True),
    _route("createTransfer", "post", "/api/v1/transfers", TransferRequest, Payment, idempotency="required"),
    _route("createPayment", "post", "/api/v1/payments", PaymentRequest, Payment, idempotency="required"),
    _route("listPayments", "get", "/api/v1/payments", response=Payment, list_response=True),
    _route("getPayment", "get", _ONE_PAYMENT, response=Payment),
    _route("cancelPayment", "post", f"{_ONE_PAYMENT}/cancel", CancelRequest, Payment, idempotency="optional"),
    _route("refundPayment", "post", f"{_ONE_PAYMENT}/refund", RefundRequest, Refund, idempotency="required"),
    _route("listRefunds", "get", f"{_ONE_PAYMENT}/refunds", response=Refund, list_response=True),
    _route("listPaymentEvents", "get", f"{_ONE_PAYMENT}/events", response=PaymentEvents),
    _route("createHold", "post", "/api/v1/holds", HoldRequest, Hold, idempotency="required"),
    _route("listHolds", "get", "/api/v1/holds", response=Hold, list_response=True),
    _route("getHold", "get", _ONE_HOLD, response=Hold),
    _route("captureHold", "post", f"{_ONE_HOLD}/capture", CaptureRequest, Hold, idempotency="required"),
    _route("voidHold", "post", f"{_ONE_HOLD}/void", VoidRequest, Hold, idempotency="optional"),
    _route("createWebhook", "post", "/api/v1/webhooks", WebhookRequest, WebhookWithSecret, idempotency="optional"),
    _route("listWebhooks", "get", "/api/v1/webhooks", response=Webhook, list_response=True),
    _route("getWebhook", "get", _ONE_WEBHOOK, response=Webhook),
    _route("updateWebhook", "patch", _ONE_WEBHOOK, WebhookUpdate, Webhook, idempotency="optional"),
    _route("deleteWebhook", "delete", _ONE_WEBHOOK, idempotency="optional"),
    _route("rotateWebhookSecret", "post", f"{_ONE_WEBHOOK}/rotate-secret", EmptyRequest, WebhookWithSecret,
           idempotency="optional"),
    _route("listWebhookDeliveries", "get", f"{_ONE_WEBHOOK}/deliveries", response=WebhookDelivery,
           list_response=True),
    _route("retryWebhookDelivery", "post", f"{_ONE_WEBHOOK}/deliveries/{{delivery_id}}/retry", EmptyRequest,
           WebhookDelivery, idempotency="optional"),
    _route("listEvents", "get", "/api/v1/events", response=EventPage),
    _route("getEvent", "get", "/api/v1/events/{event_id}", response=WebhookEvent),
    _route("createReconciliation", "post", "/api/v1/reconciliations", ReconciliationRequest, Reconciliation,
           idempotency="optional"),
    _route("getReconciliation", "get", "/api/v1/reconciliations/{reconciliation_id}", response=Reconciliation),
    _route("createBatch", "post", "/api/v1/batches", BatchRequest, Batch, idempotency="required"),
    _route("getBatch", "get", "/api/v1/batches/{batch_id}", response=Batch),
)}
