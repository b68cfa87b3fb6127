"""Helpers shared by the e2e tests: problem checks, accounts, transfers and ledger walks over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Process

API = "/api/v1"
PROBLEM_JSON = "application/problem+json"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
UUID_TEXT = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

ACCOUNT_KEYS = {"id", "user_id", "currency", "balance", "available_balance", "overdraft_limit", "status", "version",
                "metadata", "created_at", "updated_at"}
BALANCE_KEYS = {"account_id", "currency", "balance", "available_balance", "held", "version", "as_of"}
ENTRY_KEYS = {"id", "account_id", "payment_id", "type", "amount", "balance_after", "currency", "created_at", "hash"}
PAYMENT_KEYS = {
    "id", "payment_type", "status", "source_account_id", "destination_account_id", "amount", "currency", "provider",
    "provider_reference", "refunded_amount", "failure_code", "failure_reason", "description", "metadata", "created_at",
    "updated_at",
    "completed_at",
}
MINOR_DIGITS = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}


@contextlib.contextmanager
def case(label: object) -> Iterator[None]:
    """Prefix an assertion failure inside the block with the case it checked."""
    try:
        yield
    except AssertionError as error:
        raise AssertionError(f"[{label}] {error}") from error


async def raw_http(base_url: str, request: bytes) -> httpx.Response:
    """Send `request` as raw bytes on a new connection; the response it gets, read until the server closes."""
    url = httpx.URL(base_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(request)
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = [(name.strip(), value.strip()) for name, _, value in (line.partition(":") for line in header_lines)]
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=body)


def key() -> str:
    """A fresh Idempotency-Key."""
    return f"e2e-{secrets.token_hex(8)}"


def assert_problem(response: httpx.Response, slug: str, status: int, *fields: str) -> dict[str, Any]:
    """`response` is the RFC 9457 problem `slug` with `status`; `fields` must be named in its `errors`."""
    assert response.status_code == status, f"expected {status} {slug}, got {response.status_code}: {response.text}"
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM_JSON, response.headers
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{slug}", body
    assert isinstance(body["title"], str) and body["title"], body
    assert body["status"] == status, body
    assert isinstance(body["detail"], str) and body["detail"], body
    assert body["request_id"] == response.headers["x-request-id"], (body, response.headers)
    assert "Traceback" not in response.text
    errors = body.get("errors")
    if errors is not None:
        assert isinstance(errors, list) and errors, body
        for error in errors:
            assert set(error) == {"field", "message"}, error
            assert isinstance(error["field"], str) and isinstance(error["message"], str) and error["message"]
    named = {error["field"] for error in errors or []}
    for field in fields:
        assert any(name == field or name.startswith(f"{field}.") for name in named), (field, body)
    return body


def assert_money(text: object, currency: str) -> Decimal:
    """`text` is an amount string with exactly the currency's minor-unit digits; its exact value."""
    assert isinstance(text, str), text
    digits = MINOR_DIGITS[currency]
    pattern = r"^-?\d+$" if digits == 0 else rf"^-?\d+\.\d{{{digits}}}$"
    assert re.match(pattern, text), (text, currency)
    return Decimal(text)


async def open_account(
    client: httpx.AsyncClient, balance: object = None, *, currency: str = "USD", user_id: str = "user",
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"user_id": user_id, "currency": currency}
    if balance is not None:
        body["initial_balance"] = balance
    if metadata is not None:
        body["metadata"] = metadata
    response = await client.post(f"{API}/accounts", json=body)
    assert response.status_code == 201, response.text
    account: dict[str, Any] = response.json()
    return account


def transfer_body(source: str, destination: str, amount: object, currency: str = "USD", **extra: Any) -> dict[str, Any]:
    return {"source_account_id": source, "destination_account_id": destination, "amount": amount,
            "currency": currency, **extra}


