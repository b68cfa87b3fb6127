"""The Python client against a fake API on a real socket: requests, typed answers, errors, retries, paging."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import httpx
import pytest

import core.signatures
from app.http.schemas.accounts import Account
from app.http.schemas.payments import Payment
from app.http.schemas.webhooks import WebhookEvent
from core.payments import PaymentStatus
from payments.client import (
    AsyncClient,
    BatchFailed,
    Client,
    InsufficientFunds,
    InvalidSignature,
    InvalidStateTransition,
    NotFound,
    RateLimited,
    Retries,
    ServerError,
    ServiceUnavailable,
    ValidationError,
    construct_event,
    verify_signature,
)
from payments.client.retries import retry_after
from tests.unit.fake_api import Answer, FakeApi, problem, sample, serve_fake

PAYMENT = sample(Payment)
ACCOUNT = sample(Account)
A, B = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    yield from serve_fake()


class Sleeps(list[float]):
    """Records the waits between tries instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def client(fake: FakeApi, sleeps: Sleeps, **kwargs: object) -> Client:
    return Client(fake.url, "sk_test", sleep=sleeps, **kwargs)  # type: ignore[arg-type]


def transfer(c: Client, **kwargs: object) -> Payment:
    return c.transfers.create(source_account_id=A, destination_account_id=B, amount="12.34", currency="USD",
                              **kwargs)  # type: ignore[arg-type]


def test_a_transfer_is_sent_as_declared_and_answered_as_a_typed_payment(fake: FakeApi) -> None:
    fake.answer(Answer(201, {**PAYMENT, "status": "completed", "amount": "12.34"}))
    with client(fake, Sleeps()) as c:
        payment = transfer(c, metadata={"order": "7"})
    assert isinstance(payment, Payment)
    assert payment.status is PaymentStatus.COMPLETED and payment.amount == "12.34"
    [seen] = fake.seen
    assert (seen.method, seen.path) == ("POST", "/api/v1/transfers")
    assert seen.headers["authorization"] == "Bearer sk_test"
    assert seen.headers["content-type"] == "application/json"
    assert uuid.UUID(seen.headers["idempotency-key"])
    assert seen.json() == {"source_account_id": A, "destination_account_id": B, "amount": "12.34",
                           "currency": "USD", "metadata": {"order": "7"}}


def test_a_retried_write_repeats_its_idempotency_key_and_body(fake: FakeApi) -> None:
    fake.answer(problem("service_unavailable", 503, retry_after="2"),
                problem("idempotency_request_in_progress", 409, retry_after="1"),
                problem("rate_limited", 429, retry_after="3"),
                Answer(201, PAYMENT))
    sleeps = Sleeps()
    with client(fake, sleeps, retries=Retries(attempts=4)) as c:
        assert transfer(c).id == PAYMENT["id"]
    assert sleeps == [2.0, 1.0, 3.0]  # Retry-After, honoured each time
    assert len(fake.seen) == 4
    assert len({seen.headers["idempotency-key"] for seen in fake.seen}) == 1
    assert len({seen.body for seen in fake.seen}) == 1


def test_every_logical_call_has_its_own_key_unless_the_caller_gives_one(fake: FakeApi) -> None:
    fake.answer(Answer(201, PAYMENT))
    with client(fake, Sleeps()) as c:
        transfer(c)
        transfer(c)
        transfer(c, idempotency_key="order-7-payout")
    keys = [seen.headers["idempotency-key"] for seen in fake.seen]
    assert keys[0] != keys[1] and keys[2] == "order-7-payout"


def test_a_lost_connection_is_retried_under_the_same_key(fake: FakeApi) -> None:
    fake.answer(Answer(0, drop=True), Answer(201, PAYMENT))
    sleeps = Sleeps()
    with client(fake, sleeps) as c:
        transfer(c)
    assert len(fake.seen) == 2 and len(sleeps) == 1 and 0 <= sleeps[0] <= 0.5  # jittered backoff, first step
    assert fake.seen[0].headers["idempotency-key"] == fake.seen[1].headers["idempotency-key"]


def test_a_timed_out_write_is_retried_under_the_same_key() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            raise httpx.ReadTimeout("no answer in time", request=request)
        return httpx.Response(201, json=PAYMENT)

    http = httpx.Client(transport=httpx.MockTransport(answer))
    with Client("http://api.test", "sk_test", http=http, sleep=Sleeps()) as c:
        transfer(c)
    assert len(seen) == 2 and seen[0].headers["idempotency-key"] == seen[1].headers["idempotency-key"]
    assert seen[0].content == seen[1].content


def test_a_state_conflict_is_raised_at_once_not_retried(fake: FakeApi) -> None:
    fake.answer(problem("invalid_state_transition", 409))
    sleeps = Sleeps()
    with client(fake, sleeps) as c, pytest.raises(InvalidStateTransition) as raised:
        c.payments.cancel(A)
    assert len(fake.seen) == 1 and sleeps == []
    error = raised.value
    assert (error.type, error.title, error.status, error.detail, error.code, error.request_id) == (
        "/problems/invalid_state_transition", "invalid state transition", 409, "detail of invalid_state_transition",
        "invalid_state_transition", "req-1")


def test_attempts_are_bounded(fake: FakeApi) -> None:
    fake.answer(problem("service_unavailable", 503, retry_after="1"))
    sleeps = Sleeps()
    with client(fake, sleeps, retries=Retries(attempts=3)) as c, pytest.raises(ServiceUnavailable) as raised:
        c.accounts.get(A)
    assert len(fake.seen) == 3 and sleeps == [1.0, 1.0] and raised.value.retry_after == 1.0


