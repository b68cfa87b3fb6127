"""Tenants and their API keys (stored as SHA-256 hashes; the plain key is shown once)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from uuid import UUID

import attrs

SCOPES = ("read", "write")
KEY_PREFIX = "pk_"


@attrs.frozen(kw_only=True)
class Tenant:
    """An isolated customer of the API; every resource belongs to exactly one."""

    id: UUID
    name: str
    created_at: datetime


@attrs.frozen(kw_only=True)
class ApiKey:
    """A tenant's credential with its scopes; only the hash of the secret is kept."""

    id: UUID
    tenant_id: UUID
    key_hash: bytes
    """SHA-256 of the plain key (`hash_key`): what a request's key is looked up by."""
    prefix: str
    """The plain key's first ten characters, kept to tell keys apart in a list without revealing them."""
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None
    """Set once by a revocation; a revoked key authenticates nothing from then on."""


@attrs.frozen(kw_only=True)
class Principal:
    """The authenticated caller of a request."""

    tenant_id: UUID
    key_id: UUID
    scopes: frozenset[str]


def generate_key() -> str:
    """A new plain API key: `pk_` and 32 random bytes in URL-safe base64 (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(plain: str) -> bytes:
    """SHA-256 of the plain key; keys are random, so a fast hash cannot be brute-forced."""
    return hashlib.sha256(plain.encode()).digest()
