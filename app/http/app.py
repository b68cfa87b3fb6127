"""The Sanic app factory: middleware (request id, logs, metrics), problem+json errors, routes."""

from __future__ import annotations

import re
import time
import uuid
from http import HTTPStatus
from typing import Any

from loguru import logger
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
from sanic import HTTPResponse, Request, Sanic
from sanic.exceptions import (
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RequestCancelled,
    SanicException,
    ServiceUnavailable,
)

from adapters.malloc import tune_collector
from adapters.telemetry import configure_tracing, context_from, tracer
from app.bootstrap import bootstrap
from app.http import metrics
from app.http.auth import KeyCache
from app.http.docs import configure_sanic_ext, install_docs
from app.http.operations import openapi_document
from app.http.problems import FRAMEWORK_SLUGS, PROBLEM_JSON, ApiError, problem, problem_for
from app.http.routes import (
    accounts,
    batches,
    events,
    health,
    holds,
    payments,
    problems,
    reconciliations,
    webhooks,
)
from app.logs import configure_logging, correlation_id
from app.settings import Settings
from core.errors import CoreError

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
#: Statuses that tell the client to come back, and the seconds a 503 without a better estimate asks it to wait.
RETRY_LATER = frozenset({429, 503})
UNAVAILABLE_RETRY_AFTER = 1
#: The status a request is counted and logged with when its client went away before the answer (nginx's 499): no
#: one receives it, and it is no error of the server.
CLIENT_CLOSED_REQUEST = 499


def create_app(settings: Settings, database_url: str, redis_url: str, *, name: str = "payments") -> Sanic[Any, Any]:
    """A configured app; its adapters connect when the server starts."""
    # Each Sanic worker process runs this factory: configure its logs here, not only in the CLI.
    configure_logging(settings.observability.log_level, settings.observability.log_format, process="api")
    configure_tracing("payments-api")
    app: Sanic[Any, Any] = Sanic(name, configure_logging=False)
    app.config.REQUEST_MAX_SIZE = settings.server.max_body_size
    # The request line and headers together (Sanic's ceiling; its default is 8 KiB): a list filtered on several
    # metadata pairs (`?metadata[key]=value`, values up to 500 characters) must fit; beyond it, 431.
    app.config.REQUEST_MAX_HEADER_SIZE = 16_384
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = settings.server.shutdown_timeout
    app.config.FALLBACK_ERROR_FORMAT = "json"
    # Server-to-server API with secret keys: no CORS (browsers must never hold a key).
    app.config.CORS = False
    configure_sanic_ext(app)
    app.ctx.keys = KeyCache()

    @app.before_server_start
    async def connect(app: Sanic[Any, Any]) -> None:
        app.ctx.services = await bootstrap(settings, database_url, redis_url, role="api")
        app.ctx.services.posting.observe = metrics.GROUP_COMMIT_REQUESTS.observe

    @app.after_server_start
    async def tune_gc(app: Sanic[Any, Any]) -> None:
        # A batch of a hundred transfers allocates enough to set off a full collection every few dozen batches:
        # 50-80 ms each before, under 10 after (measured in `payments serve`), paused inside the batch's unit of
        # work, its accounts locked.
        tune_collector()

    @app.after_server_stop
    async def disconnect(app: Sanic[Any, Any]) -> None:
        await app.ctx.services.aclose()

    app.on_request(_start, priority=100)
    app.on_response(_finish, priority=100)  # type: ignore[no-untyped-call]
    # BaseException, not Exception: a request whose client went away ends in Sanic's `RequestCancelled`, an
    # `asyncio.CancelledError`; left to Sanic's default handler it became an unlogged 500.
    app.error_handler.add(BaseException, _error)
    for module in (accounts, payments, holds, batches, webhooks, events, reconciliations, health, problems):
        app.blueprint(module.bp)
    install_docs(app, lambda: openapi_document(health.VERSION), title="Payments API")
    return app


async def _start(request: Request) -> None:
    supplied = request.headers.get("x-request-id", "")
    request.ctx.request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
    request.ctx.started = time.perf_counter()
    correlation_id.set(request.ctx.request_id)
    # The server span is current for the handler, so its queries and Redis calls are its children.
    route = _route(request)
    parent = context_from({name: request.headers[name] for name in ("traceparent", "tracestate")
                           if name in request.headers})
    span = tracer().start_span(f"{request.method} {route}", context=parent, kind=SpanKind.SERVER, attributes={
        "http.request.method": request.method, "http.route": route, "url.path": request.path,
        "url.scheme": request.scheme, "payments.request_id": request.ctx.request_id,
    })
    request.ctx.span = span
    request.ctx.span_token = otel_context.attach(set_span_in_context(span, parent))


