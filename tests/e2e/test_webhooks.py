"""Webhooks end to end: the API, a real worker process and a real local receiver verifying signatures."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from app.http.operations import openapi_document
from payments.client import InvalidSignature, construct_event
from tests.e2e.conftest import Payments, Process, start_api
from tests.e2e.helpers import open_account
from tests.e2e.payflow import pay, settled
from tests.receiver import Received, Receiver

pytestmark = pytest.mark.usefixtures("payments_stack", "no_server_errors")
API = "/api/v1"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


async def subscribe(client: httpx.AsyncClient, url: str, events: list[str], **extra: Any) -> dict[str, Any]:
    answer = await client.post(f"{API}/webhooks", json={"url": url, "events": events, **extra})
    assert answer.status_code == 201, answer.text
    hook: dict[str, Any] = answer.json()
    return hook


async def received(receiver: Receiver, path: str, count: int) -> list[Received]:
    return await asyncio.to_thread(receiver.wait, path, count, 30.0)


async def log_of(client: httpx.AsyncClient, hook_id: str, *, status: str | None = None,
                 timeout: float = 30) -> list[dict[str, Any]]:
    """The delivery log, once every delivery in it has left `pending` (or has `status`)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        entries: list[dict[str, Any]] = (await client.get(f"{API}/webhooks/{hook_id}/deliveries")).json()["data"]
        if entries and all(e["status"] == status if status else e["status"] != "pending" for e in entries):
            return entries
        assert asyncio.get_running_loop().time() < deadline, f"deliveries still pending: {entries}"
        await asyncio.sleep(0.05)


def signed_by(secret: str, request: Received) -> bool:
    """The delivery checks out as a receiver using the Python client would check it."""
    try:
        event = construct_event(request.body, request.headers.get("payments-signature"), secret)
    except InvalidSignature:
        return False
    return event.id == request.headers["payments-event-id"]


async def test_a_payment_is_delivered_signed_to_the_subscriptions_that_hear_it(
    client: httpx.AsyncClient, receiver: Receiver,
) -> None:
    completed = await subscribe(client, receiver.url("/completed"), ["payment.completed"], description="orders")
    everything = await subscribe(client, receiver.url("/all"), ["*"])
    refunds = await subscribe(client, receiver.url("/refunds"), ["refund.succeeded"])
    assert completed["secret"].startswith("whsec_") and completed["description"] == "orders"
    source = await open_account(client, "50.00")
    request_id = f"req-{secrets.token_hex(6)}"
    client.headers["X-Request-ID"] = request_id
    created = await pay(client, source["id"])
    del client.headers["X-Request-ID"]
    assert created.status_code == 202, created.text
    payment = await settled(client, created.json()["id"])
    assert payment["status"] == "completed"

    (hit,) = await received(receiver, "/completed", 1)
    body = json.loads(hit.body)
    assert body["type"] == "payment.completed" and body["data"]["object"]["id"] == payment["id"]
    assert body["data"]["object"]["status"] == "completed" and set(body) == {"id", "type", "created_at", "data"}
    assert hit.headers["payments-event-id"] == body["id"]
    assert hit.headers["x-request-id"] == request_id  # the request that caused it
    assert hit.headers["content-type"] == "application/json"
    assert signed_by(completed["secret"], hit) and not signed_by(everything["secret"], hit)
    # as the OpenAPI document's `webhooks` section describes it
    document = openapi_document("test")
    jsonschema.validate(body, {"$ref": "#/components/schemas/WebhookEvent", "components": document["components"]})
    for header in document["webhooks"]["event"]["post"]["parameters"]:
        value = hit.headers[header["name"].lower()]
        assert re.fullmatch(header["schema"].get("pattern", ".+"), value), (header["name"], value)

    types = ["account.created", "payment.created", "payment.processing", "payment.completed"]
    hits = await received(receiver, "/all", len(types))
    assert sorted(json.loads(h.body)["type"] for h in hits) == sorted(types)
    assert all(signed_by(everything["secret"], h) for h in hits)
    log = await log_of(client, everything["id"])
    assert {(e["event_type"], e["status"], e["attempts"], e["last_status_code"]) for e in log} == {
        (t, "succeeded", 1, 200) for t in types}
    assert receiver.at("/refunds") == []  # the event filter
    assert (await client.get(f"{API}/webhooks/{refunds['id']}/deliveries")).json() == {
        "data": [], "has_more": False, "next_cursor": None}


