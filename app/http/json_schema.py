"""JSON Schema from attrs classes: the component schemas of the OpenAPI document."""

from __future__ import annotations

import datetime
import decimal
import enum
import types
import typing
import uuid
from collections.abc import Sequence
from typing import Any

import attrs

_SCHEMAS = "#/components/schemas/"
_SIMPLE: dict[Any, dict[str, Any]] = {
    str: {"type": "string"}, int: {"type": "integer"}, bool: {"type": "boolean"},
    float: {"type": "number"}, uuid.UUID: {"type": "string", "format": "uuid"},
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"}, Any: {},
    # Money in requests: a JSON number or a decimal string, parsed exactly.
    decimal.Decimal: {"type": ["string", "number"]},
}


def ref(name: str) -> dict[str, Any]:
    """A `$ref` to the component schema `name`."""
    return {"$ref": _SCHEMAS + name}


class SchemaRegistry:
    """Component schemas collected while walking attrs classes (name -> schema)."""

    def __init__(self, reserved: Sequence[str] = ()) -> None:
        self.schemas: dict[str, dict[str, Any]] = {}
        self._owners: dict[str, object] = dict.fromkeys(reserved, None)

    def add(self, name: str, owner: object, schema: dict[str, Any]) -> dict[str, Any]:
        if name in self._owners and self._owners[name] != owner:
            raise ValueError(f"two different schemas named {name!r}")
        self._owners[name] = owner
        self.schemas[name] = schema
        return ref(name)

    def ref(self, cls: type) -> dict[str, Any]:
        name = cls.__name__
        if self._owners.get(name) is cls:
            return ref(name)
        self.add(name, cls, {})  # placeholder first: allows self-referencing classes
        return self.add(name, cls, self.object_schema(cls))

    def object_schema(self, cls: type) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        omitted: frozenset[str] = getattr(cls, "__openapi_omit__", frozenset())
        for field in attrs.fields(cls):
            if field.name in omitted:
                continue
            name = field.metadata.get("json_name", field.name)  # `from`: a keyword, so `from_` in Python
            properties[name] = self.field_schema(hints[field.name], field.metadata)
            if field.default is attrs.NOTHING:
                required.append(name)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        if getattr(cls, "__openapi_strict__", False):
            schema["additionalProperties"] = False
        return schema

    def field_schema(self, tp: Any, metadata: typing.Mapping[Any, Any]) -> dict[str, Any]:
        derived = self.type_schema(tp)
        extra: dict[str, Any] = dict(metadata.get("openapi", {}))
        if "type" not in extra:
            return {**derived, **extra}
        # An explicit "type" replaces the derived schema wholesale (no stale
        # format/anyOf/$ref left behind); nullability of the annotation is kept.
        kinds = extra["type"] if isinstance(extra["type"], list) else [extra["type"]]
        if _is_nullable(tp) and "null" not in kinds:
            kinds = [*kinds, "null"]
        extra["type"] = kinds if len(kinds) > 1 else kinds[0]
        return extra

    def type_schema(self, tp: Any) -> dict[str, Any]:
        if tp in _SIMPLE:
            return dict(_SIMPLE[tp])
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (types.UnionType, typing.Union):
            options = [self.type_schema(arg) for arg in args if arg is not types.NoneType]
            if types.NoneType in args:
                options.append({"type": "null"})
            return options[0] if len(options) == 1 else {"anyOf": options}
        if origin is typing.Literal:
            return _enum_schema(list(args))
        if origin is list or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
            return {"type": "array", "items": self.type_schema(args[0])}
        if origin is dict and args[:1] == (str,):
            return {"type": "object", "additionalProperties": self.type_schema(args[1])}
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return _enum_schema([member.value for member in tp])
        if isinstance(tp, type) and attrs.has(tp):
            return self.ref(tp)
        raise TypeError(f"unsupported type for OpenAPI schema: {tp!r}")


def _is_nullable(tp: Any) -> bool:
    is_union = typing.get_origin(tp) in (types.UnionType, typing.Union)
    return is_union and types.NoneType in typing.get_args(tp)


def _enum_schema(values: list[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {"enum": values}
    kinds = {type(value) for value in values}
    if len(kinds) == 1 and (kind := kinds.pop()) in _SIMPLE:
        schema["type"] = _SIMPLE[kind]["type"]
    return schema


def schema_for(cls: type) -> dict[str, Any]:
    """JSON Schema of one attrs class, as registered under components; nested classes are $refs."""
    return SchemaRegistry().object_schema(cls)
