"""Cluster-wide counters in Redis: workers record provider calls, breaker states, final payments and webhook
deliveries; the API reads them back as Prometheus families when `/metrics` is scraped.

Every writer is one round trip and never raises: metrics must not fail a payment. A Redis error is logged
at debug level and the sample is lost. Provider calls and breaker states are written behind: summed in memory
and written together `flush_delay` seconds after the first of them (one round trip for a worker's calls of that
moment, not one a call: issue 12); `aclose` writes what is left, and a worker killed loses at most that moment's.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from loguru import logger
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from adapters.redis.connect import AsyncRedis
from core.events import OutboxMessage
from core.payments import PaymentStatus

#: Upper bounds (seconds) of the provider latency histogram's buckets; +Inf is implied.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: `circuit_breaker_state` values.
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
#: Final statuses counted by `payments_total`, by event type: events that put a payment in a status it
#: does not leave by itself (a refunded one was counted completed first).
FINAL_EVENTS = {"payment.completed": PaymentStatus.COMPLETED, "payment.failed": PaymentStatus.FAILED,
                "payment.cancelled": PaymentStatus.CANCELLED, "payment.refunded": PaymentStatus.REFUNDED,
                "transfer.completed": PaymentStatus.COMPLETED}
_SEP = "|"


class RedisMetrics:
    """Writers (workers) and the scrape-time reader (API) of the cluster-wide metrics, under `prefix`.

    The default prefix is a hash tag: on a Redis Cluster every metrics key is in one slot, so a writer's pipeline
    and the scrape's each go to one node.
    """

    def __init__(self, client: AsyncRedis, *, prefix: str = "payments:{metrics}:", timeout: float = 0.5,
                 flush_delay: float = 0.1) -> None:
        self._redis = client
        self._prefix = prefix
        self._timeout = timeout
        self._flush_delay = flush_delay
        self._counts: Counter[tuple[str, str]] = Counter()  # (hash, field): increment, not yet written
        self._seconds: dict[str, float] = {}  # provider call series: seconds to add, not yet written
        self._breakers: dict[str, int] = {}  # provider: the latest breaker state, not yet written
        self._flusher: asyncio.Task[None] | None = None  # the flush scheduled, while it waits for its moment
        self._flushes: set[asyncio.Task[None]] = set()  # every flush task not yet done (held until it is)
        self._writing = asyncio.Lock()

    def _key(self, name: str) -> str:
        return self._prefix + name

    async def provider_call(
        self, provider: str, operation: str, outcome: str, seconds: float, *, breaker: str | None = None,
    ) -> None:
        """One provider call's outcome and latency, and `breaker` (a state): written behind (`flush`)."""
        series = _SEP.join((provider, operation, outcome))
        bucket = bisect.bisect_left(LATENCY_BUCKETS, seconds)  # index len(LATENCY_BUCKETS) is +Inf
        self._counts["provider_calls", series] += 1
        self._counts["provider_call_buckets", f"{series}{_SEP}{bucket}"] += 1
        self._seconds[series] = self._seconds.get(series, 0.0) + seconds
        if breaker is not None:
            self._breakers[provider] = BREAKER_STATES.get(breaker, 0)
        self._flush_soon()

    async def breaker_state(self, provider: str, state: str) -> None:
        """The provider's breaker state as this worker sees it: `closed`, `half_open` or `open` (written behind)."""
        self._breakers[provider] = BREAKER_STATES.get(state, 0)
        self._flush_soon()

    def _flush_soon(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later(), name="metrics flush")
            self._flushes.add(self._flusher)
            self._flusher.add_done_callback(self._flushes.discard)

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._flush_delay)
        self._flusher = None  # what is recorded from now on schedules the next flush
        await self.flush()

    async def flush(self) -> None:
        """Write the provider calls and breaker states recorded since the last flush, in one round trip. One
        flush at a time, each taking what was recorded until it starts, so a breaker state never overtakes a
        newer one."""
        async with self._writing:
            counts, seconds, breakers = self._counts, self._seconds, self._breakers
            if not (counts or breakers):
                return
            self._counts, self._seconds, self._breakers = Counter(), {}, {}
            pipe = self._redis.pipeline(transaction=False)
            for (name, field), increment in counts.items():
                pipe.hincrby(self._key(name), field, increment)
            for series, total in seconds.items():
                pipe.hincrbyfloat(self._key("provider_call_seconds"), series, total)
            for provider, state in breakers.items():
                pipe.hset(self._key("breaker_state"), provider, state)
            await self._quietly(pipe.execute(), "batch of provider calls")

    async def aclose(self) -> None:
        """Write what is still held, now (a worker stopping), after any write under way; its owner then closes
        the client. Cancelling the caller cancels this wait, not the writes."""
        if (sleeping := self._flusher) is not None:
            self._flusher = None
            sleeping.cancel()  # its samples are written below, without waiting out the delay
        if self._flushes:
            await asyncio.wait(set(self._flushes))
        await self.flush()

    async def published(self, messages: Sequence[OutboxMessage]) -> None:
        """The `EventMetrics` port: the final payments among the relay's committed batch, in one round trip. The
        relay counts a batch once, after its claim committed, so no key per event is kept (one per event for a day
        grew Redis by a third in a 10-minute soak)."""
        series = Counter(_SEP.join((_payment_type(message.topic, message.payload), status)) for message in messages
                         if (status := FINAL_EVENTS.get(message.topic)))
        if not series:
            return
        pipe = self._redis.pipeline(transaction=False)
        for name, count in series.items():
            pipe.hincrby(self._key("payments"), name, count)
        await self._quietly(pipe.execute(), "batch of final payments")

    async def webhook_deliveries(self, outcomes: Iterable[str]) -> None:
        """A batch of webhook delivery attempts ended, each `succeeded`, `retrying` or `failed`: one round trip."""
        if not (counts := Counter(outcomes)):
            return
        pipe = self._redis.pipeline(transaction=False)
        for outcome, count in counts.items():
            pipe.hincrby(self._key("webhook_deliveries"), outcome, count)
        await self._quietly(pipe.execute(), "batch of webhook deliveries")

    async def _quietly(self, command: Any, what: str) -> None:
        try:
            await asyncio.wait_for(command, self._timeout)
        except Exception as error:  # a lost sample is better than a failed payment
            logger.debug("metrics: could not record a {} in Redis: {!r}", what, error)

    async def families(self, providers: Iterable[str] = ()) -> list[Metric]:
        """The cluster-wide families for a scrape; each is present (maybe without samples) even if Redis is down.

        `providers` get a `circuit_breaker_state` of 0 (closed) until a worker reports theirs.
        """
        names = ("provider_calls", "provider_call_seconds", "provider_call_buckets", "breaker_state", "payments",
                 "webhook_deliveries")
        pipe = self._redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self._key(name))
        try:
            raw = await asyncio.wait_for(pipe.execute(), self._timeout)
        except Exception as error:
            logger.debug("metrics: could not read the cluster-wide metrics from Redis: {!r}", error)
            raw = [{} for _ in names]
        calls, seconds, buckets, breakers, payments, webhooks = ({_text(k): _text(v) for k, v in h.items()}
                                                                 for h in raw)
        return [*_provider_families(calls, seconds, buckets), _breaker_family(breakers, providers),
                _counter("payments", "Payments that reached a final status, by payment type and status.",
                         ["type", "status"], payments),
                _counter("webhook_deliveries", "Webhook delivery attempts, by outcome (succeeded, retrying, failed).",
                         ["outcome"], webhooks)]


