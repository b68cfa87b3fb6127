"""Batches in PostgreSQL: each stored once, with its answer kept verbatim (a `json` column keeps key order)."""

from __future__ import annotations

from uuid import UUID

from adapters.postgres.rows import Fragment, insert_entities, reader
from adapters.postgres.session import PgSession
from core.batches import Batch

COLUMNS = "id, tenant_id, atomic, status, transfers, view, created_at"
GET = f"SELECT {COLUMNS} FROM batches WHERE tenant_id = $1 AND id = $2"

to_batch = reader(Batch, COLUMNS)


class PgBatches:
    """The `Batches` port on PostgreSQL."""

    def __init__(self, session: PgSession) -> None:
        self._session = session
        self._new: list[Batch] = []

    def add(self, batch: Batch) -> None:
        self._new.append(batch)

    async def get(self, tenant_id: UUID, batch_id: UUID) -> Batch | None:
        return await self._session.read_one(GET, to_batch, tenant_id, batch_id)

    def flush(self) -> list[Fragment]:
        return insert_entities("batches", COLUMNS, self._new)
