"""OpenAPI 3.1 document generation from attrs classes and declarative operation descriptions."""

from __future__ import annotations

import copy
import datetime
import decimal
import enum
import http
import re
import types
import typing
import uuid
from collections.abc import Sequence
from typing import Any

import attrs

METHODS = frozenset({"get", "post", "put", "patch", "delete"})
IDEMPOTENCY_MODES = frozenset({"required", "optional", "none"})
_SCHEMAS = "#/components/schemas/"
_HEADERS = "#/components/headers/"
_PATH_PARAM = re.compile(r"{([^{}]+)}")
_SIMPLE: dict[Any, dict[str, Any]] = {
    str: {"type": "string"}, int: {"type": "integer"}, bool: {"type": "boolean"},
    float: {"type": "number"}, uuid.UUID: {"type": "string", "format": "uuid"},
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"}, Any: {},
    # Money in requests: a JSON number or a decimal string, parsed exactly.
    decimal.Decimal: {"type": ["string", "number"]},
}
_BODY_ERRORS = (400, 413, 422)  # malformed_json, payload_too_large, validation failed
_AUTH_ERRORS = (401, 403)


@attrs.frozen(kw_only=True)
class Parameter:
    name: str
    location: str = "query"  # "query" | "path"
    schema: dict[str, Any]
    required: bool = False
    description: str = ""


@attrs.frozen(kw_only=True)
class Operation:
    method: str
    path: str
    summary: str
    tag: str
    operation_id: str
    request: type | None = None
    response: type | None = None
    response_status: int = 200
    list_response: bool = False
    query: tuple[Parameter, ...] = ()
    idempotency: str = "none"
    errors: tuple[int, ...] = ()
    secured: bool = True
    body_optional: bool = False  # the request body may be left out (POST .../cancel)
    also: tuple[int, ...] = ()  # other success statuses answering the same schema (201 and 202 of POST /payments)


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": _SCHEMAS + name}


class _Registry:
    """Component schemas collected while walking attrs classes (name -> schema)."""

    def __init__(self, reserved: Sequence[str] = ()) -> None:
        self.schemas: dict[str, dict[str, Any]] = {}
        self._owners: dict[str, object] = dict.fromkeys(reserved, None)

    def add(self, name: str, owner: object, schema: dict[str, Any]) -> dict[str, Any]:
        if name in self._owners and self._owners[name] != owner:
            raise ValueError(f"two different schemas named {name!r}")
        self._owners[name] = owner
        self.schemas[name] = schema
        return _ref(name)

    def ref(self, cls: type) -> dict[str, Any]:
        name = cls.__name__
        if self._owners.get(name) is cls:
            return _ref(name)
        self.add(name, cls, {})  # placeholder first: allows self-referencing classes
        return self.add(name, cls, self.object_schema(cls))

    def object_schema(self, cls: type) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in attrs.fields(cls):
            properties[field.name] = self.field_schema(hints[field.name], field.metadata)
            if field.default is attrs.NOTHING:
                required.append(field.name)
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
    return _Registry().object_schema(cls)


def _problem_schemas() -> dict[str, dict[str, Any]]:
    string = {"type": "string"}
    fields = {"field": string, "message": string}
    problem = {
        "type": string, "title": string, "status": {"type": "integer"}, "detail": string,
        "request_id": string, "errors": {"type": "array", "items": _ref("ProblemFieldError")},
    }
    return {
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details.",
            "required": ["type", "title", "status", "detail", "request_id"],
            "properties": problem,
        },
        "ProblemFieldError": {"type": "object", "required": list(fields), "properties": fields},
    }


_COMPONENT_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "Identifier of this request: the client's X-Request-ID if valid, else a generated one.",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"},
    },
    "Idempotent-Replayed": {
        "description": "'true' when the response is a replay of a stored one.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Retry-After": {"description": "Seconds to wait.", "required": True, "schema": {"type": "integer", "minimum": 0}},
}
_IDEMPOTENCY_KEY_SCHEMA = {
    "type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[\x20-\x7E]+$",
}
_UUID_PATH_SCHEMA = {"type": "string", "format": "uuid"}


def _headers(op: Operation, status: int) -> dict[str, Any]:
    names = ["X-Request-ID"]
    if op.idempotency != "none":
        names.append("Idempotent-Replayed")
    if status == 429:
        names.append("Retry-After")
    return {name: {"$ref": _HEADERS + name} for name in names}


def _parameter(p: Parameter) -> dict[str, Any]:
    required = p.required or p.location == "path"  # OpenAPI: path parameters are always required
    entry = {"name": p.name, "in": p.location, "required": required, "schema": p.schema}
    return entry | ({"description": p.description} if p.description else {})


