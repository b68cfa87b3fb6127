"""The served OpenAPI document describes (descriptions, tags, examples, links, problem types) and is exact: its
request schemas accept what the server's body parser accepts and refuse what it refuses (issue 16, point 7).

The server-side half of "exact" is schemathesis' (tests/e2e/test_schemathesis.py); these pin the declarations.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import attrs
import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.http.bodies import parse_body
from app.http.json_schema import STORABLE_TEXT
from app.http.openapi import Link, Operation, build_openapi
from app.http.operations import OPERATIONS, TAGS, openapi_document
from app.http.problem_types import PROBLEM_TYPES
from app.http.schemas.fields import POSITIVE_PATTERN, ZERO_OR_POSITIVE_PATTERN
from app.http.schemas.payments import PaymentRequest
from app.http.schemas.webhooks import WebhookUpdate
from core.errors import ValidationFailed
from core.money import MAX_MINOR, MINOR_UNITS, parse_amount

DOC = openapi_document("test")
ID = "0190a6a4-3c1e-7d2a-9b1e-2f6a4c8d0e11"


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**schema, "components": DOC["components"]},
                                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _operations() -> list[dict[str, Any]]:
    return [op for item in DOC["paths"].values() for op in item.values()]


def test_the_document_and_each_tag_are_described() -> None:
    assert "problem details" in DOC["info"]["description"]
    assert [tag["name"] for tag in DOC["tags"]] == list(TAGS)
    assert all(tag["description"] for tag in DOC["tags"])
    assert all(op["description"] and op["tags"][0] in TAGS for op in _operations())


def test_every_operation_has_examples_its_schemas_accept() -> None:
    for op in _operations():
        media = [*op.get("requestBody", {}).get("content", {}).values(),
                 *(m for status, response in op["responses"].items() for content_type, m in
                   response.get("content", {}).items() if content_type != "text/csv")]
        assert media, op["operationId"]
        for entry in media:
            assert "example" in entry, op["operationId"]
            errors = [e.message for e in _validator(entry["schema"]).iter_errors(entry["example"])]
            assert not errors, (op["operationId"], errors)
        success = [s for s in op["responses"] if int(s) < 300 and "content" in op["responses"][s]]
        assert success or op["responses"].keys() & {"204"}, op["operationId"]


def test_every_error_status_names_its_problem_types_and_their_example() -> None:
    for op in _operations():
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            slugs = response["x-problem-types"]
            assert slugs and all(PROBLEM_TYPES[slug].status == int(status) for slug in slugs), (op, status)
            assert response["content"]["application/problem+json"]["example"]["type"] == f"/problems/{slugs[-1]}"


def test_an_operation_cannot_declare_a_problem_of_a_status_it_does_not_answer() -> None:
    op = Operation(method="get", path="/x", summary="x", tag="x", operation_id="x", problems=("not_found",))
    with pytest.raises(ValueError, match="not_found"):
        build_openapi([op], title="t", version="1")


def test_links_lead_from_creations_to_operations_taking_the_id() -> None:
    by_id = {op["operationId"]: op for op in _operations()}
    links = [(op, link) for op in _operations() for response in op["responses"].values()
             for link in response.get("links", {}).values()]
    assert {op["operationId"] for op, _ in links} >= {"createAccount", "createTransfer", "createPayment", "createHold",
                                                      "createWebhook", "createBatch", "createReconciliation"}
    for _, link in links:
        (parameter, expression), = link["parameters"].items()
        assert expression == "$response.body#/id"
        target = by_id[link["operationId"]]
        assert any(p["name"] == parameter and p["in"] == "path" for p in target["parameters"]), link


def test_the_operation_api_stays_backward_compatible() -> None:
    """Fields added with defaults (the typed client of issue16-client builds on the same declarations)."""
    op = Operation(method="get", path="/x", summary="x", tag="x", operation_id="x")
    assert (op.problems, op.description, op.links, op.request_example, op.response_example) == ((), "", (), None, None)
    assert Link(operation_id="getX", parameter="x_id").field == "id"
    assert all(isinstance(op.problems, tuple) for op in OPERATIONS)


def _request_schema(cls: type) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{cls.__name__}"}


def _server_accepts(body: dict[str, Any], cls: type) -> bool:
    try:
        parse_body(body, cls)
    except ValidationFailed:
        return False
    return True


@pytest.mark.parametrize(("body", "valid"), [
    ({"url": "https://example.com/h"}, True),
    ({"description": None}, True),  # clears it
    ({"url": None}, False), ({"events": None}, False), ({"enabled": None}, False),
    ({"enabled": True, "colour": "red"}, False),
])
def test_a_webhook_change_is_valid_exactly_when_the_server_parses_it(body: dict[str, Any], valid: bool) -> None:
    assert _validator(_request_schema(WebhookUpdate)).is_valid(body) is valid
    assert _server_accepts(body, WebhookUpdate) is valid


@pytest.mark.parametrize(("body", "valid"), [
    ({"payment_type": "internal_transfer", "destination_account_id": ID}, True),
    ({"payment_type": "internal_transfer", "destination_account_id": ID, "provider": None}, True),
    ({"payment_type": "internal_transfer"}, False),  # no destination
    ({"payment_type": "internal_transfer", "destination_account_id": ID, "provider": "stripe"}, False),
    ({"payment_type": "external_payment", "provider": "paypal"}, True),
    ({"payment_type": "external_payment", "provider": "paypal", "destination_account_id": None}, True),
    ({"payment_type": "external_payment"}, False),  # no provider
    ({"payment_type": "external_payment", "provider": "paypal", "destination_account_id": ID}, False),
    ({"payment_type": "external_payment", "provider": "paypal", "unknown": 1}, False),
])
def test_a_payment_request_is_one_of_its_two_shapes(body: dict[str, Any], valid: bool) -> None:
    """The document's oneOf states the conditions `create_payment` checks after parsing (routes/payments.py)."""
    full = {"source_account_id": ID, "amount": "1.00", "currency": "USD", **body}
    assert _validator(_request_schema(PaymentRequest)).is_valid(full) is valid
    if not valid and "unknown" not in body:  # the parser takes the union; the route refuses the rest
        assert _server_accepts(full, PaymentRequest)


