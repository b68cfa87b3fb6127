"""The filters of GET /api/v1/payments: declared once for the OpenAPI document and for parsing (API.md §6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.http.io import FieldChecks, parse_time, parse_uuid
from app.http.openapi import Parameter
from app.http.schemas.statuses import PAYMENT_STATUSES
from core.payments import PROVIDERS, PaymentType
from core.ports import PaymentFilter

_CHOICES: dict[str, tuple[str, ...]] = {
    "status": PAYMENT_STATUSES, "payment_type": tuple(kind.value for kind in PaymentType), "provider": PROVIDERS,
}


def _choice(name: str) -> Parameter:
    return Parameter(name=name, schema={"type": "string", "enum": list(_CHOICES[name])})


_TIME = {"type": "string", "format": "date-time"}
PAYMENT_FILTERS = (
    _choice("status"), _choice("payment_type"),
    Parameter(name="account_id", schema={"type": "string", "format": "uuid"}),
    _choice("provider"),
    Parameter(name="created_after", schema=_TIME), Parameter(name="created_before", schema=_TIME),
)


def payment_filter(args: Mapping[str, Any]) -> PaymentFilter:
    """The list filters, each checked; all problems reported at once."""
    values: dict[str, str] = {name: str(args.get(name)) for name in args}  # Sanic's args: first value of each
    checks = FieldChecks()
    for name, allowed in _CHOICES.items():
        if name in values and values[name] not in allowed:
            checks.fail(name, f"must be one of {', '.join(allowed)}")
    account = checks.check(parse_uuid, values["account_id"], "account_id") if "account_id" in values else None
    after = checks.check(parse_time, values["created_after"], "created_after") if "created_after" in values else None
    before = (checks.check(parse_time, values["created_before"], "created_before")
              if "created_before" in values else None)
    checks.done()
    return PaymentFilter(status=values.get("status"), payment_type=values.get("payment_type"), account_id=account,
                         provider=values.get("provider"), created_after=after, created_before=before)
