"""One external payment through the API and the worker in one process, traced into an in-memory exporter.

Run by tests/e2e/test_observability.py as `python -m tests.e2e.trace_probe DATABASE_URL REDIS_URL MOCK_PORT`:
a process of its own, because tracing, the instrumented libraries, Dramatiq's broker and the worker's runtime
are process-wide. The API (Sanic, on a free port) and the worker (`workers.main.run`: the Dramatiq consumers,
the outbox relay) run as they do in production, only side by side. Prints the finished spans as one JSON list.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx
from opentelemetry.instrumentation.utils import suppress_http_instrumentation
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from adapters.telemetry import configure_tracing
from app.configuration import load_settings
from tests.conftest import SECRETS_KEYS, new_api_key_for_url
from tests.e2e.conftest import free_port
from tests.e2e.payflow import funded, pay, settled
from tests.receiver import Receiver

WORKER_SPAN = "process_payment process"
WEBHOOK_SPAN = "deliver_webhook process"


def _done(names: list[str]) -> bool:
    """The payment's work and its webhook (which the relay fanned out itself, with no event task) were consumed."""
    return WORKER_SPAN in names and WEBHOOK_SPAN in names


def _span(span: ReadableSpan) -> dict[str, Any]:
    context, parent = span.get_span_context(), span.parent
    return {"name": span.name, "kind": span.kind.name, "trace_id": f"{context.trace_id:032x}",
            "span_id": f"{context.span_id:016x}", "parent_id": f"{parent.span_id:016x}" if parent else None,
            "attributes": {k: v for k, v in (span.attributes or {}).items() if isinstance(v, (str, int, float))}}


async def main(database_url: str, redis_url: str, mock_port: str) -> list[dict[str, Any]]:
    exporter = InMemorySpanExporter()
    configure_tracing("payments-probe", processor=SimpleSpanProcessor(exporter))
    from app.http.app import create_app
    from workers.main import run

    settings = load_settings({"PAYMENTS_MOCK_PORT": mock_port, "PAYMENTS_WORKER_METRICS_PORT": "0",
                              "PAYMENTS_WORKER_CONCURRENCY": "2", "PAYMENTS_OBSERVABILITY_LOG_LEVEL": "warning",
                              "PAYMENTS_WEBHOOKS_ALLOW_PRIVATE_URLS": "true", "PAYMENTS_SECRETS_KEYS": SECRETS_KEYS})
    app = create_app(settings, database_url, redis_url, name="trace_probe")
    port = free_port()
    server = await app.create_server(host="127.0.0.1", port=port, return_asyncio_server=True)
    assert server is not None
    await server.startup()
    await server.before_start()
    await server.after_start()
    stop = asyncio.Event()
    worker = asyncio.create_task(run(settings, database_url, redis_url, stop))
    receiver = Receiver().start()
    try:
        key = await new_api_key_for_url(database_url)
        # The client is a test harness, not part of the system: its own requests are not traced.
        with suppress_http_instrumentation():
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                         headers={"Authorization": f"Bearer {key}"}) as client:
                hook = await client.post("/api/v1/webhooks", json={"url": receiver.url(),
                                                                   "events": ["payment.completed"]})
                assert hook.status_code == 201, hook.text
                source = await funded(client)
                answer = await pay(client, source)
                assert answer.status_code == 202, answer.text
                payment = await settled(client, answer.json()["id"])
                assert payment["status"] == "completed", payment
        deadline = asyncio.get_running_loop().time() + 30
        while not _done([span.name for span in exporter.get_finished_spans()]):
            assert asyncio.get_running_loop().time() < deadline, "the worker's spans never ended"
            await asyncio.sleep(0.05)
    finally:
        receiver.stop()
        stop.set()
        await worker
        await server.before_stop()
        await server.close()  # type: ignore[func-returns-value]
        await server.after_stop()
    return [_span(span) for span in exporter.get_finished_spans()]


if __name__ == "__main__":
    spans = asyncio.run(main(*sys.argv[1:4]))
    print(json.dumps(spans))
