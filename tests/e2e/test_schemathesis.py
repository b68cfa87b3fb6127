"""Schemathesis against the served /openapi.json: every operation, a few hundred cases each, with a valid key.

Requirement: no 5xx, and every response matches the document (status, content type, headers, body schema).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import attrs
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import strategies as st
from schemathesis import Case, HookContext
from schemathesis.specs.openapi.schemas import OpenApiSchema

from app.container import Container
from tests.conftest import new_api_key
from tests.e2e.conftest import Stack

MAX_EXAMPLES = 200


@attrs.frozen
class Seed:
    key: str
    accounts: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    foreign_accounts: list[dict[str, Any]]
    foreign_payments: list[dict[str, Any]]


def _seed_tenant(base_url: str, key: str, prefix: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        def post(path: str, body: dict[str, Any], **headers: str) -> dict[str, Any]:
            response = http.post(path, json=body, headers=headers)
            assert response.status_code == 201, response.text
            return dict(response.json())

        accounts = [
            post("/api/v1/accounts", {"user_id": f"{prefix}-alice", "currency": "USD", "initial_balance": "1000.00"}),
            post("/api/v1/accounts", {"user_id": f"{prefix}-bob", "currency": "USD"}),
            post("/api/v1/accounts", {"user_id": f"{prefix}-carol", "currency": "JPY", "initial_balance": "5000"}),
            post("/api/v1/accounts", {"user_id": f"{prefix}-dave", "currency": "KWD", "initial_balance": "1.500"}),
        ]
        payments = [
            post("/api/v1/transfers", {"source_account_id": accounts[0]["id"], "destination_account_id": accounts[1]["id"],
                                       "amount": "30.00", "currency": "USD"}, **{"Idempotency-Key": f"{prefix}-1"}),
        ]
    return accounts, payments


@pytest.fixture
async def foreign_key(container: Container) -> str:
    return await new_api_key(container)


@pytest.fixture
def seed(stack: Stack, api_key: str, foreign_key: str) -> Seed:
    accounts, payments = _seed_tenant(stack.base_url, api_key, "own")
    foreign_accounts, foreign_payments = _seed_tenant(stack.base_url, foreign_key, "foreign")
    return Seed(api_key, accounts, payments, foreign_accounts, foreign_payments)


def _real_data(seed: Seed) -> Any:
    """A `flatmap_case` hook: sometimes swap generated ids, currencies and amounts for real ones."""

    def substitute(case: Case, choice: int) -> Case:
        ...
        return case

    def hook(context: HookContext, case: Case) -> st.SearchStrategy[Case]:
        return st.integers(0, 5).map(lambda choice: substitute(case, choice))

    return hook


@pytest.fixture
def api_schema(stack: Stack, seed: Seed) -> OpenApiSchema:
    schema = schemathesis.openapi.from_url(f"{stack.base_url}/openapi.json")
    schema.config.update(base_url=stack.base_url, headers={"Authorization": f"Bearer {seed.key}"},
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")
    return schema


@pytest.fixture
def exercised() -> Iterator[dict[str, Counter[int]]]:
    seen: dict[str, Counter[int]] = defaultdict(Counter)
    yield seen
    print({label: dict(counts) for label, counts in seen.items()})


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_api_conforms_to_its_document(case: Case, exercised: dict[str, Counter[int]]) -> None:
    response = case.call_and_validate()
    exercised[case.operation.label][response.status_code] += 1
