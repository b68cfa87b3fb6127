"""The mock provider server's two wire formats: parsing Stripe-/PayPal-like requests and shaping the answers."""

from __future__ import annotations

import json
import re
import secrets
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import attrs

from adapters.providers.mock_state import Answer, Kind, Record
from core.money import MAX_MINOR, MINOR_UNITS, format_minor

_DECIMAL = re.compile(r"[0-9]{1,20}(\.[0-9]{1,4})?")
_DIGITS = re.compile(r"[0-9]{1,20}")


class Refused(Exception):
    """A request answered with an error and nothing recorded; `problem` picks the status and the error's shape."""

    def __init__(self, message: str, field: str | None = None, problem: str = "invalid") -> None:
        super().__init__(message)
        self.message = f"Invalid {field}: {message}" if field else message
        self.field, self.problem = field, problem


@attrs.frozen
class ChargeIn:
    """A parsed charge request, whichever wire format it came in."""

    amount: int
    currency: str
    description: str | None
    metadata: dict[str, str]
    reference: str | None = None


@attrs.frozen
class RefundIn:
    """A parsed refund request; `amount` None refunds what is left, `currency` None means the charge's."""

    charge_id: str
    amount: int | None
    currency: str | None
    reason: str | None
    metadata: dict[str, str]
    invoice_id: str | None = None


def _currency(value: object, field: str) -> str:
    code = value.upper() if isinstance(value, str) and value.isascii() else ""
    if code not in MINOR_UNITS:
        raise Refused("must be a three-letter ISO 4217 currency code", field)
    return code


def _minor(value: object, field: str) -> int:
    if not isinstance(value, str) or not _DIGITS.fullmatch(value) or not 0 < int(value) <= MAX_MINOR:
        raise Refused("must be a positive whole number of minor units", field)
    return int(value)


def _money(value: object, field: str) -> tuple[int, str]:
    if not isinstance(value, dict):
        raise Refused("must be an object with currency_code and value", field)
    currency = _currency(value.get("currency_code"), f"{field}/currency_code")
    text, places = value.get("value"), MINOR_UNITS[currency]
    match = _DECIMAL.fullmatch(text) if isinstance(text, str) else None
    if match is None or len(match.group(1) or ".") - 1 > places:
        raise Refused(f"must be a decimal string with at most {places} decimal places", f"{field}/value")
    return _minor(str(int(Decimal(match.group(0)).scaleb(places))), f"{field}/value"), currency


def _optional_text(value: object, field: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise Refused("must be a string", field)
    return value or None


def _metadata(value: object, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise Refused("must be an object of strings", field)
    return dict(value)


def _json(raw: bytes, *, empty_ok: bool = False) -> dict[str, Any]:
    try:
        data = json.loads(raw) if raw.strip() or not empty_ok else {}
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested deeper than the parser recurses
        data = None
    if not isinstance(data, dict):
        raise Refused("the body must be a JSON object")
    return data


def _form(raw: bytes) -> dict[str, str]:
    try:
        return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=500))
    except ValueError:  # also UnicodeDecodeError
        raise Refused("the body must be application/x-www-form-urlencoded") from None


def _form_metadata(form: dict[str, str]) -> dict[str, str]:
    return {key[9:-1]: value for key, value in form.items() if key.startswith("metadata[") and key.endswith("]")}


def _required(args: dict[str, str], name: str) -> str:
    value = args.get(name, "").strip()
    if not value:
        raise Refused("is required", name)
    return value


#: Stripe's search query, as far as the mock understands it: one metadata clause, `metadata['key']:'value'`.
_SEARCH = re.compile(r"""\s*metadata\[(['"])(?P<key>[^'"]+)\1\]:(['"])(?P<value>[^'"]+)\3\s*""")


