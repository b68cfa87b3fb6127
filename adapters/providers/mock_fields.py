"""The mock provider server's field checks: each returns a request field's value or raises `Refused` naming it."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from adapters.providers.mock_wire import Refused
from core.money import MAX_MINOR, MINOR_UNITS

_DECIMAL = re.compile(r"[0-9]{1,20}(\.[0-9]{1,4})?")
_DIGITS = re.compile(r"[0-9]{1,20}")


def currency(value: object, field: str) -> str:
    """An ISO 4217 code, upper-cased."""
    code = value.upper() if isinstance(value, str) and value.isascii() else ""
    if code not in MINOR_UNITS:
        raise Refused("must be a three-letter ISO 4217 currency code", field)
    return code


def minor(value: object, field: str) -> int:
    """A positive whole number of minor units, as digits."""
    if not isinstance(value, str) or not _DIGITS.fullmatch(value) or not 0 < int(value) <= MAX_MINOR:
        raise Refused("must be a positive whole number of minor units", field)
    return int(value)


def money(value: object, field: str) -> tuple[int, str]:
    """Minor units and currency of a PayPal-style `{"currency_code", "value"}` decimal amount."""
    if not isinstance(value, dict):
        raise Refused("must be an object with currency_code and value", field)
    code = currency(value.get("currency_code"), f"{field}/currency_code")
    text, places = value.get("value"), MINOR_UNITS[code]
    match = _DECIMAL.fullmatch(text) if isinstance(text, str) else None
    if match is None or len(match.group(1) or ".") - 1 > places:
        raise Refused(f"must be a decimal string with at most {places} decimal places", f"{field}/value")
    return minor(str(int(Decimal(match.group(0)).scaleb(places))), f"{field}/value"), code


def optional_text(value: object, field: str) -> str | None:
    """A string, or None for a missing or empty one."""
    if value is not None and not isinstance(value, str):
        raise Refused("must be a string", field)
    return value or None


def metadata(value: object, field: str) -> dict[str, str]:
    """A JSON object of strings ({} when missing)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise Refused("must be an object of strings", field)
    return dict(value)


def json_object(raw: bytes, *, empty_ok: bool = False) -> dict[str, Any]:
    """A JSON object body ({} for an empty one where `empty_ok`)."""
    try:
        data = json.loads(raw) if raw.strip() or not empty_ok else {}
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested deeper than the parser recurses
        data = None
    if not isinstance(data, dict):
        raise Refused("the body must be a JSON object")
    return data


def form(raw: bytes) -> dict[str, str]:
    """A form-encoded body, the last value of each name."""
    try:
        return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=500))
    except ValueError:  # also UnicodeDecodeError
        raise Refused("the body must be application/x-www-form-urlencoded") from None


def form_metadata(fields: dict[str, str]) -> dict[str, str]:
    """The `metadata[key]` fields of a Stripe-style form, by key."""
    return {key[9:-1]: value for key, value in fields.items() if key.startswith("metadata[") and key.endswith("]")}


def required(args: dict[str, str], name: str) -> str:
    """A query argument that must be there and not blank, stripped."""
    value = args.get(name, "").strip()
    if not value:
        raise Refused("is required", name)
    return value
