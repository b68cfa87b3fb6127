"""The shapes of /api/v1/events: a page of the feed, whose entries are webhook delivery bodies."""

from __future__ import annotations

import attrs

from app.http.schemas.webhooks import WebhookEvent


@attrs.frozen(kw_only=True)
class EventPage:
    """Events oldest first, each exactly the body a webhook delivery of it carries. Poll again with `after` = the
    last `id` (or `cursor` = `next_cursor` while `has_more`): nothing is missed and nothing comes twice."""

    data: list[WebhookEvent]
    has_more: bool = attrs.field(metadata={"openapi": {
        "description": "More events are visible now: ask again at once (with after = the last id)"}})
    next_cursor: str | None = attrs.field(metadata={"openapi": {
        "description": "While has_more: the last event's id, to pass as cursor (or after)"}})
