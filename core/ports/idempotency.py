"""The port of idempotency keys: the first response to a request, stored per (tenant, key)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from core.errors import IdempotencyRequestInProgress
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

    async def claim_all(self, requests: Sequence[IdempotentRequest],
                        now: datetime) -> list[IdempotencyRecord | IdempotencyRequestInProgress | None]:
        """`claim` of each of `requests` (of distinct keys) at once, in their order; a key another unit of work
        holds is answered by an `IdempotencyRequestInProgress` in its place (not raised), so that one busy key
        does not refuse the others (a group commit claims its requests' keys this way)."""
        ...

    def add(self, record: IdempotencyRecord) -> None: ...
