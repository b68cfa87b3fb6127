"""The mock provider server: Stripe- and PayPal-like endpoints that remember every charge and refund by key.

Each provider also answers lookups (Stripe's searches by `metadata[payment_id]` / `metadata[refund_id]`,
PayPal's orders by `reference_id` and refunds by `invoice_id`) and a settlement report per UTC day
(`mock_settlements`); they obey the latency and failure rate like every provider route, and record and count
nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from sanic import HTTPResponse, Request, Sanic
from sanic import json as json_response
from sanic.exceptions import SanicException

from adapters.providers.mock_control import MockControl
from adapters.providers.mock_endpoints import MockProviders
from adapters.providers.mock_paypal import PayPalWire
from adapters.providers.mock_settlements import paypal_page, stripe_page
from adapters.providers.mock_state import MockState, check_config
from adapters.providers.mock_stripe import StripeWire

log = logging.getLogger(__name__)


def _error(request: Request, exception: Exception) -> HTTPResponse:
    """Sanic's own refusals (unknown route, wrong method, oversized body) and crashes, shaped like Stripe's."""
    status = exception.status_code if isinstance(exception, SanicException) else 500
    if status >= 500:
        log.error("mock provider server failed", exc_info=exception)
    message = str(exception) or HTTPStatus(status).phrase
    return json_response({"error": {"type": "invalid_request_error", "message": message}}, status=status)


def create_mock_app(
    *, latency: float = 0.0, failure_rate: float = 0.0, name: str = "mock_providers",
) -> Sanic[Any, Any]:
    """The mock server as a Sanic app (its state in memory, per app); ValueError for a bad latency or rate."""
    if problems := check_config(latency, failure_rate):
        raise ValueError("; ".join(problems))
    app: Sanic[Any, Any] = Sanic(name, configure_logging=False)
    app.config.AUTO_EXTEND = False  # self-contained: no sanic-ext docs, CORS or injection
    app.config.GRACEFUL_SHUTDOWN_TIMEOUT = 1.0  # `timeout` requests hang for minutes: do not wait for them
    app.config.REQUEST_MAX_SIZE = 1_000_000
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.TOUCHUP = False  # Sanic's code rewriting fails on a second app started in one process (tests)
    state = MockState(float(latency), float(failure_rate), (float(latency), float(failure_rate)))
    app.ctx.state = state
    handlers, control = MockProviders(state), MockControl(state)
    routes: list[tuple[Callable[..., Any], str, str]] = [
        (handlers.endpoint(StripeWire(), "charge"), "/stripe/v1/payment_intents", "POST"),
        (handlers.endpoint(StripeWire(), "refund"), "/stripe/v1/refunds", "POST"),
        (handlers.endpoint(PayPalWire(), "charge"), "/paypal/v2/checkout/orders", "POST"),
        (handlers.endpoint(PayPalWire(), "refund"), "/paypal/v2/payments/captures/<capture_id:str>/refund", "POST"),
        (handlers.lookup(StripeWire(), "charge"), "/stripe/v1/payment_intents/search", "GET"),
        (handlers.lookup(StripeWire(), "refund"), "/stripe/v1/refunds/search", "GET"),
        (handlers.lookup(PayPalWire(), "charge"), "/paypal/v2/checkout/orders", "GET"),
        (handlers.lookup(PayPalWire(), "refund"), "/paypal/v2/payments/refunds", "GET"),
        (handlers.report(StripeWire(), stripe_page), "/stripe/v1/balance_transactions", "GET"),
        (handlers.report(PayPalWire(), paypal_page), "/paypal/v1/reporting/transactions", "GET"),
        (control.settlements, "/_mock/settlements", "GET"),
        (control.records, "/_mock/charges", "GET"),
        (control.records, "/_mock/refunds", "GET"),
        (control.get_config, "/_mock/config", "GET"),
        (control.put_config, "/_mock/config", "PUT"),
        (control.reset, "/_mock/reset", "POST"),
        (control.health, "/health", "GET"),
    ]
    for handler, uri, method in routes:
        app.add_route(handler, uri, methods=[method], name=f"{method.lower()}{uri.replace('/', '_')}")
    app.error_handler.add(Exception, _error)
    return app


def serve_mock(host: str, port: int, latency: float, failure_rate: float) -> None:
    """Serve the mock on host:port in this one process until interrupted (SIGINT or SIGTERM)."""
    app = create_mock_app(latency=latency, failure_rate=failure_rate)
    # The one app of this process: Sanic may rewrite its request path to skip the signals nobody listens to, which
    # `create_mock_app` turns off for apps that share a process with others (tests). Sanic dispatching every
    # request's lifecycle signals was a fifth of the mock's CPU under bench/payments.py (docs/benchmarks.md).
    app.config.TOUCHUP = True

    @app.after_server_start
    async def announce(app: Sanic[Any, Any]) -> None:
        print(f"mock providers listening on http://{host}:{port} (/stripe /paypal /_mock)", file=sys.stderr, flush=True)

    app.run(host=host, port=port, single_process=True, motd=False, access_log=False)


def main(argv: list[str] | None = None) -> None:
    """`python -m adapters.providers.mock_server [--host H] [--port P] [--latency S] [--failure-rate R]`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds every provider request waits first")
    parser.add_argument("--failure-rate", type=float, default=0.0, help="share of requests answered 503 (0-1)")
    args = parser.parse_args(argv)
    if problems := check_config(args.latency, args.failure_rate):
        parser.error("; ".join(problems))
    serve_mock(args.host, args.port, args.latency, args.failure_rate)


if __name__ == "__main__":
    main()
