"""API keys: issue them to tenants, find the one a caller presents, and authenticate requests by it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

import attrs

from core.errors import FieldError, Forbidden, NotFound, Unauthorized, ValidationFailed
from core.ids import new_id
from core.ports import Clock, UnitOfWork
from core.tenants import SCOPES, ApiKey, ListedKey, Principal, generate_key, hash_key


@attrs.frozen(kw_only=True)
class CreateApiKey:
    """A new key for the tenant named `tenant` (created if new), or for a given plain key value."""

    tenant: str
    scopes: tuple[str, ...]
    plain_key: str | None = None


async def create_api_key(cmd: CreateApiKey, *, uow: UnitOfWork, clock: Clock) -> tuple[str, ApiKey]:
    """Store the key's hash and return the plain key (shown once) with the stored key."""
    bad = [scope for scope in cmd.scopes if scope not in SCOPES]
    if bad or not cmd.scopes:
        raise ValidationFailed([FieldError("scopes", f"must be a non-empty subset of {', '.join(SCOPES)}")])
    if not cmd.tenant.strip():
        raise ValidationFailed([FieldError("tenant", "must not be empty")])
    now = clock.now()
    tenant = await uow.tenants.get_or_create(cmd.tenant.strip(), now)
    plain = cmd.plain_key or generate_key()
    key_hash = hash_key(plain)
    existing = await uow.tenants.key_by_hash(key_hash)
    if existing is not None:
        if existing.tenant_id != tenant.id:
            raise ValidationFailed([FieldError("key", "this key value belongs to another tenant")])
        return plain, existing
    key = ApiKey(
        id=new_id(), tenant_id=tenant.id, key_hash=key_hash, prefix=plain[:10], last4=plain[-4:],
        scopes=tuple(sorted(set(cmd.scopes))), created_at=now,
    )
    uow.tenants.add_key(key)
    return plain, key


async def authenticate(
    plain: str | None, scope: str, *, lookup: Callable[[bytes], Awaitable[ApiKey | None]]
) -> Principal:
    """The principal of a live key holding `scope`; `Unauthorized` or `Forbidden` otherwise.

    `lookup` finds a stored key by the hash of its plain value (the `Tenants` port, or a cache over it).
    """
    if not plain:
        raise Unauthorized("missing API key: send Authorization: Bearer <key>")
    if len(plain) > 256 or not plain.isascii() or not plain.isprintable():
        raise Unauthorized("unknown or revoked API key")  # no lookup for what cannot be a key
    key = await lookup(hash_key(plain))
    if key is None or key.revoked_at is not None:
        raise Unauthorized("unknown or revoked API key")
    if scope not in key.scopes:
        raise Forbidden(f"this API key lacks the {scope!r} scope")
    return Principal(tenant_id=key.tenant_id, key_id=key.id, scopes=frozenset(key.scopes))


async def find_api_key(key_hash: bytes, *, uow: UnitOfWork) -> ApiKey | None:
    """The stored key whose plain value hashes to `key_hash`, revoked or not; None if there is none.

    `authenticate` judges what it finds; drivers cache the answer for a few seconds.
    """
    return await uow.tenants.key_by_hash(key_hash)


async def list_api_keys(tenant: str | None, *, uow: UnitOfWork) -> list[ListedKey]:
    """Every key, or the keys of the tenant named `tenant`, oldest first (never their values)."""
    return await uow.tenants.list_keys(tenant)


async def revoke_api_key(key_id: UUID, *, uow: UnitOfWork, clock: Clock) -> tuple[ApiKey, bool]:
    """Revoke the key; the key as it was and whether it was live. Every process refuses it once its key cache
    expires (a few seconds)."""
    key = await uow.tenants.key_by_id(key_id)
    if key is None:
        raise NotFound(f"no API key {key_id}")
    if key.revoked_at is None:
        uow.tenants.revoke_key(key.id, clock.now())
    return key, key.revoked_at is None


async def record_key_use(key_id: UUID, *, uow: UnitOfWork, clock: Clock) -> None:
    """Note that the key authenticated a request now (drivers call it when they look the key up, not per request)."""
    uow.tenants.mark_used(key_id, clock.now())
