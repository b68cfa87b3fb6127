"""What an HTTP operation is declared as, once: its route, shapes, statuses, idempotency, query, problem types and
links (`openapi` builds the document from these; the routes, the reference and the client read them too)."""

from __future__ import annotations

import re
from typing import Any

import attrs

METHODS = frozenset({"get", "post", "put", "patch", "delete"})
IDEMPOTENCY_MODES = frozenset({"required", "optional", "none"})
PATH_PARAMETER = re.compile(r"{([^{}]+)}")
_UUID_PATH_SCHEMA = {"type": "string", "format": "uuid"}


@attrs.frozen(kw_only=True)
class Parameter:
    """A query, path or header parameter of an operation."""

    name: str
    location: str = "query"  # "query" | "path"
    schema: dict[str, Any]
    required: bool = False
    description: str = ""
    #: An object sent as `name[key]=value` pairs (OpenAPI `style: deepObject`), e.g. `?metadata[tier]=gold`.
    deep: bool = False


@attrs.frozen(kw_only=True)
class Link:
    """An OpenAPI link from an operation's success response to another operation: `parameter` of `operation_id`
    is the response's `field` (e.g. getAccount's `account_id` is the created account's `id`)."""

    operation_id: str
    parameter: str
    field: str = "id"


@attrs.frozen(kw_only=True)
class Operation:
    """One HTTP operation, declared once: its route, shapes, statuses, idempotency, query and scope.

    `path` is in OpenAPI syntax (`/api/v1/payments/{payment_id}`); the Sanic route derives from it.
    """

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
    csv: bool = False  # the success answer may also be `text/csv` (a statement with `format=csv`)
    max_body_size: int | None = None  # a larger body limit than the server's (POST /batches: 1 MiB)
    #: The business problem types it may answer (slugs of `problem_types`), beyond those every operation of its
    #: kind answers (auth, validation, idempotency, rate limit, unavailable: `problem_slugs` adds those); each
    #: one's status must be among `errors`.
    problems: tuple[str, ...] = ()
    description: str = ""  # Markdown, shown under the summary
    links: tuple[Link, ...] = ()  # operations its success response's fields feed (OpenAPI links)
    #: Examples of its request body and success response; by default built from the schemas' own examples.
    request_example: Any = None
    response_example: Any = None

    @property
    def scope(self) -> str:
        """The API-key scope it needs: `read` to GET, `write` for everything else."""
        return "read" if self.method == "get" else "write"

    @property
    def query_names(self) -> tuple[str, ...]:
        """The query parameters it accepts; any other is refused like an unknown body field. A deep object's
        name ends in `[]`: it stands for every `name[key]`."""
        return tuple(p.name + "[]" * p.deep for p in self.query if p.location == "query")

    @property
    def statuses(self) -> tuple[int, ...]:
        """Its success statuses: `response_status` first."""
        return (self.response_status, *self.also)

    def path_parameters(self) -> list[Parameter]:
        """Each `{name}` of the path in order: as given in `query`, else a UUID."""
        given = {p.name: p for p in self.query if p.location == "path"}
        names = PATH_PARAMETER.findall(self.path)
        if stray := set(given) - set(names):
            raise ValueError(f"{self.operation_id}: path parameters not in path: {sorted(stray)}")
        default = Parameter(name="", location="path", schema=_UUID_PATH_SCHEMA)
        return [given.get(name, attrs.evolve(default, name=name)) for name in names]


@attrs.frozen(kw_only=True)
class Webhook:
    """What this API POSTs to subscribers (OpenAPI 3.1's top-level `webhooks`)."""

    name: str
    summary: str
    body: type
    headers: tuple[Parameter, ...] = ()