async def test_failures_are_retried_with_the_same_event_id_until_success(
    client: httpx.AsyncClient, receiver: Receiver,
) -> None:
    receiver.script["/flaky"] = [500, 503, 204]
    hook = await subscribe(client, receiver.url("/flaky"), ["account.created"])
    await open_account(client, "1.00")
    hits = await received(receiver, "/flaky", 3)
    assert len({h.headers["payments-event-id"] for h in hits}) == 1
    assert [h.headers["payments-delivery-attempt"] for h in hits] == ["1", "2", "3"]
    assert all(signed_by(hook["secret"], h) for h in hits)
    assert hits[1].at - hits[0].at >= 0.15  # backoff from config (200 ms, then 400 ms)
    (entry,) = await log_of(client, hook["id"])
    assert (entry["status"], entry["attempts"], entry["last_status_code"], entry["last_error"],
            entry["next_attempt_at"]) == ("succeeded", 3, 204, None, None)
    assert entry["delivered_at"] is not None


async def test_a_delivery_gives_up_then_is_redelivered_by_hand(
    client: httpx.AsyncClient, receiver: Receiver,
) -> None:
    receiver.script["/down"] = [500, 1.5, 500]  # the second answer comes after the 1 s timeout
    hook = await subscribe(client, receiver.url("/down"), ["account.created"])
    await open_account(client, "1.00")
    await received(receiver, "/down", 3)
    (entry,) = await log_of(client, hook["id"])
    assert (entry["status"], entry["attempts"], entry["last_status_code"], entry["next_attempt_at"]) == (
        "failed", 3, 500, None)
    assert entry["last_error"].startswith("HTTP 500")
    await asyncio.sleep(0.6)  # longer than the whole backoff schedule: nothing more is sent by itself
    assert len(receiver.at("/down")) == 3

    receiver.script["/down"] = [200]
    retry = await client.post(f"{API}/webhooks/{hook['id']}/deliveries/{entry['id']}/retry")
    assert retry.status_code == 202 and retry.json()["status"] == "pending"
    hits = await received(receiver, "/down", 4)
    assert len({h.headers["payments-event-id"] for h in hits}) == 1
    (entry,) = await log_of(client, hook["id"], status="succeeded")
    assert (entry["attempts"], entry["last_status_code"]) == (4, 200)
    missing = await client.post(f"{API}/webhooks/{hook['id']}/deliveries/{hook['id']}/retry")
    assert missing.status_code == 404


async def test_rotating_the_secret_signs_with_both_while_the_old_one_is_valid(
    client: httpx.AsyncClient, receiver: Receiver,
) -> None:
    hook = await subscribe(client, receiver.url("/rotate"), ["account.created"])
    rotated = await client.post(f"{API}/webhooks/{hook['id']}/rotate-secret")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["secret"].startswith("whsec_") and new["secret"] != hook["secret"]
    assert new["previous_secret_expires_at"] is not None
    shown = (await client.get(f"{API}/webhooks/{hook['id']}")).json()
    assert "secret" not in shown and shown["previous_secret_expires_at"] == new["previous_secret_expires_at"]
    await open_account(client, "1.00")
    (hit,) = await received(receiver, "/rotate", 1)
    assert hit.headers["payments-signature"].count("v1=") == 2
    assert signed_by(hook["secret"], hit) and signed_by(new["secret"], hit)


async def test_rotated_out_secrets_stop_signing_when_the_overlap_ends(
    payments_stack: Payments, api_key: str, receiver: Receiver, tmp_path: Path, database_url: str, redis_url: str,
) -> None:
    base_url, api = start_api(database_url, redis_url, tmp_path / "api.log", PAYMENTS_WEBHOOKS_SECRET_OVERLAP="1s")
    try:
        async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}) as client:
            hook = await subscribe(client, receiver.url("/expire"), ["account.created"])
            new = (await client.post(f"{API}/webhooks/{hook['id']}/rotate-secret")).json()
            await asyncio.sleep(1.2)
            await open_account(client, "1.00")
            (hit,) = await received(receiver, "/expire", 1)
    finally:
        api.stop()
    assert hit.headers["payments-signature"].count("v1=") == 1
    assert signed_by(new["secret"], hit) and not signed_by(hook["secret"], hit)


