"""The OpenAPI 3.1 document, assembled from operation declarations (schemas come from `json_schema`)."""

from __future__ import annotations

import copy
import http
from collections.abc import Mapping, Sequence
from typing import Any

from app.http.declarations import IDEMPOTENCY_MODES, METHODS, Link, Operation, Parameter, Webhook
from app.http.json_schema import SchemaRegistry, example_of, ref, schema_for
from app.http.problem_types import PROBLEM_TYPES

__all__ = ["Link", "Operation", "Parameter", "Webhook", "build_openapi", "problem_slugs", "schema_for"]

_HEADERS = "#/components/headers/"
_BODY_ERRORS = (400, 413, 422)  # malformed_json, payload_too_large, validation failed
_AUTH_ERRORS = (401, 403)


def problem_slugs(op: Operation, status: int) -> list[str]:
    """The problem types `op` may answer with the error `status`: those of its kind, then its own."""
    body = op.request is not None
    idempotent, key_required = op.idempotency != "none", op.idempotency == "required"
    generic = {400: ["malformed_json"] * body + ["idempotency_key_missing"] * key_required,
               401: ["unauthorized"], 403: ["forbidden"], 413: ["payload_too_large"], 429: ["rate_limited"],
               409: ["idempotency_request_in_progress"] * idempotent,
               422: ["validation_error", *["idempotency_key_reused"] * idempotent],
               503: ["service_unavailable"]}
    return [*generic.get(status, []), *(slug for slug in op.problems if PROBLEM_TYPES[slug].status == status)]


def _problem_example(slug: str) -> dict[str, Any]:
    kind = PROBLEM_TYPES[slug]
    return {"type": f"/problems/{slug}", "title": kind.title, "status": kind.status,
            "detail": kind.description.split(". ")[0].rstrip("."), "request_id": "3f2c9a6e1b7d4c0a8e5f6a7b8c9d0e1f"}


def _problem_schemas() -> dict[str, dict[str, Any]]:
    string = {"type": "string"}
    fields = {"field": string, "message": string}
    leg = {"index": {"type": "integer", "minimum": 0}, "type": string, "title": string, "status": {"type": "integer"},
           "detail": string}
    problem = {
        "type": string, "title": string, "status": {"type": "integer"}, "detail": string,
        "request_id": string,
        "errors": {"type": "array", "items": {"anyOf": [ref("ProblemFieldError"), ref("ProblemBatchTransfer")]}},
    }
    return {
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem details.",
            "required": ["type", "title", "status", "detail", "request_id"],
            "properties": problem,
        },
        "ProblemFieldError": {"type": "object", "required": list(fields), "properties": fields},
        "ProblemBatchTransfer": {"type": "object", "required": list(leg), "properties": leg,
                                 "description": "A failing transfer of a batch (batch_failed): its index and problem"},
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
    if p.deep:
        entry |= {"style": "deepObject", "explode": True}
    return entry | ({"description": p.description} if p.description else {})


def _parameters(op: Operation) -> list[dict[str, Any]]:
    result = [_parameter(p) for p in [*op.path_parameters(), *(p for p in op.query if p.location != "path")]]
    if op.idempotency != "none":
        key = Parameter(name="Idempotency-Key", location="header", schema=_IDEMPOTENCY_KEY_SCHEMA,
                        required=op.idempotency == "required",
                        description="Client-chosen key making retries of this request safe.")
        result.append(_parameter(key))
    return result


def _success_schema(op: Operation, registry: SchemaRegistry) -> dict[str, Any] | None:
    if op.response is None:
        return None
    item = registry.ref(op.response)
    if not op.list_response:
        return item
    properties = {
        "data": {"type": "array", "items": item},
        "has_more": {"type": "boolean", "description": "Whether another page follows (then `next_cursor` is set)"},
        "next_cursor": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    }
    envelope = {"type": "object", "required": list(properties), "properties": properties}
    name = f"{op.response.__name__}List"
    return registry.add(name, ("list", op.response), envelope)


_KEY = {"required": "`Idempotency-Key` is required: a retry with the same key and request replays the first answer.",
        "optional": "`Idempotency-Key` is optional: with one, a retry with the same key and request replays the first "
                    "answer.", "none": ""}


def _description(op: Operation) -> str:
    """What every operation's description says unless it declares its own: the key scope and the idempotency."""
    scope = f"Needs an API key with the `{op.scope}` scope." if op.secured else "No API key needed."
    return " ".join(filter(None, [scope, _KEY[op.idempotency]]))


