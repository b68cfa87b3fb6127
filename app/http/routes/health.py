"""Health, readiness, liveness and metrics (no auth)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from sanic import Blueprint, HTTPResponse, Request

from app.http import metrics
from app.http.context import services
from app.http.io import dumps
from core.usecases.readiness import check_readiness

bp = Blueprint("health")

try:
    VERSION = version("payments")
except PackageNotFoundError:  # running from a checkout that was not installed
    VERSION = "0.0.0"


def _json(status: int, body: Any) -> HTTPResponse:
    return HTTPResponse(dumps(body), status=status, content_type="application/json")


@bp.get("/health")
async def health(request: Request) -> HTTPResponse:
    return _json(200, {"status": "ok", "version": VERSION})


@bp.get("/health/live")
async def live(request: Request) -> HTTPResponse:
    return _json(200, {"status": "live"})


@bp.get("/health/ready")
async def ready(request: Request) -> HTTPResponse:
    checks = await check_readiness(services(request).readiness_probes())
    healthy = all(verdict == "ok" for verdict in checks.values())
    return _json(200 if healthy else 503, {"status": "ready" if healthy else "unavailable", "checks": checks})


@bp.get("/metrics")
async def prometheus(request: Request) -> HTTPResponse:
    body = await metrics.render_all(services(request))
    return HTTPResponse(body, content_type="text/plain; version=0.0.4; charset=utf-8")