async def test_subscriptions_are_managed_and_validated(client: httpx.AsyncClient, receiver: Receiver) -> None:
    hook = await subscribe(client, receiver.url("/crud"), ["payment.completed"])
    patched = await client.patch(f"{API}/webhooks/{hook['id']}",
                                 json={"events": ["refund.created", "refund.failed"], "enabled": False,
                                       "description": "later"})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["events"], patched.json()["enabled"], patched.json()["description"]) == (
        ["refund.created", "refund.failed"], False, "later")
    assert "secret" not in patched.json()
    cleared = await client.patch(f"{API}/webhooks/{hook['id']}", json={"description": None})
    assert cleared.json()["description"] is None and cleared.json()["events"] == ["refund.created", "refund.failed"]
    listed = (await client.get(f"{API}/webhooks", params={"limit": 100})).json()
    assert [h["id"] for h in listed["data"]] == [hook["id"]] and "secret" not in listed["data"][0]

    bad = [
        ({"url": receiver.url(), "events": ["payment.exploded"]}, "events"),
        ({"url": receiver.url(), "events": []}, "events"),
        ({"url": receiver.url(), "events": "payment.completed"}, "events"),
        ({"url": "ftp://example.com/x", "events": ["*"]}, "url"),
        ({"url": "not a url", "events": ["*"]}, "url"),
        ({"url": "http://127.1/x", "events": ["*"]}, "url"),  # the sender takes IPv4 in dotted decimal only
        ({"events": ["*"]}, "url"),
        ({"url": receiver.url(), "events": ["*"], "enabled": "yes"}, "enabled"),
        ({"url": receiver.url(), "events": ["*"], "secret": "whsec_mine"}, "secret"),
    ]
    for body, field in bad:
        answer = await client.post(f"{API}/webhooks", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert field in [e["field"] for e in answer.json()["errors"]], (body, answer.text)
    for body in ({"url": None}, {"events": None}, {"enabled": None}, {"events": ["nope"]}):
        answer = await client.patch(f"{API}/webhooks/{hook['id']}", json=body)
        assert answer.status_code == 422, (body, answer.text)
    assert (await client.get(f"{API}/webhooks", params={"limit": 100})).json()["data"][0]["events"] == [
        "refund.created", "refund.failed"]  # nothing changed

    assert (await client.delete(f"{API}/webhooks/{hook['id']}")).status_code == 204
    assert (await client.get(f"{API}/webhooks/{hook['id']}")).status_code == 404
    assert (await client.delete(f"{API}/webhooks/{hook['id']}")).status_code == 404
    assert (await client.get(f"{API}/webhooks/{hook['id']}/deliveries")).status_code == 404


async def test_another_tenants_webhook_looks_missing(
    client: httpx.AsyncClient, receiver: Receiver, payments_stack: Payments,
) -> None:
    from tests.conftest import new_api_key

    hook = await subscribe(client, receiver.url("/mine"), ["account.created"])
    other_key = await new_api_key(payments_stack.services)
    async with httpx.AsyncClient(base_url=payments_stack.base_url,
                                 headers={"Authorization": f"Bearer {other_key}"}) as other:
        theirs = await subscribe(other, receiver.url("/theirs"), ["account.created"])
        await open_account(other, "1.00")
        await open_account(client, "1.00")
        (mine,) = await log_of(client, hook["id"])
        (their_delivery,) = await log_of(other, theirs["id"])
        for method, path in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/rotate-secret"),
                             ("GET", "/deliveries"), ("POST", f"/deliveries/{mine['id']}/retry")):
            answer = await other.request(method, f"{API}/webhooks/{hook['id']}{path}",
                                         json={} if method == "PATCH" else None)
            assert answer.status_code == 404, (method, path, answer.text)
            assert answer.json()["type"] == "/problems/not_found"
        # their delivery under my webhook, or under theirs with my key: missing too
        for hook_id in (hook["id"], theirs["id"]):
            answer = await client.post(f"{API}/webhooks/{hook_id}/deliveries/{their_delivery['id']}/retry")
            assert answer.status_code == 404, answer.text
    hits = await received(receiver, "/mine", 1)
    await asyncio.sleep(0.3)
    assert len(receiver.at("/mine")) == len(hits) == 1  # only its own tenant's event
    assert len(receiver.at("/theirs")) == 1
    assert mine["attempts"] == their_delivery["attempts"] == 1


