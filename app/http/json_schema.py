"""JSON Schema from attrs classes: the component schemas of the OpenAPI document."""

from __future__ import annotations

import datetime
import decimal
import enum
import functools
import operator
import types
import typing
import uuid
from collections.abc import Sequence
from typing import Any

import attrs

_SCHEMAS = "#/components/schemas/"
_SIMPLE: dict[Any, dict[str, Any]] = {
    None: {"type": "null"}, str: {"type": "string"}, int: {"type": "integer"}, bool: {"type": "boolean"},
    float: {"type": "number"}, uuid.UUID: {"type": "string", "format": "uuid"},
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"}, Any: {}, types.NoneType: {"type": "null"},
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
        variants: tuple[str, dict[str, type]] | None = getattr(cls, "__openapi_one_of__", None)
        if variants is not None:
            return self.add(name, cls, self.one_of_schema(cls, *variants))
        return self.add(name, cls, self.object_schema(cls))

    def one_of_schema(self, cls: type, discriminator: str, variants: dict[str, type]) -> dict[str, Any]:
        """A body whose shape depends on one field (`__openapi_one_of__ = (field, {value: shape})`): exactly one
        of the shapes, told apart by that field. The server parses the union of the shapes into `cls` and
        checks each shape's conditions itself."""
        schema: dict[str, Any] = {"oneOf": [self.ref(shape) for shape in variants.values()],
                                  "discriminator": {"propertyName": discriminator, "mapping": {
                                      value: _SCHEMAS + shape.__name__ for value, shape in variants.items()}}}
        if cls.__doc__:
            schema["description"] = " ".join(cls.__doc__.split())
        return schema

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
        if (example := getattr(cls, "__openapi_example__", None)) is not None:  # a whole, consistent object
            schema["examples"] = [example]
        if getattr(cls, "__openapi_strict__", False):  # a request body: what the server's parser refuses too
            schema["additionalProperties"] = False
            schema["properties"] = {name: _storable(field) for name, field in properties.items()}
        return schema

    def field_schema(self, tp: Any, metadata: typing.Mapping[Any, Any]) -> dict[str, Any]:
        # `not_null`: an optional field that may be left out but not sent as null (absent means "unchanged")
        derived = self.type_schema(_without_none(tp) if metadata.get("not_null") else tp)
        extra: dict[str, Any] = dict(metadata.get("openapi", {}))
        if "type" not in extra:
            return {**derived, **extra}
        # An explicit "type" replaces the derived schema wholesale (no stale
        # format/anyOf/$ref left behind); nullability of the annotation is kept.
        kinds = extra["type"] if isinstance(extra["type"], list) else [extra["type"]]
        if _is_nullable(tp) and "null" not in kinds and not metadata.get("not_null"):
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


#: The text PostgreSQL can store: no NUL character, no lone surrogate (`app.http.io.storable`; a pair is one
#: character once the JSON is parsed, and a lone one matches in ECMA-262 with the `u` flag as in Python).
STORABLE_TEXT = "^[^\\u0000\\ud800-\\udfff]*$"


def _storable(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with every free-text string of it (no pattern, format or enum) restricted to `STORABLE_TEXT`."""
    kinds = schema.get("type")
    result = dict(schema)
    if (kinds == "string" or (isinstance(kinds, list) and "string" in kinds)) and not (
            {"pattern", "format", "enum"} & set(schema)):
        result["pattern"] = STORABLE_TEXT
    if isinstance(schema.get("additionalProperties"), dict):
        result["additionalProperties"] = _storable(schema["additionalProperties"])
    if isinstance(schema.get("propertyNames"), dict):
        result["propertyNames"] = _storable({"type": "string", **schema["propertyNames"]})
    if isinstance(schema.get("items"), dict):
        result["items"] = _storable(schema["items"])
    if "anyOf" in schema:
        result["anyOf"] = [_storable(option) for option in schema["anyOf"]]
    return result


def _without_none(tp: Any) -> Any:
    if not _is_nullable(tp):
        return tp
    rest = [arg for arg in typing.get_args(tp) if arg is not types.NoneType]
    return functools.reduce(operator.or_, rest)


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


_EXAMPLE_ID = "0190a6a4-3c1e-7d2a-9b1e-2f6a4c8d0e11"
_FORMATS = {"uuid": _EXAMPLE_ID, "date-time": "2026-01-31T12:00:00Z", "date": "2026-01-31",
            "uri": "https://example.com/hooks/payments"}


def example_of(schema: dict[str, Any], schemas: typing.Mapping[str, dict[str, Any]], *,
               request: bool = False) -> Any:
    """An example value of `schema` (component `$ref`s resolved in `schemas`), built from the schemas' own
    `examples`, defaults, enums and formats. A request example carries the required fields and those with an
    example of their own; a response example every field."""
    if "$ref" in schema:
        return example_of(schemas[schema["$ref"].removeprefix(_SCHEMAS)], schemas, request=request)
    if schema.get("examples"):
        return schema["examples"][0]
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("oneOf", "anyOf"):
        if key in schema:  # the first option that is not null
            outer = {name: value for name, value in schema.items() if name != key}  # e.g. the `format` of a uuid
            options = [option for option in schema[key] if option.get("type") != "null"] or schema[key]
            return example_of({**outer, **options[0]}, schemas, request=request)
    kinds = schema.get("type", "object")
    kind = next((k for k in kinds if k != "null"), "null") if isinstance(kinds, list) else kinds
    if kind == "object":
        if "properties" not in schema:
            values = schema.get("additionalProperties")
            return {"key": example_of(values, schemas, request=request)} if isinstance(values, dict) and values else {}
        required = set(schema.get("required", ()))
        return {name: example_of(field, schemas, request=request) for name, field in schema["properties"].items()
                if not request or name in required or "examples" in field}
    if kind == "array":
        return [example_of(schema.get("items", {}), schemas, request=request)] * max(1, schema.get("minItems", 1))
    if kind == "string":
        return _FORMATS.get(schema.get("format", ""), "string")
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    return {"boolean": True, "null": None}.get(kind, "string")
