"""API.md §2 health and operations, and §1 request ids."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from app.configuration import load_settings
from app.http.app import create_app
from tests.e2e.conftest import Stack
from tests.e2e.helpers import API, REQUEST_ID, assert_problem, case, metric_samples

pytestmark = pytest.mark.usefixtures("no_server_errors")


@pytest.fixture
async def anonymous(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """A client without an API key."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        yield http


async def test_health(anonymous: httpx.AsyncClient) -> None:
    health = await anonymous.get("/health")
    assert health.status_code == 200 and health.headers["content-type"].startswith("application/json")
    body = health.json()
    assert body["status"] == "ok" and isinstance(body["version"], str) and body["version"]
    live = await anonymous.get("/health/live")
    assert live.status_code == 200
    ready = await anonymous.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok", "migrations": "ok"}}


async def test_metrics_count_requests_by_route_and_status(anonymous: httpx.AsyncClient,
                                                          client: httpx.AsyncClient) -> None:
    route = "/api/v1/accounts/<account_id:uuid>"

    def count(text: str, status: str) -> float:
        return sum(value for labels, value in metric_samples(text, "http_requests_total")
                   if labels.get("route") == route and labels.get("status") == status and labels.get("method") == "GET")

    before = (await anonymous.get("/metrics")).text
    account = (await client.post(f"{API}/accounts", json={"user_id": "m", "currency": "USD"})).json()
    for _ in range(3):
        assert (await client.get(f"{API}/accounts/{uuid.uuid4()}")).status_code == 404
    assert (await client.get(f"{API}/accounts/{account['id']}")).status_code == 200
    response = await anonymous.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    assert count(after, "404") - count(before, "404") == 3
    assert count(after, "200") - count(before, "200") == 1

    from prometheus_client.parser import text_string_to_metric_families

    families = {family.name: family for family in text_string_to_metric_families(after)}
    assert families["http_requests"].type == "counter"
    latency = families["http_request_duration_seconds"]
    assert latency.type == "histogram"
    buckets = [(s.labels, s.value) for s in latency.samples if s.name.endswith("_bucket")
               and s.labels.get("route") == route and s.labels.get("status") == "404"
               and s.labels.get("method") == "GET"]
    assert buckets and any(labels["le"] == "+Inf" for labels, _ in buckets)
    observed = [s.value for s in latency.samples if s.name.endswith("_count") and s.labels.get("method") == "GET"
                and s.labels.get("route") == route and s.labels.get("status") == "404"]
    assert observed and observed[0] >= 3
    infinite = [value for labels, value in buckets if labels["le"] == "+Inf"]
    assert infinite == observed, "the +Inf bucket must equal the count"


def _routes() -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every /api/v1 route of the app the `serve` command runs."""
    app = create_app(load_settings({}), "postgresql://unused@127.0.0.1:1/unused", "redis://127.0.0.1:1/0",
                     name=f"e2e_routes_{uuid.uuid4().hex}")
    found = set()
    for route in app.router.routes:
        path = "/" + route.path.lstrip("/")
        if not path.startswith("/api/v1/") and path != "/api/v1":
            continue
        path = re.sub(r"<([a-zA-Z_][a-zA-Z0-9_]*)(:[^>]*)?>", r"{\1}", path)
        found |= {(method.lower(), path) for method in route.methods if method not in {"HEAD", "OPTIONS"}}
    return found


async def test_openapi_documents_every_api_route(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert str(document["openapi"]).startswith("3.")
    assert document["info"]["title"] and document["info"]["version"]
    documented = {(method, path) for path, item in document["paths"].items() for method in item
                  if method in {"get", "post", "put", "patch", "delete"}}
    served = _routes()
    assert {"/api/v1/accounts", "/api/v1/transfers", "/api/v1/payments"} <= {path for _, path in served}
    assert {op for op in documented if op[1].startswith("/api/v1")} == served
    for method, path in served:
        operation = document["paths"][path][method]
        with case((method, path)):
            codes = set(operation["responses"])
            assert any(code.startswith("2") for code in codes), codes
            assert any(code.startswith("4") for code in codes), "error responses are documented"
            if method == "post":
                assert "requestBody" in operation


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in {"src", "href"} and value:
                self.urls.append(value)


async def test_docs_render_offline(anonymous: httpx.AsyncClient) -> None:
    for page in ("/docs", "/docs/redoc"):
        response = await anonymous.get(page)
        with case(page):
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
            assert "http://" not in response.text and "https://" not in response.text and "//cdn" not in response.text
            parser = _Assets()
            parser.feed(response.text)
            assert any(url.endswith(".js") for url in parser.urls), parser.urls
            for url in parser.urls:
                assert url.startswith("/"), f"{url} is not served by this process"
                asset = await anonymous.get(url)
                assert asset.status_code == 200 and asset.content, url
    swagger_init = (await anonymous.get("/docs")).text
    assert "/openapi.json" in swagger_init


async def test_request_ids(client: httpx.AsyncClient, anonymous: httpx.AsyncClient) -> None:
    for supplied in ("abc", "req-1.2_3", "A" * 128):
        with case(supplied):
            response = await client.get(f"{API}/accounts", headers={"X-Request-ID": supplied})
            assert response.status_code == 200 and response.headers["x-request-id"] == supplied
    generated = set()
    rejected: tuple[str | bytes | None, ...] = (None, "", "A" * 129, "has space", "slash/es", "semi;colon",
                                                "é".encode())
    for bad in rejected:
        with case(bad):
            headers: dict[str, Any] = {} if bad is None else {"X-Request-ID": bad}
            response = await client.get(f"{API}/accounts", headers=headers)
            echoed = response.headers["x-request-id"]
            assert REQUEST_ID.match(echoed) and echoed != bad
            generated.add(echoed)
    assert len(generated) == 7, "generated request ids must be unique"
    for response in (
        await anonymous.get(f"{API}/accounts", headers={"X-Request-ID": "err-401"}),
        await client.get(f"{API}/accounts/{uuid.uuid4()}", headers={"X-Request-ID": "err-404"}),
        await client.post(f"{API}/accounts", json={}, headers={"X-Request-ID": "err-422"}),
        await client.post(f"{API}/accounts", content=b"{", headers={"X-Request-ID": "err-400"}),
        await anonymous.get("/nothing/here", headers={"X-Request-ID": "err-404-route"}),
    ):
        with case(response.request.headers["x-request-id"]):
            assert response.headers["x-request-id"] == response.request.headers["x-request-id"]
            assert response.json()["request_id"] == response.headers["x-request-id"]
    invalid = await client.get(f"{API}/accounts/{uuid.uuid4()}", headers={"X-Request-ID": "x" * 200})
    problem = assert_problem(invalid, "not_found", 404)
    assert problem["request_id"] != "x" * 200
    for path in ("/health", "/health/ready", "/metrics", "/openapi.json"):
        with case(path):
            assert REQUEST_ID.match((await anonymous.get(path)).headers["x-request-id"])
