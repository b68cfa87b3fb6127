"""The port of tenants and their API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

from core.tenants import ApiKey, ListedKey, Tenant


class Tenants(Protocol):
    """Tenants and API keys."""

    async def get_or_create(self, name: str, now: datetime) -> Tenant: ...

    async def key_by_hash(self, key_hash: bytes) -> ApiKey | None: ...

    def add_key(self, key: ApiKey) -> None: ...

    async def key_by_id(self, key_id: UUID) -> ApiKey | None: ...

    async def list_keys(self, tenant: str | None) -> list[ListedKey]:
        """Every key (of the tenant named `tenant`, if given), oldest first."""
        ...

    def revoke_key(self, key_id: UUID, now: datetime) -> None:
        """Revoke a live key at commit (a revoked key stays revoked at its first time)."""
        ...

    def mark_used(self, key_id: UUID, now: datetime) -> None:
        """Record at commit that the key authenticated a request at `now` (never moves it back)."""
        ...
