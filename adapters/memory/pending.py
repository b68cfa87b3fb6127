"""What a unit of work adds to an in-memory store, kept apart until it commits."""

from __future__ import annotations

import copy
from typing import Generic, Protocol, TypeVar
from uuid import UUID

from adapters.memory.state import StoreState


class _Owned(Protocol):
    @property
    def tenant_id(self) -> UUID: ...


T = TypeVar("T")
R = TypeVar("R", bound=_Owned)


class Pending(Generic[T]):
    """A repository over `StoreState` whose additions wait in `new` for the unit of work's commit."""

    def __init__(self, store: StoreState) -> None:
        self._store = store
        self.new: list[T] = []

    def add(self, item: T) -> None:
        self.new.append(item)


def tenants_copy(found: R | None, tenant_id: UUID) -> R | None:
    """A copy of a stored record if it belongs to the tenant (a caller never edits the store through it)."""
    return copy.deepcopy(found) if found is not None and found.tenant_id == tenant_id else None
