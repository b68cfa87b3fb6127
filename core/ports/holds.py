"""The port of holds (API.md §9): two-phase transfers, by tenant, and those due to expire across tenants."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from datetime import datetime
from typing import Protocol
from uuid import UUID

from core.holds import Hold, HoldStatus
from core.ports.paging import Page


class Holds(Protocol):
    """Holds of every tenant. Reads never return another tenant's hold. Whoever changes a hold holds its source
    account's row lock (`Accounts.lock`) and reads the hold after taking it; `add` and `save` are buffered until
    the unit of work commits."""

    async def get(self, tenant_id: UUID, hold_id: UUID) -> Hold | None: ...

    async def list(
        self, tenant_id: UUID, *, account_id: UUID | None, status: HoldStatus | None,
        metadata: Mapping[str, str] | None, now: datetime, limit: int, cursor: str | None,
    ) -> Page[Hold]:
        """Newest first; `account_id` matches either side; `status` as of `now` (an active hold past its expiry
        is `expired`). Raises `ValidationFailed` for a malformed cursor."""
        ...

    async def due(self, tenant_id: UUID, account_id: UUID, now: datetime) -> builtins.list[Hold]:
        """The account's active holds (as source) whose expiry has passed by `now`, as this unit of work sees them:
        one it has expired already (an earlier transfer of the same group commit) is not due again."""
        ...

    async def expiring(self, now: datetime, limit: int) -> builtins.list[tuple[UUID, UUID]]:
        """(tenant, source account) of up to `limit` active holds past their expiry, of any tenant, soonest first:
        the worker's sweep (served by an index on the expiry of active holds, not a scan)."""
        ...

    def add(self, hold: Hold) -> None: ...

    def save(self, hold: Hold) -> None: ...
