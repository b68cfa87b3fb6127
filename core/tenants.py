"""Tenants and their API keys (stored as SHA-256 hashes; the plain key is shown once)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from uuid import UUID

import attrs

SCOPES = ("read", "write")
#: Secret keys start `sk_` (by wide convention `pk_` marks a publishable key, which these are not).
KEY_PREFIX = "sk_"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: Base62 digits of 256 random bits: 62**43 > 2**256.
_KEY_DIGITS = 43


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
    last4: str | None = None
    """The plain key's last four characters (None for keys made before they were kept)."""
    last_used_at: datetime | None = None
    """When the key last authenticated a request, to within the API's key cache (seconds)."""


@attrs.frozen(kw_only=True)
class ListedKey:
    """A key as `payments keys list` shows it: never its value."""

    tenant: str
    key: ApiKey


@attrs.frozen(kw_only=True)
class Principal:
    """The authenticated caller of a request."""

    tenant_id: UUID
    key_id: UUID
    scopes: frozenset[str]


def generate_key() -> str:
    """A new plain API key: `sk_` and 256 random bits in base62 (43 digits)."""
    number, digits = secrets.randbits(256), []
    for _ in range(_KEY_DIGITS):
        number, digit = divmod(number, 62)
        digits.append(_BASE62[digit])
    return KEY_PREFIX + "".join(digits)


def hash_key(plain: str) -> bytes:
    """SHA-256 of the plain key; keys are random, so a fast hash cannot be brute-forced."""
    return hashlib.sha256(plain.encode()).digest()
