"""Request bodies structured strictly into their attrs shapes with cattrs, every bad field named."""

from __future__ import annotations

import enum
import functools
import re
import typing
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
import cattrs
import cattrs.cols
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from core.errors import FieldError, ValidationFailed

converter = cattrs.Converter(forbid_extra_keys=True)
#: A decimal string: ASCII digits, no sign but `+` (an amount is never negative; `-0` is no exception). The
#: schemas' patterns (`schemas.fields`) describe the same strings, with the places and digits the core allows.
_DECIMAL = re.compile(r"[ ]*[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)[ ]*")


def _structure_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _structure_decimal(value: Any, _: type) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        raise ValueError("must be a decimal number or a decimal string such as \"10.50\"")
    if isinstance(value, str) and not _DECIMAL.fullmatch(value):
        raise ValueError("must be a decimal number or a decimal string such as \"10.50\"")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValueError("must be a decimal number") from None
    if not number.is_finite():
        raise ValueError("must be a finite decimal number")
    return number


def _structure_enum(value: Any, kind: type[enum.Enum]) -> enum.Enum:
    """A status named by its value; `str` would take any string (a StrEnum is a str)."""
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"must be one of {', '.join(str(member.value) for member in kind)}") from None


def _structure_int(value: Any, _: type) -> int:
    # JSON Schema counts 5.0 (and 5e3) as an integer; the body's numbers arrive as Decimals (`io.read_json`)
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number")
    return value


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


def _list_of_shapes(tp: Any) -> bool:
    """A request field holding a list of request shapes (a batch's `transfers`)."""
    return typing.get_origin(tp) is list and attrs.has(typing.get_args(tp)[0])


def _structure_list_of_shapes(value: Any, tp: Any) -> list[Any]:
    if not isinstance(value, list):  # else a string or an object would be iterated, each item failing on its own
        raise ValueError("must be a list")
    return _shapes(tp)(value, tp)


@functools.cache
def _shapes(tp: Any) -> Callable[[Any, Any], list[Any]]:
    structure: Callable[[Any, Any], list[Any]] = cattrs.cols.list_structure_factory(tp, converter)
    return structure


converter.register_structure_hook(str, _structure_str)
converter.register_structure_hook(Decimal, _structure_decimal)
converter.register_structure_hook(bool, _structure_bool)
converter.register_structure_hook(int, _structure_int)
converter.register_structure_hook(enum.StrEnum, _structure_enum)  # before `str` in a StrEnum's MRO
converter.register_structure_hook_func(lambda t: t == list[str], _structure_strings)
converter.register_structure_hook_func(lambda t: t == dict[str, str], _structure_dict)
converter.register_structure_hook_func(_list_of_shapes, _structure_list_of_shapes)


def parse_body(body: Any, cls: type[Any]) -> Any:
    """Structure a parsed JSON body into `cls`, or raise `ValidationFailed` naming every bad field."""
    if not isinstance(body, dict):
        raise ValidationFailed([FieldError("body", "must be a JSON object")])
    # A field declared `not_null` may be left out (absent means "unchanged") but not be null: its schema says so too.
    nulls = [FieldError(name, "must not be null") for name in _not_null(cls) if name in body and body[name] is None]
    try:
        parsed = converter.structure(body, cls)
    except (ClassValidationError, IterableValidationError, ForbiddenExtraKeysError) as group:
        raise ValidationFailed([*nulls, *_field_errors(group)]) from None
    if nulls:
        raise ValidationFailed(nulls)
    return parsed


def _not_null(cls: type) -> tuple[str, ...]:
    return tuple(field.metadata.get("json_name", field.name) for field in attrs.fields(cls)
                 if field.metadata.get("not_null"))


def _field_errors(error: BaseException, path: str = "") -> list[FieldError]:
    if isinstance(error, ForbiddenExtraKeysError):
        prefix = f"{path}." if path else ""
        return [FieldError(f"{prefix}{key}", "is not a known field") for key in sorted(error.extra_fields)]
    if isinstance(error, BaseExceptionGroup):
        found: list[FieldError] = []
        for sub in error.exceptions:
            notes = getattr(sub, "__notes__", [])
            name = next((str(n.name) for n in notes if isinstance(n, AttributeValidationNote)), "")
            index = next((n.index for n in notes if isinstance(n, IterableValidationNote)), None)
            if index is not None:  # an item of a list: `transfers[3]`
                found += _field_errors(sub, f"{path}[{index}]")
            else:
                found += _field_errors(sub, f"{path}.{name}" if path and name else (name or path))
        return list(dict.fromkeys(found))  # a string taken for a list fails once, not once per character
    return [_leaf(error, path or "body")]


def _leaf(error: BaseException, field: str) -> FieldError:
    if isinstance(error, KeyError):
        return FieldError(field, "is required")
    if type(error) is ValueError:  # raised by the hooks above, with a message for humans
        return FieldError(field, str(error))
    if "Literal" in str(error) or "not in" in str(error):
        return FieldError(field, "is not one of the allowed values")
    return FieldError(field, "has the wrong type")
