"""`RedisMetrics` against the real Redis: what workers write is what the API's scrape reads back."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from adapters.redis.metrics import RedisMetrics
from core.events import OutboxMessage


class _Families:
    def __init__(self, families: list[object]) -> None:
        self.families = families

    def collect(self) -> list[object]:
        return self.families


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(redis_url)
    yield redis
    await redis.aclose()


def _event(topic: str, payload: dict[str, Any], event_id: uuid.UUID | None = None) -> OutboxMessage:
    return OutboxMessage(id=event_id or uuid.uuid4(), tenant_id=uuid.uuid4(), topic=topic, aggregate_id=uuid.uuid4(),
                         payload=payload, correlation_id=None, created_at=datetime.now(UTC))


def _parse(families: list[object]) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    text = generate_latest(_Families(families)).decode()  # type: ignore[arg-type]
    return {f.name: [(s.name, s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


async def test_round_trip(client: aioredis.Redis) -> None:
    prefix = f"test:metrics:{secrets.token_hex(4)}:"
    metrics = RedisMetrics(client, prefix=prefix)
    try:
        await metrics.provider_call("stripe", "charge", "succeeded", 0.02, breaker="closed")
        await metrics.provider_call("stripe", "charge", "succeeded", 3.0)
        await metrics.provider_call("paypal", "charge", "unavailable", 0.2, breaker="open")
        await metrics.breaker_state("stripe", "half_open")
        event = _event("payment.completed", {"payment_type": "external_payment", "status": "completed"})
        await metrics.published([event, _event("payment.processing", {})])
        await metrics.published([_event("transfer.completed", {"payment_type": "internal_transfer"}),
                                 _event("payment.processing", {}), _event("payment.created", {}),
                                 _event("payment.refunded", {"payment_type": "external_payment"})])
        await metrics.published([_event("transfer.completed", {})])  # a transfer's event: internal_transfer
        await metrics.webhook_deliveries(["succeeded"])
        await metrics.webhook_deliveries(["retrying"])
        await metrics.webhook_deliveries(["succeeded", "failed", "succeeded", "retrying"])  # a batch's, one pipeline
        await metrics.webhook_deliveries([])
        await metrics.aclose()  # the provider calls and breaker states are written behind: write them now

        parsed = _parse(await metrics.families(["stripe", "paypal", "adyen"]))
    finally:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    assert keys and all("seen" not in key.decode() for key in keys), "nothing is kept per event"

    calls = {(s[1]["provider"], s[1]["outcome"]): s[2] for s in parsed["provider_calls"] if s[0].endswith("_total")}
    assert calls == {("stripe", "succeeded"): 2.0, ("paypal", "unavailable"): 1.0}
    latency = {(s[0], s[1]["provider"], s[1].get("le")): s[2] for s in parsed["provider_call_duration_seconds"]}
    assert latency[("provider_call_duration_seconds_bucket", "stripe", "0.025")] == 1
    assert latency[("provider_call_duration_seconds_bucket", "stripe", "2.5")] == 1
    assert latency[("provider_call_duration_seconds_bucket", "stripe", "5.0")] == 2
    assert latency[("provider_call_duration_seconds_bucket", "stripe", "+Inf")] == 2
    assert latency[("provider_call_duration_seconds_count", "stripe", None)] == 2
    assert latency[("provider_call_duration_seconds_sum", "stripe", None)] == pytest.approx(3.02)
    assert {s[1]["provider"]: s[2] for s in parsed["circuit_breaker_state"]} == {"stripe": 1, "paypal": 2, "adyen": 0}
    assert {(s[1]["type"], s[1]["status"]): s[2] for s in parsed["payments"] if s[0].endswith("_total")} == {
        ("external_payment", "completed"): 1.0, ("internal_transfer", "completed"): 2.0,
        ("external_payment", "refunded"): 1.0}
    assert {s[1]["outcome"]: s[2] for s in parsed["webhook_deliveries"] if s[0].endswith("_total")} == {
        "succeeded": 3.0, "retrying": 2.0, "failed": 1.0}


async def test_writers_never_raise_and_the_reader_keeps_every_family_when_redis_is_down() -> None:
    down = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    metrics = RedisMetrics(down)
    try:
        await metrics.provider_call("stripe", "charge", "succeeded", 0.1, breaker="closed")
        await metrics.breaker_state("stripe", "open")
        await metrics.published([_event("payment.completed", {"payment_type": "external_payment"})])
        await metrics.webhook_deliveries(["failed"])
        await metrics.webhook_deliveries(["failed", "succeeded"])
        await metrics.aclose()
        parsed = _parse(await metrics.families(["stripe", "paypal"]))
    finally:
        await down.aclose()
    assert set(parsed) == {"provider_calls", "provider_call_duration_seconds", "circuit_breaker_state", "payments",
                           "webhook_deliveries"}
    assert {s[1]["provider"]: s[2] for s in parsed["circuit_breaker_state"]} == {"stripe": 0, "paypal": 0}


async def test_provider_calls_are_written_behind_together_a_moment_after_the_first(client: aioredis.Redis) -> None:
    prefix = f"test:metrics:{secrets.token_hex(4)}:"
    metrics = RedisMetrics(client, prefix=prefix, flush_delay=0.3)
    sent: list[int] = []
    execute = client.pipeline

    def counting_pipeline(*args: Any, **kwargs: Any) -> Any:
        sent.append(1)
        return execute(*args, **kwargs)

    client.pipeline = counting_pipeline  # type: ignore[method-assign]
    try:
        for _ in range(5):
            await metrics.provider_call("stripe", "charge", "succeeded", 0.02, breaker="closed")
        await metrics.provider_call("stripe", "charge", "declined", 0.5, breaker="half_open")
        assert not await client.exists(f"{prefix}provider_calls") and sent == []  # held for the moment
        await asyncio.sleep(0.6)
        assert sent == [1]  # written by itself, once, for the six calls
        assert await client.hgetall(f"{prefix}provider_calls") == {b"stripe|charge|succeeded": b"5",
                                                                   b"stripe|charge|declined": b"1"}
        seconds = float(await client.hget(f"{prefix}provider_call_seconds", "stripe|charge|succeeded") or 0)
        assert seconds == pytest.approx(0.1)
        assert int(await client.hget(f"{prefix}breaker_state", "stripe") or -1) == 1  # the latest state
        await metrics.provider_call("paypal", "charge", "succeeded", 0.01)
        await metrics.aclose()  # a stopping worker writes what it holds, at once
        assert sent == [1, 1] and await client.hget(f"{prefix}provider_calls", "paypal|charge|succeeded") == b"1"
    finally:
        client.pipeline = execute  # type: ignore[method-assign]
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)


async def test_closing_waits_for_a_write_under_way_and_a_cancelled_close_is_cancelled(client: aioredis.Redis) -> None:
    prefix = f"test:metrics:{secrets.token_hex(4)}:"
    metrics = RedisMetrics(client, prefix=prefix, flush_delay=0.05)
    pipeline = client.pipeline

    def slow_pipeline(*args: Any, **kwargs: Any) -> Any:
        pipe = pipeline(*args, **kwargs)
        execute = pipe.execute

        async def slowly() -> Any:
            await asyncio.sleep(0.3)  # within the writers' 0.5 s timeout
            return await execute()

        pipe.execute = slowly  # type: ignore[method-assign]
        return pipe

    client.pipeline = slow_pipeline  # type: ignore[method-assign]
    try:
        await metrics.provider_call("stripe", "charge", "succeeded", 0.02)
        await asyncio.sleep(0.2)  # the flush is writing now (slowly)
        with pytest.raises(TimeoutError):  # a close that times out is not swallowed, nor is the write lost
            async with asyncio.timeout(0.05):
                await metrics.aclose()
        await metrics.aclose()  # waits for the write under way
        assert await client.hget(f"{prefix}provider_calls", "stripe|charge|succeeded") == b"1"
    finally:
        client.pipeline = pipeline  # type: ignore[method-assign]
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
