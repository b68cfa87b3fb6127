"""Sanic apps driven in-process through their ASGI interface with httpx, lifespan included: no server, no socket."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from sanic import Sanic

from app.configuration import load_settings
from app.http.app import create_app

#: Addresses where nothing listens: the app's adapters connect lazily, so all that answers before touching
#: PostgreSQL or Redis (routing, 401 without a key, 405, docs, problem pages) answers as it does in production.
NOWHERE = ("postgresql://unused@127.0.0.1:1/unused", "redis://127.0.0.1:1/0")


def payments_app() -> Sanic[Any, Any]:
    """The app `payments serve` runs (create_app with default settings), under a name of its own."""
    app = create_app(load_settings({}), *NOWHERE, name=f"unit_{uuid.uuid4().hex}")
    # TouchUp rewrites Sanic's classes on the first startup in a process and crashes
    # (KeyError: 'connection_task') on the next app's startup; tests start many apps.
    app.config.TOUCHUP = False
    return app


@contextlib.asynccontextmanager
async def client(app: Sanic[Any, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """Run the ASGI lifespan (Sanic needs it before serving requests) around an httpx client."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    started = await asyncio.wait_for(outbox.get(), 30)
    assert started["type"] == "lifespan.startup.complete", started
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(lifespan, 30)


def run(app: Sanic[Any, Any], check: Callable[[httpx.AsyncClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with client(app) as c:
            await check(c)

    asyncio.run(main())
