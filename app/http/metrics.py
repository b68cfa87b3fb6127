"""Prometheus metrics of the HTTP API, plus the cluster-wide families read at scrape time (Redis, PostgreSQL).

Under `payments serve --workers N` the HTTP metrics use the Prometheus client's multiprocess mode (`cmd_serve`
sets PROMETHEUS_MULTIPROC_DIR before Sanic starts its processes): every process writes its samples to files there,
and a scrape, whichever process answers it, renders the sums over all of them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from adapters.postgres.metrics import database_gauges
from core.payments import PROVIDERS

if TYPE_CHECKING:
    from app.bootstrap import Services

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "http_requests", "HTTP requests answered, by method, route and status.",
    ["method", "route", "status"], registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds", "Time to answer an HTTP request, by method, route and status.",
    ["method", "route", "status"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

GROUP_COMMIT_REQUESTS = Histogram(
    "group_commit_requests", "Requests per transaction of the transfers' group commit (1: a request alone).",
    registry=REGISTRY, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1000),
)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe(method: str, route: str, status: int, seconds: float) -> None:
    # Label values come from a closed set: a client inventing methods must not create series.
    labels = (method if method in _METHODS else "OTHER", route, str(status))
    HTTP_REQUESTS.labels(*labels).inc()
    HTTP_LATENCY.labels(*labels).observe(seconds)


#: Set (by `cmd_serve`) when the API runs as several processes sharing one port.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def render() -> bytes:
    """The HTTP metrics: this process's, or, in multiprocess mode, those of every process of the `serve`."""
    if os.environ.get(MULTIPROCESS_DIR):
        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged)
    return generate_latest(REGISTRY)


class _Families(Collector):
    """Families already collected (asynchronously, before rendering)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


async def render_all(services: Services) -> bytes:
    """This process's HTTP metrics, the workers' cluster-wide counters (Redis) and the database gauges."""
    cluster, database = await asyncio.gather(services.metrics.families(PROVIDERS),
                                             database_gauges(services.pool))
    replica = services.replica.gauges() if services.replica is not None else []
    return render() + generate_latest(_Families([*cluster, *database, *replica]))
