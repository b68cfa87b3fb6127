"""The outbox in PostgreSQL: messages written in the transaction of the change they announce."""

from __future__ import annotations

from adapters.postgres.rows import Fragment, insert_arrays
from adapters.telemetry import trace_carrier
from core.events import OutboxMessage

COLUMNS = "id, tenant_id, topic, aggregate_id, payload, correlation_id, created_at, trace_context"
#: The SQL types of COLUMNS: the messages are written as one array per column.
TYPES = ("uuid", "uuid", "text", "uuid", "jsonb", "text", "timestamptz", "jsonb")


class PgOutbox:
    """The `Outbox` port on PostgreSQL."""

    def __init__(self) -> None:
        self._new: list[tuple[OutboxMessage, dict[str, str]]] = []

    def add(self, message: OutboxMessage) -> None:
        # The trace of the request (or message) adding it, read now: the work these events start joins it, and a
        # group commit writes many requests' messages at once, from a task of its own.
        self._new.append((message, message.trace_context or trace_carrier()))

    def flush(self) -> list[Fragment]:
        if not self._new:
            return []
        rows = [(x.id, x.tenant_id, x.topic, x.aggregate_id, x.payload, x.correlation_id, x.created_at, carrier)
                for x, carrier in self._new]
        return [insert_arrays("outbox", COLUMNS, TYPES, rows)]
