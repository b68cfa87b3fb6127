# Generated from aio_client.py by payments/client/unasync.py: edit aio_client.py, then run
# `python -m payments.client.unasync`. (Import order follows the source's.)
# ruff: noqa: I001
"""The synchronous client: `Client(base_url, api_key)`, with webhooks, the events feed and reconciliations."""

from __future__ import annotations

import time
from collections.abc import Iterator, Callable, Sequence
from types import TracebackType
from typing import Literal

import httpx

from app.http.schemas.events import EventPage
from app.http.schemas.reconciliations import Reconciliation, ReconciliationRequest
from app.http.schemas.webhooks import (
    Webhook,
    WebhookDelivery,
    WebhookEvent,
    WebhookRequest,
    WebhookUpdate,
    WebhookWithSecret,
)
from payments.client.money import (
    Accounts,
    Batches,
    Holds,
    Payments,
    Refunds,
    Transfers,
)
from payments.client.transport import Transport
from payments.client.receiving import construct_event
from payments.client.retries import Retries
from payments.client.routes import ROUTES, Page


class Webhooks:
    """`/api/v1/webhooks` (API.md §7), and checking what a subscription receives."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(self, *, url: str, events: Sequence[str], description: str | None = None,
                     enabled: bool = True, idempotency_key: str | None = None) -> WebhookWithSecret:
        """Subscribe `url` to `events` (or `["*"]`); the answer's `secret` is shown this once: keep it."""
        body = WebhookRequest(url=url, events=[*events], description=description, enabled=enabled)
        return self._t.call(ROUTES["createWebhook"], WebhookWithSecret, body=body,
                                  idempotency_key=idempotency_key)

    def get(self, webhook_id: str) -> Webhook:
        return self._t.call(ROUTES["getWebhook"], Webhook, path={"webhook_id": webhook_id})

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Webhook]:
        return self._t.page(ROUTES["listWebhooks"], Webhook, params={"limit": limit, "cursor": cursor})

    def iterate(self) -> Iterator[Webhook]:
        """Every webhook subscription, across all pages."""
        return self._t.every(ROUTES["listWebhooks"], Webhook)

    def update(self, webhook_id: str, *, url: str | None = None, events: Sequence[str] | None = None,
                     description: str | None = None, enabled: bool | None = None,
                     idempotency_key: str | None = None) -> Webhook:
        body = WebhookUpdate(url=url, events=None if events is None else [*events], description=description,
                             enabled=enabled)
        return self._t.call(ROUTES["updateWebhook"], Webhook, path={"webhook_id": webhook_id}, body=body,
                                  idempotency_key=idempotency_key)

    def delete(self, webhook_id: str, *, idempotency_key: str | None = None) -> None:
        self._t.send(ROUTES["deleteWebhook"], path={"webhook_id": webhook_id}, idempotency_key=idempotency_key)

    def rotate_secret(self, webhook_id: str, *, idempotency_key: str | None = None) -> WebhookWithSecret:
        """A new secret; deliveries are signed with both until the old one's `previous_secret_expires_at`."""
        return self._t.call(ROUTES["rotateWebhookSecret"], WebhookWithSecret, path={"webhook_id": webhook_id},
                                  idempotency_key=idempotency_key)

    def deliveries(self, webhook_id: str, *, limit: int | None = None,
                         cursor: str | None = None) -> Page[WebhookDelivery]:
        return self._t.page(ROUTES["listWebhookDeliveries"], WebhookDelivery, path={"webhook_id": webhook_id},
                                  params={"limit": limit, "cursor": cursor})

    def retry_delivery(self, webhook_id: str, delivery_id: str, *,
                             idempotency_key: str | None = None) -> WebhookDelivery:
        return self._t.call(ROUTES["retryWebhookDelivery"], WebhookDelivery,
                                  path={"webhook_id": webhook_id, "delivery_id": delivery_id},
                                  idempotency_key=idempotency_key)

    #: `construct_event(body, signature, secret)`: check a delivery and parse its event (`receiving`).
    construct_event = staticmethod(construct_event)


class Events:
    """`/api/v1/events` (API.md §11): every event of the tenant, oldest first."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self, *, type: str | None = None, after: str | None = None, limit: int | None = None,
                   cursor: str | None = None) -> EventPage:
        return self._t.call(ROUTES["listEvents"], EventPage,
                                  params={"type": type, "after": after, "limit": limit, "cursor": cursor})

    def iterate(self, *, type: str | None = None, after: str | None = None) -> Iterator[WebhookEvent]:
        """Every event after `after` (from the first one if `None`) visible now, oldest first; poll again with
        `after` = the last id seen to miss nothing and repeat nothing."""
        while True:
            page = self.list(type=type, after=after, limit=100)
            for event in page.data:
                yield event
                after = event.id
            if not page.has_more or not page.data:
                return

    def get(self, event_id: str) -> WebhookEvent:
        return self._t.call(ROUTES["getEvent"], WebhookEvent, path={"event_id": event_id})


class Reconciliations:
    """`/api/v1/reconciliations` (API.md §12)."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(self, *, provider: Literal["stripe", "paypal"], date: str,
                     idempotency_key: str | None = None) -> Reconciliation:
        """Match `provider`'s settlement report of the UTC day `date` (YYYY-MM-DD) against the ledger."""
        body = ReconciliationRequest(provider=provider, date=date)
        return self._t.call(ROUTES["createReconciliation"], Reconciliation, body=body,
                                  idempotency_key=idempotency_key)

    def get(self, reconciliation_id: str) -> Reconciliation:
        return self._t.call(ROUTES["getReconciliation"], Reconciliation,
                                  path={"reconciliation_id": reconciliation_id})


class Client:
    """A client of the Payments API: `Client("https://payments.example.com", "sk_...")`.

    Every write carries an Idempotency-Key, generated per call unless given, and repeated on each retry; 429, 503,
    a 409 `idempotency_request_in_progress` and lost connections are retried as `retries` says, honouring
    `Retry-After`. Error answers are raised as `ApiError` subclasses. `http`: an `httpx.Client` of your own
    (proxies, TLS, transports), left open on `close`; `sleep` is what waits between tries.
    """

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0, retries: Retries | None = None,
                 http: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.transport = Transport(base_url, api_key, timeout=timeout, retries=retries, http=http, sleep=sleep)
        self.accounts = Accounts(self.transport)
        self.transfers = Transfers(self.transport)
        self.payments = Payments(self.transport)
        self.refunds = Refunds(self.transport)
        self.holds = Holds(self.transport)
        self.batches = Batches(self.transport)
        self.webhooks = Webhooks(self.transport)
        self.events = Events(self.transport)
        self.reconciliations = Reconciliations(self.transport)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        self.close()
