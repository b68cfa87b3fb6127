"""OpenAPI details of the fields the resources share: amounts, currencies, metadata, ids and times."""

from __future__ import annotations

from typing import Any

from core.money import MAX_MINOR, MINOR_UNITS

#: The most decimal places any currency allows (CLF, UYW: 4), and so the most an amount may carry.
MAX_PLACES = max(MINOR_UNITS.values())
#: The most significant integer digits an amount may carry: 2^53-1 minor units of a currency without decimals.
MAX_DIGITS = len(str(MAX_MINOR))
_ZERO = rf"0+(\.0{{0,{MAX_PLACES}}})?|\.0{{1,{MAX_PLACES}}}"
_FRACTION = "|".join("0" * n + f"[1-9][0-9]{{0,{MAX_PLACES - n - 1}}}" for n in range(MAX_PLACES))
_POSITIVE = rf"0*[1-9][0-9]{{0,{MAX_DIGITS - 1}}}(\.[0-9]{{0,{MAX_PLACES}}})?|0*\.({_FRACTION})"
#: A decimal string as the server reads one (surrounding spaces, a `+`, leading zeros and `.5` are fine): the
#: formats of the amounts a movement takes (> 0) and of the amounts that may be zero (an initial balance, an
#: overdraft limit). Whether its places fit the currency, and its value 2^53-1 minor units, depends on the
#: currency, which the schema of a field cannot see: those are checked on the server (`validation_error`).
POSITIVE_PATTERN = rf"^ *\+?({_POSITIVE}) *$"
ZERO_OR_POSITIVE_PATTERN = rf"^ *\+?({_POSITIVE}|{_ZERO}) *$"
_AMOUNT_TEXT = ("as a string or JSON number, e.g. \"10.50\", with at most the currency's decimal places and at most "
                "2^53-1 minor units")
AMOUNT: dict[str, dict[str, Any]] = {"openapi": {
    "pattern": POSITIVE_PATTERN, "exclusiveMinimum": 0, "maximum": MAX_MINOR,
    "description": f"Decimal amount > 0 {_AMOUNT_TEXT}", "examples": ["10.50"]}}
AMOUNT_OR_ZERO: dict[str, dict[str, Any]] = {"openapi": {
    "pattern": ZERO_OR_POSITIVE_PATTERN, "minimum": 0, "maximum": MAX_MINOR,
    "description": f"Decimal amount ≥ 0 {_AMOUNT_TEXT}", "examples": ["10.50"]}}
CURRENCY = {"openapi": {"type": "string", "enum": sorted(MINOR_UNITS), "examples": ["USD"],
                        "description": "Active ISO 4217 code, upper case"}}
METADATA = {"openapi": {"type": "object", "maxProperties": 20, "propertyNames": {"minLength": 1, "maxLength": 40},
                        "additionalProperties": {"type": "string", "maxLength": 500},
                        "description": "≤ 20 string keys (1–40 chars) to string values (≤ 500 chars)"}}
CURRENCY_OUT = {"openapi": {"examples": ["USD"]}}
MONEY_OUT = {"openapi": {"pattern": r"^-?\d+(\.\d+)?$", "examples": ["100.00"]}}
UUID = {"openapi": {"format": "uuid"}}
TIME = {"openapi": {"format": "date-time"}}
DESCRIPTION: dict[str, Any] = {"openapi": {"maxLength": 1000}}
