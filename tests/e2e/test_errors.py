"""API.md §1 error slugs over HTTP: every problem is RFC 9457 problem+json, and nothing is ever a 500.

`rate_limited` and `service_unavailable` need their own API processes: see test_degraded.py.
`idempotency_request_in_progress` needs concurrency: see test_idempotency.py.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import httpx
import pytest

from app.bootstrap import Services
from tests.conftest import new_api_key
from tests.e2e.conftest import Stack
from tests.e2e.helpers import API, assert_problem, balance, case, key, open_account, raw_http, transfer, transfer_body

pytestmark = pytest.mark.usefixtures("no_server_errors")


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


# -- malformed_json 400 ---------------------------------------------------------------------------------------------

MALFORMED = [b"", b" ", b"{", b'{"user_id": "a",}', b"not json", b"\xff\xfe", b"{'a': 1}", b'{"a": 1} {"b": 2}',
             b'{"user_id": "a", "currency": "USD", "initial_balance": NaN}',
             b'{"user_id": "a", "currency": "USD", "initial_balance": -Infinity}',
             b"[" * 5000 + b"]" * 5000,
             # a repeated key is refused, not last-wins (API.md §1), at any depth
             b'{"user_id": "a", "currency": "USD", "currency": "EUR"}',
             b'{"user_id": "a", "currency": "USD", "metadata": {"k": "1", "k": "2"}}',
             b'{"source_account_id": "x", "amount": 1, "amount": 2}']


async def test_malformed_json(client: httpx.AsyncClient) -> None:
    for body in MALFORMED:
        with case(body[:40]):
            response = await client.post(f"{API}/accounts", content=body, headers={"Content-Type": "application/json"})
            assert_problem(response, "malformed_json", 400)
        for path in ("transfers", "payments"):
            with case((path, body[:40])):
                response = await client.post(f"{API}/{path}", content=body,
                                             headers={"Content-Type": "application/json", "Idempotency-Key": key()})
                assert_problem(response, "malformed_json", 400)
    assert (await client.get(f"{API}/accounts")).json()["data"] == []


# -- validation_error 422 -------------------------------------------------------------------------------------------

ACCOUNT_CASES: list[tuple[str, Any, tuple[str, ...]]] = [
    ("not an object", [], ("body",)),
    ("a string", "text", ("body",)),
    ("a number", 42, ("body",)),
    ("wrong types", {"user_id": 1, "currency": 2}, ("user_id", "currency")),
    ("unknown field", {"user_id": "a", "currency": "USD", "colour": "red"}, ("colour",)),
    ("missing field", {"user_id": "a"}, ("currency",)),
    ("missing everything", {}, ("user_id", "currency")),
    ("lower-case currency", {"user_id": "a", "currency": "usd"}, ("currency",)),
    ("test currency XXX", {"user_id": "a", "currency": "XXX"}, ("currency",)),
    ("unknown currency ABC", {"user_id": "a", "currency": "ABC"}, ("currency",)),
    ("four-letter currency", {"user_id": "a", "currency": "USDD"}, ("currency",)),
    ("too many decimals USD", {"user_id": "a", "currency": "USD", "initial_balance": "1.001"}, ("initial_balance",)),
    ("decimals in JPY", {"user_id": "a", "currency": "JPY", "initial_balance": "1.5"}, ("initial_balance",)),
    ("too many decimals KWD", {"user_id": "a", "currency": "KWD", "initial_balance": "1.0001"}, ("initial_balance",)),
    ("three places of USD, even zeros", {"user_id": "a", "currency": "USD", "initial_balance": "10.100"},
     ("initial_balance",)),
    ("a decimal point in JPY", {"user_id": "a", "currency": "JPY", "initial_balance": "100.0"}, ("initial_balance",)),
    ("float noise", {"user_id": "a", "currency": "USD", "initial_balance": 0.30000000000000004}, ("initial_balance",)),
    ("negative balance", {"user_id": "a", "currency": "USD", "initial_balance": "-1.00"}, ("initial_balance",)),
    ("over 2^53-1 cents", {"user_id": "a", "currency": "USD", "initial_balance": "90071992547409.92"},
     ("initial_balance",)),
    ("over 2^53-1 yen", {"user_id": "a", "currency": "JPY", "initial_balance": 9007199254740992}, ("initial_balance",)),
    ("over 2^53-1 fils", {"user_id": "a", "currency": "KWD", "initial_balance": "9007199254740.992"},
     ("initial_balance",)),
    ("NaN string", {"user_id": "a", "currency": "USD", "initial_balance": "NaN"}, ("initial_balance",)),
    ("Infinity string", {"user_id": "a", "currency": "USD", "initial_balance": "Infinity"}, ("initial_balance",)),
    ("bool amount", {"user_id": "a", "currency": "USD", "initial_balance": True}, ("initial_balance",)),
    ("array amount", {"user_id": "a", "currency": "USD", "initial_balance": [1]}, ("initial_balance",)),
    ("empty amount", {"user_id": "a", "currency": "USD", "initial_balance": ""}, ("initial_balance",)),
    ("hex amount", {"user_id": "a", "currency": "USD", "initial_balance": "0x10"}, ("initial_balance",)),
    ("21 metadata keys", {"user_id": "a", "currency": "USD", "metadata": {f"k{i}": "v" for i in range(21)}},
     ("metadata",)),
    ("41-char metadata key", {"user_id": "a", "currency": "USD", "metadata": {"k" * 41: "v"}}, ("metadata",)),
    ("empty metadata key", {"user_id": "a", "currency": "USD", "metadata": {"": "v"}}, ("metadata",)),
    ("501-char metadata value", {"user_id": "a", "currency": "USD", "metadata": {"k": "v" * 501}}, ("metadata",)),
    ("number metadata value", {"user_id": "a", "currency": "USD", "metadata": {"k": 1}}, ("metadata",)),
    ("null metadata value", {"user_id": "a", "currency": "USD", "metadata": {"k": None}}, ("metadata",)),
    ("nested metadata value", {"user_id": "a", "currency": "USD", "metadata": {"k": {"a": "b"}}}, ("metadata",)),
    ("metadata not an object", {"user_id": "a", "currency": "USD", "metadata": ["k"]}, ("metadata",)),
    ("empty user_id", {"user_id": "", "currency": "USD"}, ("user_id",)),
    ("256-char user_id", {"user_id": "u" * 256, "currency": "USD"}, ("user_id",)),
    ("NUL in user_id", {"user_id": "a\x00b", "currency": "USD"}, ("user_id",)),
    ("NUL in metadata value", {"user_id": "a", "currency": "USD", "metadata": {"k": "v\x00"}}, ("metadata",)),
]


async def test_validation_error_on_create_account(client: httpx.AsyncClient) -> None:
    for label, body, fields in ACCOUNT_CASES:
        with case(label):
            assert_problem(await client.post(f"{API}/accounts", json=body), "validation_error", 422, *fields)
    assert (await client.get(f"{API}/accounts")).json()["data"] == [], "a rejected request created an account"


async def test_unpaired_surrogates_are_a_validation_error(client: httpx.AsyncClient) -> None:
    for label, text, field in (
        ("in user_id", '{"user_id": "a\\ud800", "currency": "USD"}', "user_id"),
        ("in a metadata value", '{"user_id": "a", "currency": "USD", "metadata": {"k": "\\udfff"}}', "metadata"),
        ("in a metadata key", '{"user_id": "a", "currency": "USD", "metadata": {"\\udfff": "v"}}', "metadata"),
    ):
        with case(label):
            response = await client.post(f"{API}/accounts", content=text.encode(),
                                         headers={"Content-Type": "application/json"})
            assert_problem(response, "validation_error", 422, field)


async def test_validation_reports_every_malformed_field_at_once(client: httpx.AsyncClient) -> None:
    body = {"user_id": 5, "initial_balance": "x", "extra": True}
    problem = assert_problem(await client.post(f"{API}/accounts", json=body), "validation_error", 422)
    assert {error["field"] for error in problem["errors"]} == {"user_id", "currency", "initial_balance", "extra"}


TRANSFER_CASES: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("zero amount", {"amount": "0"}, ("amount",)),
    ("zero number", {"amount": 0}, ("amount",)),
    ("zero with decimals", {"amount": "0.00"}, ("amount",)),
    ("negative amount", {"amount": "-5.00"}, ("amount",)),
    ("negative number", {"amount": -5}, ("amount",)),
    ("too many decimals", {"amount": "0.001"}, ("amount",)),
    ("over 2^53-1 minor units", {"amount": "90071992547409.92"}, ("amount",)),
    ("NaN", {"amount": "NaN"}, ("amount",)),
    ("-Infinity", {"amount": "-Infinity"}, ("amount",)),
    ("bool amount", {"amount": False}, ("amount",)),
    ("null amount", {"amount": None}, ("amount",)),
    ("object amount", {"amount": {"value": 1}}, ("amount",)),
    ("bad currency", {"currency": "usd"}, ("currency",)),
    ("non-UUID source", {"source_account_id": "abc"}, ("source_account_id",)),
    ("numeric destination", {"destination_account_id": 7}, ("destination_account_id",)),
    ("unknown field", {"memo": "x"}, ("memo",)),
    ("description too long", {"description": "d" * 1001}, ("description",)),
    ("metadata value not a string", {"metadata": {"k": True}}, ("metadata",)),
    ("NUL in description", {"description": "a\x00"}, ("description",)),
]


async def test_validation_error_on_transfer(client: httpx.AsyncClient) -> None:
    source, destination = await open_account(client, "10.00"), await open_account(client)
    for label, change, fields in TRANSFER_CASES:
        body = {**transfer_body(source["id"], destination["id"], "1.00"), **change}
        with case(label):
            response = await client.post(f"{API}/transfers", json=body, headers={"Idempotency-Key": key()})
            assert_problem(response, "validation_error", 422, *fields)
    for missing in ("source_account_id", "destination_account_id", "amount", "currency"):
        body = transfer_body(source["id"], destination["id"], "1.00")
        del body[missing]
        with case(f"missing {missing}"):
            response = await client.post(f"{API}/transfers", json=body, headers={"Idempotency-Key": key()})
            assert_problem(response, "validation_error", 422, missing)
    assert await balance(client, source["id"]) == "10.00"


async def test_bad_limit_and_cursor(client: httpx.AsyncClient) -> None:
    account = await open_account(client, "1.00")
    lists = (f"{API}/accounts", f"{API}/accounts/{account['id']}/transactions")
    for limit in ("0", "101", "-1", "abc", "1.5", "²", "1e1", "99999999999999999999"):
        for path in lists:
            with case((path, limit)):
                assert_problem(await client.get(path, params={"limit": limit}), "validation_error", 422, "limit")
    for cursor in ("abc", "!!!", "bm90IGpzb24", _cursor([]), _cursor({"a": 1}), _cursor([1, 2, 3])):
        for path in lists:
            with case((path, cursor)):
                assert_problem(await client.get(path, params={"cursor": cursor}), "validation_error", 422, "cursor")
    for cursor in (_cursor([1, 2]), _cursor(["yesterday", "not-a-uuid"]), _cursor(["2024-01-01T00:00:00Z", 5])):
        with case(cursor):
            assert_problem(await client.get(lists[0], params={"cursor": cursor}), "validation_error", 422, "cursor")
    for cursor in (_cursor(["1"]), _cursor([1.5]), _cursor([True]), _cursor([None])):
        with case(cursor):
            assert_problem(await client.get(lists[1], params={"cursor": cursor}), "validation_error", 422, "cursor")


async def test_account_cursor_outside_the_database_range(client: httpx.AsyncClient) -> None:
    """Was a 500: a cursor time PostgreSQL cannot bind (year 1 or 9999 after the offset) failed in asyncpg."""
    for moment in ("9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+12:00", "2024-01-01T00:00:00"):
        cursor = _cursor([moment, str(uuid.uuid4())])
        with case(moment):
            response = await client.get(f"{API}/accounts", params={"cursor": cursor})
            assert_problem(response, "validation_error", 422, "cursor")


async def test_transactions_cursor_beyond_int64(client: httpx.AsyncClient) -> None:
    """Was a 500: a sequence number beyond int64 failed to bind in asyncpg."""
    account = await open_account(client, "1.00")
    for position in (10**20, 2**63, -(2**63) - 1):
        with case(position):
            response = await client.get(f"{API}/accounts/{account['id']}/transactions",
                                        params={"cursor": _cursor([position])})
            assert_problem(response, "validation_error", 422, "cursor")


async def test_user_id_filter_with_nul_is_a_validation_error(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(f"{API}/accounts", params={"user_id": "a\x00"}), "validation_error", 422, "user_id")


async def test_invalid_idempotency_key(client: httpx.AsyncClient) -> None:
    source, destination = await open_account(client, "10.00"), await open_account(client)
    body = transfer_body(source["id"], destination["id"], "1.00")
    for idempotency_key in (b"x" * 256, b"", "caf\u00e9".encode(), "\u2603".encode(), b"tab\there"):
        with case(idempotency_key[:20]):
            response = await client.post(f"{API}/transfers", json=body, headers={b"Idempotency-Key": idempotency_key})
            assert_problem(response, "validation_error", 422, "Idempotency-Key")
    assert await balance(client, source["id"]) == "10.00"
    response = await transfer(client, source["id"], destination["id"], "1.00", idempotency_key="k" * 255)
    assert response.status_code == 201, "a 255-character key is valid: " + response.text


# -- idempotency_key_missing 400 / idempotency_key_reused 422 -------------------------------------------------------

async def test_idempotency_key_missing(client: httpx.AsyncClient) -> None:
    source, destination = await open_account(client, "10.00"), await open_account(client)
    body = transfer_body(source["id"], destination["id"], "1.00")
    assert_problem(await client.post(f"{API}/transfers", json=body), "idempotency_key_missing", 400)
    assert_problem(await client.post(f"{API}/payments", json={"payment_type": "internal_transfer", **body}),
                   "idempotency_key_missing", 400)
    assert await balance(client, source["id"]) == "10.00"


async def test_idempotency_key_reused(client: httpx.AsyncClient) -> None:
    source, destination = await open_account(client, "10.00"), await open_account(client)
    used = key()
    assert (await transfer(client, source["id"], destination["id"], "1.00", idempotency_key=used)).status_code == 201
    for label, response in (
        ("other amount", await transfer(client, source["id"], destination["id"], "2.00", idempotency_key=used)),
        ("other accounts", await transfer(client, destination["id"], source["id"], "1.00", idempotency_key=used)),
        ("extra field", await transfer(client, source["id"], destination["id"], "1.00", idempotency_key=used,
                                       description="different")),
        ("other path", await client.post(f"{API}/payments", headers={"Idempotency-Key": used}, json={
            "payment_type": "internal_transfer", **transfer_body(source["id"], destination["id"], "1.00")})),
    ):
        with case(label):
            assert_problem(response, "idempotency_key_reused", 422)
    assert await balance(client, source["id"]) == "9.00"


# -- unauthorized 401 / forbidden 403 -------------------------------------------------------------------------------

async def test_unauthorized(stack: Stack, api_key: str) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as anonymous:
        for authorization in (None, "", "Bearer", "Bearer pk_unknown_key", "Basic dXNlcjpwYXNz", f"Token {api_key}",
                              api_key, f"Bearer {api_key}x", f"Bearer{api_key}"):
            headers = {} if authorization is None else {"Authorization": authorization}
            requests: tuple[tuple[str, str, dict[str, Any]], ...] = (
                ("GET", f"{API}/accounts", {}),
                ("GET", f"{API}/accounts/{uuid.uuid4()}", {}),
                ("POST", f"{API}/accounts", {"json": {"user_id": "a", "currency": "USD"}}),
                ("POST", f"{API}/transfers", {"content": b"{", "headers": {**headers, "Idempotency-Key": key()}}),
            )
            for method, path, options in requests:
                with case((authorization, method, path)):
                    response = await anonymous.request(method, path, **{"headers": headers, **options})
                    assert_problem(response, "unauthorized", 401)
        lower = await anonymous.get(f"{API}/accounts", headers={"Authorization": f"bearer {api_key}"})
        assert lower.status_code == 200, "the auth scheme is case-insensitive (RFC 9110)"


async def test_forbidden(stack: Stack, services: Services, client: httpx.AsyncClient) -> None:
    source, destination = await open_account(client, "10.00"), await open_account(client)
    tenant = await services.pool.fetchval("SELECT name FROM tenants t JOIN accounts a ON a.tenant_id = t.id "
                                           "WHERE a.id = $1", uuid.UUID(source["id"]))
    reader = await new_api_key(services, tenant=tenant, scopes=("read",))
    writer = await new_api_key(services, tenant=tenant, scopes=("write",))
    body = transfer_body(source["id"], destination["id"], "1.00")
    async with httpx.AsyncClient(base_url=stack.base_url, headers={"Authorization": f"Bearer {reader}"}) as http:
        assert (await http.get(f"{API}/accounts/{source['id']}")).status_code == 200, "reading needs only `read`"
        for label, response in (
            ("account", await http.post(f"{API}/accounts", json={"user_id": "a", "currency": "USD"})),
            ("transfer", await http.post(f"{API}/transfers", json=body, headers={"Idempotency-Key": key()})),
            ("payment", await http.post(f"{API}/payments", json={"payment_type": "internal_transfer", **body},
                                        headers={"Idempotency-Key": key()})),
        ):
            with case(label):
                assert_problem(response, "forbidden", 403)
    async with httpx.AsyncClient(base_url=stack.base_url, headers={"Authorization": f"Bearer {writer}"}) as http:
        for path in (f"{API}/accounts", f"{API}/accounts/{source['id']}", f"{API}/accounts/{source['id']}/balance",
                     f"{API}/accounts/{source['id']}/transactions"):
            with case(path):
                assert_problem(await http.get(path), "forbidden", 403)
        assert (await http.post(f"{API}/transfers", json=body, headers={"Idempotency-Key": key()})).status_code == 201
    assert len((await client.get(f"{API}/accounts")).json()["data"]) == 2
    assert await balance(client, source["id"]) == "9.00"


# -- not_found 404 --------------------------------------------------------------------------------------------------

async def test_not_found(client: httpx.AsyncClient) -> None:
    paths = [f"{API}/{resource}" for resource in ("accounts/{}", "accounts/{}/balance", "accounts/{}/transactions",
                                                  "payments/{}", "payments/{}/events")]
    for missing in (str(uuid.uuid4()), "not-a-uuid", "123", "%00", "01a2163a-8262-73b3-a940-d0dd04cac06",
                    "01a2163a-8262-73b3-a940-d0dd04cac060x"):
        for path in paths:
            with case(path.format(missing)):
                assert_problem(await client.get(path.format(missing)), "not_found", 404)
    for path in ("/api/v1/nothing", "/api/v1", "/api/v2/accounts", "/nothing", "/api/v1/accounts/x/y",
                 "/api/v1/transfers/123", "/api/v1/payments/x/refunds/y/z"):
        with case(path):
            assert_problem(await client.get(path), "not_found", 404)
    account = await open_account(client, "10.00")
    assert_problem(await transfer(client, account["id"], str(uuid.uuid4()), "1.00"), "not_found", 404)
    assert_problem(await transfer(client, str(uuid.uuid4()), account["id"], "1.00"), "not_found", 404)
    assert await balance(client, account["id"]) == "10.00"


async def test_the_type_of_a_problem_resolves(client: httpx.AsyncClient) -> None:
    """API.md §1: a problem's `type` is a page of the same server (HTML by default, JSON on request)."""
    problem = assert_problem(await client.get(f"{API}/accounts/{uuid.uuid4()}"), "not_found", 404)
    page = await client.get(problem["type"])
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert "Not found" in page.text and "404" in page.text
    described = await client.get(problem["type"], headers={"Accept": "application/json"})
    assert described.status_code == 200
    assert {k: described.json()[k] for k in ("slug", "title", "status")} == {
        "slug": "not_found", "title": problem["title"], "status": 404}
    listed = (await client.get("/problems", headers={"Accept": "application/json"})).json()["data"]
    assert "not_found" in [item["slug"] for item in listed]


