"""API.md §1: each problem `type` resolves. Every slug has its page, and GET /problems/<slug> serves it (HTML or JSON).

The pages are read from the app `payments serve` runs, in-process (the `api` fixture, tests/unit/asgi.py).
"""

from __future__ import annotations

import ast
import html
import inspect
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
import sanic.exceptions
from sanic import HTTPResponse, Request

import core.errors
from app.http.problem_types import PROBLEM_TYPES
from app.http.problems import FRAMEWORK_SLUGS, STATUS, TITLES, ApiError
from core.errors import CoreError
from tests.unit.asgi import client, payments_app

ROOT = Path(__file__).resolve().parents[2]
PROBLEM_JSON = "application/problem+json"
PAGE_FIELDS = {"slug", "title", "status", "description", "what_to_do"}


def _subclasses(cls: type[CoreError]) -> list[type[CoreError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def _api_error_codes() -> set[str]:
    """The code of every `ApiError("code", ...)` the app raises, read from its source."""
    codes = set()
    for path in (ROOT / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == ApiError.__name__ and node.args
                    and isinstance(node.args[0], ast.Constant)):
                codes.add(node.args[0].value)
    return codes


# -- the table --------------------------------------------------------------------------------------------------------

def test_every_slug_with_a_status_has_a_page() -> None:
    assert set(STATUS) == set(TITLES) == set(PROBLEM_TYPES)
    assert {"account_frozen", "account_closed", "method_not_allowed", "request_header_fields_too_large",
            "internal_error", "insufficient_funds", "service_unavailable"} <= set(PROBLEM_TYPES)


def test_every_core_error_code_has_a_page() -> None:
    errors = _subclasses(CoreError)
    assert {core.errors.AccountFrozen, core.errors.AccountClosed, core.errors.Unavailable} <= set(errors)
    missing = {cls.__name__: cls.code for cls in [CoreError, *errors] if cls.code not in PROBLEM_TYPES}
    assert missing == {}


def test_every_api_error_the_app_raises_has_a_page() -> None:
    codes = _api_error_codes()
    assert {"malformed_json", "idempotency_key_missing", "rate_limited", "not_found"} <= codes
    assert codes - set(PROBLEM_TYPES) == set()


def test_framework_slugs_have_pages_with_their_status() -> None:
    for status, slug in FRAMEWORK_SLUGS.items():
        assert PROBLEM_TYPES[slug].status == status, slug


@pytest.mark.parametrize("slug", list(PROBLEM_TYPES))
def test_each_page_says_when_and_what_to_do(slug: str) -> None:
    kind = PROBLEM_TYPES[slug]
    assert slug.isidentifier() and slug == slug.lower()
    assert 400 <= kind.status < 600 and kind.title
    assert len(kind.description) >= 40 and len(kind.what_to_do) >= 20
    for text in (kind.description, kind.what_to_do):
        assert text.count("`") % 2 == 0, f"unpaired backtick in {text!r}"
        assert "http://" not in text and "https://" not in text


# -- the pages, over HTTP ---------------------------------------------------------------------------------------------

class _Page(HTMLParser):
    """The links, assets and text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.links += [value or "" for name, value in attrs if name in {"href", "src"}]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(response: httpx.Response) -> _Page:
    page = _Page()
    page.feed(response.text)
    return page


def _assert_self_contained(page: _Page) -> None:
    assert not page.tags & {"script", "link", "img", "iframe"}, page.tags
    for url in page.links:
        assert url.startswith("/problems") and "//" not in url, url


async def test_every_page_in_html(api: httpx.AsyncClient) -> None:
    for slug, kind in PROBLEM_TYPES.items():
        response = await api.get(f"/problems/{slug}")
        assert response.status_code == 200, slug
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["vary"] == "Accept"
        page = _parse(response)
        text = " ".join("".join(page.text).split())
        assert f"{kind.title} {kind.status}" in text, slug  # the heading: title and status
        assert f"/problems/{slug}" in text
        assert "When it happens" in text and "What to do" in text
        for words in (kind.description, kind.what_to_do):
            assert " ".join(words.replace("`", "").split()) in text, slug
        assert f"<title>{html.escape(kind.title)} ({kind.status})</title>" in response.text
        _assert_self_contained(page)
        assert "/problems" in page.links


async def test_every_page_in_json(api: httpx.AsyncClient) -> None:
    for slug, kind in PROBLEM_TYPES.items():
        expected = {"slug": slug, "title": kind.title, "status": kind.status, "description": kind.description,
                    "what_to_do": kind.what_to_do}
        for response in (await api.get(f"/problems/{slug}", headers={"Accept": "application/json"}),
                         await api.get(f"/problems/{slug}?format=json", headers={"Accept": "text/html"}),
                         await api.get(f"/problems/{slug}", headers={"Accept": "text/html;q=0.5, application/json"})):
            assert response.status_code == 200, slug
            assert response.headers["content-type"] == "application/json"
            assert response.json() == expected
            assert set(response.json()) == PAGE_FIELDS


@pytest.mark.parametrize("accept", [None, "*/*", "text/html", "text/plain",
                                    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"])
async def test_html_is_the_default(api: httpx.AsyncClient, accept: str | None) -> None:
    headers = {"Accept": accept} if accept is not None else {}
    for path in ("/problems/not_found", "/problems"):
        response = await api.get(path, headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8", path


async def test_format_overrides_accept(api: httpx.AsyncClient) -> None:
    response = await api.get("/problems/not_found?format=html", headers={"Accept": "application/json"})
    assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"


async def test_the_index_lists_every_page(api: httpx.AsyncClient) -> None:
    response = await api.get("/problems")
    assert response.status_code == 200 and response.headers["content-type"] == "text/html; charset=utf-8"
    page = _parse(response)
    _assert_self_contained(page)
    assert page.links == [f"/problems/{slug}" for slug in PROBLEM_TYPES]
    for link in page.links:
        assert (await api.get(link)).status_code == 200, link
    listed = await api.get("/problems", headers={"Accept": "application/json"})
    assert listed.status_code == 200 and listed.headers["content-type"] == "application/json"
    assert list(listed.json()) == ["data"]
    assert [item["slug"] for item in listed.json()["data"]] == list(PROBLEM_TYPES)
    for item in listed.json()["data"]:
        assert item == (await api.get(f"/problems/{item['slug']}?format=json")).json()


@pytest.mark.parametrize("path", ["/problems/no_such_thing", "/problems/NOT_FOUND", "/problems/not_found/x",
                                  "/problems/%3Cscript%3E"])
async def test_an_unknown_slug_is_a_404_problem(api: httpx.AsyncClient, path: str) -> None:
    for accept in ("text/html", "application/json"):
        response = await api.get(path, headers={"Accept": accept})
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM_JSON
        body = response.json()
        assert (body["type"], body["status"], body["title"]) == ("/problems/not_found", 404, "Not found")
        assert body["request_id"] == response.headers["x-request-id"]


async def test_a_bad_format_is_a_validation_error(api: httpx.AsyncClient) -> None:
    response = await api.get("/problems/not_found?format=xml")
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["errors"] == [{"field": "format", "message": "must be html or json"}]


async def test_head_and_other_methods_answer_as_on_other_unauthenticated_routes(api: httpx.AsyncClient) -> None:
    for path in ("/problems", "/problems/insufficient_funds"):
        head = await api.head(path)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"] == (await api.get(path)).headers["content-type"]
        wrong = await api.post(path)
        assert wrong.status_code == 405 and wrong.headers["content-type"] == PROBLEM_JSON
        assert wrong.headers["allow"] == (await api.post("/docs")).headers["allow"] == "GET, HEAD, OPTIONS"
        assert (await api.options(path)).status_code == 204
    assert (await api.head("/problems/no_such_thing")).status_code == 404


async def test_the_pages_are_not_api_operations(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    assert document["paths"] and not [path for path in document["paths"] if "problems" in path]


# -- real answers: their type resolves ------------------------------------------------------------------------------

async def _assert_type_resolves(api: httpx.AsyncClient, response: httpx.Response) -> None:
    assert response.headers["content-type"] == PROBLEM_JSON, response.text
    problem = response.json()
    assert problem["type"].startswith("/problems/"), problem
    page = await api.get(problem["type"], headers={"Accept": "application/json"})
    assert page.status_code == 200, problem["type"]
    assert (page.json()["status"], page.json()["title"]) == (problem["status"], problem["title"]) == (
        response.status_code, problem["title"])
    assert (await api.get(problem["type"])).status_code == 200


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/api/v1/accounts", 401),
    ("GET", "/api/v1/accounts/0190a6a4-3c1e-7d2a-9b1e-2f6a4c8d0e11", 401),
    ("POST", "/api/v1/transfers", 401),
    ("GET", "/api/v1/nothing", 404),
    ("DELETE", "/api/v1/payments/0190a6a4-3c1e-7d2a-9b1e-2f6a4c8d0e11", 405),
])
async def test_the_type_of_a_real_problem_resolves(api: httpx.AsyncClient, method: str, path: str,
                                                   status: int) -> None:
    response = await api.request(method, path)
    assert response.status_code == status
    await _assert_type_resolves(api, response)


FRAMEWORK_ERRORS = sorted((cls for _, cls in inspect.getmembers(sanic.exceptions, inspect.isclass)
                           if issubclass(cls, sanic.exceptions.SanicException)), key=lambda cls: cls.__name__)


async def test_the_type_of_every_framework_error_resolves() -> None:
    """Each exception Sanic may raise, raised by a handler: the problem the app answers has a page of its status."""
    assert {sanic.exceptions.RequestTimeout, sanic.exceptions.URITooLong, sanic.exceptions.ExpectationFailed,
            sanic.exceptions.RangeNotSatisfiable} <= set(FRAMEWORK_ERRORS)
    by_name = {cls.__name__: cls for cls in FRAMEWORK_ERRORS}
    app = payments_app()

    async def fail(request: Request, name: str) -> HTTPResponse:
        raise by_name[name]("raised by the test")

    app.add_route(fail, "/test/raise/<name:str>", name="test_raise")
    async with client(app) as api:
        for name in by_name:
            response = await api.get(f"/test/raise/{name}")
            assert response.status_code >= 400, name
            await _assert_type_resolves(api, response)
