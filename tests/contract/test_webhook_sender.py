"""The `WebhookSender` port: one suite over the in-memory fake and the aiohttp sender.

The aiohttp sender posts to a real local receiver (`tests.receiver`); the fake records its posts and
answers from its script, the in-memory stand-in for what a receiver would do.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

import pytest

from adapters.memory.webhooks import FixedResolver, InMemoryWebhookSender
from adapters.webhook_sender import HttpWebhookSender
from tests.receiver import Receiver

pytestmark = pytest.mark.timeout(60)

BODY = '{"type":"payment.completed","note":"é ☃"}'.encode() + b"\x00\xff"
HEADERS = {"Content-Type": "application/json", "Payments-Signature": "t=1,v1=abc",
           "X-Custom": "a value; with=Symbols, CASE"}


class MemoryEndpoint:
    """The fake sender and its script: a path answers with status codes, a stall, or a refusal."""

    def __init__(self) -> None:
        self.sender = InMemoryWebhookSender()
        self.guarded = InMemoryWebhookSender(resolver=FixedResolver({"hooks.internal": ["10.0.0.7"]}),
                                             allow_private=False)

    def url(self, path: str) -> str:
        return f"https://hooks.example.com{path}"

    def private_url(self, path: str) -> str:
        return f"https://hooks.internal{path}"

    def answer(self, path: str, *statuses: int) -> None:
        self.sender.answers[self.url(path)] = list(statuses)

    def stall(self, path: str, within: float) -> None:
        self.sender.answers[self.url(path)] = [f"timed out after {within:g} s"]

    def refusing_url(self, path: str) -> str:
        url = f"https://refusing.example.com{path}"
        self.sender.answers[url] = ["ConnectError: connection refused"]
        return url

    def received(self, path: str) -> list[tuple[bytes, dict[str, str]]]:
        sent = [*self.sender.sent, *self.guarded.sent]
        return [(s.body, {k.lower(): v for k, v in s.headers.items()}) for s in sent
                if s.url in (self.url(path), self.private_url(path))]

    def release(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class HttpEndpoint:
    """`HttpWebhookSender` and a local HTTP receiver; a stalled path is held until the test ends."""

    def __init__(self) -> None:
        self.receiver = Receiver().start()
        self.sender = HttpWebhookSender(allow_private=True)
        self.guarded = HttpWebhookSender(allow_private=False)
        self.held = threading.Event()

    def url(self, path: str) -> str:
        return self.receiver.url(path)

    def private_url(self, path: str) -> str:
        return self.receiver.url(path)  # 127.0.0.1: loopback

    def answer(self, path: str, *statuses: int) -> None:
        self.receiver.script[path] = list(statuses)

    def stall(self, path: str, within: float) -> None:
        self.receiver.script[path] = [self.held]

    def refusing_url(self, path: str) -> str:
        return f"http://127.0.0.1:1{path}"  # nothing listens on port 1

    def received(self, path: str) -> list[tuple[bytes, dict[str, str]]]:
        return [(r.body, r.headers) for r in self.receiver.at(path)]

    def release(self) -> None:
        self.held.set()

    async def aclose(self) -> None:
        self.held.set()
        await self.sender.aclose()
        await self.guarded.aclose()
        self.receiver.stop()


@pytest.fixture(params=["memory", "http"])
async def endpoint(request: pytest.FixtureRequest) -> AsyncIterator[MemoryEndpoint | HttpEndpoint]:
    made = MemoryEndpoint() if request.param == "memory" else HttpEndpoint()
    try:
        yield made
    finally:
        await made.aclose()


@pytest.mark.parametrize("status", [200, 201, 204, 299])
async def test_a_2xx_is_success(endpoint, status: int) -> None:
    endpoint.answer("/ok", status)
    result = await endpoint.sender.post(endpoint.url("/ok"), b"{}", {}, within=10)
    assert (result.ok, result.status_code, result.error) == (True, status, None)


async def test_the_body_and_headers_arrive_exactly_as_given(endpoint) -> None:
    result = await endpoint.sender.post(endpoint.url("/exact"), BODY, HEADERS, within=10)
    assert result.ok
    ((body, headers),) = endpoint.received("/exact")
    assert body == BODY
    assert {name: headers.get(name.lower()) for name in HEADERS} == HEADERS


@pytest.mark.parametrize("status", [300, 400, 404, 410, 500, 503])
async def test_any_other_status_is_a_failure_with_its_code(endpoint, status: int) -> None:
    endpoint.answer("/fail", status)
    result = await endpoint.sender.post(endpoint.url("/fail"), b"{}", {}, within=10)
    assert (result.ok, result.status_code) == (False, status)
    assert (result.error or "").startswith(f"HTTP {status}"), result.error


async def test_answers_are_per_post(endpoint) -> None:
    endpoint.answer("/flaky", 503, 500, 204)
    results = [await endpoint.sender.post(endpoint.url("/flaky"), b"{}", {}, within=10) for _ in range(4)]
    assert [(r.ok, r.status_code) for r in results] == [(False, 503), (False, 500), (True, 204), (True, 204)]
    assert len(endpoint.received("/flaky")) == 4


async def test_a_redirect_is_not_followed(endpoint) -> None:
    endpoint.answer("/moved", 302)
    result = await endpoint.sender.post(endpoint.url("/moved"), b"{}", {}, within=10)
    assert (result.ok, result.status_code) == (False, 302)
    assert len(endpoint.received("/moved")) == 1
    assert endpoint.received("/redirected") == []


async def test_a_receiver_that_does_not_answer_in_time_is_a_timeout_result(endpoint) -> None:
    endpoint.stall("/slow", 0.3)
    # The real receiver holds its answer until the test releases it, so the post can only have come back
    # by giving up on its own: a result, not an exception, and not a status.
    result = await endpoint.sender.post(endpoint.url("/slow"), b"{}", {}, within=0.3)
    endpoint.release()
    assert (result.ok, result.status_code, result.error) == (False, None, "timed out after 0.3 s")
    assert len(endpoint.received("/slow")) == 1  # it was sent; the answer is what never came


async def test_a_refused_connection_is_an_error_result(endpoint) -> None:
    result = await endpoint.sender.post(endpoint.refusing_url("/x"), b"{}", {}, within=10)
    assert (result.ok, result.status_code) == (False, None)
    assert result.error and "ConnectError" in result.error


async def test_a_private_destination_is_refused_before_anything_is_sent(endpoint) -> None:
    result = await endpoint.guarded.post(endpoint.private_url("/private"), b"{}", {}, within=10)
    assert (result.ok, result.status_code) == (False, None)
    assert (result.error or "").startswith("refused: "), result.error
    assert endpoint.received("/private") == []
