"""Unit tests for the OpenAPI document generator."""

from __future__ import annotations

import datetime
import json
import typing
import uuid
from typing import Any

import attrs
import jsonschema
import openapi_spec_validator
import pytest

from app.http.json_schema import STORABLE_TEXT
from app.http.openapi import Operation, Parameter, build_openapi, schema_for

MONEY = {"type": ["string", "number"], "pattern": r"^\d+(\.\d{1,2})?$", "maxLength": 32}


@attrs.frozen
class Address:
    line1: str
    city: str | None = None


@attrs.frozen
class Account:
    id: uuid.UUID
    name: str
    balance: str
    created_at: datetime.datetime
    status: typing.Literal["active", "frozen"]
    address: Address
    previous: Address | None
    tags: list[str]
    metadata: dict[str, str] = attrs.field(metadata={"openapi": {"maxProperties": 20}})
    version: int = 1
    closed: bool = False
    closed_at: datetime.datetime | None = None


@attrs.frozen
class CreateAccount:
    __openapi_strict__ = True

    name: str = attrs.field(metadata={"openapi": {"maxLength": 100, "description": "Label"}})
    opening_balance: str = attrs.field(metadata={"openapi": MONEY})
    limit: str | None = attrs.field(default=None, metadata={"openapi": MONEY})
    addresses: list[Address] = attrs.Factory(list)


@attrs.frozen
class Transfer:
    id: uuid.UUID
    amount: str


OPERATIONS = (
    Operation(
        method="post", path="/api/v1/accounts", summary="Create an account", tag="accounts",
        operation_id="createAccount", request=CreateAccount, response=Account,
        response_status=201, idempotency="required", errors=(409, 429),
    ),
    Operation(
        method="get", path="/api/v1/accounts", summary="List accounts", tag="accounts",
        operation_id="listAccounts", response=Account, list_response=True,
        query=(
            Parameter(name="limit", schema={"type": "integer", "minimum": 1, "maximum": 100}),
            Parameter(name="cursor", schema={"type": "string"}, description="Opaque cursor"),
        ),
    ),
    Operation(
        method="get", path="/api/v1/accounts/{account_id}", summary="Get an account",
        tag="accounts", operation_id="getAccount", response=Account, errors=(404,),
    ),
    Operation(
        method="delete", path="/api/v1/accounts/{account_id}/transfers/{ref}",
        summary="Cancel", tag="transfers", operation_id="cancelTransfer", response=None,
        response_status=204, idempotency="optional",
        query=(Parameter(name="ref", location="path", schema={"type": "string"}),),
    ),
    Operation(
        method="get", path="/health", summary="Health", tag="ops", operation_id="health",
        secured=False,
    ),
)


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build_openapi(OPERATIONS, title="Payments API", version="1.2.3")


def test_schema_for_scalars_required_and_formats() -> None:
    schema = schema_for(Account)
    props = schema["properties"]
    assert schema["type"] == "object"
    assert schema["required"] == [
        "id", "name", "balance", "created_at", "status", "address", "previous", "tags", "metadata",
    ]
    assert props["id"] == {"type": "string", "format": "uuid"}
    assert props["created_at"] == {"type": "string", "format": "date-time"}
    assert props["balance"] == {"type": "string"}
    assert props["version"] == {"type": "integer"}
    assert props["closed"] == {"type": "boolean"}
    assert props["status"] == {"enum": ["active", "frozen"], "type": "string"}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["metadata"] == {
        "type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 20,
    }
    assert "additionalProperties" not in schema  # not strict


def test_schema_for_nullable_and_refs() -> None:
    props = schema_for(Account)["properties"]
    assert props["closed_at"] == {
        "anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}],
    }
    assert props["address"] == {"$ref": "#/components/schemas/Address"}
    assert props["previous"] == {
        "anyOf": [{"$ref": "#/components/schemas/Address"}, {"type": "null"}],
    }