async def test_system_accounts_are_not_found(client: httpx.AsyncClient, services: Services) -> None:
    """The tenant's funding account exists (it paid the initial balance) but is nobody's to read or move."""
    account = await open_account(client, "10.00")
    funding = await services.pool.fetchval(
        "SELECT id FROM accounts WHERE kind = 'funding' AND tenant_id = (SELECT tenant_id FROM accounts WHERE id = $1)",
        uuid.UUID(account["id"]))
    assert funding is not None
    for path in (f"accounts/{funding}", f"accounts/{funding}/balance", f"accounts/{funding}/transactions"):
        with case(path):
            assert_problem(await client.get(f"{API}/{path}"), "not_found", 404)
    assert_problem(await transfer(client, str(funding), account["id"], "1.00"), "not_found", 404)
    assert_problem(await transfer(client, account["id"], str(funding), "1.00"), "not_found", 404)
    assert [item["id"] for item in (await client.get(f"{API}/accounts")).json()["data"]] == [account["id"]]
    assert await balance(client, account["id"]) == "10.00"


async def test_wrong_method_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete(f"{API}/accounts")
    assert response.status_code == 405 and response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["request_id"] == response.headers["x-request-id"]
    assert "GET" in response.headers.get("Allow", "")
    on_one = await client.put(f"{API}/payments/{uuid.uuid4()}")  # a route with a path parameter (issue 13)
    assert on_one.status_code == 405 and on_one.headers["content-type"].startswith("application/problem+json")
    assert [method.strip() for method in on_one.headers["Allow"].split(",")] == ["GET", "HEAD", "OPTIONS"]


