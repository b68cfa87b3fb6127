"""Schemathesis against the served /openapi.json: every operation, then its stateful phase, with a valid key.

Requirement: no 5xx, every response matches the document (status, content type, headers, body schema), data the
document calls invalid is refused and data it calls valid is accepted. Schemathesis' examples, coverage and
fuzzing phases run, positive and negative, with every built-in check, plus ours: another tenant's ids are never
served, problem bodies are consistent and of a type the document lists for their status. `positive_data_acceptance`
runs wrapped (`valid_data_is_accepted`): a schema-valid request may still be refused for a business reason the
operation declares (insufficient_funds, same_account, a key reused...: API.md §1), never for `validation_error`
but the two rules the schema of a field cannot state (`_UNSTATABLE`). The stateful phase follows the document's
links (create -> get, change, delete...) with `use_after_free` and `ensure_resource_availability` among its checks.
A fixed seed (`derandomize`) and a bounded number of examples keep it deterministic and about a minute long.

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
import re
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import attrs
import httpx
import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis import Case, CheckContext, GenerationMode, HookContext, Response
from schemathesis.core.result import Ok
from schemathesis.generation.hypothesis.builder import ApiOperationMark
from schemathesis.generation.meta import TestPhase
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.bootstrap import Services
from app.http.operations import OPERATIONS, openapi_document
from app.http.routes.health import VERSION
from core.ids import new_id
from core.webhooks import Delivery
from tests.conftest import new_api_key
from tests.e2e.conftest import Stack

MAX_EXAMPLES = 15
#: The stateful phase: scenarios, and steps in each.
SCENARIOS, STEPS = 30, 8

SCHEMA = schemathesis.openapi.from_dict(openapi_document(VERSION))
SCHEMA.config.generation.update(modes=list(GenerationMode))
# Replaced by `valid_data_is_accepted`, which runs it and lets through only the refusals the document declares.
SCHEMA.config.checks.update(excluded_check_names=["positive_data_acceptance"])
#: What the schema of one field cannot state, so a schema-valid value may still be refused with validation_error:
#: an amount's places and its 2^53-1 minor units depend on the currency (another field, or the resource's), and a
#: capture's on the hold; a cursor, or the feed's `after`, must be one the API issued; a statement's `to` comes
#: after its `from`; a reconciliation's day is not in the future.
_PLACES = re.compile(r"allows at most \d decimal places|is too large")
_UNSTATABLE = (
    ("amount", re.compile(rf"{_PLACES.pattern}|at most the held amount")),
    ("initial_balance", _PLACES),
    ("overdraft_limit", _PLACES),
    ("cursor", re.compile(r".")),
    ("after", re.compile(r"names no event")),
    ("to", re.compile(r"must be after from")),
    ("date", re.compile(r"future|today")),
)
#: Problem types every operation of a kind may answer that say the request itself is bad.
_BAD_REQUEST = frozenset({"validation_error", "malformed_json", "idempotency_key_missing"})


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


@attrs.frozen
class Foreign:
    """Another tenant's resources: seeded once for the module (nothing here acts with its key, so they stay)."""

    accounts: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    webhooks: list[dict[str, Any]]
    events: list[str]
    batches: list[str]
    holds: list[dict[str, Any]]


@pytest.fixture(scope="module")
async def foreign(stack: Stack, services: Services) -> Foreign:
    key = await new_api_key(services)
    accounts, payments, webhooks, _ = _seed_tenant(stack.base_url, key, "foreign")
    return Foreign(accounts, payments, webhooks, await _event_ids(stack.base_url, key),
                   await _seed_batches(stack.base_url, key, accounts), HOLDS["foreign"])


@pytest.fixture
async def real_data(stack: Stack, api_key: str, foreign: Foreign, services: Services) -> AsyncIterator[RealData]:
    """The tenant under test, seeded afresh for each test (the operations change its resources)."""
    accounts, payments, webhooks, cursors = _seed_tenant(stack.base_url, api_key, "own")
    deliveries = await _seed_deliveries(services, webhooks[0])
    cursors["/api/v1/webhooks/{webhook_id}/deliveries"] = (await _list_cursor(
        stack.base_url, api_key, f"/api/v1/webhooks/{webhooks[0]['id']}/deliveries"))
    CURRENT[:] = [RealData(stack.base_url, api_key, accounts, payments, cursors, foreign.accounts, foreign.payments,
                           webhooks, foreign.webhooks, deliveries, await _event_ids(stack.base_url, api_key),
                           foreign.events, await _seed_batches(stack.base_url, api_key, accounts),
                           foreign.batches, HOLDS["own"], foreign.holds)]
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


def _declared_problems(case: Case[Any], status: int) -> list[str]:
    """The problem types the document lists for `status` of the case's operation (`x-problem-types`)."""
    response = case.operation.definition.raw["responses"].get(str(status), {})
    return list(response.get("x-problem-types", []))


def _slug(response: Response) -> str | None:
    if not response.headers.get("content-type", [""])[0].startswith("application/problem+json"):
        return None
    kind = response.json().get("type", "")
    return kind.removeprefix("/problems/") if isinstance(kind, str) else None


def _unstatable(problem: dict[str, Any]) -> bool:
    """A validation_error all of whose fields fail only on a rule the schema cannot state (`_UNSTATABLE`)."""
    errors = problem.get("errors") or []
    return bool(errors) and all(
        any(error["field"].rsplit(".", 1)[-1] == field and rule.search(error["message"]) for field, rule in _UNSTATABLE)
        for error in errors)


DOCUMENT = openapi_document(VERSION)