def test_strict_request_and_type_override() -> None:
    schema = schema_for(CreateAccount)
    props = schema["properties"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["name", "opening_balance"]
    # free text of a request: what PostgreSQL can store (no NUL, no lone surrogate), as the server checks
    assert props["name"] == {"type": "string", "maxLength": 100, "description": "Label", "pattern": STORABLE_TEXT}
    assert props["opening_balance"] == MONEY  # "type" override replaces the derived schema
    assert props["limit"]["type"] == ["string", "number", "null"]  # nullability preserved
    assert "anyOf" not in props["limit"]
    assert props["addresses"] == {
        "type": "array", "items": {"$ref": "#/components/schemas/Address"},
    }


def test_request_schema_validates_instances() -> None:
    doc = build_openapi(OPERATIONS, title="t", version="1")
    schema = {**doc["components"]["schemas"]["CreateAccount"], "components": doc["components"]}
    validator = jsonschema.Draft202012Validator(schema)
    assert validator.is_valid({"name": "a", "opening_balance": 10.5})
    assert validator.is_valid({"name": "a", "opening_balance": "10.50", "limit": None})
    assert validator.is_valid({"name": "a", "opening_balance": "1", "addresses": [{"line1": "x"}]})
    assert not validator.is_valid({"name": "a", "opening_balance": "1.234"})
    assert not validator.is_valid({"name": "a", "opening_balance": "1", "extra": 1})
    assert not validator.is_valid({"opening_balance": "1"})


def test_document_is_valid_openapi_31(doc: dict[str, Any]) -> None:
    openapi_spec_validator.validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert doc["info"] == {"title": "Payments API", "version": "1.2.3"}
    assert doc["servers"] == [{"url": "/"}]
    assert [t["name"] for t in doc["tags"]] == ["accounts", "transfers", "ops"]
    json.dumps(doc)  # serialisable


def test_components(doc: dict[str, Any]) -> None:
    components = doc["components"]
    assert set(components["schemas"]) >= {
        "Account", "Address", "CreateAccount", "AccountList", "Problem", "ProblemFieldError",
    }
    assert "Transfer" not in components["schemas"]  # only referenced classes are emitted
    assert components["securitySchemes"] == {"bearerAuth": {"type": "http", "scheme": "bearer"}}
    problem = components["schemas"]["Problem"]
    assert problem["required"] == ["type", "title", "status", "detail", "request_id"]
    assert problem["properties"]["status"] == {"type": "integer"}
    assert problem["properties"]["errors"]["items"] == {"anyOf": [  # a field, or a failing transfer of a batch
        {"$ref": "#/components/schemas/ProblemFieldError"}, {"$ref": "#/components/schemas/ProblemBatchTransfer"}]}


def test_create_operation(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/api/v1/accounts"]["post"]
    assert op["operationId"] == "createAccount"
    assert op["tags"] == ["accounts"]
    assert op["security"] == [{"bearerAuth": []}]
    assert op["requestBody"]["required"] is True
    assert op["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/CreateAccount"}
    (key,) = op["parameters"]
    assert key["name"] == "Idempotency-Key" and key["in"] == "header" and key["required"] is True
    assert key["schema"] == {
        "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7E]+$",
    }
    responses = op["responses"]
    assert set(responses) == {"201", "400", "401", "403", "409", "413", "422", "429"}
    created = responses["201"]
    assert created["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Account",
    }
    assert set(created["headers"]) == {"X-Request-ID", "Idempotent-Replayed"}
    for status in ("400", "401", "403", "409", "413", "422", "429"):
        assert responses[status]["content"]["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/Problem"}
        assert {"X-Request-ID", "Idempotent-Replayed"} <= set(responses[status]["headers"])
    assert "Retry-After" in responses["429"]["headers"]
    assert "Retry-After" not in responses["409"]["headers"]
    header = doc["components"]["headers"]["Idempotent-Replayed"]
    assert header.get("required", False) is False


def test_list_envelope_and_query(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/api/v1/accounts"]["get"]
    assert [(p["name"], p["in"], p["required"]) for p in op["parameters"]] == [
        ("limit", "query", False), ("cursor", "query", False),
    ]
    assert op["parameters"][1]["description"] == "Opaque cursor"
    schema = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/AccountList"}
    envelope = doc["components"]["schemas"]["AccountList"]
    assert envelope["required"] == ["data", "has_more", "next_cursor"]
    assert envelope["properties"]["has_more"]["type"] == "boolean"
    assert envelope["properties"]["data"] == {
        "type": "array", "items": {"$ref": "#/components/schemas/Account"},
    }
    assert envelope["properties"]["next_cursor"] == {
        "anyOf": [{"type": "string"}, {"type": "null"}],
    }
    assert set(op["responses"]) == {"200", "401", "403"}
    assert set(op["responses"]["200"]["headers"]) == {"X-Request-ID"}


def test_path_parameters(doc: dict[str, Any]) -> None:
    get = doc["paths"]["/api/v1/accounts/{account_id}"]["get"]
    assert get["parameters"] == [{
        "name": "account_id", "in": "path", "required": True,
        "schema": {"type": "string", "format": "uuid"},
    }]
    assert set(get["responses"]) == {"200", "401", "403", "404"}
    delete = doc["paths"]["/api/v1/accounts/{account_id}/transfers/{ref}"]["delete"]
    params = {p["name"]: p for p in delete["parameters"]}
    assert params["ref"] == {
        "name": "ref", "in": "path", "required": True, "schema": {"type": "string"},
    }
    assert params["Idempotency-Key"]["required"] is False
    assert "content" not in delete["responses"]["204"]
    assert "requestBody" not in delete


def test_unsecured_operation(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/health"]["get"]
    assert "security" not in op
    assert set(op["responses"]) == {"200"}
    assert "content" not in op["responses"]["200"]


def test_rejects_bad_input() -> None:
    health = OPERATIONS[-1]
    with pytest.raises(ValueError, match="duplicate"):
        build_openapi([health, attrs.evolve(health, path="/other")], title="t", version="1")
    with pytest.raises(ValueError):
        build_openapi([attrs.evolve(health, method="fetch")], title="t", version="1")
    stray = Parameter(name="nope", location="path", schema={"type": "string"})
    with pytest.raises(ValueError, match="nope"):
        build_openapi([attrs.evolve(health, query=(stray,))], title="t", version="1")
    with pytest.raises(TypeError):
        schema_for(_Unsupported)


@attrs.frozen
class _Unsupported:
    value: set[int]