class StripeWire:
    """Stripe-like: form-encoded PaymentIntents and Refunds, `{"error": {...}}` errors, Idempotency-Key."""

    provider = "stripe"
    key_header = "Idempotency-Key"
    problems: ClassVar[dict[str, tuple[int, str, str]]] = {  # problem -> status, error type, error code
        "unauthorized": (401, "invalid_request_error", "api_key_missing"),
        "missing_key": (400, "invalid_request_error", "idempotency_key_missing"),
        "invalid": (400, "invalid_request_error", "parameter_invalid"),
        "conflict": (400, "idempotency_error", "idempotency_key_in_use"),
        "not_found": (404, "invalid_request_error", "resource_missing"),
        "exceeds": (400, "invalid_request_error", "amount_too_large"),
        "charge_declined": (402, "card_error", "card_declined"),
        "refund_declined": (402, "invalid_request_error", "refund_declined"),
        "unavailable": (503, "api_error", "service_unavailable"),
        "timeout": (504, "api_error", "gateway_timeout"),
    }

    #: the metadata key a charge's / a refund's search finds it by (the mock searches by nothing else)
    lookup_keys: ClassVar[dict[Kind, str]] = {"charge": "payment_id", "refund": "refund_id"}

    def new_id(self, kind: str) -> str:
        return ("pi_" if kind == "charge" else "re_") + secrets.token_hex(12)

    def lookup_value(self, kind: Kind, request: ChargeIn | RefundIn) -> str | None:
        return request.metadata.get(self.lookup_keys[kind]) or None

    def parse_lookup(self, kind: Kind, args: dict[str, str]) -> str:
        """The metadata value `GET /v1/payment_intents/search` or `/v1/refunds/search?query=...` looks for."""
        key = self.lookup_keys[kind]
        match = _SEARCH.fullmatch(_required(args, "query"))
        if match is None or match["key"] != key:
            raise Refused(f"the mock searches by metadata['{key}']:'<value>' only", "query")
        return match["value"]

    def found(self, kind: Kind, records: list[Record]) -> Answer:
        path = "/v1/payment_intents/search" if kind == "charge" else "/v1/refunds/search"
        data = [self._intent(r) if kind == "charge" else self._refund(r) for r in records]
        return 200, {"object": "search_result", "url": path, "has_more": False, "next_page": None, "data": data}

    def parse_charge(self, raw: bytes) -> ChargeIn:
        form = _form(raw)
        return ChargeIn(_minor(form.get("amount"), "amount"), _currency(form.get("currency"), "currency"),
                        form.get("description") or None, _form_metadata(form))

    def parse_refund(self, raw: bytes, charge_id: str | None) -> RefundIn:
        form = _form(raw)
        if not form.get("payment_intent"):
            raise Refused("is required", "payment_intent")
        amount = _minor(form["amount"], "amount") if "amount" in form else None
        return RefundIn(form["payment_intent"], amount, None, form.get("reason") or None, _form_metadata(form))

    def error(self, problem: str, message: str, field: str | None = None) -> Answer:
        status, kind, code = self.problems[problem]
        error = {"type": kind, "code": code, "message": message} | ({"param": field} if field else {})
        return status, {"error": error}

    def charged(self, record: Record) -> Answer:
        return 200, self._intent(record)

    def refunded(self, record: Record) -> Answer:
        return 200, self._refund(record)

    def _intent(self, record: Record) -> dict[str, Any]:
        succeeded = record.status == "succeeded"
        intent = {"id": record.id, "object": "payment_intent", "amount": record.amount,
                  "amount_received": record.amount if succeeded else 0, "currency": record.currency.lower(),
                  "status": "succeeded" if succeeded else "requires_payment_method",
                  "description": record.description, "metadata": record.metadata, "livemode": False}
        if not succeeded:
            intent["last_payment_error"] = {"type": "card_error", "code": "card_declined",
                                            "message": "Your card was declined."}
        return intent

    def _refund(self, record: Record) -> dict[str, Any]:
        succeeded = record.status == "succeeded"
        refund = {"id": record.id, "object": "refund", "amount": record.amount, "currency": record.currency.lower(),
                  "payment_intent": record.charge_id, "status": "succeeded" if succeeded else "failed",
                  "reason": record.reason, "metadata": record.metadata}
        return refund | ({} if succeeded else {"failure_reason": "declined"})


