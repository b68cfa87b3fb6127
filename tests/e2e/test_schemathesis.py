"""Schemathesis against the served /openapi.json: every operation, a few hundred cases each, with a valid key.

Requirement: no 5xx, and every response matches the document (status, content type, headers, body schema).
Schemathesis' examples, coverage and fuzzing phases run, positive and negative, with every built-in check
but `positive_data_acceptance` (see below), plus one of ours: another tenant's ids are never served.

The schema is loaded eagerly from `openapi_document()`, the function that serves /openapi.json, so each
operation is a pytest item of its own; `test_the_served_document_is_the_one_under_test` pins the two
together. (`schemathesis.pytest.from_fixture` would load the URL lazily, but schemathesis 4.32 sets
`Node._nodeid`, which pytest 9.2 no longer has.)

The tenant under test owns accounts in three currencies and a transfer. A `flatmap_case` hook swaps, in
most positive cases, generated ids, currencies, amounts, cursors and idempotency keys for real ones, so
the success paths run with real data, not only 404 and 422. Ids of another tenant are mixed in.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import attrs
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, GenerationMode, HookContext, Response
from schemathesis.core.result import Ok
from schemathesis.generation.hypothesis.builder import ApiOperationMark
from schemathesis.generation.meta import TestPhase

from app.bootstrap import Services
from app.http.operations import OPERATIONS, openapi_document
from app.http.routes.health import VERSION
from core.ids import new_id
from core.webhooks import Delivery
from tests.conftest import new_api_key
from tests.e2e.conftest import Stack

MAX_EXAMPLES = 300

SCHEMA = schemathesis.openapi.from_dict(openapi_document(VERSION))
SCHEMA.config.generation.update(modes=list(GenerationMode))
# A schema-valid request may rightly be refused with 422 (API.md §1): insufficient_funds, currency_mismatch,
# same_account, idempotency_key_reused, a cursor this API never issued. "Valid data is accepted" is not a
# property of this API; the other built-in checks are.
SCHEMA.config.checks.update(excluded_check_names=["positive_data_acceptance"])


@attrs.frozen
class RealData:
    """What the tenant under test, and another tenant, really own."""

    base_url: str
    key: str
    accounts: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    cursors: dict[str, str]  # path template -> a next_cursor it returned
    foreign_accounts: list[dict[str, Any]]
    foreign_payments: list[dict[str, Any]]
    webhooks: list[dict[str, Any]] = attrs.Factory(list)
    foreign_webhooks: list[dict[str, Any]] = attrs.Factory(list)
    deliveries: list[str] = attrs.Factory(list)  # ids of deliveries of webhooks[0]
    events: list[str] = attrs.Factory(list)  # ids of the tenant's events in the feed
    foreign_events: list[str] = attrs.Factory(list)
    batches: list[str] = attrs.Factory(list)  # ids of the tenant's batches
    foreign_batches: list[str] = attrs.Factory(list)
    holds: list[dict[str, Any]] = attrs.Factory(list)
    foreign_holds: list[dict[str, Any]] = attrs.Factory(list)

    @property
    def foreign_ids(self) -> set[str]:
        return {item["id"] for item in [*self.foreign_accounts, *self.foreign_payments, *self.foreign_webhooks,
                                         *self.foreign_holds]} | {
            *self.foreign_events, *self.foreign_batches}


#: The current test's data; the hooks are registered on SCHEMA at import time, the data exists at run time.
CURRENT: list[RealData] = []
#: The holds `_seed_tenant` placed, by its prefix.
HOLDS: dict[str, list[dict[str, Any]]] = {}
#: Valid amounts per currency, as decimal strings and JSON numbers.
AMOUNTS: dict[str, list[Any]] = {"USD": ["1.00", "0.01", 2, "12.5"], "JPY": ["1", 500, "70"],
                                 "KWD": ["0.001", "1.000", "0.25"]}


#: Where seeded webhooks point: a closed port (the session API allows private URLs; nothing listens there).
HOOK_URL = "http://127.0.0.1:9/hook"


def _seed_tenant(base_url: str, key: str, prefix: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                                   list[dict[str, Any]], dict[str, str]]:
    """Accounts (USD with and without a balance, JPY, KWD), one transfer, two webhooks, and a cursor of
    each list."""
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:

        def post(path: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
            response = http.post(path, json=body, headers=headers)
            assert response.status_code == 201, response.text
            return dict(response.json())

        accounts = [
            post("/api/v1/accounts", {"user_id": f"{prefix}-alice", "currency": "USD", "initial_balance": "1000.00"}),
            post("/api/v1/accounts", {"user_id": f"{prefix}-bob", "currency": "USD", "metadata": {"tier": "gold"}}),
            post("/api/v1/accounts", {"user_id": f"{prefix}-carol", "currency": "JPY", "initial_balance": 5000}),
            post("/api/v1/accounts", {"user_id": f"{prefix}-alice", "currency": "KWD", "initial_balance": "1.500"}),
        ]
        transfer = {"source_account_id": accounts[0]["id"], "destination_account_id": accounts[1]["id"],
                    "amount": "30.00", "currency": "USD"}
        payments = [post("/api/v1/transfers", transfer, **{"Idempotency-Key": f"{prefix}-1"}),
                    post("/api/v1/transfers", transfer, **{"Idempotency-Key": f"{prefix}-2"})]
        for n in range(2):  # an internal transfer refunds synchronously: two refunds make a second page
            post(f"/api/v1/payments/{payments[0]['id']}/refund", {"amount": "1.00"},
                 **{"Idempotency-Key": f"{prefix}-refund-{n}"})
        webhooks = [post("/api/v1/webhooks", {"url": HOOK_URL, "events": ["refund.failed"]}) for _ in range(2)]
        holds = [post("/api/v1/holds", {**transfer, "amount": "5.00"}, **{"Idempotency-Key": f"{prefix}-hold-{n}"})
                 for n in range(2)]
        HOLDS[prefix] = holds
        lists = {"/api/v1/webhooks": "/api/v1/webhooks","/api/v1/accounts": "/api/v1/accounts",
                 "/api/v1/accounts/{account_id}/transactions": f"/api/v1/accounts/{accounts[0]['id']}/transactions",
                 "/api/v1/payments": "/api/v1/payments",
                 "/api/v1/payments/{payment_id}/refunds": f"/api/v1/payments/{payments[0]['id']}/refunds",
                 "/api/v1/events": "/api/v1/events", "/api/v1/holds": "/api/v1/holds"}
        cursors = {template: http.get(path, params={"limit": 1}).json()["next_cursor"]
                   for template, path in lists.items()}
    assert all(cursors.values()), cursors
    return accounts, payments, webhooks, cursors


async def _seed_deliveries(services: Services, webhook: dict[str, Any]) -> list[str]:
    """Two deliveries in the webhook's log, written as the worker's fan-out writes them."""
    tenant_id = await services.pool.fetchval("SELECT tenant_id FROM webhook_subscriptions WHERE id = $1",
                                              UUID(webhook["id"]))
    now = services.clock.now()
    deliveries = [Delivery(id=new_id(), tenant_id=tenant_id, subscription_id=UUID(webhook["id"]), event_id=new_id(),
                           event_type="refund.failed", body="{}", next_attempt_at=now + timedelta(days=1),
                           created_at=now, updated_at=now) for _ in range(2)]
    async with services.uow_factory() as uow:
        await uow.webhooks.fan_out(deliveries)
    return [str(d.id) for d in deliveries]


@pytest.fixture
async def foreign_key(services: Services) -> str:
    return await new_api_key(services)


@pytest.fixture
async def real_data(stack: Stack, api_key: str, foreign_key: str, services: Services) -> AsyncIterator[RealData]:
    accounts, payments, webhooks, cursors = _seed_tenant(stack.base_url, api_key, "own")
    foreign_accounts, foreign_payments, foreign_webhooks, _ = _seed_tenant(stack.base_url, foreign_key, "foreign")
    deliveries = await _seed_deliveries(services, webhooks[0])
    cursors["/api/v1/webhooks/{webhook_id}/deliveries"] = (await _list_cursor(
        stack.base_url, api_key, f"/api/v1/webhooks/{webhooks[0]['id']}/deliveries"))
    CURRENT[:] = [RealData(stack.base_url, api_key, accounts, payments, cursors, foreign_accounts, foreign_payments,
                           webhooks, foreign_webhooks, deliveries, await _event_ids(stack.base_url, api_key),
                           await _event_ids(stack.base_url, foreign_key),
                           await _seed_batches(stack.base_url, api_key, accounts),
                           await _seed_batches(stack.base_url, foreign_key, foreign_accounts),
                           HOLDS["own"], HOLDS["foreign"])]
    yield CURRENT[0]
    CURRENT.clear()


async def _seed_batches(base_url: str, key: str, accounts: list[dict[str, Any]]) -> list[str]:
    """An atomic and a non-atomic batch between the tenant's first two (USD) accounts; their ids."""
    legs = [{"source_account_id": accounts[a]["id"], "destination_account_id": accounts[b]["id"], "amount": "1.00",
             "currency": "USD"} for a, b in ((0, 1), (1, 0))]
    ids = []
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as http:
        for atomic in (True, False):
            response = await http.post("/api/v1/batches", json={"atomic": atomic, "transfers": legs},
                                       headers={"Idempotency-Key": f"seed-batch-{secrets.token_hex(6)}"})
            assert response.status_code in (200, 201), response.text
            ids.append(response.json()["id"])
    return ids


