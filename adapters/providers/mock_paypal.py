"""The mock server's PayPal-like wire format: JSON orders captured at once, capture refunds, decimal amounts."""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from adapters.providers import mock_fields as fields
from adapters.providers.mock_state import Answer, Kind, Record
from adapters.providers.mock_wire import ChargeIn, RefundIn, Refused
from core.money import format_minor


class PayPalWire:
    """PayPal-like: JSON orders captured at once and capture refunds, `{"name", "details"}` errors."""

    provider = "paypal"
    key_header = "PayPal-Request-Id"
    problems: ClassVar[dict[str, tuple[int, str]]] = {  # problem -> status, detail issue
        "unauthorized": (401, "INVALID_ACCESS_TOKEN"),
        "missing_key": (400, "MISSING_REQUIRED_PARAMETER"),
        "invalid": (400, "INVALID_PARAMETER_VALUE"),
        "conflict": (422, "DUPLICATE_REQUEST_ID"),
        "not_found": (404, "INVALID_RESOURCE_ID"),
        "exceeds": (422, "REFUND_AMOUNT_EXCEEDED"),
        "charge_declined": (422, "INSTRUMENT_DECLINED"),
        "refund_declined": (422, "TRANSACTION_REFUSED"),
        "unavailable": (503, "SERVICE_UNAVAILABLE"),
        "timeout": (504, "GATEWAY_TIMEOUT"),
    }
    #: PayPal names an error after its HTTP status; the detail's issue says what went wrong
    names: ClassVar[dict[int, str]] = {
        400: "INVALID_REQUEST", 401: "AUTHENTICATION_FAILURE", 404: "RESOURCE_NOT_FOUND",
        422: "UNPROCESSABLE_ENTITY", 503: "SERVICE_UNAVAILABLE", 504: "GATEWAY_TIMEOUT",
    }

    def new_id(self, kind: Kind) -> str:
        return secrets.token_hex(9).upper()[:17]

    def lookup_value(self, kind: Kind, request: ChargeIn | RefundIn) -> str | None:
        """An order's `purchase_units[0].reference_id`, a refund's `invoice_id`."""
        return request.reference if isinstance(request, ChargeIn) else request.invoice_id

    def parse_lookup(self, kind: Kind, args: dict[str, str]) -> str:
        """What `GET /v2/checkout/orders?reference_id=` or `/v2/payments/refunds?invoice_id=` looks for."""
        return fields.required(args, "reference_id" if kind == "charge" else "invoice_id")

    def found(self, kind: Kind, records: list[Record]) -> Answer:
        if kind == "charge":
            return 200, {"orders": [self._order(r) for r in records]}
        return 200, {"refunds": [self._refund(r) for r in records]}

    def parse_charge(self, raw: bytes) -> ChargeIn:
        data = fields.json_object(raw)
        if data.get("intent") != "CAPTURE":
            raise Refused("must be CAPTURE", "/intent")
        units = data.get("purchase_units")
        if not isinstance(units, list) or len(units) != 1 or not isinstance(units[0], dict):
            raise Refused("must hold exactly one purchase unit", "/purchase_units")
        amount, currency = fields.money(units[0].get("amount"), "/purchase_units/0/amount")
        return ChargeIn(amount, currency,
                        fields.optional_text(units[0].get("description"), "/purchase_units/0/description"),
                        fields.metadata(data.get("metadata"), "/metadata"),
                        fields.optional_text(units[0].get("reference_id"), "/purchase_units/0/reference_id"))

    def parse_refund(self, raw: bytes, charge_id: str | None) -> RefundIn:
        data = fields.json_object(raw, empty_ok=True)  # an empty body refunds the whole capture
        amount, currency = fields.money(data["amount"], "/amount") if data.get("amount") is not None else (None, None)
        return RefundIn(charge_id or "", amount, currency,
                        fields.optional_text(data.get("note_to_payer"), "/note_to_payer"),
                        fields.metadata(data.get("metadata"), "/metadata"),
                        fields.optional_text(data.get("invoice_id"), "/invoice_id"))

    def error(self, problem: str, message: str, field: str | None = None) -> Answer:
        status, issue = self.problems[problem]
        detail = {"issue": issue, "description": message} | ({"field": field} if field else {})
        return status, {"name": self.names[status], "message": message, "debug_id": secrets.token_hex(6),
                        "details": [detail]}

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
