"""In-memory tenants and their API keys."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import attrs

from adapters.memory.state import MemorySession
from core.ids import new_id
from core.tenants import ApiKey, ListedKey, Tenant


class MemoryTenants:
    """The `Tenants` port over `StoreState.tenants` and `.keys`."""

    def __init__(self, session: MemorySession) -> None:
        self._session, self._store = session, session.state
        self.created: dict[str, Tenant] = {}
        self.new_keys: list[ApiKey] = []
        self.revoked: list[tuple[UUID, datetime]] = []
        self.used: list[tuple[UUID, datetime]] = []

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

    async def key_by_id(self, key_id: UUID) -> ApiKey | None:
        return next((key for key in self._store.keys.values() if key.id == key_id), None)

    async def list_keys(self, tenant: str | None) -> list[ListedKey]:
        names = {t.id: t.name for t in self._store.tenants.values()}
        return [ListedKey(tenant=names[key.tenant_id], key=key)
                for key in sorted(self._store.keys.values(), key=lambda k: (k.created_at, k.id))
                if tenant is None or names[key.tenant_id] == tenant]

    def add_key(self, key: ApiKey) -> None:
        self.new_keys.append(key)

    def revoke_key(self, key_id: UUID, now: datetime) -> None:
        self.revoked.append((key_id, now))

    def mark_used(self, key_id: UUID, now: datetime) -> None:
        self.used.append((key_id, now))

    def apply(self) -> None:
        self._store.tenants.update(self.created)
        for key in self.new_keys:
            self._store.keys[key.key_hash] = key
        by_id = {key.id: key.key_hash for key in self._store.keys.values()}
        for key_id, now in self.revoked:
            if key_id in by_id and (revoked := self._store.keys[by_id[key_id]]).revoked_at is None:
                self._store.keys[revoked.key_hash] = attrs.evolve(revoked, revoked_at=now)
        for key_id, now in self.used:
            if key_id in by_id and ((used := self._store.keys[by_id[key_id]]).last_used_at or now) <= now:
                self._store.keys[used.key_hash] = attrs.evolve(used, last_used_at=now)

    def release(self) -> None:
        """Forget the tenants this unit of work was inserting: others may insert them now."""
        for name in self.created:
            self._store.pending_tenants.pop(name, None)