async def _event_ids(base_url: str, key: str) -> list[str]:
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as http:
        events = (await http.get("/api/v1/events", params={"limit": 100})).json()["data"]
    assert events
    return [event["id"] for event in events]


async def _list_cursor(base_url: str, key: str, path: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as http:
        cursor: str = (await http.get(path, params={"limit": 1})).json()["next_cursor"]
    assert cursor
    return cursor


def _use_real_data(case: Case[Any], choice: int) -> Case[Any]:
    """Put real ids, currencies, amounts and cursors into `case`; `choice` (drawn by Hypothesis) picks which."""
    real = CURRENT[0]
    own, foreign = real.accounts, real.foreign_accounts
    if "account_id" in case.path_parameters:
        case.path_parameters["account_id"] = [*own, foreign[0]][choice % (len(own) + 1)]["id"]
    if "payment_id" in case.path_parameters:
        case.path_parameters["payment_id"] = [real.payments[0], real.foreign_payments[0]][choice % 2]["id"]
    if "webhook_id" in case.path_parameters:
        case.path_parameters["webhook_id"] = [real.webhooks[0], real.foreign_webhooks[0]][choice % 2]["id"]
    if "delivery_id" in case.path_parameters and choice % 3 != 2:
        case.path_parameters["delivery_id"] = real.deliveries[choice % len(real.deliveries)]
    if "event_id" in case.path_parameters:
        case.path_parameters["event_id"] = [*real.events, real.foreign_events[0]][choice % (len(real.events) + 1)]
    if "batch_id" in case.path_parameters:
        case.path_parameters["batch_id"] = [*real.batches, real.foreign_batches[0]][choice % (len(real.batches) + 1)]
    if "hold_id" in case.path_parameters:
        case.path_parameters["hold_id"] = [*real.holds, real.foreign_holds[0]][choice % (len(real.holds) + 1)]["id"]
    if "after" in case.query and choice % 3 != 2:
        case.query["after"] = real.events[choice % len(real.events)]
    if "user_id" in case.query and choice % 3 != 2:
        case.query["user_id"] = [*own, foreign[0]][choice % (len(own) + 1)]["user_id"]
    if "cursor" in case.query and choice % 3 != 2:
        case.query["cursor"] = real.cursors[case.path]
    if isinstance(case.body, dict):
        case.body = _real_body(dict(case.body), real, choice)
        if "Idempotency-Key" in case.headers and choice % 5 != 4:
            _unique_idempotency_key(case)
    return case


def _ascii(text: str) -> str:
    """`text` with every non-ASCII character an `x`: the same length, so the same validity against the schema's
    bounds, but at most one byte percent-encoded to three, not four to twelve. Generated metadata filters of
    hundreds of astral characters otherwise overflow the request line's 16 KiB (431, which schemathesis does
    not count as a refusal of bad data)."""
    return "".join(c if c.isascii() else "x" for c in text)


def _fit_metadata_filter(case: Case[Any]) -> None:
    """`?metadata[key]=value` with one byte a character (`_ascii`), whether schemathesis holds the deep object
    as one dict or as its `metadata[key]` pairs."""
    if not case.query:
        return
    if isinstance(case.query.get("metadata"), dict):
        case.query["metadata"] = {_ascii(str(k)): _ascii(v) if isinstance(v, str) else v
                                  for k, v in case.query["metadata"].items()}
    for name in [name for name in case.query if name.startswith("metadata[")]:
        value = case.query.pop(name)
        case.query[_ascii(name)] = _ascii(value) if isinstance(value, str) else value


def _unique_idempotency_key(case: Case[Any]) -> None:
    """One key per distinct request: fresh effects, and a replay when the same request recurs."""
    request = json.dumps([case.path, case.path_parameters, case.body], sort_keys=True, default=str)
    case.headers["Idempotency-Key"] = "st-" + hashlib.sha256(request.encode()).hexdigest()[:40]


def _real_body(body: dict[str, Any], real: RealData, choice: int) -> dict[str, Any]:
    own, foreign = real.accounts, real.foreign_accounts
    if isinstance(body.get("transfers"), list):  # a batch: each transfer as a transfer's body
        body["transfers"] = [_real_body(dict(t), real, choice + n) if isinstance(t, dict) else t
                             for n, t in enumerate(body["transfers"])]
    source = own[choice % len(own)]
    if "url" in body and choice % 3 != 2:  # mostly a URL the API accepts, so creations and changes go through
        body["url"] = HOOK_URL
    if "source_account_id" in body:  # transfers and payments: mostly a good pair, sometimes a business error
        good = [(own[0], own[1]), (own[1], own[0]), (own[0], own[1])]
        pairs = [*good, *good, (own[2], own[2]), (own[2], own[0]), (own[0], foreign[1])]
        source, destination = pairs[choice % len(pairs)]
        body["source_account_id"] = source["id"]
        if "payment_type" in body and choice % 4 != 3:
            body["payment_type"] = "internal_transfer"
            body.pop("provider", None)
        if "destination_account_id" in body or body.get("payment_type") == "internal_transfer":
            body["destination_account_id"] = destination["id"]
    if "currency" in body:
        body["currency"] = source["currency"]
        amounts = AMOUNTS[source["currency"]]
        for field in ("amount", "initial_balance"):
            if field in body:
                body[field] = amounts[choice % len(amounts)]
    return body


@SCHEMA.hook
def flatmap_case(context: HookContext, case: Case[Any]) -> st.SearchStrategy[Case[Any]]:
    meta = case.meta
    if not CURRENT or meta is None or meta.generation.mode is not GenerationMode.POSITIVE:
        return st.just(case)
    # One case in five is kept as generated. Hypothesis favours 0: it picks the commonest real data.
    return st.integers(0, 99).map(lambda choice: case if choice >= 80 else _use_real_data(case, choice))


def _prepare_coverage_case(case: Case[Any], real: RealData) -> None:
    """Coverage phase: its valid boundary values reach the database too, under real ids and unique keys.

    (Its cases are built when the test is collected, before any data exists, so not in a hook.)
    """
    meta = case.meta
    if meta is None or meta.phase.name is not TestPhase.COVERAGE or meta.generation.mode is not GenerationMode.POSITIVE:
        return
    if "account_id" in case.path_parameters:
        case.path_parameters["account_id"] = real.accounts[0]["id"]
    if "payment_id" in case.path_parameters:
        case.path_parameters["payment_id"] = real.payments[0]["id"]
    if "webhook_id" in case.path_parameters:
        case.path_parameters["webhook_id"] = real.webhooks[0]["id"]
    if "delivery_id" in case.path_parameters:
        case.path_parameters["delivery_id"] = real.deliveries[0]
    if "event_id" in case.path_parameters:
        case.path_parameters["event_id"] = real.events[0]
    if "batch_id" in case.path_parameters:
        case.path_parameters["batch_id"] = real.batches[0]
    if "hold_id" in case.path_parameters:
        case.path_parameters["hold_id"] = real.holds[0]["id"]
    if isinstance(case.body, dict) and isinstance(case.body.get("transfers"), list):
        case.body = {**case.body, "transfers": [
            {**t, "source_account_id": real.accounts[0]["id"], "destination_account_id": real.accounts[1]["id"]}
            if isinstance(t, dict) else t for t in case.body["transfers"]]}
    if isinstance(case.body, dict) and "url" in case.body:
        case.body = {**case.body, "url": HOOK_URL}
    if isinstance(case.body, dict) and "source_account_id" in case.body:
        case.body = {**case.body, "source_account_id": real.accounts[0]["id"],
                     "destination_account_id": real.accounts[1]["id"]}
    if "Idempotency-Key" in case.headers and getattr(meta.phase.data, "parameter", None) != "Idempotency-Key":
        _unique_idempotency_key(case)


def never_serves_another_tenant(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """API.md §1: another tenant's resource is answered exactly as a missing one, and never listed."""
    foreign_ids = CURRENT[0].foreign_ids
    if (case.method, case.path) == ("POST", "/api/v1/batches") and 200 <= response.status_code < 300:
        # a batch answers for each transfer: one naming another tenant's account failed as if it were missing
        transfers = case.body["transfers"] if isinstance(case.body, dict) else []
        for result, sent_transfer in zip(response.json()["results"], transfers, strict=True):
            if any(foreign in json.dumps(sent_transfer) for foreign in foreign_ids):
                assert result["status"] == 404 and result["error"]["type"] == "/problems/not_found", result
        return None
    if 200 <= response.status_code < 300:
        assert not any(foreign in response.text for foreign in foreign_ids), "another tenant's resource served"
    sent = json.dumps([case.path_parameters, case.body], default=str)
    if any(foreign in sent for foreign in foreign_ids):
        assert response.status_code >= 400, f"another tenant's resource answered {response.status_code}"
        if set(case.path_parameters.values()) & foreign_ids:
            assert response.status_code in (404, 422), f"another tenant's {case.path} answered {response.status_code}"
    return None


def errors_are_consistent_problems(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """API.md §1: an error's problem document repeats its status and the request id, under a /problems/ slug."""
    if response.status_code < 400 or not response.headers.get("content-type", [""])[0].startswith(
            "application/problem+json"):
        return None
    problem = response.json()
    assert problem["status"] == response.status_code, f"problem status {problem['status']} on a {response.status_code}"
    assert problem["type"].startswith("/problems/") and problem["type"] != "/problems/internal_error", problem
    if response.headers.get("idempotent-replayed") != ["true"]:  # a replay repeats the first body byte for byte
        assert problem["request_id"] == response.headers["x-request-id"][0], "request_id differs from X-Request-ID"
    return None


@attrs.define
class Exercised:
    """The statuses one operation answered during its test; checked at teardown."""

    operation: str = ""
    statuses: Counter[int] = attrs.Factory(Counter)
    failed: bool = False


@pytest.fixture
async def ledger_balanced(services: Services) -> AsyncIterator[None]:
    """API.md §4: whatever was thrown at the API, the ledger's invariants hold afterwards."""
    yield
    assert await services.audit.drift() == []


@pytest.fixture
def exercised(no_server_errors: None, ledger_balanced: None) -> Iterator[Exercised]:
    record = Exercised()
    yield record
    if record.failed:
        return  # the failure is reported by the test itself
    assert sum(record.statuses.values()) >= MAX_EXAMPLES // 2, record
    success = [status for status in record.statuses if 200 <= status < 300]
    assert success, f"{record.operation} never succeeded, so its success response was never checked: {record}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Gives each operation's item a node id of its own, `test_api[createAccount]`: schemathesis 4.32 names
    # the items `test_api[POST /api/v1/accounts]`, but pytest 9.2 builds node ids from the original name.
    operation = ApiOperationMark.get(metafunc.function)
    if operation is not None and "operation_id" in metafunc.fixturenames:
        operation_id = operation.definition.raw["operationId"]
        metafunc.parametrize("operation_id", [operation_id], ids=[operation_id])


@SCHEMA.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_api(case: Case[Any], operation_id: str, real_data: RealData, exercised: Exercised) -> None:
    exercised.operation = case.operation.label
    _prepare_coverage_case(case, real_data)
    _fit_metadata_filter(case)
    for name, value in list((case.query or {}).items()):
        if value is None or value == []:  # the HTTP client would drop it, making a negative case valid
            case.query[name] = ""
    try:
        response = case.call_and_validate(
            base_url=real_data.base_url, headers={"Authorization": f"Bearer {real_data.key}"},
            additional_checks=[never_serves_another_tenant, errors_are_consistent_problems])
    except BaseException:
        exercised.failed = True
        raise
    exercised.statuses[response.status_code] += 1


def test_the_served_document_is_the_one_under_test(stack: Stack) -> None:
    served = httpx.get(f"{stack.base_url}/openapi.json", timeout=10).json()
    assert served == json.loads(json.dumps(openapi_document(VERSION)))
    documented = {f"{method.upper()} {path}" for path, item in served["paths"].items() for method in item}
    tested = {result.ok().label for result in SCHEMA.get_all_operations() if isinstance(result, Ok)}
    assert tested == documented
    assert len(documented) == len(OPERATIONS)
