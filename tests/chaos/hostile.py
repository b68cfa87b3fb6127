"""Hostile input fired at a stack under load: malformed and oversized bodies, out-of-range money, injection-shaped
strings, bad keys and headers, raw protocol garbage, and one Idempotency-Key raced by concurrent requests.

Each answer must be a 4xx problem (a GET may be a 200), never a 5xx; a hostile write never succeeds; the raced
key moves money once. tests/e2e/test_errors.py holds the slug-by-slug checks on a quiet stack; its request
lists are reused here."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from typing import Any

import attrs
import httpx

from tests.chaos.load import Load, Transfer
from tests.e2e.helpers import API, raw_http, transfer_body
from tests.e2e.test_errors import MALFORMED, ODD_REQUESTS

RACERS = 8  # concurrent requests sharing one Idempotency-Key
JSON = {"Content-Type": "application/json"}


@attrs.frozen
class Answer:
    label: str
    status: int  # -1: the server closed the connection without an answer (fine for protocol garbage)
    problem: bool  # the body is application/problem+json
    write: bool  # a POST that must not have succeeded


def _writes(a: str, b: str) -> list[tuple[str, Any]]:
    """Transfer bodies that must each be refused, between the load's real accounts `a` and `b`."""
    body = transfer_body(a, b, "1.00")
    return [(f"amount {amount!r}", {**body, "amount": amount}) for amount in (
        "1e3", "-1.00", "0", "0.001", "NaN", "Infinity", "90071992547409.92", 2**63, True, None, {"$gt": 0}, [1])] + [
        ("same account", {**body, "destination_account_id": a}),
        ("unknown destination", {**body, "destination_account_id": str(uuid.uuid4())}),
        ("injection as id", {**body, "source_account_id": "' OR 1=1 --"}),
        ("lower-case currency", {**body, "currency": "usd"}),
        ("currency mismatch", {**body, "currency": "EUR"}),
        ("fund code", {**body, "currency": "XAU"}),
        ("long description", {**body, "description": "x" * 5000}),
        ("NUL in description", {**body, "description": "a\x00b"}),
        ("lone surrogate", {**body, "description": "\ud800"}),
        ("too much metadata", {**body, "metadata": {f"k{i}": "v" for i in range(50)}}),
        ("nested metadata", {**body, "metadata": {"k": {"deep": ["x"]}}}),
        ("unknown field", {**body, "overdraft": "yes"}),
    ]


def _requests(load: Load) -> list[tuple[str, str, str, dict[str, Any], bool]]:
    """(label, method, path, httpx options, is a write) for every hostile HTTP request."""
    a, b = load.pool[0], load.pool[1]
    paid = next(iter(load.observed.payments), str(uuid.uuid4()))

    def keyed(**options: Any) -> dict[str, Any]:
        headers = {"Idempotency-Key": f"hostile-{secrets.token_hex(8)}", **options.pop("headers", {})}
        return {**options, "headers": headers}

    # json.dumps escapes what httpx's own encoder cannot send (a lone surrogate)
    cases = [(label, "POST", f"{API}/transfers", keyed(content=json.dumps(body).encode(), headers=JSON), True)
             for label, body in _writes(a, b)]
    cases += [(f"malformed {body[:20]!r}", "POST", f"{API}/transfers",
               keyed(content=body, headers=JSON), True) for body in MALFORMED]
    # odd, not all hostile: one of them (a JSON body sent as text/plain) is accepted, by design
    cases += [(f"odd {method} {path}", method, path, options, False) for method, path, options in ODD_REQUESTS]
    cases += [
        ("key of 300 characters", "POST", f"{API}/transfers",
         {"json": transfer_body(a, b, "1.00"), "headers": {"Idempotency-Key": "k" * 300}}, True),
        ("oversized body", "POST", f"{API}/payments", keyed(content=b'{"a": "' + b"x" * 70_000 + b'"}'), True),
        ("unknown provider", "POST", f"{API}/payments", keyed(json={
            "payment_type": "external_payment", "source_account_id": a, "amount": "1.00", "currency": "USD",
            "provider": "stripe\x00"}), True),
        ("refund of nothing", "POST", f"{API}/payments/{uuid.uuid4()}/refund", keyed(json={}), True),
        ("refund too large", "POST", f"{API}/payments/{paid}/refund", keyed(json={"amount": "99999999.00"}), True),
        ("negative refund", "POST", f"{API}/payments/{paid}/refund", keyed(json={"amount": "-5"}), True),
        ("cancel of nothing", "POST", f"{API}/payments/{uuid.uuid4()}/cancel", {}, True),
        ("webhook to nowhere", "POST", f"{API}/webhooks", {"json": {"url": "not a url", "events": ["*"]}}, True),
        ("webhook, unknown event", "POST", f"{API}/webhooks", {"json": {"url": "http://x.test", "events": ["x"]}},
         True),
        ("webhook, huge url", "POST", f"{API}/webhooks",
         {"json": {"url": "http://x.test/" + "a" * 10_000, "events": ["*"]}}, True),
        ("filters out of range", "GET", f"{API}/payments?status=bogus&limit=1000&created_after=yesterday", {}, False),
        ("path of 5000 characters", "GET", f"{API}/accounts/{'a' * 5000}", {}, False),
        ("traversal", "GET", f"{API}/accounts/..%2f..%2fetc%2fpasswd", {}, False),
        ("bad request id", "GET", f"{API}/accounts", {"headers": {"X-Request-ID": "a b;" * 100}}, False),
        ("huge bearer", "GET", f"{API}/accounts", {"headers": {"Authorization": "Bearer " + "A" * 6000}}, False),
        ("forged key", "POST", f"{API}/transfers",
         keyed(json=transfer_body(a, b, "1.00"), headers={"Authorization": "Bearer sk_" + "0" * 43}), True),
    ]
    return cases


