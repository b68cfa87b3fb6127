"""The events feed over HTTP (API.md §11): the whole stack, a real worker, webhooks to a real local receiver."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from app.bootstrap import Services
from app.http.operations import openapi_document
from tests.conftest import new_api_key
from tests.e2e.conftest import Stack
from tests.e2e.helpers import API, assert_problem, case, open_account, transfer
from tests.e2e.payflow import pay, settled
from tests.receiver import Receiver

pytestmark = pytest.mark.usefixtures("payments_stack", "no_server_errors")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


async def follow(client: httpx.AsyncClient, *, after: str | None = None, limit: int = 100,
                 **params: str) -> list[dict[str, Any]]:
    """Every event visible now after `after`, as a poller reads them: `after` = the last id, while `has_more`."""
    found: list[dict[str, Any]] = []
    while True:
        query = {**params, "limit": str(limit), **({"after": after} if after else {})}
        answer = await client.get(f"{API}/events", params=query)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        found += page["data"]
        assert page["has_more"] == (page["next_cursor"] is not None)
        if not page["has_more"]:
            return found
        after = page["data"][-1]["id"]
        assert page["next_cursor"] == after


async def feed_until(client: httpx.AsyncClient, count: int, timeout: float = 30, **params: str
                     ) -> list[dict[str, Any]]:
    """The feed once it holds `count` events (the worker's events commit a little later than the request's)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while len(events := await follow(client, **params)) < count:
        assert asyncio.get_running_loop().time() < deadline, [e["type"] for e in events]
        await asyncio.sleep(0.05)
    return events


