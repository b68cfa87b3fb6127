"""The mock server's provider routes: latency, injected failures and auth first, then one request per key at a time."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from sanic import HTTPResponse, Request
from sanic import json as json_response

from adapters.providers import mock_charges
from adapters.providers.mock_state import Answer, Kind, MockState
from adapters.providers.mock_wire import ChargeIn, Refused, Wire
from adapters.providers.outcomes import DELAY, answer_delay

HANG_SECONDS = 120.0  # how long a `timeout` request hangs before its 504: far beyond any client timeout


class MockProviders:
    """The provider request handlers over one `MockState`."""

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

    def report(self, wire: Wire, page: Callable[[MockState, dict[str, str]], Answer]
               ) -> Callable[..., Awaitable[HTTPResponse]]:
        """The handler of one provider's settlement report (`mock_settlements`): a GET, admitted like a lookup."""
        async def handler(request: Request) -> HTTPResponse:
            if (refused := await self._admit(request, wire)) is not None:
                return _send(refused)
            try:
                return _send(page(self.state, {name: values[0] for name, values in request.args.items()}))
            except Refused as error:
                return _send(wire.error(error.problem, error.message, error.field))
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
        async with state.lock(slot):  # one request per key at a time
            state.requests[slot] += 1
            try:
                answer = mock_charges.charge(state, wire, slot, parsed) if isinstance(parsed, ChargeIn) else (
                    mock_charges.refund(state, wire, slot, parsed))
            except Refused as error:
                answer = wire.error(error.problem, error.message, error.field)
        if answer is None:  # `timeout`: hang outside the lock, record nothing
            await asyncio.sleep(HANG_SECONDS)
            return _send(wire.error("timeout", "The provider did not answer in time."))
        if delay := answer_delay(parsed.metadata.get(DELAY)):  # recorded already; the answer is on its way
            await asyncio.sleep(delay)
        return _send(answer)


def _send(answer: Answer) -> HTTPResponse:
    return json_response(answer[1], status=answer[0])
