"""The asynchronous client: `AsyncClient(base_url, api_key)`, with webhooks, the events feed and reconciliations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
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
from payments.client.aio_money import (
    AsyncAccounts,
    AsyncBatches,
    AsyncHolds,
    AsyncPayments,
    AsyncRefunds,
    AsyncTransfers,
)
from payments.client.aio_transport import AsyncTransport
from payments.client.receiving import construct_event
from payments.client.retries import Retries
from payments.client.routes import ROUTES, Page


class AsyncWebhooks:
    """`/api/v1/webhooks` (API.md §7), and checking what a subscription receives."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def create(self, *, url: str, events: Sequence[str], description: str | None = None,
                     enabled: bool = True, idempotency_key: str | None = None) -> WebhookWithSecret:
        """Subscribe `url` to `events` (or `["*"]`); the answer's `secret` is shown this once: keep it."""
        body = WebhookRequest(url=url, events=[*events], description=description, enabled=enabled)
        return await self._t.call(ROUTES["createWebhook"], WebhookWithSecret, body=body,
                                  idempotency_key=idempotency_key)

    async def get(self, webhook_id: str) -> Webhook:
        return await self._t.call(ROUTES["getWebhook"], Webhook, path={"webhook_id": webhook_id})

    async def list(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Webhook]:
        return await self._t.page(ROUTES["listWebhooks"], Webhook, params={"limit": limit, "cursor": cursor})

    def iterate(self) -> AsyncIterator[Webhook]:
        """Every webhook subscription, across all pages."""
        return self._t.every(ROUTES["listWebhooks"], Webhook)

    async def update(self, webhook_id: str, *, url: str | None = None, events: Sequence[str] | None = None,
                     description: str | None = None, enabled: bool | None = None,
                     idempotency_key: str | None = None) -> Webhook:
        body = WebhookUpdate(url=url, events=None if events is None else [*events], description=description,
                             enabled=enabled)
        return await self._t.call(ROUTES["updateWebhook"], Webhook, path={"webhook_id": webhook_id}, body=body,
                                  idempotency_key=idempotency_key)

    async def delete(self, webhook_id: str, *, idempotency_key: str | None = None) -> None:
        await self._t.send(ROUTES["deleteWebhook"], path={"webhook_id": webhook_id}, idempotency_key=idempotency_key)

    async def rotate_secret(self, webhook_id: str, *, idempotency_key: str | None = None) -> WebhookWithSecret:
        """A new secret; deliveries are signed with both until the old one's `previous_secret_expires_at`."""
        return await self._t.call(ROUTES["rotateWebhookSecret"], WebhookWithSecret, path={"webhook_id": webhook_id},
                                  idempotency_key=idempotency_key)

    async def deliveries(self, webhook_id: str, *, limit: int | None = None,
                         cursor: str | None = None) -> Page[WebhookDelivery]:
        return await self._t.page(ROUTES["listWebhookDeliveries"], WebhookDelivery, path={"webhook_id": webhook_id},
                                  params={"limit": limit, "cursor": cursor})

    async def retry_delivery(self, webhook_id: str, delivery_id: str, *,
                             idempotency_key: str | None = None) -> WebhookDelivery:
        return await self._t.call(ROUTES["retryWebhookDelivery"], WebhookDelivery,
                                  path={"webhook_id": webhook_id, "delivery_id": delivery_id},
                                  idempotency_key=idempotency_key)

    #: `construct_event(body, signature, secret)`: check a delivery and parse its event (`receiving`).
    construct_event = staticmethod(construct_event)


class AsyncEvents:
    """`/api/v1/events` (API.md §11): every event of the tenant, oldest first."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def list(self, *, type: str | None = None, after: str | None = None, limit: int | None = None,
                   cursor: str | None = None) -> EventPage:
        return await self._t.call(ROUTES["listEvents"], EventPage,
                                  params={"type": type, "after": after, "limit": limit, "cursor": cursor})

    async def iterate(self, *, type: str | None = None, after: str | None = None) -> AsyncIterator[WebhookEvent]:
        """Every event after `after` (from the first one if `None`) visible now, oldest first; poll again with
        `after` = the last id seen to miss nothing and repeat nothing."""
        while True:
            page = await self.list(type=type, after=after, limit=100)
            for event in page.data:
                yield event
                after = event.id
            if not page.has_more or not page.data:
                return

    async def get(self, event_id: str) -> WebhookEvent:
        return await self._t.call(ROUTES["getEvent"], WebhookEvent, path={"event_id": event_id})


class AsyncReconciliations:
    """`/api/v1/reconciliations` (API.md §12)."""

    def __init__(self, transport: AsyncTransport) -> None:
        self._t = transport

    async def create(self, *, provider: Literal["stripe", "paypal"], date: str,
                     idempotency_key: str | None = None) -> Reconciliation:
        """Match `provider`'s settlement report of the UTC day `date` (YYYY-MM-DD) against the ledger."""
        body = ReconciliationRequest(provider=provider, date=date)
        return await self._t.call(ROUTES["createReconciliation"], Reconciliation, body=body,
                                  idempotency_key=idempotency_key)

    async def get(self, reconciliation_id: str) -> Reconciliation:
        return await self._t.call(ROUTES["getReconciliation"], Reconciliation,
                                  path={"reconciliation_id": reconciliation_id})


class AsyncClient:
    """A client of the Payments API: `AsyncClient("https://payments.example.com", "sk_...")`.

    Every write carries an Idempotency-Key, generated per call unless given, and repeated on each retry; 429, 503,
    a 409 `idempotency_request_in_progress` and lost connections are retried as `retries` says, honouring
    `Retry-After`. Error answers are raised as `ApiError` subclasses. `http`: an `httpx.AsyncClient` of your own
    (proxies, TLS, transports), left open on `aclose`; `sleep` is what waits between tries.
    """

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0, retries: Retries | None = None,
                 http: httpx.AsyncClient | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.transport = AsyncTransport(base_url, api_key, timeout=timeout, retries=retries, http=http, sleep=sleep)
        self.accounts = AsyncAccounts(self.transport)
        self.transfers = AsyncTransfers(self.transport)
        self.payments = AsyncPayments(self.transport)
        self.refunds = AsyncRefunds(self.transport)
        self.holds = AsyncHolds(self.transport)
        self.batches = AsyncBatches(self.transport)
        self.webhooks = AsyncWebhooks(self.transport)
        self.events = AsyncEvents(self.transport)
        self.reconciliations = AsyncReconciliations(self.transport)

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.aclose()
