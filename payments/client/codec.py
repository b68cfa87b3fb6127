"""JSON in and out of the client: request shapes to bodies, answers to the server's attrs classes."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from app.http.schemas.batches import DraftPayment
from app.http.schemas.payments import Payment

T = TypeVar("T")

#: Forgiving on the way in: a field a newer server adds is ignored, so upgrading the server breaks no client.
_converter = cattrs.Converter(forbid_extra_keys=False)


def _renamed(cls: type) -> bool:
    return attrs.has(cls) and any("json_name" in field.metadata for field in attrs.fields(cls))


def _renamed_hook(cls: type) -> Any:
    names = {field.name: override(rename=field.metadata["json_name"])
             for field in attrs.fields(cls) if "json_name" in field.metadata}
    return make_dict_structure_fn(cls, _converter, **names)  # type: ignore[arg-type]


def _batch_payment(value: Any, _: type) -> Payment | DraftPayment | None:
    """A batch result's payment: a `Payment`, or a dry run's `DraftPayment`, which has no id (shown as "")."""
    if value is None:
        return None
    if "id" in value:
        return _converter.structure(value, Payment)
    return _converter.structure({**value, "id": ""}, DraftPayment)


_converter.register_structure_hook_factory(_renamed, _renamed_hook)
_converter.register_structure_hook_func(lambda t: t == (Payment | DraftPayment | None), _batch_payment)


def decode(data: Any, cls: type[T]) -> T:
    """Structure a parsed JSON answer into `cls` (an attrs class of `app.http.schemas`, or a `Page[...]`)."""
    return _converter.structure(data, cls)


def encode(shape: Any) -> dict[str, Any]:
    """The JSON body of a request shape; fields left `None` are left out (the API's "absent")."""
    body: dict[str, Any] = {}
    for field in attrs.fields(type(shape)):
        value = getattr(shape, field.name)
        if value is not None:
            body[field.metadata.get("json_name", field.name)] = _json(value)
    return body


def _json(value: Any) -> Any:
    if isinstance(value, bool | int | str) and not isinstance(value, enum.Enum):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return [_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _json(item) for key, item in value.items()}
    if attrs.has(type(value)):
        return encode(value)
    raise TypeError(f"cannot send a {type(value).__name__} as JSON")


def amount(value: Decimal | str | int) -> Decimal:
    """An amount as the caller gave it, exactly: a `Decimal`, a decimal string or an int, never a float."""
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int):
        raise TypeError(f"an amount is a Decimal, a decimal string or an int, not {type(value).__name__} "
                        "(a float cannot hold most decimal amounts exactly)")
    return value if isinstance(value, Decimal) else Decimal(value)


def query_value(value: Any) -> str:
    """A query parameter's text: a datetime as RFC 3339 UTC with `Z`, an enum as its value."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a naive datetime is ambiguous: give it a timezone")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


QueryPairs = list[tuple[str, str | int | float | bool | None]]


def query(params: dict[str, Any]) -> QueryPairs:
    """Query parameters, `None` left out and `metadata={"k": "v"}` sent as `metadata[k]=v` (API.md §1)."""
    pairs: QueryPairs = []
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, dict):
            pairs += [(f"{name}[{key}]", query_value(item)) for key, item in value.items()]
        else:
            pairs.append((name, query_value(value)))
    return pairs
