"""Request and response shapes (attrs), structured strictly with cattrs; they also feed the OpenAPI document."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from core.errors import FieldError, ValidationFailed
from core.events import CATALOGUE
from core.money import MINOR_UNITS

_AMOUNT = {"openapi": {"description": "Decimal amount as a string or JSON number, e.g. \"10.50\"",
                       "examples": ["10.50"]}}
_CURRENCY = {"openapi": {"type": "string", "enum": sorted(MINOR_UNITS), "examples": ["USD"],
                         "description": "Active ISO 4217 code, upper case"}}
_METADATA = {"openapi": {"type": "object", "maxProperties": 20, "propertyNames": {"minLength": 1, "maxLength": 40},
                         "additionalProperties": {"type": "string", "maxLength": 500},
                         "description": "≤ 20 string keys (1–40 chars) to string values (≤ 500 chars)"}}
_MONEY_OUT = {"openapi": {"pattern": r"^-?\d+(\.\d+)?$", "examples": ["100.00"]}}
_UUID = {"openapi": {"format": "uuid"}}


@attrs.frozen(kw_only=True)
class CreateAccountRequest:
    __openapi_strict__ = True
    user_id: str = attrs.field(metadata={"openapi": {"minLength": 1, "maxLength": 255}})
    currency: str = attrs.field(metadata=_CURRENCY)
    initial_balance: Decimal | None = attrs.field(default=None, metadata=_AMOUNT)
    metadata: dict[str, str] | None = attrs.field(default=None, metadata=_METADATA)


@attrs.frozen(kw_only=True)
class TransferRequest:
    __openapi_strict__ = True
    source_account_id: str = attrs.field(metadata=_UUID)
    destination_account_id: str = attrs.field(metadata=_UUID)
    amount: Decimal = attrs.field(metadata=_AMOUNT)
    currency: str = attrs.field(metadata=_CURRENCY)
    description: str | None = attrs.field(default=None, metadata={"openapi": {"maxLength": 1000}})
    metadata: dict[str, str] | None = attrs.field(default=None, metadata=_METADATA)


@attrs.frozen(kw_only=True)
class PaymentRequest:
    __openapi_strict__ = True
    payment_type: Literal["internal_transfer", "external_payment"]
    source_account_id: str = attrs.field(metadata=_UUID)
    destination_account_id: str | None = attrs.field(default=None, metadata=_UUID)
    amount: Decimal = attrs.field(metadata=_AMOUNT)
    currency: str = attrs.field(metadata=_CURRENCY)
    provider: Literal["stripe", "paypal"] | None = None
    description: str | None = attrs.field(default=None, metadata={"openapi": {"maxLength": 1000}})
    metadata: dict[str, str] | None = attrs.field(default=None, metadata=_METADATA)


@attrs.frozen(kw_only=True)
class CancelRequest:
    """Cancel takes no fields; an empty body or `{}`."""

    __openapi_strict__ = True


@attrs.frozen(kw_only=True)
class RefundRequest:
    __openapi_strict__ = True
    amount: Decimal | None = attrs.field(default=None, metadata={"openapi": {
        "description": "Decimal amount in the payment's currency; absent: everything not yet refunded",
        "examples": ["5.00"]}})
    reason: str | None = attrs.field(default=None, metadata={"openapi": {"maxLength": 1000}})


@attrs.frozen(kw_only=True)
class Account:
    id: str = attrs.field(metadata=_UUID)
    user_id: str
    currency: str
    balance: str = attrs.field(metadata=_MONEY_OUT)
    status: Literal["active", "frozen", "closed"]
    version: int
    metadata: dict[str, str]
    created_at: str = attrs.field(metadata={"openapi": {"format": "date-time"}})
    updated_at: str = attrs.field(metadata={"openapi": {"format": "date-time"}})


@attrs.frozen(kw_only=True)
class Balance:
    account_id: str = attrs.field(metadata=_UUID)
    currency: str
    balance: str = attrs.field(metadata=_MONEY_OUT)
    version: int


@attrs.frozen(kw_only=True)
class LedgerEntry:
    id: str = attrs.field(metadata=_UUID)
    account_id: str = attrs.field(metadata=_UUID)
    payment_id: str | None = attrs.field(metadata=_UUID)
    type: Literal["debit", "credit"]
    amount: str = attrs.field(metadata=_MONEY_OUT)
    balance_after: str = attrs.field(metadata=_MONEY_OUT)
    currency: str
    created_at: str = attrs.field(metadata={"openapi": {"format": "date-time"}})


@attrs.frozen(kw_only=True)
class Payment:
    id: str = attrs.field(metadata=_UUID)
    payment_type: Literal["internal_transfer", "external_payment"]
    status: Literal["pending", "processing", "completed", "failed", "cancelled", "partially_refunded", "refunded"]
    source_account_id: str = attrs.field(metadata=_UUID)
    destination_account_id: str | None = attrs.field(metadata=_UUID)
    amount: str = attrs.field(metadata=_MONEY_OUT)
    currency: str
    provider: str | None
    provider_reference: str | None
    refunded_amount: str = attrs.field(metadata=_MONEY_OUT)
    failure_reason: str | None
    description: str | None
    metadata: dict[str, str]
    created_at: str = attrs.field(metadata={"openapi": {"format": "date-time"}})
    updated_at: str = attrs.field(metadata={"openapi": {"format": "date-time"}})
    completed_at: str | None = attrs.field(metadata={"openapi": {"format": "date-time"}})


@attrs.frozen(kw_only=True)
class Refund:
    id: str = attrs.field(metadata=_UUID)
    payment_id: str = attrs.field(metadata=_UUID)
    amount: str = attrs.field(metadata=_MONEY_OUT)
    currency: str
    status: Literal["pending", "succeeded", "failed"]
    reason: str | None
    provider_reference: str | None
    failure_reason: str | None
    created_at: str = attrs.field(metadata={"openapi": {"format": "date-time"}})
    updated_at: str = attrs.field(metadata={"openapi": {"format": "date-time"}})
    completed_at: str | None = attrs.field(metadata={"openapi": {"format": "date-time"}})


@attrs.frozen(kw_only=True)
class PaymentEvent:
    id: str = attrs.field(metadata=_UUID)
    payment_id: str = attrs.field(metadata=_UUID)
    sequence: int
    type: str
    data: dict[str, Any]
    correlation_id: str | None
    created_at: str = attrs.field(metadata={"openapi": {"format": "date-time"}})


@attrs.frozen(kw_only=True)
class PaymentEvents:
    data: list[PaymentEvent]


_EVENTS = {"openapi": {"minItems": 1, "items": {"type": "string", "enum": ["*", *CATALOGUE]},
                       "description": "Event types to receive, or [\"*\"] for all",
                       "examples": [["payment.completed"]]}}
_URL = {"openapi": {"format": "uri", "maxLength": 2048, "examples": ["https://example.com/hooks/payments"],
                    "description": "http(s) URL; private, loopback and link-local hosts are refused unless allowed"}}
_TIME = {"openapi": {"format": "date-time"}}


@attrs.frozen(kw_only=True)
class WebhookRequest:
    url: str = attrs.field(metadata=_URL)
    events: list[str] = attrs.field(metadata=_EVENTS)
    description: str | None = attrs.field(default=None, metadata={"openapi": {"maxLength": 1000}})
    enabled: bool = True


@attrs.frozen(kw_only=True)
class EmptyRequest:
    """No fields: the body may be left out or be `{}`."""


@attrs.frozen(kw_only=True)
class WebhookUpdate:
    url: str | None = attrs.field(default=None, metadata=_URL)
    events: list[str] | None = attrs.field(default=None, metadata=_EVENTS)
    description: str | None = attrs.field(default=None, metadata={"openapi": {"maxLength": 1000}})
    enabled: bool | None = None


@attrs.frozen(kw_only=True)
class Webhook:
    id: str = attrs.field(metadata=_UUID)
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    previous_secret_expires_at: str | None = attrs.field(metadata=_TIME)
    created_at: str = attrs.field(metadata=_TIME)
    updated_at: str = attrs.field(metadata=_TIME)


@attrs.frozen(kw_only=True)
class WebhookWithSecret(Webhook):
    """A webhook as created or rotated: with its signing secret, shown this once."""

    secret: str = attrs.field(metadata={"openapi": {"pattern": "^whsec_", "description": "Shown only here"}})


@attrs.frozen(kw_only=True)
class WebhookDelivery:
    id: str = attrs.field(metadata=_UUID)
    webhook_id: str = attrs.field(metadata=_UUID)
    event_id: str = attrs.field(metadata=_UUID)
    event_type: str
    status: Literal["pending", "succeeded", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: str | None = attrs.field(metadata=_TIME)
    delivered_at: str | None = attrs.field(metadata=_TIME)
    created_at: str = attrs.field(metadata=_TIME)
    updated_at: str = attrs.field(metadata=_TIME)


@attrs.frozen(kw_only=True)
class WebhookEventData:
    object: dict[str, Any] = attrs.field(metadata={"openapi": {
        "description": "The resource as the API shows it after the event (a payment, refund or account)"}})


@attrs.frozen(kw_only=True)
class WebhookEvent:
    """The body of a webhook delivery: the same bytes, and the same `id`, on every attempt."""

    id: str = attrs.field(metadata={"openapi": {"format": "uuid", "description": "The event id: deduplicate on it"}})
    type: str = attrs.field(metadata={"openapi": {"enum": list(CATALOGUE)}})
    created_at: str = attrs.field(metadata=_TIME)
    data: WebhookEventData


@attrs.frozen(kw_only=True)
class Health:
    status: str
    version: str


converter = cattrs.Converter(forbid_extra_keys=True)
_DECIMAL = re.compile(r"^[ ]*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)[ ]*$")  # ASCII digits only


def _structure_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _structure_decimal(value: Any, _: type) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        raise ValueError("must be a decimal number or a decimal string such as \"10.50\"")
    if isinstance(value, str) and not _DECIMAL.match(value):
        raise ValueError("must be a decimal number or a decimal string such as \"10.50\"")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValueError("must be a decimal number") from None
    if not number.is_finite():
        raise ValueError("must be a finite decimal number")
    return number


def _structure_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _structure_strings(value: Any, _: type) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of strings")
    return value


def _structure_dict(value: Any, _: type) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError("must be an object of string keys to string values")
    return value


converter.register_structure_hook(str, _structure_str)
converter.register_structure_hook(Decimal, _structure_decimal)
converter.register_structure_hook(bool, _structure_bool)
converter.register_structure_hook_func(lambda t: t == list[str], _structure_strings)
converter.register_structure_hook_func(lambda t: t == dict[str, str], _structure_dict)


def parse_body(body: Any, cls: type[Any]) -> Any:
    """Structure a parsed JSON body into `cls`, or raise `ValidationFailed` naming every bad field."""
    if not isinstance(body, dict):
        raise ValidationFailed([FieldError("body", "must be a JSON object")])
    try:
        return converter.structure(body, cls)
    except (ClassValidationError, IterableValidationError, ForbiddenExtraKeysError) as group:
        raise ValidationFailed(_field_errors(group)) from None


def _field_errors(error: BaseException, path: str = "") -> list[FieldError]:
    if isinstance(error, ForbiddenExtraKeysError):
        prefix = f"{path}." if path else ""
        return [FieldError(f"{prefix}{key}", "is not a known field") for key in sorted(error.extra_fields)]
    if isinstance(error, BaseExceptionGroup):
        found: list[FieldError] = []
        for sub in error.exceptions:
            name = next((str(n.name) for n in getattr(sub, "__notes__", []) if hasattr(n, "name")), "")
            found += _field_errors(sub, f"{path}.{name}" if path and name else (name or path))
        return found
    return [_leaf(error, path or "body")]


def _leaf(error: BaseException, field: str) -> FieldError:
    if isinstance(error, KeyError):
        return FieldError(field, "is required")
    if type(error) is ValueError:  # raised by the hooks above, with a message for humans
        return FieldError(field, str(error))
    if "Literal" in str(error) or "not in" in str(error):
        return FieldError(field, "is not one of the allowed values")
    return FieldError(field, "has the wrong type")