# -- business rules: insufficient_funds, currency_mismatch, same_account 422 ----------------------------------------

async def test_insufficient_funds(client: httpx.AsyncClient) -> None:
    source, destination, empty = [await open_account(client, opening) for opening in ("10.00", None, None)]
    assert_problem(await transfer(client, source["id"], destination["id"], "10.01"), "insufficient_funds", 422)
    assert_problem(await transfer(client, empty["id"], destination["id"], "0.01"), "insufficient_funds", 422)
    assert await balance(client, source["id"]) == "10.00"
    assert (await transfer(client, source["id"], destination["id"], "10.00")).status_code == 201
    assert_problem(await transfer(client, source["id"], destination["id"], "0.01"), "insufficient_funds", 422)
    assert (await balance(client, source["id"]), await balance(client, destination["id"])) == ("0.00", "10.00")


async def test_currency_mismatch(client: httpx.AsyncClient) -> None:
    eur_a, eur_b = await open_account(client, "10.00", currency="EUR"), await open_account(client, currency="EUR")
    usd = await open_account(client, "10.00")
    for label, response in (
        ("EUR accounts, USD transfer", await transfer(client, eur_a["id"], eur_b["id"], "1.00", "USD")),
        ("USD to EUR in USD", await transfer(client, usd["id"], eur_b["id"], "1.00", "USD")),
        ("EUR to USD in EUR", await transfer(client, eur_a["id"], usd["id"], "1.00", "EUR")),
    ):
        with case(label):
            assert_problem(response, "currency_mismatch", 422)
    for account, expected in ((eur_a, "10.00"), (eur_b, "0.00"), (usd, "10.00")):
        assert await balance(client, account["id"]) == expected


