"""A method a path does not take: 405 method_not_allowed, with `Allow` naming the methods it does take.

Collection routes and routes with path parameters alike (issue 13: the latter answered an empty `Allow`).
"""

from __future__ import annotations

import re
from collections import defaultdict

import httpx
import pytest

from tests.unit.asgi import client, payments_app

PROBLEM_JSON = "application/problem+json"
ID = "0190a6a4-3c1e-7d2a-9b1e-2f6a4c8d0e11"  # any UUID: routing does not look the resource up
_PARAMETER = re.compile(r"<([a-zA-Z_][a-zA-Z0-9_]*)(?::([^>]*))?>")


def _allow(response: httpx.Response) -> list[str]:
    return [method.strip() for method in response.headers.get("allow", "").split(",") if method.strip()]


def _assert_405(response: httpx.Response, method: str) -> None:
    assert response.status_code == 405, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert (body["type"], body["status"]) == ("/problems/method_not_allowed", 405), body
    assert body["detail"] == f"{method} is not allowed here"
    assert body["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("DELETE", "/api/v1/accounts", ["GET", "HEAD", "OPTIONS", "POST"]),
    ("PUT", "/api/v1/transfers", ["OPTIONS", "POST"]),
    ("PUT", f"/api/v1/payments/{ID}", ["GET", "HEAD", "OPTIONS"]),
    ("POST", f"/api/v1/payments/{ID}/events", ["GET", "HEAD", "OPTIONS"]),
    ("GET", f"/api/v1/payments/{ID}/refund", ["OPTIONS", "POST"]),
    ("PUT", f"/api/v1/webhooks/{ID}", ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH"]),
    ("POST", "/health", ["GET", "HEAD", "OPTIONS"]),
    ("DELETE", "/docs", ["GET", "HEAD", "OPTIONS"]),
])
async def test_allow_lists_the_methods_of_collection_and_parameter_routes(
        api: httpx.AsyncClient, method: str, path: str, allowed: list[str]) -> None:
    response = await api.request(method, path)
    _assert_405(response, method)
    assert _allow(response) == allowed


async def test_every_route_answers_a_method_it_lacks_with_its_methods_in_allow() -> None:
    """Whatever the route table holds: a concrete path for each route pattern, a method none of its routes take.

    The table is read once the app has started (sanic-ext adds the HEAD and OPTIONS routes then).
    """
    app = payments_app()
    async with client(app) as api:
        methods: dict[str, set[str]] = defaultdict(set)
        for route in app.router.routes:
            methods["/" + route.path.lstrip("/")] |= set(route.methods)
        assert sum("<" in pattern for pattern in methods) >= 10, "routes with path parameters are covered"
        for pattern, taken in sorted(methods.items()):
            path = _PARAMETER.sub(lambda m: ID if m[2] == "uuid" else "x", pattern)
            method = next(m for m in ("PUT", "DELETE", "PATCH", "POST", "GET") if m not in taken)
            response = await api.request(method, path)
            _assert_405(response, method)
            assert _allow(response) == sorted(taken), (method, path)
