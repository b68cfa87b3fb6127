"""Offline API docs: /openapi.json plus Swagger UI and ReDoc pages served from vendored assets."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse, raw
from sanic.response import html as html_response
from sanic_ext import openapi as sanic_ext_openapi

from app.http.html import page

STATIC_DIR = Path(__file__).parent / "static"
STATIC_URL = "/docs/static"
SPEC_URL = "/openapi.json"
DOCS_URL = "/docs"
REDOC_URL = "/docs/redoc"

_ICON = f'<link rel="icon" type="image/png" href="{STATIC_URL}/swagger-ui/favicon-32x32.png">\n'


def _swagger_page(title: str) -> str:
    return page(title, head=_ICON + f'<link rel="stylesheet" href="{STATIC_URL}/swagger-ui/swagger-ui.css">\n',
                body=f'<div id="swagger-ui" data-spec-url="{SPEC_URL}"></div>\n'
                     f'<script src="{STATIC_URL}/swagger-ui/swagger-ui-bundle.js"></script>\n'
                     f'<script src="{STATIC_URL}/swagger-ui-init.js"></script>\n')


def _redoc_page(title: str) -> str:
    return page(title, head=_ICON, body=f'<redoc spec-url="{SPEC_URL}"></redoc>\n'
                                        f'<script src="{STATIC_URL}/redoc/redoc.standalone.js"></script>\n')


def configure_sanic_ext(app: Sanic[Any, Any]) -> None:
    """Stop sanic-ext from registering its own CDN-based /docs; call before Extend(app) or serving.

    Why: Sanic auto-applies sanic-ext at startup (``AUTO_EXTEND`` defaults to True, see
    ``sanic.application.ext.setup_ext`` called from ``Sanic._startup``), and sanic-ext's
    ``OpenAPIExtension.startup`` registers a blueprint with ``/docs``, ``/docs/redoc``,
    ``/docs/swagger`` and ``/docs/openapi.json`` whenever ``app.config.OAS`` is truthy (default
    True). Its pages pull Swagger UI / ReDoc from CDNs, and its ``/docs`` routes would collide
    with ours. ``Extend`` only fills config keys *missing* from ``app.config``
    (``sanic_ext.config.add_fallback_config``), so ``OAS = False`` set on the app beforehand
    wins, while the rest of sanic-ext (injection, validation, CORS, ...) keeps working.
    """
    if getattr(app, "_ext", None) is not None and app.config.get("OAS", True):
        raise RuntimeError("sanic-ext already registered its OpenAPI docs; configure it first")
    app.config.OAS = False


def _exclude_from_sanic_ext_docs(handler: Callable[..., Any]) -> None:
    # Only matters if sanic-ext's OAS is ever re-enabled (e.g. under another prefix).
    sanic_ext_openapi.exclude()(handler)


def install_docs(
    app: Sanic[Any, Any],
    spec: Callable[[], dict[str, Any]],
    *,
    title: str = "API documentation",
) -> None:
    """Register GET /openapi.json, /docs (Swagger UI), /docs/redoc (ReDoc) and their assets."""
    cache: list[bytes] = []  # spec JSON, computed on first request

    def spec_json() -> bytes:
        if not cache:
            cache.append(json.dumps(spec(), separators=(",", ":")).encode())
        return cache[0]

    swagger_page = _swagger_page(title)
    redoc_page = _redoc_page(title)

    async def openapi_json(request: Request) -> HTTPResponse:
        return raw(spec_json(), content_type="application/json")

    async def swagger_ui(request: Request) -> HTTPResponse:
        return html_response(swagger_page)

    async def redoc(request: Request) -> HTTPResponse:
        return html_response(redoc_page)

    for handler in (openapi_json, swagger_ui, redoc):
        _exclude_from_sanic_ext_docs(handler)
    app.add_route(openapi_json, SPEC_URL, methods=["GET"], name="docs_openapi_json")
    app.add_route(swagger_ui, DOCS_URL, methods=["GET"], name="docs_swagger_ui")
    app.add_route(redoc, REDOC_URL, methods=["GET"], name="docs_redoc")
    # Static routes are skipped by sanic-ext's spec builder (route.extra.static).
    app.static(STATIC_URL, STATIC_DIR, name="docs_static")
