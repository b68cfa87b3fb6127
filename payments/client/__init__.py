"""A typed Python client of the Payments API, built on the server's own request and response shapes.

    from payments.client import Client

    with Client("http://127.0.0.1:8000", "sk_...") as client:
        payment = client.transfers.create(source_account_id=a, destination_account_id=b,
                                          amount="12.34", currency="USD")

`AsyncClient` is the same with `await`. Guide: docs/api/client.md.
"""

from __future__ import annotations

from app.http.schemas.accounts import Account, Balance, LedgerEntry, Statement
from app.http.schemas.batches import Batch, BatchTransferRequest, BatchTransferResult, DraftPayment
from app.http.schemas.events import EventPage
from app.http.schemas.holds import Hold
from app.http.schemas.payments import Payment, PaymentEvent, Refund
from app.http.schemas.reconciliations import Reconciliation
from app.http.schemas.statuses import AccountStatus, DeliveryStatus, PaymentStatus, RefundStatus
from app.http.schemas.webhooks import Webhook, WebhookDelivery, WebhookEvent, WebhookWithSecret
from core.holds import HoldStatus
from core.signatures import InvalidSignature, verify_signature
from payments.client.aio_client import AsyncClient
from payments.client.client import Client
from payments.client.errors import (
    AccountClosed,
    AccountFrozen,
    ApiError,
    AuthenticationError,
    BadRequest,
    BatchFailed,
    Conflict,
    FieldProblem,
    IdempotencyKeyReused,
    IdempotencyRequestInProgress,
    InsufficientFunds,
    InvalidStateTransition,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    UnprocessableEntity,
    ValidationError,
)
from payments.client.receiving import construct_event
from payments.client.retries import Retries
from payments.client.routes import Page

__all__ = [
    "Account",
    "AccountClosed",
    "AccountFrozen",
    "AccountStatus",
    "ApiError",
    "AsyncClient",
    "AuthenticationError",
    "BadRequest",
    "Balance",
    "Batch",
    "BatchFailed",
    "BatchTransferRequest",
    "BatchTransferResult",
    "Client",
    "Conflict",
    "DeliveryStatus",
    "DraftPayment",
    "EventPage",
    "FieldProblem",
    "Hold",
    "HoldStatus",
    "IdempotencyKeyReused",
    "IdempotencyRequestInProgress",
    "InsufficientFunds",
    "InvalidSignature",
    "InvalidStateTransition",
    "LedgerEntry",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "Payment",
    "PaymentEvent",
    "PaymentStatus",
    "PermissionDenied",
    "RateLimited",
    "Reconciliation",
    "Refund",
    "RefundStatus",
    "Retries",
    "ServerError",
    "ServiceUnavailable",
    "Statement",
    "UnprocessableEntity",
    "ValidationError",
    "Webhook",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookWithSecret",
    "construct_event",
    "verify_signature",
]
