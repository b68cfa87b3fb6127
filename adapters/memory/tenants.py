"""In-memory tenants and their API keys."""

from __future__ import annotations

from datetime import datetime

from adapters.memory.state import MemorySession
from core.ids import new_id
from core.tenants import ApiKey, Tenant


class MemoryTenants:
    """The `Tenants` port over `StoreState.tenants` and `.keys`."""

    def __init__(self, session: MemorySession) -> None:
        self._session, self._store = session, session.state
        self.created: dict[str, Tenant] = {}
        self.new_keys: list[ApiKey] = []

    async def get_or_create(self, name: str, now: datetime) -> Tenant:
        while True:
            tenant = self.created.get(name) or self._store.tenants.get(name)
            if tenant is not None:
                return tenant
            if name not in self._store.pending_tenants:
                tenant = Tenant(id=new_id(), name=name, created_at=now)
                self._store.pending_tenants[name] = self.created[name] = tenant
                await self._session.hold(("tenant", name))
                return tenant
            await self._session.wait_for(("tenant", name))

    async def key_by_hash(self, key_hash: bytes) -> ApiKey | None:
        return self._store.keys.get(key_hash)

    def add_key(self, key: ApiKey) -> None:
        self.new_keys.append(key)

    def apply(self) -> None:
        self._store.tenants.update(self.created)
        for key in self.new_keys:
            self._store.keys[key.key_hash] = key

    def release(self) -> None:
        """Forget the tenants this unit of work was inserting: others may insert them now."""
        for name in self.created:
            self._store.pending_tenants.pop(name, None)
