"""Bearer API-key authentication with a short in-process cache, scopes and the per-key rate limit."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import TYPE_CHECKING, Any
from uuid import UUID

from loguru import logger
from sanic import Request

from app.http.context import services
from app.http.io import read
from app.http.problems import ApiError
from core.errors import FieldError, ValidationFailed
from core.tenants import ApiKey
from core.usecases.api_keys import authenticate, find_api_key, record_key_use

if TYPE_CHECKING:
    from app.bootstrap import Services

Handler = Callable[..., Awaitable[Any]]

#: Found keys are trusted this long (a revoked key stops working within it: API.md §1 says 10 s); misses are
#: re-read sooner. Each re-read of a live key also notes its use, so `last_used_at` is this precise.
HIT_TTL, MISS_TTL = 5.0, 1.0


class KeyCache:
    """Key hash -> stored key, refreshed from the database after a few seconds.

    Concurrent misses for one key share a single lookup, so a burst of requests
    with a new key costs one query, not one connection each.
    """

    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[float, ApiKey | None]] = {}
        self._loading: dict[bytes, asyncio.Future[ApiKey | None]] = {}
        self._noting: set[asyncio.Task[None]] = set()

    def note_use(self, found: Services, key_id: UUID) -> None:
        """Record in the background that the key authenticated a request (never delays or fails one)."""
        task = asyncio.get_running_loop().create_task(_note_use(found, key_id))
        self._noting.add(task)
        task.add_done_callback(self._noting.discard)

    async def lookup(self, key_hash: bytes, load: Callable[[bytes], Awaitable[ApiKey | None]]) -> ApiKey | None:
        cached = self._entries.get(key_hash)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        if (pending := self._loading.get(key_hash)) is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ApiKey | None] = asyncio.get_running_loop().create_future()
        self._loading[key_hash] = future
        try:
            key = await load(key_hash)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiters re-raise it, nobody else needs to
            raise
        finally:
            del self._loading[key_hash]
        if len(self._entries) >= 10_000:  # drop the oldest tenth, not the live keys with it
            for stale in list(self._entries)[:1_000]:
                del self._entries[stale]
        self._entries[key_hash] = (time.monotonic() + (HIT_TTL if key else MISS_TTL), key)
        future.set_result(key)
        return key


async def _note_use(found: Services, key_id: UUID) -> None:
    try:
        async with found.uow_factory() as uow:
            await record_key_use(key_id, uow=uow, clock=found.clock)
    except Exception as error:  # an outage, a shutdown: bookkeeping only; the next lookup notes it again
        logger.debug("could not note an API key's use: {!r}", error)


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def deep_name(name: str) -> str:
    """`metadata[tier]` → `metadata[]`, the name a deep-object parameter is declared under; others unchanged."""
    base, bracket, rest = name.partition("[")
    return f"{base}[]" if bracket and rest.endswith("]") and len(rest) > 1 else name


def secured(scope: str, *, query: tuple[str, ...] = ()) -> Callable[[Handler], Handler]:
    """Authenticate the caller, require `scope`, apply the rate limit; sets `request.ctx.principal`.

    Query parameters other than `query` are refused (422), like unknown body
    fields: a typo such as `?userid=` must not silently widen a listing.
    """

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def wrapper(request: Request, *args: Any, **kwargs: Any) -> Any:
            async def load(key_hash: bytes) -> ApiKey | None:
                key = await read(request, lambda uow: find_api_key(key_hash, uow=uow))
                if key is not None and key.revoked_at is None:
                    request.app.ctx.keys.note_use(services(request), key.id)
                return key

            principal = await authenticate(
                bearer(request), scope, lookup=lambda h: request.app.ctx.keys.lookup(h, load))
            limiter = services(request).rate_limiter
            if limiter is not None:
                wait = await limiter.retry_after(str(principal.key_id))
                if wait > 0:
                    raise ApiError("rate_limited", "too many requests for this API key; slow down",
                                   retry_after=max(1, math.ceil(wait)))
            request.ctx.principal = principal
            unknown = sorted(name for name in request.get_args(keep_blank_values=True)
                             if name not in query and deep_name(name) not in query)
            if unknown:
                raise ValidationFailed([FieldError(name, "is not a known query parameter") for name in unknown])
            return await handler(request, *args, **kwargs)

        return wrapper

    return decorate
