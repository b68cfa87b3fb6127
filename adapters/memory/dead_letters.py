"""In-memory dead letters: work that ended in failure, kept for operators and re-drive."""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from uuid import UUID

import attrs

from adapters.memory.pending import Pending
from adapters.memory.state import StoreState
from core.work import DeadLetter


class MemoryDeadLetters(Pending[DeadLetter]):
    """The `DeadLetters` port over `StoreState.dead_letters`."""

    def __init__(self, store: StoreState) -> None:
        super().__init__(store)
        self.retried: list[DeadLetter] = []

    async def list(self, *, limit: int) -> builtins.list[DeadLetter]:
        return sorted(self._store.dead_letters.values(), key=lambda x: (x.created_at, x.id), reverse=True)[:limit]

    async def get(self, letter_id: UUID) -> DeadLetter | None:
        return self._store.dead_letters.get(letter_id)

    def mark_retried(self, letter: DeadLetter) -> None:
        self.retried.append(letter)

    def apply(self) -> None:
        for letter in self.new:
            self._store.dead_letters[letter.id] = letter
        for letter in self.retried:
            self._store.dead_letters[letter.id] = attrs.evolve(letter, retried_at=datetime.now(UTC))
