"""The mock server's own `/_mock` API: what it recorded, its latency and failure rate, a reset, and `/health`."""

from __future__ import annotations

import json

from sanic import HTTPResponse, Request
from sanic import json as json_response

from adapters.providers.mock_settlements import day_listing
from adapters.providers.mock_state import Kind, MockState, check_config


class MockControl:
    """The handlers tests and operators use to inspect and steer one `MockState`; none needs an API key."""

    def __init__(self, state: MockState) -> None:
        self.state = state

    async def records(self, request: Request) -> HTTPResponse:
        """`GET /_mock/charges` or `/_mock/refunds`, filtered by provider, idempotency_key, charge_id, status."""
        kind: Kind = "charge" if request.path.endswith("/charges") else "refund"
        records = self.state.charges if kind == "charge" else self.state.refunds
        wanted = {name: request.args.get(name) for name in ("provider", "idempotency_key", "charge_id", "status")
                  if name in request.args}
        rows = [record.view(self.state.requests[(kind, *key)]) for key, record in records.items()]
        return json_response({"data": [row for row in rows if all(row.get(k) == v for k, v in wanted.items())]})

    async def settlements(self, request: Request) -> HTTPResponse:
        """`GET /_mock/settlements?date=YYYY-MM-DD[&provider=]`: the day's settlement report, every provider's."""
        status, body = day_listing(self.state, {name: values[0] for name, values in request.args.items()})
        return json_response(body, status=status)

    async def get_config(self, request: Request) -> HTTPResponse:
        return json_response({"latency": self.state.latency, "failure_rate": self.state.failure_rate})

    async def put_config(self, request: Request) -> HTTPResponse:
        """Change the latency and/or failure rate; 422 with every problem, changing nothing, if one is bad."""
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