def _payment_type(event_type: str, payload: Mapping[str, Any]) -> str:
    """The `type` label of a final payment's event: its payment type; a transfer's event says none."""
    default = "internal_transfer" if event_type == "transfer.completed" else "external_payment"
    return str(payload.get("payment_type") or default)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _counter(name: str, documentation: str, labels: list[str], values: Mapping[str, str]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for series, value in sorted(values.items()):
        parts = series.split(_SEP)
        if len(parts) == len(labels):
            family.add_metric(parts, float(value))
    return family


def _provider_families(
    calls: Mapping[str, str], seconds: Mapping[str, str], buckets: Mapping[str, str],
) -> list[Metric]:
    labels = ["provider", "operation", "outcome"]
    counter = _counter("provider_calls", "Provider calls made by the workers, by provider, operation and outcome "
                       "(succeeded, declined, unavailable, circuit_open).", labels, calls)
    histogram = HistogramMetricFamily("provider_call_duration_seconds", "Provider call latency as the workers "
                                      "measured it, by provider, operation and outcome.", labels=labels)
    per_bucket: dict[str, list[float]] = {}
    for field, value in buckets.items():
        series, _, index = field.rpartition(_SEP)
        if index.isdigit() and int(index) <= len(LATENCY_BUCKETS):
            per_bucket.setdefault(series, [0.0] * (len(LATENCY_BUCKETS) + 1))[int(index)] += float(value)
    for series, count in sorted(calls.items()):
        parts = series.split(_SEP)
        if len(parts) != len(labels):
            continue
        counts = per_bucket.get(series, [0.0] * (len(LATENCY_BUCKETS) + 1))
        cumulative, running = [], 0.0
        for bound, n in zip((*map(str, LATENCY_BUCKETS), "+Inf"), counts, strict=True):
            running += n
            cumulative.append((bound, running))
        cumulative[-1] = ("+Inf", max(running, float(count)))
        histogram.add_metric(parts, cumulative, sum_value=float(seconds.get(series, 0.0)))
    return [counter, histogram]


def _breaker_family(reported: Mapping[str, str], providers: Iterable[str]) -> Metric:
    family = GaugeMetricFamily("circuit_breaker_state", "Each provider's circuit breaker as a worker last reported "
                               "it: 0 closed, 1 half-open, 2 open.", labels=["provider"])
    for provider in sorted({*providers, *reported}):
        family.add_metric([provider], float(reported.get(provider, 0)))
    return family
