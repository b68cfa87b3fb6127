"""Regressions for defects found in review: each of these once answered 500 or the wrong problem."""

from __future__ import annotations

import base64

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Stack
from tests.e2e.helpers import API, assert_problem, key, open_account, raw_http, transfer_body


async def test_a_non_ascii_bearer_token_is_unauthorized(stack: Stack) -> None:
    request = (b"GET /api/v1/accounts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n"
               b"X-Request-ID: rev-1\r\nConnection: close\r\n\r\n")
    response = await raw_http(stack.base_url, request)
    assert_problem(response, "unauthorized", 401)


async def test_a_deeply_nested_cursor_is_a_validation_error(client: httpx.AsyncClient) -> None:
    cursor = base64.urlsafe_b64encode(b"[" * 2000).decode().rstrip("=")
    account = await open_account(client, "1.00")
    for path in (f"{API}/accounts", f"{API}/accounts/{account['id']}/transactions"):
        assert_problem(await client.get(path, params={"cursor": cursor}), "validation_error", 422, "cursor")


async def test_amounts_take_ascii_digits_and_ids_the_canonical_form(client: httpx.AsyncClient) -> None:
    source, destination = await open_account(client, "10.00"), await open_account(client)
    arabic = transfer_body(source["id"], destination["id"], "١.٠٠")
    response = await client.post(f"{API}/transfers", json=arabic, headers={"Idempotency-Key": key()})
    assert_problem(response, "validation_error", 422, "amount")
    for odd in ("{" + source["id"] + "}", "urn:uuid:" + source["id"], source["id"].replace("-", "")):
        body = transfer_body(odd, destination["id"], "1.00")
        response = await client.post(f"{API}/transfers", json=body, headers={"Idempotency-Key": key()})
        assert_problem(response, "validation_error", 422, "source_account_id")


async def test_a_missing_idempotency_key_is_reported_before_the_body(client: httpx.AsyncClient) -> None:
    response = await client.post(f"{API}/transfers", json={"amount": "nope"})
    assert_problem(response, "idempotency_key_missing", 400)


async def test_oversized_headers_are_431_not_413(stack: Stack) -> None:
    request = (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 17_000 + b"\r\nConnection: close\r\n\r\n")
    response = await raw_http(stack.base_url, request)
    assert response.status_code == 431
    assert response.json()["type"] == "/problems/request_header_fields_too_large"


async def test_invented_methods_do_not_create_metric_series(stack: Stack) -> None:
    await raw_http(stack.base_url, b"FROBNICATE /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    text = httpx.get(f"{stack.base_url}/metrics").text
    methods = {sample.labels["method"] for family in text_string_to_metric_families(text)
               if family.name == "http_requests" for sample in family.samples}
    assert "FROBNICATE" not in methods
