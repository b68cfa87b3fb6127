"""Dead letters in PostgreSQL: work that ended in failure, kept for operators and re-drive."""

from __future__ import annotations

import builtins
from uuid import UUID

from adapters.postgres.rows import Fragment, insert_entities, reader
from adapters.postgres.session import PgSession
from core.work import DeadLetter

COLUMNS = "id, tenant_id, kind, target_id, error, attempts, correlation_id, created_at, retried_at"
LETTERS = f"SELECT {COLUMNS} FROM dead_letters ORDER BY created_at DESC, id DESC LIMIT $1"
LETTER = f"SELECT {COLUMNS} FROM dead_letters WHERE id = $1 FOR UPDATE"
RETRIED = "UPDATE dead_letters SET retried_at = now() WHERE id = $1"


to_letter = reader(DeadLetter, COLUMNS)


class PgDeadLetters:
    """The `DeadLetters` port on PostgreSQL."""

    def __init__(self, session: PgSession) -> None:
        self._session = session
        self._new: builtins.list[DeadLetter] = []
        self._retried: builtins.list[DeadLetter] = []

    def add(self, letter: DeadLetter) -> None:
        self._new.append(letter)

    async def list(self, *, limit: int) -> builtins.list[DeadLetter]:
        return await self._session.read_all(LETTERS, to_letter, limit)

    async def get(self, letter_id: UUID) -> DeadLetter | None:
        return await self._session.read_one(LETTER, to_letter, letter_id)

    def mark_retried(self, letter: DeadLetter) -> None:
        self._retried.append(letter)

    def flush(self) -> builtins.list[Fragment]:
        return [*insert_entities("dead_letters", COLUMNS, self._new), *[(RETRIED, [x.id]) for x in self._retried]]