def _parameters(op: Operation) -> list[dict[str, Any]]:
    given = {p.name: p for p in op.query if p.location == "path"}
    names = _PATH_PARAM.findall(op.path)
    if stray := set(given) - set(names):
        raise ValueError(f"{op.operation_id}: path parameters not in path: {sorted(stray)}")
    default = Parameter(name="", location="path", schema=_UUID_PATH_SCHEMA)
    params = [given.get(name, attrs.evolve(default, name=name)) for name in names]
    result = [_parameter(p) for p in [*params, *(p for p in op.query if p.location != "path")]]
    if op.idempotency != "none":
        key = Parameter(name="Idempotency-Key", location="header", schema=_IDEMPOTENCY_KEY_SCHEMA,
                        required=op.idempotency == "required",
                        description="Client-chosen key making retries of this request safe.")
        result.append(_parameter(key))
    return result


def _success_schema(op: Operation, registry: _Registry) -> dict[str, Any] | None:
    if op.response is None:
        return None
    item = registry.ref(op.response)
    if not op.list_response:
        return item
    properties = {
        "data": {"type": "array", "items": item},
        "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    }
    envelope = {"type": "object", "required": list(properties), "properties": properties}
    name = f"{op.response.__name__}List"
    return registry.add(name, ("list", op.response), envelope)


def _operation(op: Operation, registry: _Registry) -> dict[str, Any]:
    if op.method not in METHODS or op.idempotency not in IDEMPOTENCY_MODES:
        raise ValueError(f"{op.operation_id}: bad method or idempotency mode")
    doc: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
    doc["tags"] = [op.tag]
    if params := _parameters(op):
        doc["parameters"] = params
    if op.request is not None:
        body = {"schema": registry.ref(op.request)}
        doc["requestBody"] = {"required": not op.body_optional, "content": {"application/json": body}}
    success: dict[str, Any] = {
        "description": http.HTTPStatus(op.response_status).phrase,
        "headers": _headers(op, op.response_status),
    }
    if (schema := _success_schema(op, registry)) is not None:
        success["content"] = {"application/json": {"schema": schema}}
    responses = {str(op.response_status): success}
    for status in op.also:
        responses[str(status)] = {**success, "description": http.HTTPStatus(status).phrase,
                                  "headers": _headers(op, status)}
    statuses = set(op.errors)
    statuses.update(_AUTH_ERRORS if op.secured else ())
    statuses.update(_BODY_ERRORS if op.request is not None else ())
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": http.HTTPStatus(status).phrase,
            "headers": _headers(op, status),
            "content": {"application/problem+json": {"schema": _ref("Problem")}},
        }
    doc["responses"] = responses
    if op.secured:
        doc["security"] = [{"bearerAuth": []}]
    return doc


@attrs.frozen(kw_only=True)
class Webhook:
    """What this API POSTs to subscribers (OpenAPI 3.1's top-level `webhooks`)."""

    name: str
    summary: str
    body: type
    headers: tuple[Parameter, ...] = ()


def _webhook(hook: Webhook, registry: _Registry) -> dict[str, Any]:
    return {"post": {
        "summary": hook.summary,
        "operationId": f"{hook.name}Webhook",
        "parameters": [_parameter(p) for p in hook.headers],
        "requestBody": {"required": True, "content": {"application/json": {"schema": registry.ref(hook.body)}}},
        "responses": {"2XX": {"description": "Received; any other answer, or none within the timeout, is "
                                              "retried with backoff"}},
    }}


def build_openapi(
    operations: Sequence[Operation], *, title: str, version: str, webhooks: Sequence[Webhook] = ()
) -> dict[str, Any]:
    """Build a complete OpenAPI 3.1 document for the given operations (and the webhooks it sends)."""
    problems = _problem_schemas()
    registry = _Registry(reserved=list(problems))
    paths: dict[str, dict[str, Any]] = {}
    tags: dict[str, None] = {}
    seen_ids: set[str] = set()
    for op in operations:
        if op.operation_id in seen_ids:
            raise ValueError(f"duplicate operationId {op.operation_id!r}")
        if op.method in paths.get(op.path, {}):
            raise ValueError(f"duplicate operation {op.method.upper()} {op.path}")
        seen_ids.add(op.operation_id)
        tags[op.tag] = None
        paths.setdefault(op.path, {})[op.method] = _operation(op, registry)
    document = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "servers": [{"url": "/"}],
        "tags": [{"name": tag} for tag in tags],
        "paths": paths,
        **({"webhooks": {hook.name: _webhook(hook, registry) for hook in webhooks}} if webhooks else {}),
        "components": {
            "schemas": {**registry.schemas, **problems},
            "headers": _COMPONENT_HEADERS,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
    return copy.deepcopy(document)  # share nothing with module constants or caller's objects