async def transfer(
    client: httpx.AsyncClient, source: str, destination: str, amount: object, currency: str = "USD",
    *, idempotency_key: str | None = None, **extra: Any,
) -> httpx.Response:
    return await client.post(f"{API}/transfers", json=transfer_body(source, destination, amount, currency, **extra),
                             headers={"Idempotency-Key": idempotency_key or key()})


async def balance(client: httpx.AsyncClient, account_id: str) -> str:
    response = await client.get(f"{API}/accounts/{account_id}/balance")
    assert response.status_code == 200, response.text
    value: str = response.json()["balance"]
    return value


async def all_pages(client: httpx.AsyncClient, path: str, *, limit: int, params: dict[str, str] | None = None,
                    ) -> list[dict[str, Any]]:
    """Every item of a list endpoint, following `next_cursor` until it is null."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(10_000):
        query = {**(params or {}), "limit": str(limit), **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"data", "has_more", "next_cursor"}, page
        assert page["has_more"] is (page["next_cursor"] is not None), page
        assert len(page["data"]) <= limit
        items += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert isinstance(cursor, str) and cursor and page["data"], page
    raise AssertionError("pagination did not end")


def verified_hash(entry: dict[str, Any], previous: str) -> str:
    """The entry's `hash`, after checking it as a client can, from the API's JSON alone and docs/design.md
    ("Tamper-evident entries"): SHA-256 over the previous hash and the fields joined by `|`, amounts in minor units
    (the decimal point removed), no payment as "", `created_at` as shown. Written from the document, not core."""
    minor = [str(int(entry[name].replace(".", ""))) for name in ("amount", "balance_after")]
    text = "|".join([previous, entry["id"], entry["account_id"], entry["payment_id"] or "", entry["type"], *minor,
                     entry["currency"], entry["created_at"]])
    assert entry["hash"] == hashlib.sha256(text.encode()).hexdigest(), ("the hash does not chain", entry)
    return str(entry["hash"])


async def ledger_of(client: httpx.AsyncClient, account: dict[str, Any], *, limit: int = 100) -> list[dict[str, Any]]:
    """The account's entries oldest first, after checking they chain to its current balance and each entry's hash
    chains from the previous one's (API.md §4)."""
    newest_first = await all_pages(client, f"{API}/accounts/{account['id']}/transactions", limit=limit)
    current = (await client.get(f"{API}/accounts/{account['id']}/balance")).json()
    currency = account["currency"]
    entries = list(reversed(newest_first))
    assert len({entry["id"] for entry in entries}) == len(entries), "an entry was listed twice"
    running, previous = Decimal(0), "0" * 64
    for entry in entries:
        assert set(entry) == ENTRY_KEYS, entry
        previous = verified_hash(entry, previous)
        assert entry["account_id"] == account["id"] and entry["currency"] == currency
        amount = assert_money(entry["amount"], currency)
        assert amount != 0 and entry["type"] == ("credit" if amount > 0 else "debit"), entry
        running += amount
        assert assert_money(entry["balance_after"], currency) == running, ("balance_after does not chain", entry)
        assert running >= 0, "a user account went negative"
    assert assert_money(current["balance"], currency) == running, "balance differs from the sum of its entries"
    assert current["version"] == len(entries), "version differs from the number of entries"
    return entries


def metric_samples(text: str, sample_name: str) -> list[tuple[dict[str, str], float]]:
    return [(dict(sample.labels), sample.value) for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name == sample_name]


def server_errors(metrics_text: str) -> float:
    """How many 5xx responses the process has counted."""
    return sum(value for labels, value in metric_samples(metrics_text, "http_requests_total")
               if labels.get("status", "").startswith("5"))


async def wait_live(base_url: str, process: Process, timeout: float = 30) -> None:
    """Poll /health/live until the process answers (it may never become ready)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base_url, timeout=1) as http:
        while time.monotonic() < deadline:
            assert process.popen is not None
            if process.popen.poll() is not None:
                raise AssertionError(f"server exited early:\n{process.output()[-4000:]}")
            try:
                if (await http.get("/health/live")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError(f"server not live in {timeout}s:\n{process.output()[-4000:]}")
