"""The changes a unit of work buffers for one table until it commits, shared by the memory and PostgreSQL adapters."""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar, overload
from uuid import UUID


class Identified(Protocol):
    """A row known by its id."""

    @property
    def id(self) -> UUID: ...


R = TypeVar("R", bound=Identified)


class Pending(Generic[R]):
    """Rows added (to insert) and saved (to update) by one unit of work, by id, in the order first buffered.

    A row saved after it was added stays one insert. Entities are mutable: what commit writes is what
    they hold when the unit of work ends.
    """

    def __init__(self) -> None:
        self.new: dict[UUID, R] = {}
        self.dirty: dict[UUID, R] = {}

    def add(self, row: R) -> None:
        self.new[row.id] = row

    def save(self, row: R) -> None:
        if row.id not in self.new:
            self.dirty[row.id] = row

    def drop(self, row_id: UUID) -> None:
        """Forget whatever was buffered for the row (it is being deleted)."""
        self.new.pop(row_id, None)
        self.dirty.pop(row_id, None)

    def mine(self, row_id: UUID) -> R | None:
        """This unit of work's own version of the row, if it buffered one."""
        return self.dirty.get(row_id) or self.new.get(row_id)

    @overload
    def current(self, stored: R) -> R: ...

    @overload
    def current(self, stored: None) -> None: ...

    def current(self, stored: R | None) -> R | None:
        """What a lock returns for the row it read: this unit of work's own change wins over the stored
        row (two postings on one account), and a row that is not there stays not there."""
        return None if stored is None else self.mine(stored.id) or stored

    def changed(self) -> list[R]:
        """Every buffered row: the inserts, then the updates."""
        return [*self.new.values(), *self.dirty.values()]
