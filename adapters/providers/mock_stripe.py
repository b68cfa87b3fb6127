"""The mock server's Stripe-like wire format: form-encoded PaymentIntents and Refunds, searched by metadata."""

from __future__ import annotations

import re
import secrets
from typing import Any, ClassVar

from adapters.providers import mock_fields as fields
from adapters.providers.mock_state import Answer, Kind, Record
from adapters.providers.mock_wire import ChargeIn, RefundIn, Refused

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

    def new_id(self, kind: Kind) -> str:
        return ("pi_" if kind == "charge" else "re_") + secrets.token_hex(12)

    def lookup_value(self, kind: Kind, request: ChargeIn | RefundIn) -> str | None:
        return request.metadata.get(self.lookup_keys[kind]) or None

    def parse_lookup(self, kind: Kind, args: dict[str, str]) -> str:
        """The metadata value `GET /v1/payment_intents/search` or `/v1/refunds/search?query=...` looks for."""
        key = self.lookup_keys[kind]
        match = _SEARCH.fullmatch(fields.required(args, "query"))
        if match is None or match["key"] != key:
            raise Refused(f"the mock searches by metadata['{key}']:'<value>' only", "query")
        return match["value"]

    def found(self, kind: Kind, records: list[Record]) -> Answer:
        path = "/v1/payment_intents/search" if kind == "charge" else "/v1/refunds/search"
        data = [self._intent(r) if kind == "charge" else self._refund(r) for r in records]
        return 200, {"object": "search_result", "url": path, "has_more": False, "next_page": None, "data": data}

    def parse_charge(self, raw: bytes) -> ChargeIn:
        form = fields.form(raw)
        return ChargeIn(fields.minor(form.get("amount"), "amount"), fields.currency(form.get("currency"), "currency"),
                        form.get("description") or None, fields.form_metadata(form))

    def parse_refund(self, raw: bytes, charge_id: str | None) -> RefundIn:
        form = fields.form(raw)
        if not form.get("payment_intent"):
            raise Refused("is required", "payment_intent")
        amount = fields.minor(form["amount"], "amount") if "amount" in form else None
        return RefundIn(form["payment_intent"], amount, None, form.get("reason") or None, fields.form_metadata(form))

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
