"""The client cannot drift from the server: its routes are the declared operations, every one has a method, each
method sends what the server parses, and the synchronous client is exactly the derived asynchronous one."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.http.bodies import parse_body
from app.http.openapi import Operation
from app.http.operations import OPERATIONS
from app.http.problem_types import PROBLEM_TYPES
from payments.client import Client
from payments.client.errors import ApiError, error_class
from payments.client.routes import ROUTES
from payments.client.unasync import derived
from tests.unit.fake_api import sample

U = str(uuid.UUID(int=1))
V = str(uuid.UUID(int=2))
MOVE: dict[str, Any] = {"source_account_id": U, "destination_account_id": V, "amount": "1.50", "currency": "USD"}

#: One call of every public method of every resource, with every optional argument given.
WALK: dict[str, Callable[[Client], object]] = {
    "accounts.create": lambda c: c.accounts.create(user_id="u", currency="USD", initial_balance="10.00",
                                                   metadata={"k": "v"}),
    "accounts.get": lambda c: c.accounts.get(U),
    "accounts.update": lambda c: c.accounts.update(U, metadata={"k": "v"}, status="frozen", overdraft_limit="5"),
    "accounts.list": lambda c: c.accounts.list(user_id="u", status="active", metadata={"k": "v"}, limit=5,
                                               cursor="c"),
    "accounts.iterate": lambda c: list(c.accounts.iterate(user_id="u", status="active", metadata={"k": "v"})),
    "accounts.balance": lambda c: c.accounts.balance(U, at="2026-01-01T00:00:00Z"),
    "accounts.statement": lambda c: c.accounts.statement(U, from_="2026-01-01T00:00:00Z", to="2026-02-01T00:00:00Z"),
    "accounts.statement_csv": lambda c: c.accounts.statement_csv(U, from_="2026-01-01T00:00:00Z",
                                                                 to="2026-02-01T00:00:00Z"),
    "accounts.transactions": lambda c: c.accounts.transactions(U, limit=5, cursor="c"),
    "accounts.iterate_transactions": lambda c: list(c.accounts.iterate_transactions(U)),
    "transfers.create": lambda c: c.transfers.create(**MOVE, description="d", metadata={"k": "v"}),
    "payments.create": lambda c: c.payments.create(payment_type="external_payment", source_account_id=U,
                                                   amount="2", currency="USD", provider="stripe", description="d",
                                                   metadata={"k": "v"}),
    "payments.get": lambda c: c.payments.get(U),
    "payments.list": lambda c: c.payments.list(status="completed", payment_type="internal_transfer", account_id=U,
                                               provider="stripe", created_after="2026-01-01T00:00:00Z",
                                               created_before="2026-02-01T00:00:00Z", metadata={"k": "v"}, limit=5,
                                               cursor="c"),
    "payments.iterate": lambda c: list(c.payments.iterate(status="completed", account_id=U)),
    "payments.cancel": lambda c: c.payments.cancel(U),
    "payments.events": lambda c: c.payments.events(U),
    "refunds.create": lambda c: c.refunds.create(U, amount="1.00", reason="r"),
    "refunds.list": lambda c: c.refunds.list(U, limit=5, cursor="c"),
    "refunds.iterate": lambda c: list(c.refunds.iterate(U)),
    "holds.create": lambda c: c.holds.create(**MOVE, expires_in=600, description="d", metadata={"k": "v"}),
    "holds.get": lambda c: c.holds.get(U),
    "holds.list": lambda c: c.holds.list(account_id=U, status="active", metadata={"k": "v"}, limit=5, cursor="c"),
    "holds.iterate": lambda c: list(c.holds.iterate(account_id=U, status="active", metadata={"k": "v"})),
    "holds.capture": lambda c: c.holds.capture(U, amount="1.00"),
    "holds.void": lambda c: c.holds.void(U),
    "batches.create": lambda c: c.batches.create([{**MOVE, "reference": "r1", "metadata": {"k": "v"}}],
                                                 atomic=False, dry_run=True),
    "batches.get": lambda c: c.batches.get(U),
    "webhooks.create": lambda c: c.webhooks.create(url="https://example.com/h", events=["*"], description="d",
                                                   enabled=False),
    "webhooks.get": lambda c: c.webhooks.get(U),
    "webhooks.list": lambda c: c.webhooks.list(limit=5, cursor="c"),
    "webhooks.iterate": lambda c: list(c.webhooks.iterate()),
    "webhooks.update": lambda c: c.webhooks.update(U, url="https://example.com/h", events=["payment.completed"],
                                                   description="d", enabled=True),
    "webhooks.delete": lambda c: c.webhooks.delete(U),
    "webhooks.rotate_secret": lambda c: c.webhooks.rotate_secret(U),
    "webhooks.deliveries": lambda c: c.webhooks.deliveries(U, limit=5, cursor="c"),
    "webhooks.retry_delivery": lambda c: c.webhooks.retry_delivery(U, V),
    "events.list": lambda c: c.events.list(type="payment.completed", after=U, limit=5, cursor="c"),
    "events.iterate": lambda c: list(c.events.iterate(type="payment.completed", after=U)),
    "events.get": lambda c: c.events.get(U),
    "reconciliations.create": lambda c: c.reconciliations.create(provider="stripe", date="2026-01-01"),
    "reconciliations.get": lambda c: c.reconciliations.get(U),
}
#: Methods that send nothing: checking a webhook delivery is local.
LOCAL = {"webhooks.construct_event"}


def _pattern(op: Operation) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\{[^{}]+\\}", "[^/]+", re.escape(op.path)) + "$")


def _operation(request: httpx.Request) -> Operation:
    found = [op for op in OPERATIONS
             if op.method == request.method.lower() and _pattern(op).match(request.url.path)]
    assert len(found) == 1, (request.method, request.url.path, found)
    return found[0]


def _answer(op: Operation) -> httpx.Response:
    if op.response is None:
        return httpx.Response(op.response_status)
    body = sample(op.response)
    if op.list_response:
        body = {"data": [body], "has_more": False, "next_cursor": None}
    if "has_more" in body:  # the last page (the events feed is a page of its own shape)
        body.update(has_more=False, next_cursor=None)
    return httpx.Response(op.response_status, json=body)


def _check(request: httpx.Request, op: Operation) -> None:
    """What the server would check before its handler runs: the query it accepts, the key it insists on, the
    body its strict parser structures (a field the client sent that the server does not know fails here)."""
    names = {re.sub(r"\[.*\]$", "[]", name) for name, _ in request.url.params.multi_items()}
    assert names <= set(op.query_names), (op.operation_id, names - set(op.query_names))
    assert ("idempotency-key" in request.headers) == (op.idempotency != "none"), op.operation_id
    if request.content:
        assert op.request is not None, op.operation_id
        parse_body(json.loads(request.content), op.request)
    else:
        assert op.request is None or op.body_optional, f"{op.operation_id} needs a body"


def _walk(name: str, queries: dict[str, set[str]] | None = None) -> list[Operation]:
    called: list[Operation] = []

    def answer(request: httpx.Request) -> httpx.Response:
        op = _operation(request)
        _check(request, op)
        called.append(op)
        if queries is not None:
            queries.setdefault(op.operation_id, set()).update(
                re.sub(r"\[.*\]$", "[]", name) for name, _ in request.url.params.multi_items())
        return _answer(op)

    with Client("http://api.test", "sk_test", http=httpx.Client(transport=httpx.MockTransport(answer))) as client:
        WALK[name](client)
    return called


def test_every_route_is_a_declared_operation_and_every_operation_a_route() -> None:
    assert set(ROUTES) == {op.operation_id for op in OPERATIONS}
    for op in OPERATIONS:
        route = ROUTES[op.operation_id]
        assert (route.method, route.path, route.request, route.response, route.list_response, route.idempotency) \
            == (op.method, op.path, op.request, op.response, op.list_response, op.idempotency), op.operation_id


def test_every_public_method_is_walked() -> None:
    with Client("http://api.test", "sk_test") as client:
        methods = {f"{name}.{method}" for name, resource in vars(client).items() if name != "transport"
                   for method in dir(resource) if not method.startswith("_")}
    assert methods - LOCAL == set(WALK)


@pytest.mark.parametrize("name", sorted(WALK))
def test_each_method_sends_what_its_operation_parses_and_reads_its_answer(name: str) -> None:
    assert _walk(name), f"{name} sent nothing"


def test_every_operation_has_a_method() -> None:
    walked = {op.operation_id for name in WALK for op in _walk(name)}
    assert walked == {op.operation_id for op in OPERATIONS}


def test_every_declared_query_parameter_can_be_sent() -> None:
    """A filter the server declares (a new one included) has an argument in the client."""
    sent: dict[str, set[str]] = {}
    for name in WALK:
        _walk(name, sent)
    for op in OPERATIONS:
        assert sent.get(op.operation_id, set()) == set(op.query_names), op.operation_id


def test_every_problem_type_has_an_exception_of_its_status() -> None:
    for slug, kind in PROBLEM_TYPES.items():
        error = error_class(slug, kind.status)
        assert issubclass(error, ApiError)
        assert error_class(slug, kind.status) is not ApiError or kind.status not in {400, 401, 403, 404, 409, 413,
                                                                                      422, 429, 503}, slug


def test_the_sync_client_is_the_derived_async_client() -> None:
    for path, text in derived().items():
        assert path.read_text(encoding="utf-8") == text, f"{path.name} is stale: run python -m payments.client.unasync"
