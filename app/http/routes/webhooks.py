"""/api/v1/webhooks: subscriptions, their delivery log, secret rotation and redelivery (API.md §7)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
from sanic import Blueprint, HTTPResponse, Request

from app.http.auth import secured
from app.http.io import FieldChecks, execute, idempotent_request, list_params, ok, page_view, query, read_json
from app.http.schemas import EmptyRequest, WebhookRequest, WebhookUpdate, parse_body
from core.errors import FieldError, ValidationFailed
from core.idempotency import StoredResponse
from core.ports import UnitOfWork
from core.usecases.webhooks import (
    CreateSubscription,
    UpdateSubscription,
    check_destination,
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
from core.webhooks import MAX_DESCRIPTION_LENGTH, Delivery, Subscription, check_events

bp = Blueprint("webhooks", url_prefix="/api/v1")
_ONE = "/webhooks/<webhook_id:uuid>"


def _checked(events: list[str] | None, description: str | None) -> tuple[str, ...] | None:
    checks = FieldChecks()
    names = checks.check(check_events, events) if events is not None else None
    if description is not None and len(description) > MAX_DESCRIPTION_LENGTH:
        checks.fail("description", f"must be at most {MAX_DESCRIPTION_LENGTH} characters")
    checks.done()
    return names


async def _destination(request: Request, url: str) -> None:
    """Refuse a URL the sender cannot use or (unless allowed) one resolving to a private address.

    Skipped when the request's Idempotency-Key already holds a response: the replay must be the
    first answer, whatever the host resolves to now.
    """
    if await _stored(request):
        return
    try:  # the sender's own parser must accept it too (it is stricter than urllib about some hosts)
        httpx.URL(url)
    except (httpx.InvalidURL, UnicodeError, ValueError) as error:
        raise ValidationFailed([FieldError("url", f"is not a URL webhooks can be sent to: {error}")]) from None
    container = request.app.ctx.container
    await check_destination(url, resolver=container.resolver,
                            allow_private=container.settings.webhooks.allow_private_urls)


async def _stored(request: Request) -> bool:
    key = idempotent_request(request, required=False)
    if key is None:
        return False
    container = request.app.ctx.container
    now = container.clock.now()
    async with container.uow() as uow:  # a transaction scopes the claim's lock to this look
        stored = await uow.idempotency.claim(key, now)
    # the same request, with time left to be replayed (a different one is refused by execute anyway)
    return (stored is not None and stored.request.fingerprint == key.fingerprint
            and stored.expires_at > now + timedelta(minutes=1))


@bp.post("/webhooks")
@secured("write")
async def create(request: Request) -> HTTPResponse:
    body: WebhookRequest = parse_body(read_json(request), WebhookRequest)
    events = _checked(body.events, body.description)
    await _destination(request, body.url)
    assert events is not None
    cmd = CreateSubscription(tenant_id=request.ctx.principal.tenant_id, url=body.url, events=events,
                             description=body.description, enabled=body.enabled)
    clock = request.app.ctx.container.clock

    async def work(uow: UnitOfWork) -> Subscription:
        return await create_subscription(cmd, uow=uow, clock=clock)

    return await execute(request, work, lambda s: ok(201, webhook_view(s, with_secret=True)), idempotency="optional")


@bp.get("/webhooks")
@secured("read", query=("limit", "cursor"))
async def index(request: Request) -> HTTPResponse:
    limit, cursor = list_params(request)
    tenant_id = request.ctx.principal.tenant_id
    return await query(request, lambda uow: list_subscriptions(tenant_id, uow=uow, limit=limit, cursor=cursor),
                       lambda page: page_view(page, webhook_view))


@bp.get(_ONE)
@secured("read")
async def show(request: Request, webhook_id: UUID) -> HTTPResponse:
    tenant_id = request.ctx.principal.tenant_id
    return await query(request, lambda uow: get_subscription(tenant_id, webhook_id, uow=uow), webhook_view)


@bp.patch(_ONE)
@secured("write")
async def change(request: Request, webhook_id: UUID) -> HTTPResponse:
    raw: Any = read_json(request)
    body: WebhookUpdate = parse_body(raw, WebhookUpdate)
    nulls = FieldChecks()
    for name in ("url", "events", "enabled"):  # null is not a value these can take
        if raw.get(name, "") is None:
            nulls.fail(name, "must not be null")
    nulls.done()
    events = _checked(body.events, body.description)
    if body.url is not None:
        await _destination(request, body.url)
    cmd = UpdateSubscription(tenant_id=request.ctx.principal.tenant_id, subscription_id=webhook_id, url=body.url,
                             events=events, enabled=body.enabled, description=body.description,
                             clear_description="description" in raw and raw["description"] is None)
    clock = request.app.ctx.container.clock

    async def work(uow: UnitOfWork) -> Subscription:
        return await update_subscription(cmd, uow=uow, clock=clock)

    return await execute(request, work, lambda s: ok(200, webhook_view(s)), idempotency="optional")


@bp.delete(_ONE)
@secured("write")
async def remove(request: Request, webhook_id: UUID) -> HTTPResponse:
    tenant_id = request.ctx.principal.tenant_id

    async def work(uow: UnitOfWork) -> None:
        await delete_subscription(tenant_id, webhook_id, uow=uow)

    return await execute(request, work, lambda _: StoredResponse(status=204, body=b""), idempotency="optional")


@bp.post(f"{_ONE}/rotate-secret")
@secured("write")
async def rotate(request: Request, webhook_id: UUID) -> HTTPResponse:
    if request.body:
        parse_body(read_json(request), EmptyRequest)
    container = request.app.ctx.container
    tenant_id, overlap = request.ctx.principal.tenant_id, timedelta(seconds=container.settings.webhooks.secret_overlap)

    async def work(uow: UnitOfWork) -> Subscription:
        return await rotate_secret(tenant_id, webhook_id, uow=uow, clock=container.clock, overlap=overlap)

    return await execute(request, work, lambda s: ok(200, webhook_view(s, with_secret=True)), idempotency="optional")


@bp.get(f"{_ONE}/deliveries")
@secured("read", query=("limit", "cursor"))
async def deliveries(request: Request, webhook_id: UUID) -> HTTPResponse:
    limit, cursor = list_params(request)
    tenant_id = request.ctx.principal.tenant_id
    return await query(
        request, lambda uow: list_deliveries(tenant_id, webhook_id, uow=uow, limit=limit, cursor=cursor),
        lambda page: page_view(page, delivery_view))


@bp.post(f"{_ONE}/deliveries/<delivery_id:uuid>/retry")
@secured("write")
async def retry(request: Request, webhook_id: UUID, delivery_id: UUID) -> HTTPResponse:
    if request.body:
        parse_body(read_json(request), EmptyRequest)
    tenant_id, clock = request.ctx.principal.tenant_id, request.app.ctx.container.clock

    async def work(uow: UnitOfWork) -> Delivery:
        return await redeliver(tenant_id, webhook_id, delivery_id, uow=uow, clock=clock)

    return await execute(request, work, lambda d: ok(202, delivery_view(d)), idempotency="optional")
