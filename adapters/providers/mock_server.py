"""The mock provider server: Stripe- and PayPal-like endpoints that remember every charge and refund by key.

Each provider also answers lookups (Stripe's searches by `metadata[payment_id]` / `metadata[refund_id]`,
PayPal's orders by `reference_id` and refunds by `invoice_id`); they obey the latency and failure rate
like every provider route, and record and count nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from sanic import HTTPResponse, Request, Sanic
from sanic import json as json_response
from sanic.exceptions import SanicException

from adapters.providers.mock_state import Answer, Kind, MockState, Record, Slot, check_config
from adapters.providers.mock_wire import ChargeIn, PayPalWire, RefundIn, Refused, StripeWire, Wire
from adapters.providers.outcomes import (
    CHARGE_OUTCOME,
    DELAY,
    REFUND_OUTCOME,
    Outcome,
    answer_delay,
    parse_outcome,
)

HANG_SECONDS = 120.0  # how long a `timeout` request hangs before its 504: far beyond any client timeout
DECLINED = {"charge": "Your card was declined.", "refund": "The refund was declined by the provider."}

log = logging.getLogger(__name__)


class MockProviders:
    """The request handlers over one `MockState`."""

    def __init__(self, state: MockState) -> None:
        self.state = state

    def endpoint(self, wire: Wire, kind: Kind) -> Callable[..., Awaitable[HTTPResponse]]:
        """The handler of one provider's charge or refund route (PayPal names the capture in the path)."""
        async def handler(request: Request, capture_id: str | None = None) -> HTTPResponse:
            return await self._serve(request, wire, kind, capture_id)
        return handler

    def lookup(self, wire: Wire, kind: Kind) -> Callable[..., Awaitable[HTTPResponse]]:
        """The handler of one provider's charge or refund lookup (a GET: it records and counts nothing)."""
        async def handler(request: Request) -> HTTPResponse:
            if (refused := await self._admit(request, wire)) is not None:
                return _send(refused)
            try:
                value = wire.parse_lookup(kind, {name: values[0] for name, values in request.args.items()})
            except Refused as error:
                return _send(wire.error(error.problem, error.message, error.field))
            return _send(wire.found(kind, self.state.find(kind, wire.provider, value)))
        return handler

    async def _admit(self, request: Request, wire: Wire) -> Answer | None:
        """What every provider route does first: wait `latency`, fail at `failure_rate`, require a bearer key."""
        state = self.state
        if state.latency > 0:
            await asyncio.sleep(state.latency)
        if state.failure_rate > 0 and random.random() < state.failure_rate:
            return wire.error("unavailable", "The provider is temporarily unavailable (injected failure).")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return wire.error("unauthorized", "A bearer API key is required in the Authorization header.")
        return None

    async def _serve(self, request: Request, wire: Wire, kind: Kind, charge_id: str | None) -> HTTPResponse:
        state = self.state
        if (refused := await self._admit(request, wire)) is not None:
            return _send(refused)
        key = request.headers.get(wire.key_header, "").strip()
        if not 0 < len(key) <= 255:
            return _send(wire.error("missing_key", f"The {wire.key_header} header is required (1-255 characters)."))
        try:
            parsed = wire.parse_charge(request.body) if kind == "charge" else wire.parse_refund(request.body, charge_id)
        except Refused as error:
            return _send(wire.error(error.problem, error.message, error.field))
        slot = (kind, wire.provider, key)
        async with state.locks.setdefault(slot, asyncio.Lock()):  # one request per key at a time
            state.requests[slot] += 1
            try:
                answer = self._charge(wire, slot, parsed) if isinstance(parsed, ChargeIn) else self._refund(
                    wire, slot, parsed)
            except Refused as error:
                answer = wire.error(error.problem, error.message, error.field)
        if answer is None:  # `timeout`: hang outside the lock, record nothing
            await asyncio.sleep(HANG_SECONDS)
            return _send(wire.error("timeout", "The provider did not answer in time."))
        if delay := answer_delay(parsed.metadata.get(DELAY)):  # recorded already; the answer is on its way
            await asyncio.sleep(delay)
        return _send(answer)

    def _charge(self, wire: Wire, slot: Slot, request: ChargeIn) -> Answer | None:
        state, fingerprint = self.state, (request.amount, request.currency)
        if (record := state.charges.get(slot[1:])) is not None:
            return _replay(wire, record, fingerprint)
        outcome = _outcome(request.metadata.get(CHARGE_OUTCOME))
        if not self._proceeds(slot, outcome):
            return None
        declined = outcome.kind == "decline"
        record = Record(wire.provider, wire.new_id("charge"), slot[2], request.amount, request.currency,
                        "declined" if declined else "succeeded", request.metadata, _now(), fingerprint,
                        description=request.description, lookup=wire.lookup_value("charge", request))
        record.answer = wire.error("charge_declined", DECLINED["charge"]) if declined else wire.charged(record)
        state.add("charge", slot[1:], record)
        return record.answer

    def _refund(self, wire: Wire, slot: Slot, request: RefundIn) -> Answer | None:
        state, fingerprint = self.state, (request.charge_id, request.amount, request.currency)
        if (record := state.refunds.get(slot[1:])) is not None:
            return _replay(wire, record, fingerprint)
        charge = state.charges_by_id.get(request.charge_id)
        if charge is None or charge.provider != wire.provider:
            raise Refused(f"No such charge: {request.charge_id!r}.", problem="not_found")
        if charge.status != "succeeded":
            raise Refused(f"Charge {charge.id} was declined: there is nothing to refund.")
        if request.currency not in (None, charge.currency):
            raise Refused(f"The currency must be the charge's ({charge.currency}).", "currency")
        left = charge.amount - state.refunded[charge.id]
        amount = left if request.amount is None else request.amount
        if not 0 < amount <= left:
            raise Refused(f"The refund amount ({amount}) is greater than what is left to refund ({left}).",
                          "amount", problem="exceeds")
        # a refund without its own steering follows the one its charge was made with
        outcome = _outcome(request.metadata.get(REFUND_OUTCOME) or charge.metadata.get(REFUND_OUTCOME))
        if not self._proceeds(slot, outcome):
            return None
        declined = outcome.kind == "decline"
        record = Record(wire.provider, wire.new_id("refund"), slot[2], amount, charge.currency,
                        "declined" if declined else "succeeded", request.metadata, _now(), fingerprint,
                        charge_id=charge.id, reason=request.reason, lookup=wire.lookup_value("refund", request))
        record.answer = wire.error("refund_declined", DECLINED["refund"]) if declined else wire.refunded(record)
        state.add("refund", slot[1:], record)
        state.refunded[charge.id] += 0 if declined else amount
        return record.answer

    def _proceeds(self, slot: Slot, outcome: Outcome) -> bool:
        """False for `timeout`; raises the 503 of a `fail_transient:N` request among the key's first N."""
        if outcome.kind == "fail_transient" and (count := self.state.requests[slot]) <= outcome.failures:
            raise Refused(f"Transient failure {count} of {outcome.failures} (mock outcome).", problem="unavailable")
        return outcome.kind != "timeout"

    async def records(self, request: Request) -> HTTPResponse:
        kind: Kind = "charge" if request.path.endswith("/charges") else "refund"
        records = self.state.charges if kind == "charge" else self.state.refunds
        wanted = {name: request.args.get(name) for name in ("provider", "idempotency_key", "charge_id", "status")
                  if name in request.args}
        rows = [record.view(self.state.requests[(kind, *key)]) for key, record in records.items()]
        return json_response({"data": [row for row in rows if all(row.get(k) == v for k, v in wanted.items())]})

    async def get_config(self, request: Request) -> HTTPResponse:
        return json_response({"latency": self.state.latency, "failure_rate": self.state.failure_rate})

    async def put_config(self, request: Request) -> HTTPResponse:
        try:
            body = json.loads(request.body)
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            return json_response({"errors": ["the body must be a JSON object"]}, status=422)
        latency, rate = body.get("latency", self.state.latency), body.get("failure_rate", self.state.failure_rate)
        problems = [f"unknown field {name}" for name in sorted(set(body) - {"latency", "failure_rate"})]
        if problems := problems + check_config(latency, rate):
            return json_response({"errors": problems}, status=422)
        self.state.latency, self.state.failure_rate = float(latency), float(rate)
        return await self.get_config(request)

    async def reset(self, request: Request) -> HTTPResponse:
        self.state.reset()
        return json_response({"reset": True})

    async def health(self, request: Request) -> HTTPResponse:
        return json_response({"status": "ok"})


