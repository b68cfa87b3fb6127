"""Ports of background work: the task queue, unfinished work to re-enqueue, and dead letters."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from core.events import OutboxMessage
from core.webhooks import DeliveryRef
from core.work import DeadLetter, WorkItem


class TaskQueue(Protocol):
    """The message broker the workers consume; delivery is at least once."""

    async def publish_events(self, messages: Sequence[OutboxMessage], *, dispatch: bool = True) -> None:
        """Enqueue one event task per message, identified by the message id (unless `dispatch` is false: the caller
        fanned the events out itself), and the work (`core.events.work_for`) a message asks for. Raises
        `Unavailable`."""
        ...

    async def enqueue_work(self, items: Sequence[WorkItem], *, delay_seconds: float = 0.0) -> None:
        """Enqueue work, to run no sooner than `delay_seconds` from now. Raises `Unavailable`."""
        ...

    async def enqueue_deliveries(self, refs: Sequence[DeliveryRef], *, delay_seconds: float = 0.0) -> None:
        """Enqueue the next attempt of each ref's webhook delivery, to run no sooner than `delay_seconds` from now:
        the refs in order, in messages of up to `core.webhooks.DELIVERY_BATCH` (`delivery_batches`), each made by one
        worker at once. Raises `Unavailable`."""
        ...


class EventMetrics(Protocol):
    """Counters kept from the committed events the relay publishes."""

    async def published(self, messages: Sequence[OutboxMessage]) -> None:
        """Count the payments that `messages` put in a final status. The relay calls it once per committed claim,
        so each event once: nothing per event is kept. Never raises: a lost sample must not stop the relay."""
        ...


class InFlight(Protocol):
    """Payments and refunds not yet finished, for the housekeeping job that re-enqueues stuck work."""

    async def stuck(self, before: datetime, limit: int) -> list[WorkItem]:
        """Pending/processing payments and pending refunds untouched since `before` (and not
        scheduled for a later retry), oldest first."""
        ...


class DeadLetters(Protocol):
    """Work that ended in failure, kept for inspection and re-drive (`payments dlq`)."""

    def add(self, letter: DeadLetter) -> None: ...

    async def list(self, *, limit: int) -> builtins.list[DeadLetter]:
        """Newest first, every tenant (an operator's view)."""
        ...

    async def get(self, letter_id: UUID) -> DeadLetter | None: ...

    def mark_retried(self, letter: DeadLetter) -> None: ...