_AMOUNT_TEXT = st.text(alphabet=" +-.0123456789e", max_size=24) | st.from_regex(POSITIVE_PATTERN, fullmatch=True)


@settings(max_examples=400, derandomize=True, database=None)
@given(text=_AMOUNT_TEXT, currency=st.sampled_from(["JPY", "USD", "KWD", "CLF"]), zero=st.booleans())
def test_the_amount_pattern_is_the_parsers_format(text: str, currency: str, zero: bool) -> None:
    """A string the pattern refuses, the server refuses too; one it accepts, the server accepts unless the
    currency allows fewer places or the value passes 2^53-1 minor units (what a field's schema cannot see)."""
    pattern = re.compile(ZERO_OR_POSITIVE_PATTERN if zero else POSITIVE_PATTERN)
    try:
        parsed = parse_body({"amount": text}, _Amount)
        accepted = parse_amount(parsed.amount, currency, allow_zero=zero) is not None
    except ValidationFailed as failed:
        accepted = False
        reason = failed.errors[0].message
    if not pattern.search(text):
        assert not accepted, text
    elif not accepted:
        assert re.search(r"allows at most \d decimal places|is too large", reason), (text, reason)


def test_json_numbers_beyond_the_bounds_are_refused() -> None:
    schema = DOC["components"]["schemas"]["TransferRequest"]["properties"]["amount"]
    assert schema["maximum"] == MAX_MINOR and schema["exclusiveMinimum"] == 0
    for value in (Decimal(0), Decimal(-1), Decimal(MAX_MINOR + 1)):
        with pytest.raises(ValidationFailed):
            parse_amount(value, "JPY")
    assert max(MINOR_UNITS.values()) == 4  # the pattern's places


@attrs.frozen(kw_only=True)
class _Amount:
    amount: Decimal


def test_free_text_is_storable_text() -> None:
    description = DOC["components"]["schemas"]["TransferRequest"]["properties"]["description"]
    assert {"type": "string", "pattern": STORABLE_TEXT} in description["anyOf"]
    storable = re.compile(STORABLE_TEXT)
    assert storable.search("naïve 👍") and not storable.search("a\x00b") and not storable.search("a\ud800")
