"""The API reference in Markdown (docs/api/reference.md), rendered from the OpenAPI document and the problem types.

`python -m app.http.reference [PATH]` writes it (default `docs/api/reference.md`); a unit test fails while the
committed file differs from what this renders.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.http.operations import openapi_document
from app.http.problem_types import PROBLEM_TYPES

DEFAULT_PATH = "docs/api/reference.md"
COMMAND = f"python -m app.http.reference {DEFAULT_PATH}"
#: Where `make run` serves the problem pages (`GET /problems/<slug>`).
PAGES = "http://localhost:8080/problems/"
_ENUM_SHOWN = 30  # longer enums (the currencies) are summarised
#: RFC 9110's names, fixed here: Python's `HTTPStatus` phrases differ between versions (3.13 renamed 413 and 422).
_PHRASES = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 409: "Conflict", 413: "Content Too Large",
            422: "Unprocessable Content", 429: "Too Many Requests", 503: "Service Unavailable"}


def problems_of(operation: dict[str, Any]) -> dict[int, list[str]]:
    """Each error status of an operation with the problem types it may carry, as the document declares them
    (`x-problem-types`, from each `Operation`'s `problems`: see `openapi.problem_slugs`)."""
    return {int(code): list(response.get("x-problem-types", []))
            for code, response in operation["responses"].items() if int(code) >= 400}


def _name(reference: str) -> str:
    return reference.rsplit("/", 1)[-1]


def type_of(schema: dict[str, Any]) -> str:
    """A schema as a short Markdown type: `string (uuid)`, `array of [Payment](#payment)`, `"a" \\| "b"`."""
    if "$ref" in schema:
        name = _name(schema["$ref"])
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        outer = {k: v for k, v in schema.items() if k != "anyOf"}  # e.g. a `format` meant for the non-null option
        options = [type_of(option if option.get("type") == "null" else {**outer, **option})
                   for option in schema["anyOf"]]
        return " or ".join(dict.fromkeys(options))
    if "enum" in schema:
        values = schema["enum"]
        if len(values) > _ENUM_SHOWN:
            return f"string (one of {len(values)} codes)"
        return " \\| ".join(f"`{value}`" for value in values)
    kinds = schema.get("type", "any")
    kind = " or ".join(kinds) if isinstance(kinds, list) else kinds
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind.startswith("object") and isinstance(schema.get("additionalProperties"), dict):
        values = type_of(schema["additionalProperties"]) if schema["additionalProperties"] else "any"
        kind = kind.replace("object", f"object of {values}", 1)
    return f"{kind} ({schema['format']})" if "format" in schema else kind


_LIMITS = (("minLength", "≥ {} chars"), ("maxLength", "≤ {} chars"), ("minimum", "≥ {}"), ("maximum", "≤ {}"),
           ("maxProperties", "≤ {} keys"), ("default", "default `{}`"))


def notes_of(schema: dict[str, Any]) -> str:
    """A field's description, limits and example, on one line."""
    text = schema.get("description", "").rstrip(".").replace("|", "\\|").replace("<", "\\<")  # not a table cell or tag
    parts = [text] if text else []
    parts += [text.format(schema[key]) for key, text in _LIMITS if key in schema]
    if schema.get("examples") and "e.g." not in text:
        example = schema["examples"][0]
        parts.append(f"e.g. `{example if isinstance(example, str) else json.dumps(example)}`")
    return "; ".join(parts)


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return [*lines, *("| " + " | ".join(row) + " |" for row in rows), ""]


def _fields(schema: dict[str, Any]) -> list[str]:
    if "oneOf" in schema:
        options = " or ".join(type_of(option) for option in schema["oneOf"])
        told = schema.get("discriminator", {}).get("propertyName")
        return [f"One of {options}" + (f", as `{told}` says." if told else "."), ""]
    required = set(schema.get("required", []))
    rows = [(f"`{name}`", type_of(field), "yes" if name in required else "", notes_of(field))
            for name, field in schema.get("properties", {}).items()]
    lines = _table(("field", "type", "required", "notes"), rows) if rows else ["No fields.", ""]
    if schema.get("additionalProperties") is False:
        lines.insert(0, "Unknown fields are refused (`validation_error`).\n")
    return lines


def _parameters(parameters: list[dict[str, Any]]) -> list[str]:
    rows = []
    for p in parameters:
        name = f"`{p['name']}[key]`" if p.get("style") == "deepObject" else f"`{p['name']}`"
        rows.append((name, p["in"], "yes" if p["required"] else "", type_of(p["schema"]),
                     notes_of({**p["schema"], **({"description": p["description"]} if "description" in p else {})})))
    return ["**Parameters**", "", *_table(("name", "in", "required", "type", "notes"), rows)]


def _content(response: dict[str, Any]) -> str:
    kinds = []
    for media, body in response.get("content", {}).items():
        if media == "application/problem+json":
            continue
        kinds.append(f"{type_of(body['schema'])} (`{media}`)" if media != "application/json" else
                     type_of(body["schema"]))
    return ", ".join(kinds) or "no body"


def _operation(path: str, method: str, op: dict[str, Any]) -> list[str]:
    scope = "none" if "security" not in op else ("read" if method == "get" else "write")
    key = next((("required" if p["required"] else "optional") for p in op.get("parameters", [])
                if p["name"] == "Idempotency-Key"), "not used")
    lines = [f"### {op['summary']}", "", f"`{method.upper()} {path}`", "",
             f"Scope `{scope}` · `Idempotency-Key` {key} · operationId `{op['operationId']}`", "",
             *([op["description"], ""] if "description" in op else [])]
    if op.get("parameters"):
        lines += _parameters(op["parameters"])
    if "requestBody" in op:
        body = op["requestBody"]
        shown = type_of(body["content"]["application/json"]["schema"])
        lines += [f"**Request body** {shown}" + ("" if body["required"] else " (optional: may be left out)"), ""]
    errors = problems_of(op)
    rows = []
    for status, response in op["responses"].items():
        if int(status) < 400:
            rows.append((status, _PHRASES[int(status)], _content(response)))
        else:
            slugs = ", ".join(f"[`{slug}`](#{slug})" for slug in errors[int(status)])
            rows.append((status, _PHRASES[int(status)], slugs or "a problem"))
    return [*lines, "**Responses**", "", *_table(("status", "meaning", "body or problem types"), rows)]


def _problem_types() -> list[str]:
    lines = ["## Problem types", "",
             "Every error is `application/problem+json` whose `type` is `/problems/<slug>`; the server serves "
             f"each page (HTML, or JSON with `Accept: application/json`), e.g. <{PAGES}not_found> under `make run`.",
             "", *_table(("type", "status", "title"), [
                 (f"[`/problems/{slug}`](#{slug})", str(kind.status), kind.title)
                 for slug, kind in PROBLEM_TYPES.items()])]
    for slug, kind in PROBLEM_TYPES.items():
        lines += [f"### {slug}", "", f"{kind.status} {kind.title} · page: <{PAGES}{slug}>", "",
                  kind.description, "", f"What to do: {kind.what_to_do}", ""]
    return lines


def render() -> str:
    """The whole reference, deterministic (the server's version is left out)."""
    doc = openapi_document("reference")
    tags = [tag["name"] for tag in doc["tags"]]
    lines = ["# API reference", "",
             f"<!-- Generated by `{COMMAND}` from the server's OpenAPI document; do not edit. -->", "",
             "Every `/api/v1` operation, grouped by resource, as the server's own OpenAPI document "
             "(`GET /openapi.json`, rendered at `/docs`) declares it, then the shapes it uses and the problem types. "
             "Every operation needs `Authorization: Bearer <api key>` with the scope shown, answers `X-Request-ID`, "
             "and may answer the problems listed with each status. The guides ([index](README.md)) explain the "
             "rules behind them.", "",
             "Resources: " + " · ".join(f"[{tag}](#{tag})" for tag in tags)
             + " · [webhook deliveries](#webhook-deliveries) · [schemas](#schemas) · [problem types](#problem-types)",
             ""]
    for tag in tags:
        lines += [f"## {tag}", ""]
        for path, methods in doc["paths"].items():
            lines += [line for method, op in methods.items() if op["tags"] == [tag]
                      for line in _operation(path, method, op)]
    lines += ["## Webhook deliveries", ""]
    for hook in doc.get("webhooks", {}).values():
        post = hook["post"]
        lines += [f"{post['summary']}: `POST <your url>` with body "
                  f"{type_of(post['requestBody']['content']['application/json']['schema'])}.", "",
                  *_parameters(post["parameters"]), f"Answer 2XX: {post['responses']['2XX']['description']}.", ""]
    lines += ["## Schemas", ""]
    for name, schema in doc["components"]["schemas"].items():
        lines += [f"### {name}", "", *([schema["description"], ""] if "description" in schema else []),
                  *_fields(schema)]
    return "\n".join([*lines, *_problem_types()]).rstrip() + "\n"


def main(argv: list[str]) -> int:
    """Write the reference to the path given (default docs/api/reference.md)."""
    target = Path(argv[0] if argv else DEFAULT_PATH)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
