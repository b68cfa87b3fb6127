"""`payments keys create | list | revoke`: API keys, shown once at creation, listed without their values."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from app.bootstrap import Endpoints, bootstrap
from app.settings import Settings
from core.errors import CoreError, ValidationFailed
from core.tenants import ListedKey
from core.usecases.api_keys import CreateApiKey, create_api_key, list_api_keys, revoke_api_key


async def create_key(settings: Settings, endpoints: Endpoints, tenant: str, scopes: Sequence[str],
                     plain: str | None = None) -> str:
    services = await bootstrap(settings, endpoints.database_url, endpoints.redis_url)
    try:
        async with services.uow_factory() as uow:
            key, _ = await create_api_key(CreateApiKey(tenant=tenant, scopes=tuple(scopes), plain_key=plain),
                                          uow=uow, clock=services.clock)
    finally:
        await services.aclose()
    return key


async def create_key_if_none(settings: Settings, endpoints: Endpoints, tenant: str,
                             scopes: Sequence[str]) -> tuple[str | None, int]:
    """A new key for `tenant` if it has no live (unrevoked) key, else None; and how many live keys it had."""
    services = await bootstrap(settings, endpoints.database_url, endpoints.redis_url)
    try:
        async with services.uow_factory() as uow:
            live = sum(item.key.revoked_at is None for item in await list_api_keys(tenant, uow=uow))
            if live:
                return None, live
            key, _ = await create_api_key(CreateApiKey(tenant=tenant, scopes=tuple(scopes)), uow=uow,
                                          clock=services.clock)
    finally:
        await services.aclose()
    return key, 0


def cmd_keys(settings: Settings, endpoints: Endpoints, args: argparse.Namespace) -> int:
    if args.keys_command == "create":
        return _create(settings, endpoints, args)
    if args.keys_command == "list":
        return asyncio.run(_list(settings, endpoints, args.tenant))
    try:
        key_id = UUID(args.id)
    except ValueError:
        print(f"payments keys revoke: {args.id!r} is not a key id (a UUID: the first column of `keys list`)",
              file=sys.stderr)
        return 2
    return asyncio.run(_revoke(settings, endpoints, key_id))


def _create(settings: Settings, endpoints: Endpoints, args: argparse.Namespace) -> int:
    scopes = [scope.strip() for scope in args.scopes.split(",") if scope.strip()]
    try:
        if args.if_none:
            made, live = asyncio.run(create_key_if_none(settings, endpoints, args.tenant, scopes))
        else:
            made, live = asyncio.run(create_key(settings, endpoints, args.tenant, scopes)), 0
    except ValidationFailed as error:
        print(f"payments keys create: {error.detail}", file=sys.stderr)
        return 2
    if made is None:  # --if-none, and the tenant has a key: nothing on stdout
        print(f"tenant {args.tenant!r} already has {live} live API key(s), shown only when created; none created. "
              f"List them with `payments keys list --tenant {args.tenant}`, make another with "
              f"`payments keys create --tenant {args.tenant}`", file=sys.stderr)
        return 0
    key = made
    print(f"created an API key for tenant {args.tenant!r} with scopes {','.join(sorted(set(scopes)))}; "
          "it is shown once:", file=sys.stderr)
    print(key)
    return 0


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else "-"


def key_lines(keys: Sequence[ListedKey]) -> list[str]:
    """`keys list`'s table: a header and one line per key, never its value."""
    lines = [f"{'ID':36}  {'TENANT':20}  {'KEY':19}  {'SCOPES':10}  {'CREATED':25}  {'LAST USED':25}  REVOKED"]
    for item in keys:
        key = item.key
        shown = f"{key.prefix}...{key.last4 or '????'}"
        lines.append(f"{key.id}  {item.tenant[:20]:20}  {shown:19}  {','.join(key.scopes):10}  "
                     f"{_when(key.created_at):25}  {_when(key.last_used_at):25}  {_when(key.revoked_at)}")
    return lines


async def _list(settings: Settings, endpoints: Endpoints, tenant: str | None) -> int:
    services = await bootstrap(settings, endpoints.database_url, endpoints.redis_url)
    try:
        async with services.uow_factory(read_only=True) as uow:
            keys = await list_api_keys(tenant, uow=uow)
    finally:
        await services.aclose()
    print("\n".join(key_lines(keys)))
    print(f"{len(keys)} key(s)" + (f" of tenant {tenant!r}" if tenant else ""), file=sys.stderr)
    return 0


async def _revoke(settings: Settings, endpoints: Endpoints, key_id: UUID) -> int:
    services = await bootstrap(settings, endpoints.database_url, endpoints.redis_url)
    try:
        async with services.uow_factory() as uow:
            key, was_live = await revoke_api_key(key_id, uow=uow, clock=services.clock)
    except CoreError as error:
        print(f"payments keys revoke: {error.detail}", file=sys.stderr)
        return 1
    finally:
        await services.aclose()
    if was_live:
        print(f"revoked {key.prefix}...{key.last4 or '????'} ({key.id}); every API process refuses it within 10 s")
    else:
        print(f"{key.id} was already revoked at {_when(key.revoked_at)}")
    return 0
