"""/api/v1/webhooks: subscriptions, their delivery log, secret rotation and redelivery (API.md §7)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from sanic import Blueprint, HTTPResponse, Request

from adapters.webhook_sender import unusable
from app.http.context import services, tenant_id
from app.http.endpoints import COMMON, LIST, links_to, operation, read_page, write
from app.http.io import FieldChecks, idempotent_request, list_params, query
from app.http.openapi import Operation
from app.http.schemas.webhooks import (
    EmptyRequest,
    Webhook,
    WebhookDelivery,
    WebhookRequest,
    WebhookUpdate,
    WebhookWithSecret,
)
from core.errors import FieldError, ValidationFailed
from core.usecases.webhook_destinations import VetDestination, vet_destination
from core.usecases.webhooks import (
    CreateSubscription,
    UpdateSubscription,
    create_subscription,
    delete_subscription,
    get_subscription,
    list_deliveries,
    list_subscriptions,
    redeliver,
    rotate_secret,
    update_subscription,
)
from core.views import delivery_view, webhook_view
from core.webhooks import MAX_DESCRIPTION_LENGTH, Subscription, check_events

bp = Blueprint("webhooks", url_prefix="/api/v1")
_ONE = "/api/v1/webhooks/{webhook_id}"


def _checked(events: list[str] | None, description: str | None) -> tuple[str, ...] | None:
    checks = FieldChecks()
    names = checks.check(check_events, events) if events is not None else None
    if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
        checks.fail("description", f"must be at most {MAX_DESCRIPTION_LENGTH} characters")
    checks.done()
    return names


def _sender_accepts(url: str) -> None:
    """The sender's own parser must accept the URL too (it is stricter than urllib about some hosts)."""
    if (problem := unusable(url)) is not None:
        raise ValidationFailed([FieldError("url", f"is not a URL webhooks can be sent to: {problem}")])


async def _destination(request: Request, url: str) -> None:
    """Refuse a URL the sender cannot use or (unless allowed) one resolving to a private address."""
    found = services(request)
    cmd = VetDestination(url=url, request=idempotent_request(request, required=False),
                         allow_private=found.settings.webhooks.allow_private_urls)
    await vet_destination(cmd, uow_factory=found.uow_factory, resolver=found.resolver, clock=found.clock,
                          parse_url=_sender_accepts)


def _with_secret(subscription: Subscription) -> dict[str, Any]:
    return webhook_view(subscription, with_secret=True)


@operation(bp, Operation(method="post", path="/api/v1/webhooks",
                         summary="Subscribe an endpoint to events (secret shown once)", tag="webhooks",
                         operation_id="createWebhook",
                         links=links_to("webhook_id", "getWebhook", "updateWebhook", "deleteWebhook",
                                        "rotateWebhookSecret", "listWebhookDeliveries"),
                         request=WebhookRequest, response=WebhookWithSecret,
                         response_status=201, idempotency="optional", errors=(409, *COMMON)))
async def create(request: Request, body: WebhookRequest) -> HTTPResponse:
    events = _checked(body.events, body.description)
    await _destination(request, body.url)
    assert events is not None
    cmd = CreateSubscription(tenant_id=tenant_id(request), url=body.url, events=events,
                             description=body.description, enabled=body.enabled)
    clock = services(request).clock
    return await write(request, lambda uow: create_subscription(cmd, uow=uow, clock=clock), _with_secret)


@operation(bp, Operation(method="get", path="/api/v1/webhooks", summary="List webhooks", tag="webhooks",
                         operation_id="listWebhooks", response=Webhook, list_response=True, query=LIST,
                         errors=(422, *COMMON)))
async def index(request: Request) -> HTTPResponse:
    params = list_params(request)
    return await read_page(request, lambda uow: list_subscriptions(tenant_id(request), uow=uow, **params), webhook_view)


@operation(bp, Operation(method="get", path=_ONE, summary="Get a webhook", tag="webhooks", operation_id="getWebhook",
                         problems=("not_found",),
                         response=Webhook, errors=(404, *COMMON)))
