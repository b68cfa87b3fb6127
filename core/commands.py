"""What every command a use case takes carries: the tenant on whose behalf it acts, and the request's
correlation id, which every event, outbox message and log line it causes repeats."""

from __future__ import annotations

from uuid import UUID

import attrs


@attrs.frozen(kw_only=True)
class Command:
    """The base of commands: subclasses add what the operation needs (keyword-only, so order is free)."""

    tenant_id: UUID
    correlation_id: str | None = None
