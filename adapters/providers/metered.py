"""A `PaymentProvider` that records every call's outcome, latency and breaker state in the cluster metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import date
from typing import TypeVar

from adapters.providers.breaker import BreakerProvider
from adapters.redis.metrics import RedisMetrics
from core.providers import (
    ChargeRequest,
    CircuitOpen,
    ProviderDeclined,
    ProviderResult,
    RefundRequest,
)
from core.reconciliation import Settled

R = TypeVar("R")
T = TypeVar("T")


def outcome_of(error: BaseException | None) -> str:
    """`succeeded` (an answer, a lookup that found nothing included), `declined`, `circuit_open` (not called)
    or `unavailable` (failed, timed out, cancelled)."""
    if error is None:
        return "succeeded"
    if isinstance(error, ProviderDeclined):
        return "declined"
    if isinstance(error, CircuitOpen):
        return "circuit_open"
    return "unavailable"


class MeteredProvider:
    """Wraps a `BreakerProvider`: after each call, `provider_call` with its outcome and the breaker's state."""

    def __init__(self, inner: BreakerProvider, metrics: RedisMetrics) -> None:
        self.name: str = inner.name
        self.inner = inner
        self._metrics = metrics
        self._pending: set[asyncio.Task[None]] = set()

    async def charge(self, request: ChargeRequest) -> ProviderResult:
        return await self._call("charge", self.inner.charge, request)

    async def refund(self, request: RefundRequest) -> ProviderResult:
        return await self._call("refund", self.inner.refund, request)

    async def find_charge(self, request: ChargeRequest) -> ProviderResult | None:
        return await self._call("find_charge", self.inner.find_charge, request)

    async def find_refund(self, request: RefundRequest) -> ProviderResult | None:
        return await self._call("find_refund", self.inner.find_refund, request)

    async def settlements(self, day: date) -> list[Settled]:
        return await self._call("settlements", self.inner.settlements, day)

    async def aclose(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self.inner.aclose()

    async def _call(self, operation: str, method: Callable[[R], Awaitable[T]], request: R) -> T:
        started = time.perf_counter()
        try:
            result = await method(request)
        except asyncio.CancelledError as error:
            # an outer timeout gave up on the call: record it without holding up the cancellation
            task = asyncio.ensure_future(self._record(operation, error, started))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            raise
        except Exception as error:
            await self._record(operation, error, started)
            raise
        await self._record(operation, None, started)
        return result

    async def _record(self, operation: str, error: BaseException | None, started: float) -> None:
        await self._metrics.provider_call(self.name, operation, outcome_of(error), time.perf_counter() - started,
                                          breaker=self.inner.state)
