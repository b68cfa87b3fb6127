"""The port of tenants and their API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from core.tenants import ApiKey, Tenant


class Tenants(Protocol):
    """Tenants and API keys."""

    async def get_or_create(self, name: str, now: datetime) -> Tenant: ...

    async def key_by_hash(self, key_hash: bytes) -> ApiKey | None: ...

    def add_key(self, key: ApiKey) -> None: ...