async def test_same_account(client: httpx.AsyncClient) -> None:
    account = await open_account(client, "10.00")
    assert_problem(await transfer(client, account["id"], account["id"], "1.00"), "same_account", 422)
    entries = (await client.get(f"{API}/accounts/{account['id']}/transactions")).json()["data"]
    assert [entry["amount"] for entry in entries] == ["10.00"]


# -- payload_too_large 413 ------------------------------------------------------------------------------------------

def _padded_account(size: int) -> bytes:
    body = b'{"user_id": "big", "currency": "USD"}'
    return body[:-1] + b" " * (size - len(body)) + b"}"


async def test_payload_too_large(client: httpx.AsyncClient, stack: Stack, api_key: str) -> None:
    exact = await client.post(f"{API}/accounts", content=_padded_account(65536),
                              headers={"Content-Type": "application/json"})
    assert exact.status_code == 201, "a body of exactly 64 KiB is allowed: " + exact.text
    response = await client.post(f"{API}/accounts", content=_padded_account(65537),
                                 headers={"Content-Type": "application/json", "X-Request-ID": "too-big-1"})
    assert_problem(response, "payload_too_large", 413)
    assert response.headers["x-request-id"] == "too-big-1"
    body = b'{"user_id": "big", "currency": "USD", "metadata": {"k": "' + b"v" * 70_000 + b'"}}'
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 4096]), body[i:i + 4096]) for i in range(0, len(body), 4096))
    chunked = await raw_http(stack.base_url, b"POST /api/v1/accounts HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n"
                             b"Authorization: Bearer " + api_key.encode() + b"\r\nContent-Type: application/json\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
    assert_problem(chunked, "payload_too_large", 413)
    assert [account["user_id"] for account in (await client.get(f"{API}/accounts")).json()["data"]] == ["big"]


# -- nothing is ever a 500 ------------------------------------------------------------------------------------------

ODD_REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/api/v1/accounts", {"content": b"\x00\x01\x02"}),
    ("POST", "/api/v1/accounts", {"content": b'{"user_id": "a", "currency": "USD", "initial_balance": 1e999999999}'}),
    ("POST", "/api/v1/accounts", {"content": b'{"user_id": "a", "currency": "USD", "initial_balance": 1e-999999999}'}),
    ("POST", "/api/v1/accounts", {"content": b'{"user_id": "a", "currency": "USD", "initial_balance": '
                                  + b"9" * 5000 + b"}"}),
    ("POST", "/api/v1/accounts", {"content": b'{"user_id": "a", "currency": "USD", "metadata": {"k": '
                                  + b"[" * 900 + b"]" * 900 + b"}}"}),
    ("POST", "/api/v1/accounts", {"content": b'{"user_id": "a", "currency": "USD"}',
                                  "headers": {"Content-Type": "text/plain"}}),
    ("POST", "/api/v1/transfers", {"content": b'{"amount": "1"}', "headers": {"Idempotency-Key": "odd-1"}}),
    ("POST", "/api/v1/transfers", {"content": b'{"source_account_id": "\\u0000"}',
                                   "headers": {"Idempotency-Key": "odd-0"}}),
    ("POST", "/api/v1/payments", {"json": {"payment_type": "teleport"}, "headers": {"Idempotency-Key": "odd-2"}}),
    ("POST", "/api/v1/payments", {"json": [], "headers": {"Idempotency-Key": "odd-3"}}),
    ("GET", "/api/v1/accounts?limit=%ZZ&cursor=%FF", {}),
    ("GET", "/api/v1/accounts?user_id=%ED%A0%80", {}),
    ("GET", "/api/v1/accounts?limit=&cursor=", {}),
    ("GET", "/api/v1/accounts/%00/balance", {}),
    ("PUT", "/api/v1/transfers", {"json": {}}),
    ("PATCH", "/api/v1/accounts", {"json": {}}),
    ("OPTIONS", "/api/v1/accounts", {}),
    ("HEAD", "/api/v1/accounts", {}),
    ("GET", "/docs/static/%2e%2e/%2e%2e/app.py", {}),
    ("GET", "/docs/static/nothing.js", {}),
]