async def test_slow_receivers_leave_the_worker_free_for_payments(
    client: httpx.AsyncClient, receiver: Receiver,
) -> None:
    """The session worker has 4 threads and 2 webhook slots: ten deliveries each answered just under the
    1 s timeout take at least 5 s, and a payment made meanwhile still completes before they are done."""
    receiver.script["/slow"] = [0.9]
    await subscribe(client, receiver.url("/slow"), ["account.created"])
    for _ in range(10):
        await open_account(client)
    source = await open_account(client, "10.00")  # the eleventh slow delivery
    await asyncio.to_thread(receiver.wait, "/slow", 1, 30.0)  # the slow deliveries have begun
    payment = await settled(client, (await pay(client, source["id"], "1.00")).json()["id"])
    assert payment["status"] == "completed"
    assert len(receiver.at("/slow")) < 11, "the payment waited for the webhooks"
    await asyncio.to_thread(receiver.wait, "/slow", 11, 60.0)  # and every delivery still arrives


async def test_private_urls_are_refused_unless_allowed(
    api_key: str, tmp_path: Path, database_url: str, redis_url: str, client: httpx.AsyncClient,
) -> None:
    # created where private URLs are allowed (the session's API), under an Idempotency-Key
    first = await client.post(f"{API}/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["*"]},
                              headers={"Idempotency-Key": "hook-1"})
    assert first.status_code == 201, first.text
    base_url, api = start_api(database_url, redis_url, tmp_path / "api.log",
                              PAYMENTS_WEBHOOKS_ALLOW_PRIVATE_URLS="false")
    try:
        async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}) as client:
            # the same request again replays the first answer, though this API would refuse the URL now
            replay = await client.post(f"{API}/webhooks", json={"url": "http://127.0.0.1:9/x", "events": ["*"]},
                                       headers={"Idempotency-Key": "hook-1"})
            assert (replay.status_code, replay.content) == (201, first.content)
            assert replay.headers["idempotent-replayed"] == "true"
            assert (await client.delete(f"{API}/webhooks/{first.json()['id']}")).status_code == 204
            for url in ("http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]/hook",
                        "http://10.0.0.1/hook", "http://192.168.1.20/hook", "http://169.254.169.254/latest/meta-data",
                        "http://0.0.0.0/hook", "http://[::ffff:127.0.0.1]/hook", "https://no-such-host.invalid/x"):
                answer = await client.post(f"{API}/webhooks", json={"url": url, "events": ["*"]})
                assert answer.status_code == 422, (url, answer.text)
                assert answer.json()["errors"][0]["field"] == "url"
            hook_url = "http://8.8.8.8/hook"  # public: accepted (never delivered to in this test)
            created = await client.post(f"{API}/webhooks", json={"url": hook_url, "events": ["refund.failed"]})
            assert created.status_code == 201, created.text
            moved = await client.patch(f"{API}/webhooks/{created.json()['id']}", json={"url": "http://127.0.0.1/x"})
            assert moved.status_code == 422
            assert (await client.delete(f"{API}/webhooks/{created.json()['id']}")).status_code == 204
    finally:
        api.stop()
    assert isinstance(api, Process)


async def test_a_worker_refuses_to_deliver_to_a_private_address(
    admin_database_url: str, tmp_path: Path, receiver: Receiver,
) -> None:
    """Allowed when subscribed (say the name pointed elsewhere then), refused by the worker when sending."""
    from tests.conftest import new_api_key_for_url
    from tests.e2e.isolated import isolated_stack

    with isolated_stack(admin_database_url, tmp_path,
                        worker_env={"PAYMENTS_WEBHOOKS_ALLOW_PRIVATE_URLS": "false"}) as stack:
        key = await new_api_key_for_url(stack.database_url)
        async with httpx.AsyncClient(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"}) as client:
            hook = await subscribe(client, receiver.url("/guarded"), ["account.created"])
            await open_account(client, "1.00")
            (entry,) = await log_of(client, hook["id"], status="failed")
    assert entry["attempts"] == 3 and entry["last_status_code"] is None
    assert entry["last_error"].startswith("refused: 127.0.0.1 resolves to a private")
    assert receiver.at("/guarded") == []