async def test_the_feed_is_the_tenants_history_as_webhooks_deliver_it(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    answer = await client.post(f"{API}/webhooks", json={"url": receiver.url("/all"), "events": ["*"]})
    assert answer.status_code == 201, answer.text
    alice, bob = await open_account(client, "100.00", user_id="alice"), await open_account(client, user_id="bob")
    moved = await transfer(client, alice["id"], bob["id"], "30.00")
    assert moved.status_code == 201, moved.text
    created = await pay(client, alice["id"], "20.00")
    assert created.status_code == 202, created.text
    await settled(client, created.json()["id"])
    refunded = await client.post(f"{API}/payments/{moved.json()['id']}/refund", json={},
                                 headers={"Idempotency-Key": secrets.token_hex(8)})
    assert refunded.status_code == 201, refunded.text

    expected = ["account.created", "account.created", "transfer.completed", "payment.created", "payment.processing",
                "payment.completed", "refund.succeeded", "payment.refunded"]
    events = await feed_until(client, len(expected))
    assert [e["type"] for e in events] == expected  # oldest first, in commit order
    objects = [e["data"]["object"]["id"] for e in events]
    assert objects == [alice["id"], bob["id"], moved.json()["id"], *[created.json()["id"]] * 3,
                       refunded.json()["id"], moved.json()["id"]]
    assert events[5]["data"]["object"]["status"] == "completed"  # the object as it was after that event
    document = openapi_document("test")
    page = (await client.get(f"{API}/events")).json()
    jsonschema.validate(page, {"$ref": "#/components/schemas/EventPage", "components": document["components"]})

    # the same body, byte for byte, as the webhook delivery of the same event
    hits = await asyncio.to_thread(receiver.wait, "/all", len(expected), 30.0)
    delivered = {json.loads(hit.body)["id"]: hit.body for hit in hits}
    assert set(delivered) == {e["id"] for e in events}
    for event in events:
        one = await client.get(f"{API}/events/{event['id']}")
        assert one.status_code == 200 and one.content == delivered[event["id"]], (one.content, event["id"])
        assert json.loads(one.content) == event

    # pages of two, followed with after (or with the cursor), give the same sequence
    assert await follow(client, limit=2) == events
    first = (await client.get(f"{API}/events", params={"limit": "3"})).json()
    rest = (await client.get(f"{API}/events", params={"cursor": first["next_cursor"], "limit": "100"})).json()
    assert first["data"] + rest["data"] == events and rest["has_more"] is False and rest["next_cursor"] is None
    assert await follow(client, after=events[-1]["id"]) == []

    # one type only
    assert await follow(client, type="payment.completed") == [events[5]]
    assert await follow(client, type="account.created", after=events[0]["id"]) == [events[1]]
    assert await follow(client, type="hold.created") == []  # in the catalogue; none yet


async def test_what_the_feed_refuses(client: httpx.AsyncClient, stack: Stack, services: Services) -> None:
    mine = await open_account(client)
    (event,) = await feed_until(client, 1)
    other = await new_api_key(services)
    async with httpx.AsyncClient(base_url=stack.base_url, headers={"Authorization": f"Bearer {other}"}) as them:
        await open_account(them)
        (theirs,) = await feed_until(them, 1)
        assert_problem(await them.get(f"{API}/events/{event['id']}"), "not_found", 404)  # another tenant's
        body = assert_problem(await them.get(f"{API}/events", params={"after": event["id"]}),
                              "validation_error", 422, "after")
        assert body["errors"] == [{"field": "after", "message": body["errors"][0]["message"]}]
    assert event["data"]["object"]["id"] == mine["id"]
    assert_problem(await client.get(f"{API}/events/{uuid.uuid4()}"), "not_found", 404)
    for label, params, status, slug, field in (
        ("unknown after", {"after": str(uuid.uuid4())}, 422, "validation_error", "after"),
        ("another tenant's after", {"after": theirs["id"]}, 422, "validation_error", "after"),
        ("unknown cursor", {"cursor": str(uuid.uuid4())}, 422, "validation_error", "cursor"),
        ("malformed after", {"after": "yesterday"}, 422, "validation_error", "after"),
        ("malformed cursor", {"cursor": "bm90IGEgY3Vyc29y"}, 422, "validation_error", "cursor"),
        ("after and cursor", {"after": event["id"], "cursor": event["id"]}, 422, "validation_error", "cursor"),
        ("unknown type", {"type": "payment.exploded"}, 422, "validation_error", "type"),
        ("internal type", {"type": "payment.late_charge_detected"}, 422, "validation_error", "type"),
        ("limit", {"limit": "0"}, 422, "validation_error", "limit"),
        ("unknown parameter", {"since": event["id"]}, 422, "validation_error", "since"),
    ):
        with case(label):
            assert_problem(await client.get(f"{API}/events", params=params), slug, status, field)
    tenant = await services.pool.fetchval("SELECT name FROM tenants t JOIN accounts a ON a.tenant_id = t.id "
                                          "WHERE a.id = $1", uuid.UUID(mine["id"]))
    writer = await new_api_key(services, tenant=tenant, scopes=("write",))
    async with httpx.AsyncClient(base_url=stack.base_url, headers={"Authorization": f"Bearer {writer}"}) as http:
        assert_problem(await http.get(f"{API}/events"), "forbidden", 403)
        assert_problem(await http.get(f"{API}/events/{event['id']}"), "forbidden", 403)
    async with httpx.AsyncClient(base_url=stack.base_url) as anonymous:
        assert_problem(await anonymous.get(f"{API}/events"), "unauthorized", 401)


async def test_a_poller_over_http_sees_each_transfer_once_while_they_commit(client: httpx.AsyncClient) -> None:
    """Eight clients transfer at once while a poller follows the feed with `after`: every transfer's event
    arrives exactly once, in the order the feed keeps."""
    pairs = [(await open_account(client, "100.00"), await open_account(client)) for _ in range(8)]
    opened = await feed_until(client, 16)
    after, seen, made = opened[-1]["id"], [], []

    async def writer(source: dict[str, Any], destination: dict[str, Any]) -> None:
        for _ in range(15):
            answer = await transfer(client, source["id"], destination["id"], "1.00")
            assert answer.status_code == 201, answer.text
            made.append(answer.json()["id"])

    writing = asyncio.ensure_future(asyncio.gather(*(writer(a, b) for a, b in pairs)))
    deadline = asyncio.get_running_loop().time() + 60
    while not (writing.done() and len(seen) >= len(made)):
        page = (await client.get(f"{API}/events", params={"after": after, "limit": "5"})).json()
        seen += page["data"]
        after = seen[-1]["id"] if seen else after
        if not page["has_more"]:
            assert asyncio.get_running_loop().time() < deadline, f"{len(seen)} of {len(made)} transfers seen"
            await asyncio.sleep(0.005)
    await writing
    assert len(seen) == len(made) == 120
    assert len({e["id"] for e in seen}) == 120 and sorted(e["data"]["object"]["id"] for e in seen) == sorted(made)
    assert seen == await follow(client, after=opened[-1]["id"])
