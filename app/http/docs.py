"""Offline API docs: /openapi.json plus Swagger UI and ReDoc pages served from vendored assets."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sanic import Request, Sanic
from sanic.response import HTTPResponse, raw
from sanic.response import html as html_response
from sanic_ext import openapi as sanic_ext_openapi

STATIC_DIR = Path(__file__).parent / "static"
STATIC_URL = "/docs/static"
SPEC_URL = "/openapi.json"
DOCS_URL = "/docs"
REDOC_URL = "/docs/redoc"

# The head both pages share; each adds its own assets.
_HEAD = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" type="image/png" href="{static}/swagger-ui/favicon-32x32.png">
"""

_SWAGGER_PAGE = _HEAD + """<link rel="stylesheet" href="{static}/swagger-ui/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-spec-url="{spec}"></div>
<script src="{static}/swagger-ui/swagger-ui-bundle.js"></script>
<script src="{static}/swagger-ui-init.js"></script>
</body>
</html>
"""

_REDOC_PAGE = _HEAD + """</head>
<body>
<redoc spec-url="{spec}"></redoc>
<script src="{static}/redoc/redoc.standalone.js"></script>
</body>
</html>
"""

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

    fields = {"title": html.escape(title), "static": STATIC_URL, "spec": SPEC_URL}
    swagger_page = _SWAGGER_PAGE.format(**fields)
    redoc_page = _REDOC_PAGE.format(**fields)

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
