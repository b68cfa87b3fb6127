"""Tracing is off unless the standard OTEL_* variables name an OTLP endpoint; on, it exports and instruments."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from adapters.telemetry import configure_tracing, context_from, tracing_enabled
from tests.conftest import ROOT

ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}


@pytest.mark.parametrize(("env", "enabled"), [
    ({}, False),
    ({"OTEL_SERVICE_NAME": "api", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, False),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
    (ENDPOINT, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ({**ENDPOINT, "OTEL_SDK_DISABLED": "true"}, False),
    ({**ENDPOINT, "OTEL_SDK_DISABLED": "false"}, True),
    ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "none"}, False),
    ({**ENDPOINT, "OTEL_TRACES_EXPORTER": "otlp"}, True),
])
def test_enabled_only_by_an_endpoint(env: dict[str, str], enabled: bool) -> None:
    assert tracing_enabled(env) is enabled


def test_configure_without_an_endpoint_installs_nothing() -> None:
    assert configure_tracing("payments-api", env={}) is None


def test_a_carrier_without_a_traceparent_is_an_empty_context() -> None:
    assert dict(context_from(None)) == {}
    assert dict(context_from({"traceparent": "garbage"})) == {}


_PROBE = """
import json
import asyncpg, httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from adapters.telemetry import configure_tracing
provider = configure_tracing("payments-worker")
installed = trace.get_tracer_provider()
print(json.dumps({
    "returned": provider is not None,
    "sdk": isinstance(installed, TracerProvider),
    "service": installed.resource.attributes.get("service.name") if isinstance(installed, TracerProvider) else None,
    "asyncpg": hasattr(asyncpg.connection.Connection.execute, "__wrapped__"),
    "httpx": hasattr(httpx.AsyncHTTPTransport.handle_async_request, "__wrapped__"),
}))
"""


def _probe(**otel: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | otel
    done = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_process_without_otel_variables_has_no_sdk_and_no_instrumentation() -> None:
    assert _probe() == {"returned": False, "sdk": False, "service": None, "asyncpg": False, "httpx": False}


def test_an_endpoint_turns_on_the_sdk_and_the_instrumentation() -> None:
    # Nothing listens there: spans would be dropped by the exporter, in the background.
    assert _probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_SERVICE_NAME="svc") == {
        "returned": True, "sdk": True, "service": "svc", "asyncpg": True, "httpx": True}
    assert _probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")["service"] == "payments-worker"