def test_a_retry_after_beyond_the_limit_is_not_waited_out(fake: FakeApi) -> None:
    fake.answer(problem("rate_limited", 429, retry_after="3600"))
    sleeps = Sleeps()
    with client(fake, sleeps) as c, pytest.raises(RateLimited):
        c.accounts.get(A)
    assert len(fake.seen) == 1 and sleeps == []


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after(format_datetime(now + timedelta(seconds=5), usegmt=True), now) == 5.0
    assert retry_after("soon", now) is None and retry_after(None) is None


@pytest.mark.parametrize(("answer", "kind"), [
    (problem("validation_error", 422, errors=[{"field": "amount", "message": "must be > 0"}]), ValidationError),
    (problem("insufficient_funds", 422), InsufficientFunds),
    (problem("not_found", 404), NotFound),
    (problem("batch_failed", 422, errors=[{"index": 1, "type": "/problems/same_account", "title": "t",
                                           "status": 422, "detail": "d"}]), BatchFailed),
])
def test_problems_are_raised_as_their_types(fake: FakeApi, answer: Answer, kind: type[Exception]) -> None:
    fake.answer(answer)
    with client(fake, Sleeps()) as c, pytest.raises(kind) as raised:
        transfer(c)
    assert len(fake.seen) == 1
    error = raised.value
    if isinstance(error, ValidationError):
        assert [(e.field, e.message) for e in error.errors] == [("amount", "must be > 0")]
    if isinstance(error, BatchFailed):
        assert [(e.index, e.type) for e in error.errors] == [(1, "/problems/same_account")]


def test_an_answer_that_is_not_a_problem_keeps_its_status(fake: FakeApi) -> None:
    fake.answer(Answer(502, b"<html>bad gateway</html>", {"Content-Type": "text/html"}))
    with client(fake, Sleeps()) as c, pytest.raises(ServerError) as raised:
        c.accounts.get(A)
    assert (raised.value.status, raised.value.type) == (502, "about:blank") and len(fake.seen) == 1


def test_iterate_follows_the_cursor_through_every_page(fake: FakeApi) -> None:
    first, second = {**ACCOUNT, "id": A}, {**ACCOUNT, "id": B}
    fake.answer(Answer(200, {"data": [first], "has_more": True, "next_cursor": "c1"}),
                Answer(200, {"data": [second], "has_more": False, "next_cursor": None}))
    with client(fake, Sleeps()) as c:
        ids = [account.id for account in c.accounts.iterate(status="active", metadata={"tier": "gold"})]
    assert ids == [A, B]
    assert [dict(seen.query) for seen in fake.seen] == [
        {"status": "active", "metadata[tier]": "gold", "limit": "100"},
        {"status": "active", "metadata[tier]": "gold", "limit": "100", "cursor": "c1"}]


def test_list_answers_one_typed_page_and_times_are_sent_as_utc(fake: FakeApi) -> None:
    fake.answer(Answer(200, {"data": [PAYMENT], "has_more": True, "next_cursor": "c1"}))
    after = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with client(fake, Sleeps()) as c:
        page = c.payments.list(created_after=after, limit=1)
    assert isinstance(page.data[0], Payment) and page.has_more and page.next_cursor == "c1"
    assert dict(fake.seen[0].query) == {"created_after": "2026-01-02T03:04:05Z", "limit": "1"}


def test_amounts_are_exact_and_never_floats(fake: FakeApi) -> None:
    fake.answer(Answer(201, PAYMENT))
    with client(fake, Sleeps()) as c:
        c.transfers.create(source_account_id=A, destination_account_id=B, amount=Decimal("0.10"), currency="USD")
        with pytest.raises(TypeError, match="float"):
            c.transfers.create(source_account_id=A, destination_account_id=B, amount=0.1,  # type: ignore[arg-type]
                               currency="USD")
    assert [seen.json()["amount"] for seen in fake.seen] == ["0.10"]


def test_the_verifier_is_the_servers_and_constructs_the_event() -> None:
    assert verify_signature is core.signatures.verify_signature
    event = sample(WebhookEvent)
    body = json.dumps(event).encode()
    header = core.signatures.sign(["whsec_1"], body, int(datetime.now(UTC).timestamp()))
    received = construct_event(body, header, "whsec_1")
    assert isinstance(received, WebhookEvent) and received.id == event["id"]
    with Client("http://api.test", "sk") as c:
        assert c.webhooks.construct_event(body, header, "whsec_1") == received
    stale = core.signatures.sign(["whsec_1"], body, int(datetime.now(UTC).timestamp()) - 301)
    for signature, secret in ((header, "whsec_other"), (stale, "whsec_1"), (None, "whsec_1"), ("t=1", "whsec_1")):
        with pytest.raises(InvalidSignature):
            construct_event(body, signature, secret)


async def test_the_async_client_retries_under_one_key_too(fake: FakeApi) -> None:
    fake.answer(problem("service_unavailable", 503, retry_after="0"), Answer(201, PAYMENT))
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async with AsyncClient(fake.url, "sk_test", sleep=sleep) as c:
        payment = await c.transfers.create(source_account_id=A, destination_account_id=B, amount="1.00",
                                           currency="USD")
        fake.answer(Answer(200, {"data": [PAYMENT], "has_more": False, "next_cursor": None}))
        fake.script.popleft()
        listed = [p.id async for p in c.payments.iterate()]
    assert payment.id == listed[0] == PAYMENT["id"] and waits == [0.0]
    assert fake.seen[0].headers["idempotency-key"] == fake.seen[1].headers["idempotency-key"]


def test_a_transport_error_that_would_recur_is_not_retried() -> None:
    sleeps = Sleeps()
    with Client("ftp://api.test", "sk_test", sleep=sleeps) as c, pytest.raises(httpx.UnsupportedProtocol):
        c.accounts.get(A)
    assert sleeps == []
