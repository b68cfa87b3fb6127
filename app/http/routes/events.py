"""/api/v1/events: the tenant's events feed, oldest first, in commit order (API.md §11)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sanic import Blueprint, HTTPResponse, Request

from app.http.context import tenant_id
from app.http.endpoints import COMMON, LIST, operation
from app.http.io import FieldChecks, list_params, parse_uuid, query
from app.http.openapi import Operation, Parameter
from app.http.schemas.events import EventPage
from app.http.schemas.webhooks import WebhookEvent
from core.errors import FieldError, ValidationFailed
from core.events import CATALOGUE, OutboxMessage, event_body
from core.ports import Page
from core.usecases.events import check_event_type, get_event, read_feed

bp = Blueprint("events", url_prefix="/api/v1/events")
_TYPE = Parameter(name="type", schema={"type": "string", "enum": list(CATALOGUE)},
                  description="Only events of this type")
_AFTER = Parameter(name="after", schema={"type": "string", "format": "uuid"},
                   description="The id of the last event seen: the events that follow it in the feed")


def feed_view(page: Page[OutboxMessage]) -> dict[str, Any]:
    return {"data": [event_body(event) for event in page.items], "has_more": page.next_cursor is not None,
            "next_cursor": page.next_cursor}


@operation(bp, Operation(method="get", path="/api/v1/events", summary="The events feed, oldest first",
                         tag="events", operation_id="listEvents", response=EventPage, query=(_TYPE, _AFTER, *LIST),
                         errors=(422, *COMMON)))
async def index(request: Request) -> HTTPResponse:
    params, args = list_params(request), request.get_args(keep_blank_values=True)
    event_type, after, cursor = args.get("type"), args.get("after"), params["cursor"]
    checks, start = FieldChecks(), None
    if event_type is not None:
        checks.check(check_event_type, event_type)
    if after is not None and cursor is not None:
        checks.fail("cursor", "give after or cursor, not both")
    elif after is not None:
        start = checks.check(parse_uuid, after, "after")
    elif cursor is not None:
        start = checks.check(_cursor, cursor)
    checks.done()
    return await query(request, lambda uow: read_feed(
        tenant_id(request), after=start, event_type=event_type, limit=params["limit"], uow=uow,
        after_field="after" if cursor is None else "cursor"), feed_view, may_lag=True)


def _cursor(cursor: str) -> UUID:
    """The event a `next_cursor` stands for: the last one of its page."""
    try:
        return parse_uuid(cursor, "cursor")
    except ValidationFailed:
        raise ValidationFailed([FieldError("cursor", "is not a cursor this API returned")]) from None


@operation(bp, Operation(method="get", path="/api/v1/events/{event_id}", summary="Get an event", tag="events",
                         operation_id="getEvent",
                         problems=("not_found",), response=WebhookEvent, errors=(404, *COMMON)))
async def show(request: Request, event_id: UUID) -> HTTPResponse:
    return await query(request, lambda uow: get_event(tenant_id(request), event_id, uow=uow), event_body)
