"""In-memory idempotency keys: one claim per key at a time, the first response stored."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from adapters.memory.state import StoreState
from core.errors import IdempotencyRequestInProgress
from core.idempotency import IdempotencyRecord, IdempotentRequest


class MemoryIdempotencyKeys:
    """The `IdempotencyKeys` port over `StoreState.idempotency`; `key_locks` stand for the advisory locks."""

    def __init__(self, store: StoreState) -> None:
        self._store = store
        self.new: list[IdempotencyRecord] = []
        self.claimed: set[tuple[UUID, str]] = set()
        self.expired: dict[tuple[UUID, str], IdempotencyRecord] = {}  # deleted at commit, as PostgreSQL does

    async def claim(self, request: IdempotentRequest, now: datetime) -> IdempotencyRecord | None:
        slot = (request.tenant_id, request.key)
        if slot not in self.claimed:  # a transaction may take its own advisory lock again
            if slot in self._store.key_locks:
                raise IdempotencyRequestInProgress("a request with this Idempotency-Key is still in progress")
            self._store.key_locks.add(slot)
            self.claimed.add(slot)
        record = self._store.idempotency.get(slot)
        if record is not None and record.expires_at <= now:
            self.expired[slot] = record
            return None
        return record

    async def claim_all(self, requests: Sequence[IdempotentRequest],
                        now: datetime) -> list[IdempotencyRecord | IdempotencyRequestInProgress | None]:
        claims: list[IdempotencyRecord | IdempotencyRequestInProgress | None] = []
        for request in requests:
            try:
                claims.append(await self.claim(request, now))
            except IdempotencyRequestInProgress as error:
                claims.append(error)
        return claims

    def add(self, record: IdempotencyRecord) -> None:
        self.new.append(record)

    def check(self) -> None:
        """Raise `IdempotencyRequestInProgress` if a live record was stored meanwhile for a key added here."""
        for record in self.new:
            live = self._store.idempotency.get((record.request.tenant_id, record.request.key))
            if live is not None and live.expires_at > record.created_at:
                raise IdempotencyRequestInProgress("this Idempotency-Key was stored by a concurrent request")

    def apply(self) -> None:
        for slot, record in self.expired.items():
            if self._store.idempotency.get(slot) is record:
                del self._store.idempotency[slot]
        for record in self.new:
            self._store.idempotency[(record.request.tenant_id, record.request.key)] = record

    def release(self) -> None:
        """Give up the claims, as the end of a transaction releases its advisory locks."""
        self._store.key_locks.difference_update(self.claimed)
