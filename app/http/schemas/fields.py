"""OpenAPI details of the fields the resources share: amounts, currencies, metadata, ids and times."""

from __future__ import annotations

from typing import Any

from core.money import MINOR_UNITS

AMOUNT = {"openapi": {"description": "Decimal amount as a string or JSON number, e.g. \"10.50\"",
                      "examples": ["10.50"]}}
CURRENCY = {"openapi": {"type": "string", "enum": sorted(MINOR_UNITS), "examples": ["USD"],
                        "description": "Active ISO 4217 code, upper case"}}
METADATA = {"openapi": {"type": "object", "maxProperties": 20, "propertyNames": {"minLength": 1, "maxLength": 40},
                        "additionalProperties": {"type": "string", "maxLength": 500},
                        "description": "≤ 20 string keys (1–40 chars) to string values (≤ 500 chars)"}}
MONEY_OUT = {"openapi": {"pattern": r"^-?\d+(\.\d+)?$", "examples": ["100.00"]}}
UUID = {"openapi": {"format": "uuid"}}
TIME = {"openapi": {"format": "date-time"}}
DESCRIPTION: dict[str, Any] = {"openapi": {"maxLength": 1000}}
