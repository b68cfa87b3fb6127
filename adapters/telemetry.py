"""OpenTelemetry tracing: an SDK provider exporting over OTLP when the standard `OTEL_*` variables ask for it.

Tracing is off unless `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and neither
`OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none`); tests pass their own span processor instead. When it
is on, asyncpg, redis and httpx are instrumented. The W3C trace context travels between processes as a small
dict of strings (`trace_carrier`), stored in outbox rows and in Dramatiq message options.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

TRACER_NAME = "payments"
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")



def tracing_enabled(env: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces to be exported (see the module docstring)."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return any(env.get(name, "").strip() for name in _ENDPOINTS)


class _NoOrphanClients(Sampler):
    """Drops client and internal spans that have no parent: the relay's polling queries and Dramatiq's
    Redis polling would otherwise each start a trace a second. Everything else goes to `inner`."""

    def __init__(self, inner: Sampler) -> None:
        self._inner = inner

    def should_sample(  # noqa: PLR0917  # the SDK's signature
        self, parent_context: Context | None, trace_id: int, name: str, kind: SpanKind | None = None,
        attributes: Attributes = None, links: Sequence[Link] | None = None, trace_state: Any = None,
    ) -> SamplingResult:
        parent = trace.get_current_span(parent_context).get_span_context()
        if not parent.is_valid and kind in (SpanKind.CLIENT, SpanKind.INTERNAL, None):
            return SamplingResult(Decision.DROP)
        return self._inner.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"NoOrphanClients{{{self._inner.get_description()}}}"


def configure_tracing(
    service_name: str, *, processor: SpanProcessor | None = None, env: Mapping[str, str] | None = None,
) -> TracerProvider | None:
    """Install the SDK tracer provider for this process; None (and nothing changed) while tracing is off.

    `service_name` is the default for `OTEL_SERVICE_NAME`. With `processor` (a test's in-memory exporter)
    tracing is on whatever the environment says, and the processor is added to the provider already
    installed, if any. Without it, a second call is a no-op. The OTLP exporter reads the `OTEL_EXPORTER_OTLP_*`
    variables itself.
    """
    env = os.environ if env is None else env
    provider = _installed()  # OpenTelemetry keeps the process's provider; so do we, nowhere else
    if processor is None and (provider is not None or not tracing_enabled(env)):
        return provider
    if provider is None:
        name = env.get("OTEL_SERVICE_NAME", "").strip() or service_name
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
        provider.sampler = _NoOrphanClients(provider.sampler)  # the sampler OTEL_TRACES_SAMPLER chose
        trace.set_tracer_provider(provider)
        _instrument_libraries()
    if processor is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        processor = BatchSpanProcessor(OTLPSpanExporter())
    provider.add_span_processor(processor)
    return provider


def _installed() -> TracerProvider | None:
    """The SDK provider this process installed, if any (the API's default is a no-op proxy)."""
    provider = trace.get_tracer_provider()
    return provider if isinstance(provider, TracerProvider) else None


def _instrument_libraries() -> None:
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    RedisInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    AioHttpClientInstrumentor().instrument()


def shutdown_tracing() -> None:
    """Flush and stop the exporters (at process exit; the SDK also does it from `atexit`)."""
    if (provider := _installed()) is not None:
        provider.shutdown()


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def trace_carrier() -> dict[str, str]:
    """The current trace context as W3C headers (`traceparent`, maybe `tracestate`); {} outside any trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_from(carrier: Mapping[str, Any] | None) -> Context:
    """The context a carrier (HTTP headers, a message's `trace_context`) describes; an empty one if none."""
    if not carrier:
        return Context()
    return propagate.extract({str(k): str(v) for k, v in carrier.items() if isinstance(v, str)})
