"""The port of idempotency keys: the first response to a request, stored per (tenant, key)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from core.idempotency import IdempotencyRecord, IdempotentRequest


class IdempotencyKeys(Protocol):
    """Stored first responses per (tenant, key).

    `claim` makes the unit of work the only one working on the key until it ends
    (raising `IdempotencyRequestInProgress` if another one holds it) and returns
    the live stored response, if any. `add` is buffered and written by commit;
    committing a second record for a live key raises `IdempotencyRequestInProgress`
    and writes nothing.
    """

    async def claim(self, request: IdempotentRequest, now: datetime) -> IdempotencyRecord | None: ...

    def add(self, record: IdempotencyRecord) -> None: ...
