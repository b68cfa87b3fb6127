"""Unit tests for the offline docs routes (driven through Sanic's ASGI interface with httpx)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from sanic import Sanic

from app.http.docs import configure_sanic_ext, install_docs
from tests.unit.asgi import run

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Tiny", "version": "0.0.1"},
    "paths": {},
}
ASSET = re.compile(r"""(?:src|href)="([^"]*)\"""")


def make_app(calls: list[int] | None = None) -> Sanic[Any, Any]:
    app: Sanic[Any, Any] = Sanic(f"docs_test_{uuid.uuid4().hex}")
    # TouchUp rewrites Sanic's classes on the first startup in a process and crashes
    # (KeyError: 'connection_task') on the next app's startup; tests start many apps.
    app.config.TOUCHUP = False

    def spec() -> dict[str, Any]:
        if calls is not None:
            calls.append(1)
        return SPEC

    configure_sanic_ext(app)
    install_docs(app, spec, title="Tiny <API>")
    return app


def test_openapi_json_is_served_and_cached() -> None:
    calls: list[int] = []

    async def check(c: httpx.AsyncClient) -> None:
        for _ in range(2):
            response = await c.get("/openapi.json")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/json")
            assert response.json() == SPEC
        assert calls == [1]

    run(make_app(calls), check)


@pytest.mark.parametrize("page", ["/docs", "/docs/redoc"])
def test_pages_use_only_local_assets(page: str) -> None:
    async def check(c: httpx.AsyncClient) -> None:
        response = await c.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        body = response.text
        assert "http" not in body.lower()  # no absolute URL, no CDN
        assert "//" not in body  # no protocol-relative URL either
        assert "Tiny &lt;API&gt;" in body
        assert "/openapi.json" in body
        assets = ASSET.findall(body)
        assert len(assets) >= 2
        for url in assets:
            assert url.startswith("/docs/static/"), url
            asset = await c.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 200, url

    run(make_app(), check)


def test_vendored_bundles_are_real() -> None:
    async def check(c: httpx.AsyncClient) -> None:
        for url, marker, size in [
            ("/docs/static/swagger-ui/swagger-ui-bundle.js", b"SwaggerUIBundle", 500_000),
            ("/docs/static/swagger-ui/swagger-ui.css", b".swagger-ui", 50_000),
            ("/docs/static/redoc/redoc.standalone.js", b"Redoc", 500_000),
            ("/docs/static/swagger-ui/favicon-32x32.png", b"PNG", 100),
            ("/docs/static/swagger-ui/LICENSE", b"Apache License", 1_000),
            ("/docs/static/redoc/LICENSE", b"MIT", 500),
        ]:
            response = await c.get(url)
            assert response.status_code == 200, url
            assert len(response.content) > size and marker in response.content, url
        assert (await c.get("/docs/static/../docs.py")).status_code == 404

    run(make_app(), check)


def test_sanic_ext_docs_are_disabled() -> None:
    app = make_app()

    async def check(c: httpx.AsyncClient) -> None:
        # Sanic auto-applies sanic-ext at startup; its CDN-based routes must be absent.
        assert getattr(app, "_ext", None) is not None
        assert app.config.OAS is False
        for url in ("/docs/swagger", "/docs/openapi.json", "/docs/swagger-config"):
            assert (await c.get(url)).status_code == 404, url
        paths = {route.path for route in app.router.routes}
        assert not any(path.startswith("docs/swagger") for path in paths)

    run(app, check)


def test_configure_after_sanic_ext_docs_registered_fails() -> None:
    app: Sanic[Any, Any] = Sanic(f"docs_test_{uuid.uuid4().hex}")
    app.extend()
    with pytest.raises(RuntimeError):
        configure_sanic_ext(app)
