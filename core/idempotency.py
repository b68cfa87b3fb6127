"""Idempotency keys: the first response to a (tenant, key) is stored with its effect and replayed."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import attrs


@attrs.frozen(kw_only=True)
class IdempotentRequest:
    """A request carrying an Idempotency-Key; `fingerprint` hashes method, path and body."""

    tenant_id: UUID
    key: str
    fingerprint: bytes


@attrs.frozen(kw_only=True)
class StoredResponse:
    """A response as sent: status and body bytes, replayed byte for byte."""

    status: int
    body: bytes
    replayed: bool = False


@attrs.frozen(kw_only=True)
class IdempotencyRecord:
    """What is kept for a key until `expires_at`."""

    request: IdempotentRequest
    response: StoredResponse
    created_at: datetime
    expires_at: datetime