def _outcome(value: str | None) -> Outcome:
    try:
        return parse_outcome(value)
    except ValueError as error:
        raise Refused(str(error), "metadata") from None


def _replay(wire: Wire, record: Record, fingerprint: tuple[object, ...]) -> Answer:
    if record.fingerprint != fingerprint:
        return wire.error("conflict", "This idempotency key was already used with different parameters.")
    return record.answer


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _send(answer: Answer) -> HTTPResponse:
    return json_response(answer[1], status=answer[0])


def _error(request: Request, exception: Exception) -> HTTPResponse:
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
    handlers = MockProviders(MockState(float(latency), float(failure_rate), (float(latency), float(failure_rate))))
    app.ctx.state = handlers.state
    routes: list[tuple[Callable[..., Any], str, str]] = [
        (handlers.endpoint(StripeWire(), "charge"), "/stripe/v1/payment_intents", "POST"),
        (handlers.endpoint(StripeWire(), "refund"), "/stripe/v1/refunds", "POST"),
        (handlers.endpoint(PayPalWire(), "charge"), "/paypal/v2/checkout/orders", "POST"),
        (handlers.endpoint(PayPalWire(), "refund"), "/paypal/v2/payments/captures/<capture_id:str>/refund", "POST"),
        (handlers.lookup(StripeWire(), "charge"), "/stripe/v1/payment_intents/search", "GET"),
        (handlers.lookup(StripeWire(), "refund"), "/stripe/v1/refunds/search", "GET"),
        (handlers.lookup(PayPalWire(), "charge"), "/paypal/v2/checkout/orders", "GET"),
        (handlers.lookup(PayPalWire(), "refund"), "/paypal/v2/payments/refunds", "GET"),
        (handlers.records, "/_mock/charges", "GET"),
        (handlers.records, "/_mock/refunds", "GET"),
        (handlers.get_config, "/_mock/config", "GET"),
        (handlers.put_config, "/_mock/config", "PUT"),
        (handlers.reset, "/_mock/reset", "POST"),
        (handlers.health, "/health", "GET"),
    ]
    for handler, uri, method in routes:
        app.add_route(handler, uri, methods=[method], name=f"{method.lower()}{uri.replace('/', '_')}")
    app.error_handler.add(Exception, _error)
    return app


def serve_mock(host: str, port: int, latency: float, failure_rate: float) -> None:
    """Serve the mock on host:port in this one process until interrupted (SIGINT or SIGTERM)."""
    app = create_mock_app(latency=latency, failure_rate=failure_rate)

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
