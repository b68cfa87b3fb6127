"""Health, readiness, liveness and metrics (no auth)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from sanic import Blueprint, HTTPResponse, Request

from adapters.postgres.migrate import MIGRATIONS
from app.http import metrics
from app.http.io import dumps

bp = Blueprint("health")

try:
    VERSION = version("payments")
except PackageNotFoundError:  # running from a checkout that was not installed
    VERSION = "0.0.0"

CHECK_TIMEOUT = 1.0


def _json(status: int, body: Any) -> HTTPResponse:
    return HTTPResponse(dumps(body), status=status, content_type="application/json")


@bp.get("/health")
async def health(request: Request) -> HTTPResponse:
    return _json(200, {"status": "ok", "version": VERSION})


@bp.get("/health/live")
async def live(request: Request) -> HTTPResponse:
    return _json(200, {"status": "live"})


async def _check(probe: Awaitable[Any]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT)
    except Exception as error:
        return f"failed: {type(error).__name__}"
    return "ok"


async def _database(request: Request) -> None:
    await request.app.ctx.container.pool.fetchval("SELECT 1")


async def _redis(request: Request) -> None:
    await request.app.ctx.container.redis.ping()


async def _migrations(request: Request) -> None:
    applied = {row[0] for row in await request.app.ctx.container.pool.fetch("SELECT migration_id FROM _yoyo_migration")}
    missing = sorted(path.stem for path in MIGRATIONS.glob("*.sql") if path.stem not in applied)
    if missing:
        raise RuntimeError(f"pending migrations: {', '.join(missing)}")


@bp.get("/health/ready")
async def ready(request: Request) -> HTTPResponse:
    names = ("database", "redis", "migrations")
    results = await asyncio.gather(_check(_database(request)), _check(_redis(request)), _check(_migrations(request)))
    checks = dict(zip(names, results, strict=True))
    healthy = all(result == "ok" for result in results)
    return _json(200 if healthy else 503, {"status": "ready" if healthy else "unavailable", "checks": checks})


@bp.get("/metrics")
async def prometheus(request: Request) -> HTTPResponse:
    body = await metrics.render_all(request.app.ctx.container)
    return HTTPResponse(body, content_type="text/plain; version=0.0.4; charset=utf-8")
