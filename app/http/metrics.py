"""Prometheus metrics of the HTTP API, plus the cluster-wide families read at scrape time (Redis, PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import Metric
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


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def observe(method: str, route: str, status: int, seconds: float) -> None:
    # Label values come from a closed set: a client inventing methods must not create series.
    labels = (method if method in _METHODS else "OTHER", route, str(status))
    HTTP_REQUESTS.labels(*labels).inc()
    HTTP_LATENCY.labels(*labels).observe(seconds)


def render() -> bytes:
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