def _body_is_valid(case: Case[Any]) -> bool:
    """Whether the document's own schema accepts the case's body. Schemathesis' generator can label a body
    positive that breaks a `pattern` under `additionalProperties` (a NUL in a metadata value, which
    `STORABLE_TEXT` forbids); such a body is not valid data, and its refusal no failure."""
    body = case.operation.definition.raw.get("requestBody")
    if body is None or not isinstance(case.body, (dict, list)):
        return True
    schema = {**body["content"]["application/json"]["schema"], "components": DOCUMENT["components"]}
    return jsonschema.Draft202012Validator(schema).is_valid(case.body)


def valid_data_is_accepted(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """`positive_data_acceptance`, but for a refusal with a business problem type the operation declares (the
    document lists it under that status; never one saying the request is malformed) or a validation_error on a
    rule the schema cannot state."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        slug = _slug(response)
        if slug in _declared_problems(case, response.status_code) and slug not in _BAD_REQUEST:
            return None
        if slug == "validation_error" and _unstatable(response.json()):
            return None
        if not _body_is_valid(case):
            return None  # labelled positive, yet the document refuses it (below): not valid data
        raise


def accepted_bodies_are_valid(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Whatever made the body (the generator, or the hooks putting real ids and amounts in), a body the document
    refuses is never accepted: no amount beyond the declared pattern and bounds moves money."""
    if 200 <= response.status_code < 300:
        assert _body_is_valid(case), f"a body the document refuses was accepted ({response.status_code})"
    return None


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
    declared = _declared_problems(case, response.status_code)
    if declared:  # an undeclared status is status_code_conformance's to report
        assert _slug(response) in declared, f"{problem['type']} is not among the declared {declared}"
    if response.headers.get("idempotent-replayed") != ["true"]:  # a replay repeats the first body byte for byte
        assert problem["request_id"] == response.headers["x-request-id"][0], "request_id differs from X-Request-ID"
    return None


CHECKS = [valid_data_is_accepted, accepted_bodies_are_valid, never_serves_another_tenant,
          errors_are_consistent_problems]


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
            additional_checks=CHECKS)
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


#: The statuses each operation answered in the stateful phase.
STATEFUL: dict[str, Counter[int]] = {}


def _stable_choice(case: Case[Any]) -> int:
    """A choice in 0..99 that depends on the case only (the stateful phase has no Hypothesis draw for it)."""
    text = json.dumps([case.path, case.path_parameters, case.query, case.body], sort_keys=True, default=str)
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % 100


class Workflow(SCHEMA.as_state_machine()):  # type: ignore[misc]
    """Sequences of calls following the document's links, under the tenant's key; as `test_api`, most positive
    bodies name the tenant's real accounts and amounts, and every Idempotency-Key is unique to its request."""

    def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
        real = CURRENT[0]
        return {"base_url": real.base_url, "headers": {"Authorization": f"Bearer {real.key}"}}

    def before_call(self, case: Case[Any]) -> None:
        _fit_metadata_filter(case)
        for name, value in list((case.query or {}).items()):
            if value is None or value == []:
                case.query[name] = ""
        meta = case.meta
        positive = meta is not None and meta.generation.mode is GenerationMode.POSITIVE
        choice = _stable_choice(case)
        if positive and isinstance(case.body, dict) and choice < 80:
            case.body = _real_body(dict(case.body), CURRENT[0], choice)
        if "Idempotency-Key" in case.headers:
            _unique_idempotency_key(case)

    def after_call(self, response: Response, case: Case[Any]) -> None:
        STATEFUL.setdefault(case.operation.definition.raw["operationId"], Counter())[response.status_code] += 1

    def validate_response(self, response: Response, case: Case[Any],
                          additional_checks: list[Any] | None = None, **kwargs: Any) -> None:
        case.validate_response(response, additional_checks=CHECKS, transport_kwargs=kwargs)


#: The operations the document's links lead to (from a creation to its resource).
LINKED = frozenset(link["operationId"] for item in DOCUMENT["paths"].values() for operation in item.values()
                   for response in operation["responses"].values() for link in response.get("links", {}).values())
#: How many of them the stateful phase must have reached with a success: a random id answers 404, so a success
#: on one of them means an id a response gave was followed. (Which ones a short run reaches depends on the
#: server's answers, so the test asks for a few, not for each.)
MIN_LINKED = 3


def test_stateful(real_data: RealData, no_server_errors: None, ledger_balanced: None) -> None:
    """The stateful phase: from each creation along its links, with every check, the stateful ones included.

    As schemathesis' own runner does, only Hypothesis' generate phase runs (no replay of earlier examples), and a
    run that Hypothesis ends as flaky *without a failed check* (a replay drew differently because the server's state
    moved on: its responses decide which links can be followed) is not a failure: the scenarios run so far passed
    every check; the run goes on with a fresh state machine until SCENARIOS scenarios are done. A failed check
    always fails the test (a FailureGroup, or a FlakyFailure wrapping it).
    """
    STATEFUL.clear()
    done = 0
    for _ in range(5):
        before = sum(sum(statuses.values()) for statuses in STATEFUL.values())
        try:
            Workflow.run(settings=settings(
                max_examples=SCENARIOS - done, stateful_step_count=STEPS, derandomize=True, deadline=None,
                database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck)))
            break
        except FlakyStrategyDefinition:
            steps = sum(sum(statuses.values()) for statuses in STATEFUL.values()) - before
            done += max(1, steps // STEPS)
            if done >= SCENARIOS:
                break
    succeeded = {operation for operation, statuses in STATEFUL.items() if any(200 <= s < 300 for s in statuses)}
    steps = sum(sum(statuses.values()) for statuses in STATEFUL.values())
    assert steps >= SCENARIOS, f"the stateful phase made only {steps} calls: {STATEFUL}"
    assert len(succeeded & LINKED) >= MIN_LINKED, f"the stateful phase hardly followed a link: {STATEFUL}"
