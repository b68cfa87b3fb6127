"""Read the events feed (API.md §11): every event of the tenant in the catalogue, oldest first, in commit order."""

from __future__ import annotations

from uuid import UUID

from core.errors import FieldError, NotFound, UnknownEvent, ValidationFailed
from core.events import CATALOGUE, OutboxMessage
from core.ports import Page, UnitOfWork


def check_event_type(event_type: str, field: str = "type") -> str:
    """An event type of the catalogue (the feed never serves internal topics, nor does a webhook)."""
    if event_type not in CATALOGUE:
        raise ValidationFailed([FieldError(field, f"must be one of {', '.join(CATALOGUE)}")])
    return event_type


async def read_feed(
    tenant_id: UUID, *, after: UUID | None, event_type: str | None, limit: int, uow: UnitOfWork,
    after_field: str = "after",
) -> Page[OutboxMessage]:
    """Up to `limit` of the caller's events after `after` (None: from the oldest kept), of `event_type` or of
    every type. Asking again after the last one returned misses none and repeats none, whatever commits
    meanwhile. `UnknownEvent` naming `after_field` (the parameter the client gave it in) when `after` is not
    an event of the caller's."""
    types = CATALOGUE if event_type is None else (check_event_type(event_type),)
    try:
        return await uow.events.page(tenant_id, after=after, types=types, limit=limit)
    except UnknownEvent:
        raise UnknownEvent(after_field) from None


async def get_event(tenant_id: UUID, event_id: UUID, *, uow: UnitOfWork) -> OutboxMessage:
    """One of the caller's events, or `NotFound` (another tenant's, an internal one, or purged)."""
    event = await uow.events.get(tenant_id, event_id)
    if event is None or event.topic not in CATALOGUE:
        raise NotFound(f"event {event_id} not found")
    return event
