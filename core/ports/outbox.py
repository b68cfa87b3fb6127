"""Ports of the outbox: messages written with their change, and the feed the relay publishes from."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from core.events import OutboxMessage


class Outbox(Protocol):
    """Messages committed with their change and published afterwards, at least once."""

    def add(self, message: OutboxMessage) -> None: ...


class ClaimedOutbox(Protocol):
    """A batch of unpublished outbox messages, locked so no other relay takes them."""

    @property
    def messages(self) -> Sequence[OutboxMessage]: ...

    def mark_published(self) -> None:
        """Record the batch as published when the claim ends without error."""
        ...


class OutboxFeed(Protocol):
    """Unpublished outbox messages, oldest first.

    `claim(limit)` is an async context manager holding up to `limit` rows that no
    concurrent claim can see (rows a crashed claimer held become visible again);
    rows marked published are never claimed again.
    """

    def claim(self, limit: int) -> AbstractAsyncContextManager[ClaimedOutbox]: ...