def _route(request: Request) -> str:
    route = request.route.path if request.route is not None else "unmatched"
    return "/" + route.lstrip("/")


def _end_span(request: Request, status: int) -> None:
    span = getattr(request.ctx, "span", None)
    if span is None:
        return
    request.ctx.span = None
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()
    otel_context.detach(request.ctx.span_token)


async def _finish(request: Request, response: HTTPResponse) -> None:
    request_id = getattr(request.ctx, "request_id", None)
    if request_id is not None:
        response.headers["X-Request-ID"] = request_id
    if response.status in RETRY_LATER and "Retry-After" not in response.headers:
        response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)  # API.md §1: every 429 and 503 says when
    started = getattr(request.ctx, "started", None)
    seconds = time.perf_counter() - started if started is not None else 0.0
    metrics.observe(request.method, _route(request), response.status, seconds)
    logger.bind(method=request.method, path=request.path, status=response.status,
                duration_ms=round(seconds * 1000, 2)).info("request completed")
    _end_span(request, response.status)


def _error(request: Request, exception: BaseException) -> HTTPResponse:
    request_id = getattr(request.ctx, "request_id", None) if request is not None else None
    headers: dict[str, str] = {}
    if isinstance(exception, RequestCancelled):
        # The client closed its connection before the answer (it gave up waiting, or its connection sat in the
        # listen backlog while the process started): Sanic cancelled the handler and nothing can be sent back.
        return HTTPResponse(status=CLIENT_CLOSED_REQUEST)
    if isinstance(exception, CoreError):
        stored = problem_for(exception, request_id)
        if isinstance(exception, ApiError) and exception.retry_after is not None:
            headers["Retry-After"] = str(int(exception.retry_after))
    elif isinstance(exception, PayloadTooLarge) and "header" in str(exception).lower():
        stored = problem("request_header_fields_too_large", "the request headers are too large", request_id)
    elif isinstance(exception, PayloadTooLarge):
        limit = request.app.config.REQUEST_MAX_SIZE
        stored = problem("payload_too_large", f"the request body is larger than {limit} bytes", request_id)
    elif isinstance(exception, NotFound):
        stored = problem("not_found", "no such resource", request_id)
    elif isinstance(exception, MethodNotAllowed):
        stored = problem("method_not_allowed", f"{request.method} is not allowed here", request_id)
        headers["Allow"] = ", ".join(_allowed_methods(request))
    elif isinstance(exception, ServiceUnavailable):
        # Sanic's own 503: the handler ran past RESPONSE_TIMEOUT and was cancelled. Not a bug to answer 500 for.
        logger.warning("request cancelled after the response timeout ({}s)", request.app.config.RESPONSE_TIMEOUT)
        stored = problem("service_unavailable", "the request took too long to answer; retry later", request_id)
    elif isinstance(exception, SanicException) and 400 <= exception.status_code < 500:
        status = HTTPStatus(exception.status_code)
        slug = FRAMEWORK_SLUGS.get(status) or status.phrase.lower().replace(" ", "_").replace("-", "_")
        stored = problem(slug, str(exception), request_id, status=status)
    else:
        logger.opt(exception=exception).error("unhandled error")
        stored = problem("internal_error", "an unexpected error occurred; it has been logged", request_id)
    if request_id:
        headers["X-Request-ID"] = request_id
    return HTTPResponse(stored.body, status=stored.status, headers=headers, content_type=PROBLEM_JSON)


def _allowed_methods(request: Request) -> list[str]:
    """The methods the request's path takes, for a 405's `Allow`: each method the router resolves the path for.

    Why not the exception's `allowed_methods`: Sanic's router fills it in only for paths without parameters;
    for a route such as `/api/v1/accounts/<account_id:uuid>` its generated matcher raises the error bare.
    """
    router, host = request.app.router, request.headers.getone("host", None)
    allowed = []
    for method in sorted(str(method) for method in router.ALLOWED_METHODS):
        try:
            router.get(request.path, method, host)
        except (NotFound, MethodNotAllowed):
            continue
        allowed.append(method)
    return allowed
