"""Ports of the outbox: messages written with their change, the feed the relay publishes from, and the events
kept for the tenants' events feed."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol
from uuid import UUID

from core.events import Listener, OutboxMessage
from core.ports.paging import Page


class Outbox(Protocol):
    """Messages committed with their change and published afterwards, at least once."""

    def add(self, message: OutboxMessage) -> None: ...


class ClaimedOutbox(Protocol):
    """A batch of unpublished outbox messages, locked so no other relay takes them."""

    @property
    def messages(self) -> Sequence[OutboxMessage]: ...

    @property
    def listeners(self) -> Sequence[Listener] | None:
        """The enabled webhook subscriptions of the messages' tenants when the claim was asked for them, else None."""
        ...

    def mark_published(self) -> None:
        """Record the batch as published when the claim ends without error."""
        ...


class OutboxFeed(Protocol):
    """Unpublished outbox messages, oldest first.

    `claim(limit)` is an async context manager holding up to `limit` rows that no
    concurrent claim can see (rows a crashed claimer held become visible again);
    rows marked published are never claimed again. With `listeners`, the batch also
    carries the enabled webhook subscriptions of its messages' tenants, read as of
    the claim (the relay's fan-out needs no read of its own).
    """

    def claim(self, limit: int, *, listeners: bool = False) -> AbstractAsyncContextManager[ClaimedOutbox]: ...


class Events(Protocol):
    """The committed outbox messages, kept for the retention: every tenant's events feed (API.md §11).

    Feed order is a total order of a tenant's events, fixed for good when an event becomes
    visible, and an event becomes visible only once no event placed before it can still
    commit. So a reader that asks again after the last event it was given misses nothing and
    is given nothing twice, however transactions interleave and in whatever order they
    commit. An event whose transaction committed before another's began comes first; the
    events of one transaction come in the order they were added. Rolled-back events never
    appear.

    `page` answers up to `limit` events whose topic is in `types`, following `after` (an
    event id; None: from the oldest event kept) in feed order, with `next_cursor` set to the
    last one's id when more are visible now. It raises `UnknownEvent` (field "after") when
    `after` names no event of the tenant (never written, another tenant's, or purged).
    `get` returns one of the tenant's events, visible in the feed yet or not.
    """

    async def get(self, tenant_id: UUID, event_id: UUID) -> OutboxMessage | None: ...

    async def page(
        self, tenant_id: UUID, *, after: UUID | None, types: Collection[str], limit: int
    ) -> Page[OutboxMessage]: ...
