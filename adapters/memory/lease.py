"""In-memory fenced leases, and the housekeeping deletes they guard, as PostgreSQL's `distributed_locks`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs

from adapters.memory.outbox import InMemoryOutboxFeed
from adapters.memory.state import StoreState


@attrs.define
class _Held:
    owner: str
    token: int
    expires_at: datetime


class InMemoryLease:
    """The `Lease` port: fenced leases and reaping over `StoreState.idempotency`."""

    def __init__(self, store: StoreState, feed: InMemoryOutboxFeed | None = None) -> None:
        self._store = store
        self._feed = feed
        self._leases: dict[str, _Held] = {}

    async def acquire(self, name: str, owner: str, ttl_seconds: float) -> int | None:
        now = datetime.now(UTC)
        held = self._leases.get(name)
        if held is not None and held.owner != owner and held.expires_at >= now:
            return None
        token = held.token if held is not None and held.owner == owner else (held.token + 1 if held else 1)
        self._leases[name] = _Held(owner, token, now + timedelta(seconds=ttl_seconds))
        return token

    def _holds(self, name: str, owner: str, token: int) -> bool:
        held = self._leases.get(name)
        return held is not None and (held.owner, held.token) == (owner, token) and held.expires_at > datetime.now(UTC)

    async def purge_published_outbox(self, name: str, owner: str, token: int, before: datetime, limit: int) -> int:
        if not self._holds(name, owner, token) or self._feed is None:
            return 0
        old = [m for m in self._store.outbox if m.id in self._feed.published
               and self._feed.published_at.get(m.id, datetime.max.replace(tzinfo=UTC)) < before][:limit]
        for message in old:
            self._store.outbox.remove(message)
            self._feed.published.discard(message.id)
        return len(old)

    async def reap_idempotency_keys(self, name: str, owner: str, token: int, limit: int) -> int:
        now = datetime.now(UTC)
        if not self._holds(name, owner, token):
            return 0
        expired = [slot for slot, record in self._store.idempotency.items() if record.expires_at <= now][:limit]
        for slot in expired:
            del self._store.idempotency[slot]
        return len(expired)