async def show(request: Request, webhook_id: UUID) -> HTTPResponse:
    return await query(request, lambda uow: get_subscription(tenant_id(request), webhook_id, uow=uow), webhook_view)


@operation(bp, Operation(method="patch", path=_ONE, summary="Change a webhook's url, events, description or enabled",
                         tag="webhooks", operation_id="updateWebhook",
                         problems=("not_found",), request=WebhookUpdate, response=Webhook,
                         idempotency="optional", errors=(404, 409, *COMMON)))
async def change(request: Request, webhook_id: UUID, body: WebhookUpdate) -> HTTPResponse:
    raw: dict[str, Any] = request.ctx.json  # the document as sent: a null description clears it
    # a null url, events or enabled is refused by `parse_body` (`not_null`)
    events = _checked(body.events, body.description)
    if body.url is not None:
        await _destination(request, body.url)
    cmd = UpdateSubscription(tenant_id=tenant_id(request), subscription_id=webhook_id, url=body.url,
                             events=events, enabled=body.enabled, description=body.description,
                             clear_description="description" in raw and raw["description"] is None)
    clock = services(request).clock
    return await write(request, lambda uow: update_subscription(cmd, uow=uow, clock=clock), webhook_view)


@operation(bp, Operation(method="delete", path=_ONE, summary="Delete a webhook and its delivery log",
                         tag="webhooks", operation_id="deleteWebhook",
                         problems=("not_found",), response_status=204, idempotency="optional",
                         errors=(404, 409, 422, *COMMON)))
async def remove(request: Request, webhook_id: UUID) -> HTTPResponse:
    tenant = tenant_id(request)
    return await write(request, lambda uow: delete_subscription(tenant, webhook_id, uow=uow))


@operation(bp, Operation(method="post", path=f"{_ONE}/rotate-secret",
                         summary="New signing secret (shown once); the old one also signs for 24 h", tag="webhooks",
                         operation_id="rotateWebhookSecret",
                         problems=("not_found",), request=EmptyRequest, body_optional=True,
                         response=WebhookWithSecret, idempotency="optional", errors=(404, 409, *COMMON)))
async def rotate(request: Request, webhook_id: UUID, body: EmptyRequest) -> HTTPResponse:
    found, tenant = services(request), tenant_id(request)
    overlap = timedelta(seconds=found.settings.webhooks.secret_overlap)
    return await write(
        request, lambda uow: rotate_secret(tenant, webhook_id, uow=uow, clock=found.clock, overlap=overlap),
        _with_secret)


@operation(bp, Operation(method="get", path=f"{_ONE}/deliveries", summary="A webhook's delivery log", tag="webhooks",
                         operation_id="listWebhookDeliveries",
                         problems=("not_found",), response=WebhookDelivery, list_response=True,
                         query=LIST, errors=(404, 422, *COMMON)))
async def deliveries(request: Request, webhook_id: UUID) -> HTTPResponse:
    params = list_params(request)
    return await read_page(
        request, lambda uow: list_deliveries(tenant_id(request), webhook_id, uow=uow, **params), delivery_view)


@operation(bp, Operation(method="post", path=f"{_ONE}/deliveries/{{delivery_id}}/retry",
                         summary="Redeliver now (one more attempt, even after a give-up)", tag="webhooks",
                         operation_id="retryWebhookDelivery",
                         problems=("not_found",), request=EmptyRequest, body_optional=True,
                         response=WebhookDelivery, response_status=202, idempotency="optional",
                         errors=(404, 409, 422, *COMMON)))
async def retry(request: Request, webhook_id: UUID, delivery_id: UUID, body: EmptyRequest) -> HTTPResponse:
    tenant, clock = tenant_id(request), services(request).clock
    return await write(request, lambda uow: redeliver(tenant, webhook_id, delivery_id, uow=uow, clock=clock),
                       delivery_view)