class PayPalWire:
    """PayPal-like: JSON orders captured at once and capture refunds, `{"name", "details"}` errors."""

    provider = "paypal"
    key_header = "PayPal-Request-Id"
    problems: ClassVar[dict[str, tuple[int, str, str]]] = {  # problem -> status, error name, detail issue
        "unauthorized": (401, "AUTHENTICATION_FAILURE", "INVALID_ACCESS_TOKEN"),
        "missing_key": (400, "INVALID_REQUEST", "MISSING_REQUIRED_PARAMETER"),
        "invalid": (400, "INVALID_REQUEST", "INVALID_PARAMETER_VALUE"),
        "conflict": (422, "UNPROCESSABLE_ENTITY", "DUPLICATE_REQUEST_ID"),
        "not_found": (404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID"),
        "exceeds": (422, "UNPROCESSABLE_ENTITY", "REFUND_AMOUNT_EXCEEDED"),
        "charge_declined": (422, "UNPROCESSABLE_ENTITY", "INSTRUMENT_DECLINED"),
        "refund_declined": (422, "UNPROCESSABLE_ENTITY", "TRANSACTION_REFUSED"),
        "unavailable": (503, "SERVICE_UNAVAILABLE", "SERVICE_UNAVAILABLE"),
        "timeout": (504, "GATEWAY_TIMEOUT", "GATEWAY_TIMEOUT"),
    }

    def new_id(self, kind: str) -> str:
        return secrets.token_hex(9).upper()[:17]

    def lookup_value(self, kind: Kind, request: ChargeIn | RefundIn) -> str | None:
        """An order's `purchase_units[0].reference_id`, a refund's `invoice_id`."""
        return request.reference if isinstance(request, ChargeIn) else request.invoice_id

    def parse_lookup(self, kind: Kind, args: dict[str, str]) -> str:
        """What `GET /v2/checkout/orders?reference_id=` or `/v2/payments/refunds?invoice_id=` looks for."""
        return _required(args, "reference_id" if kind == "charge" else "invoice_id")

    def found(self, kind: Kind, records: list[Record]) -> Answer:
        if kind == "charge":
            return 200, {"orders": [self._order(r) for r in records]}
        return 200, {"refunds": [self._refund(r) for r in records]}

    def parse_charge(self, raw: bytes) -> ChargeIn:
        data = _json(raw)
        if data.get("intent") != "CAPTURE":
            raise Refused("must be CAPTURE", "/intent")
        units = data.get("purchase_units")
        if not isinstance(units, list) or len(units) != 1 or not isinstance(units[0], dict):
            raise Refused("must hold exactly one purchase unit", "/purchase_units")
        amount, currency = _money(units[0].get("amount"), "/purchase_units/0/amount")
        return ChargeIn(amount, currency, _optional_text(units[0].get("description"), "/purchase_units/0/description"),
                        _metadata(data.get("metadata"), "/metadata"),
                        _optional_text(units[0].get("reference_id"), "/purchase_units/0/reference_id"))

    def parse_refund(self, raw: bytes, charge_id: str | None) -> RefundIn:
        data = _json(raw, empty_ok=True)  # an empty body refunds the whole capture
        amount, currency = _money(data["amount"], "/amount") if data.get("amount") is not None else (None, None)
        return RefundIn(charge_id or "", amount, currency, _optional_text(data.get("note_to_payer"), "/note_to_payer"),
                        _metadata(data.get("metadata"), "/metadata"),
                        _optional_text(data.get("invoice_id"), "/invoice_id"))

    def error(self, problem: str, message: str, field: str | None = None) -> Answer:
        status, name, issue = self.problems[problem]
        detail = {"issue": issue, "description": message} | ({"field": field} if field else {})
        return status, {"name": name, "message": message, "debug_id": secrets.token_hex(6), "details": [detail]}

    def charged(self, record: Record) -> Answer:
        return 201, self._order(record)

    def refunded(self, record: Record) -> Answer:
        return 201, self._refund(record)

    def _order(self, record: Record) -> dict[str, Any]:
        status = "COMPLETED" if record.status == "succeeded" else "DECLINED"
        amount = {"currency_code": record.currency, "value": format_minor(record.amount, record.currency)}
        unit = {"reference_id": record.lookup, "amount": amount, "description": record.description,
                "payments": {"captures": [{"id": record.id, "status": status, "amount": amount}]}}
        return {"id": record.id, "intent": "CAPTURE", "status": status, "purchase_units": [unit],
                "metadata": record.metadata, "create_time": record.created_at}

    def _refund(self, record: Record) -> dict[str, Any]:
        amount = {"currency_code": record.currency, "value": format_minor(record.amount, record.currency)}
        return {"id": record.id, "status": "COMPLETED" if record.status == "succeeded" else "FAILED",
                "amount": amount, "invoice_id": record.lookup, "note_to_payer": record.reason,
                "metadata": record.metadata, "create_time": record.created_at}


Wire = StripeWire | PayPalWire