def _raw(load: Load) -> list[tuple[str, bytes]]:
    auth = str(load.client.headers["Authorization"]).encode()
    return [
        ("garbage request line", b"GARBAGE\r\n\r\n"),
        ("huge header", b"GET /api/v1/accounts HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000
         + b"\r\nConnection: close\r\n\r\n"),
        ("bad content length", b"POST /api/v1/transfers HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth
         + b"\r\nContent-Length: abc\r\nConnection: close\r\n\r\n"),
        ("length and chunked", b"POST /api/v1/transfers HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth
         + b"\r\nIdempotency-Key: smuggle\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
           b"Connection: close\r\n\r\n0\r\n\r\n"),
        ("HTTP/1.0 without host", b"GET /api/v1/accounts HTTP/1.0\r\n\r\n"),
    ]


async def _send(load: Load, label: str, method: str, path: str, options: dict[str, Any], write: bool) -> Answer:
    try:
        response = await load.client.request(method, path, **options)
    except httpx.TransportError:
        return Answer(label, -1, False, write)
    problem = response.headers.get("content-type", "").startswith("application/problem+json")
    return Answer(label, response.status_code, problem, write)


async def _send_raw(load: Load, label: str, request: bytes) -> Answer:
    try:
        async with asyncio.timeout(15):
            response = await raw_http(str(load.client.base_url).rstrip("/"), request)
    except (OSError, IndexError, ValueError, TimeoutError):
        return Answer(label, -1, False, True)
    return Answer(label, response.status_code, True, True)


async def battery(load: Load) -> list[Answer]:
    """Every hostile request once, two at a time (the load goes on meanwhile)."""
    gate = asyncio.Semaphore(2)

    async def gated(label: str, method: str, path: str, options: dict[str, Any], write: bool) -> Answer:
        async with gate:
            return await _send(load, label, method, path, options, write)

    answers = await asyncio.gather(*(gated(*case) for case in _requests(load)))
    return [*answers, *[await _send_raw(load, label, request) for label, request in _raw(load)]]


async def raced_key(load: Load) -> list[str]:
    """RACERS concurrent transfers with one Idempotency-Key: the ids of their 201 answers (replays included)."""
    source, destination = load.pool[0], load.pool[1]
    key = f"raced-{secrets.token_hex(8)}"
    body = transfer_body(source, destination, "0.07")
    answers = await asyncio.gather(*(load.send("raced", f"{API}/transfers", body, key=key) for _ in range(RACERS)))
    ids = [a.json()["id"] for a in answers if a is not None and a.status_code == 201]
    for payment_id in set(ids):
        load.observed.transfers[payment_id] = Transfer(payment_id, source, destination, 7)
    return ids


def judge(answers: list[Answer]) -> list[str]:
    """What in `answers` breaks the contract."""
    problems = [f"{a.label}: {a.status}" for a in answers if a.status >= 500]
    problems += [f"{a.label}: accepted ({a.status})" for a in answers if a.write and 200 <= a.status < 300]
    problems += [f"{a.label}: {a.status} is not problem+json" for a in answers
                 if 400 <= a.status < 500 and not a.problem]
    return problems