async def test_odd_requests_never_get_a_server_error(client: httpx.AsyncClient) -> None:
    for method, path, options in ODD_REQUESTS:
        with case((method, path, options)):
            response = await client.request(method, path, **options)
            assert response.status_code < 500, response.text
            assert response.headers.get("x-request-id")
            if response.status_code >= 400 and method != "HEAD":
                assert response.headers["content-type"].startswith("application/problem+json"), response.headers
                assert "Traceback" not in response.text


@pytest.mark.parametrize(("path", "params", "bad"), [
    ("/api/v1/accounts", {"userid": "alice"}, ["userid"]),
    ("/api/v1/accounts", {"user_id": ""}, ["user_id"]),
    ("/api/v1/accounts", {"limit": "5", "page": "2", "offset": "3"}, ["offset", "page"]),
])
async def test_unknown_or_blank_query_parameters_are_refused(
    client: httpx.AsyncClient, path: str, params: dict[str, str], bad: list[str]
) -> None:
    response = await client.get(path, params=params)
    assert_problem(response, "validation_error", 422, *bad)


async def test_unknown_query_parameter_on_a_single_resource(client: httpx.AsyncClient) -> None:
    account = await open_account(client, "1.00")
    response = await client.get(f"{API}/accounts/{account['id']}", params={"expand": "ledger"})
    assert_problem(response, "validation_error", 422, "expand")