def _operation(op: Operation, registry: SchemaRegistry) -> dict[str, Any]:
    if op.method not in METHODS or op.idempotency not in IDEMPOTENCY_MODES:
        raise ValueError(f"{op.operation_id}: bad method or idempotency mode")
    doc: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
    doc["description"] = op.description or _description(op)
    doc["tags"] = [op.tag]
    if params := _parameters(op):
        doc["parameters"] = params
    if op.request is not None:
        body = {"schema": registry.ref(op.request)}
        body["example"] = (example_of(body["schema"], registry.schemas, request=True) if op.request_example is None
                           else op.request_example)
        doc["requestBody"] = {"required": not op.body_optional, "content": {"application/json": body}}
    success: dict[str, Any] = {
        "description": http.HTTPStatus(op.response_status).phrase,
        "headers": _headers(op, op.response_status),
    }
    if (schema := _success_schema(op, registry)) is not None:
        example = example_of(schema, registry.schemas) if op.response_example is None else op.response_example
        success["content"] = {"application/json": {"schema": schema, "example": example}}
        if op.csv:
            success["content"]["text/csv"] = {"schema": {"type": "string"}}
    if op.links:
        success["links"] = {
            link.operation_id[0].upper() + link.operation_id[1:]: {
                "operationId": link.operation_id, "parameters": {link.parameter: f"$response.body#/{link.field}"},
                "description": f"`{link.field}` of the response is the `{link.parameter}` of {link.operation_id}"}
            for link in op.links}
    responses = {str(op.response_status): success}
    for status in op.also:
        responses[str(status)] = {**success, "description": http.HTTPStatus(status).phrase,
                                  "headers": _headers(op, status)}
    statuses = set(op.errors)
    statuses.update(_AUTH_ERRORS if op.secured else ())
    statuses.update(_BODY_ERRORS if op.request is not None else ())
    if stray := [slug for slug in op.problems if PROBLEM_TYPES[slug].status not in statuses]:
        raise ValueError(f"{op.operation_id}: problem types whose status it does not declare: {stray}")
    for status in sorted(statuses):
        slugs = problem_slugs(op, status)
        described = ", ".join(f"`{slug}`" for slug in slugs)
        content: dict[str, Any] = {"schema": ref("Problem")}
        if slugs:
            content["example"] = _problem_example(slugs[-1])
        responses[str(status)] = {
            "description": http.HTTPStatus(status).phrase + (f": {described}" if slugs else ""),
            "headers": _headers(op, status),
            "content": {"application/problem+json": content},
            **({"x-problem-types": slugs} if slugs else {}),
        }
    doc["responses"] = responses
    if op.secured:
        doc["security"] = [{"bearerAuth": []}]
    return doc


def _webhook(hook: Webhook, registry: SchemaRegistry) -> dict[str, Any]:
    return {"post": {
        "summary": hook.summary,
        "operationId": f"{hook.name}Webhook",
        "parameters": [_parameter(p) for p in hook.headers],
        "requestBody": {"required": True, "content": {"application/json": {"schema": registry.ref(hook.body)}}},
        "responses": {"2XX": {"description": "Received; any other answer, or none within the timeout, is "
                                              "retried with backoff"}},
    }}


def build_openapi(
    operations: Sequence[Operation], *, title: str, version: str, webhooks: Sequence[Webhook] = (),
    description: str = "", tags: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build a complete OpenAPI 3.1 document for the given operations (and the webhooks it sends).

    `tags`: each tag's description (a tag of an operation but not in `tags` has none).
    """
    described = dict(tags or {})
    problems = _problem_schemas()
    registry = SchemaRegistry(reserved=list(problems))
    paths: dict[str, dict[str, Any]] = {}
    ordered_tags: dict[str, None] = {}
    seen_ids: set[str] = set()
    for op in operations:
        if op.operation_id in seen_ids:
            raise ValueError(f"duplicate operationId {op.operation_id!r}")
        if op.method in paths.get(op.path, {}):
            raise ValueError(f"duplicate operation {op.method.upper()} {op.path}")
        seen_ids.add(op.operation_id)
        ordered_tags[op.tag] = None
        paths.setdefault(op.path, {})[op.method] = _operation(op, registry)
    document = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, **({"description": description} if description else {})},
        "servers": [{"url": "/"}],
        "tags": [{"name": tag, **({"description": described[tag]} if tag in described else {})}
                 for tag in ordered_tags],
        "paths": paths,
        **({"webhooks": {hook.name: _webhook(hook, registry) for hook in webhooks}} if webhooks else {}),
        "components": {
            "schemas": {**registry.schemas, **problems},
            "headers": _COMPONENT_HEADERS,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
    return copy.deepcopy(document)  # share nothing with module constants or caller's objects
