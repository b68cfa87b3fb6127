"""A circuit breaker in front of a payment provider, built on the `circuitbreaker` library."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import date
from typing import NoReturn, ParamSpec, Protocol, TypeVar

import attrs
import circuitbreaker
from circuitbreaker import STATE_CLOSED, STATE_HALF_OPEN, STATE_OPEN

from core.providers import (
    ChargeRequest,
    CircuitOpen,
    PaymentProvider,
    ProviderResult,
    ProviderUnavailable,
    RefundRequest,
)
from core.reconciliation import Settled

#: Seconds a process trusts its last read of a shared circuit (`BreakerProvider`).
SHARED_REFRESH = 0.25

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")


def _counts_as_failure(exc_type: type[BaseException], _error: BaseException) -> bool:
    """The provider did not answer: it failed, timed out, or the caller gave up waiting (cancelled the call,
    as an outer `asyncio.timeout` does). A decline is an answer, and so, for the breaker, a success."""
    return issubclass(exc_type, (ProviderUnavailable, TimeoutError, asyncio.CancelledError))


@attrs.frozen
class _Ticket:
    """What a call was admitted as: the breaker's generation then, and whether it is the half-open probe."""

    generation: int
    probe: bool


class RollingWindowBreaker(circuitbreaker.CircuitBreaker):  # type: ignore[misc]  # the library is untyped
    """`circuitbreaker.CircuitBreaker` with a failure rate over a rolling window and one probe at a time.

    The library opens after N consecutive failures, reads `time.monotonic` and lets
    every call through once half-open. Here it opens when, among the last `window`
    outcomes (and only once `window` have been seen), at least `failure_rate`
    failed; time comes from `clock`; and half-open admits a single probe whose
    outcome closes (success) or re-opens (failure) the circuit. A call cancelled
    while it waits for the provider (an outer timeout) is a failure, so a provider
    that hangs opens the circuit, and a cancelled probe re-opens it. The library keeps
    the state names, the failure predicate, `state`/`opened`/`closed` and
    `CircuitBreakerError`. Every state change starts a new generation, and an
    outcome from an older generation (a call that began before the circuit
    opened) is ignored. Use `call_async`; the library's `with` form cannot tell
    the probe from other calls, so it is refused.
    """

    def __init__(
        self,
        name: str,
        *,
        window: int,
        failure_rate: float,
        recovery_timeout: float,
        clock: Callable[[], float],
    ) -> None:
        if window < 1 or not 0 < failure_rate <= 1 or recovery_timeout < 0:
            raise ValueError("need window >= 1, 0 < failure_rate <= 1 and recovery_timeout >= 0")
        super().__init__(
            failure_threshold=window, recovery_timeout=recovery_timeout,
            expected_exception=_counts_as_failure, name=name,
        )
        self._recovery_timeout = recovery_timeout  # the library turns a falsy 0 into its 30 s default
        self._last_failure: BaseException | None = None
        self._clock = clock
        self._opened = clock()
        self._window = window
        self._failure_rate = failure_rate
        self._outcomes: deque[bool] = deque(maxlen=window)  # True: the call failed
        self._generation = 0
        self._probing = False

    @property
    def open_remaining(self) -> float:
        """Seconds until an open circuit turns half-open (negative once it has); read from `clock`."""
        return self._opened + self._recovery_timeout - self._clock()

    @property
    def failure_count(self) -> int:
        return sum(self._outcomes)

    @property
    def generation(self) -> int:
        """Bumped by every change of state (opened, closed)."""
        return self._generation

    def reset(self) -> None:
        """Close the circuit and start a new, empty window."""
        self._state = STATE_CLOSED
        self._last_failure = None
        self._new_generation()

    def __enter__(self) -> NoReturn:
        raise TypeError("RollingWindowBreaker only supports call_async")

    async def call_async(self, func: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        """Await `func(*args, **kwargs)` if the circuit admits it, else raise `circuitbreaker.CircuitBreakerError`."""
        ticket = self._admit()
        try:
            result = await func(*args, **kwargs)
        except (Exception, asyncio.CancelledError) as error:
            self._record(ticket, error)
            raise
        except BaseException:
            # KeyboardInterrupt and the like: no outcome, but a probe must not keep the half-open slot forever.
            if ticket.probe and ticket.generation == self._generation:
                self._probing = False
            raise
        self._record(ticket, None)
        return result

    def _admit(self) -> _Ticket:
        state = self.state
        if state == STATE_OPEN or (state == STATE_HALF_OPEN and self._probing):
            raise circuitbreaker.CircuitBreakerError(self)
        if state == STATE_HALF_OPEN:
            self._probing = True
        return _Ticket(self._generation, probe=state == STATE_HALF_OPEN)

    def _record(self, ticket: _Ticket, error: BaseException | None) -> None:
        if ticket.generation != self._generation:
            return
        failed = error is not None and bool(self.is_failure(type(error), error))
        if failed:
            self._last_failure = error
        if ticket.probe:
            if failed:
                self._trip()
            else:
                self.reset()
            return
        self._outcomes.append(failed)
        if len(self._outcomes) == self._window and sum(self._outcomes) / self._window >= self._failure_rate:
            self._trip()

    def _trip(self) -> None:
        self._state = STATE_OPEN
        self._opened = self._clock()
        self._new_generation()

    def _new_generation(self) -> None:
        self._generation += 1
        self._outcomes.clear()
        self._probing = False


class SharedCircuit(Protocol):
    """One provider's circuit as every process of the deployment sees it (RedisCircuit, InMemoryCircuit)."""

    async def open_for(self) -> float:
        """Seconds the shared circuit stays open; 0 when it is closed (or cannot be read)."""
        ...

    async def trip(self, seconds: float) -> None:
        """Open it for `seconds` (a process's breaker opened)."""
        ...

    async def close(self) -> None:
        """Close it (a process's probe succeeded)."""
        ...


class BreakerProvider:
    """A `PaymentProvider` that stops calling `inner` while it keeps failing, and raises `CircuitOpen` instead.

    Lookups (`find_charge`, `find_refund`) and settlement reports go through the same breaker as charges and
    refunds. Only `ProviderUnavailable`, timeouts and cancelled calls count as
    failures; a `ProviderDeclined` means the provider answered. See `RollingWindowBreaker` for when the circuit
    opens and how it recovers.

    With a `shared` circuit, the processes open and close together: when this breaker opens it opens the shared
    circuit for the recovery timeout, and when its probe succeeds it closes it; while the shared circuit is open a
    breaker that is closed here refuses as if open (its process's window never saw the failures). Once the shared
    circuit's time is up every process may call again (the one that opened it sends its probe); the first to
    open again re-opens it for all.

    A read of the shared circuit is trusted for `shared_refresh` seconds (`SHARED_REFRESH`): a breaker learns
    that another process opened or closed the circuit at most that late, and its process reads Redis a few times
    a second, not once a call (one Redis round trip of about five a payment; issue 12).
    """

    def __init__(
        self,
        inner: PaymentProvider,
        *,
        window: int = 10,
        failure_rate: float = 0.6,
        recovery_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedCircuit | None = None,
        shared_refresh: float = SHARED_REFRESH,
    ) -> None:
        self.name: str = inner.name
        self._inner = inner
        self._breaker = RollingWindowBreaker(
            f"provider:{inner.name}", window=window, failure_rate=failure_rate,
            recovery_timeout=recovery_timeout, clock=clock,
        )
        self._recovery, self._clock, self._shared = recovery_timeout, clock, shared
        self._shared_open_until = 0.0  # on `clock`: the shared circuit as last read, while this breaker is closed
        self._shared_refresh = shared_refresh
        self._shared_read_until = float("-inf")  # on `clock`: until when that read is trusted

    @property
    def state(self) -> str:
        """`closed`, `open` or `half_open` (open, with its recovery timeout over); `open` too while the shared
        circuit, as last read, is open and this breaker is closed."""
        state: str = self._breaker.state
        if state == STATE_CLOSED and self._shared_open_until > self._clock():
            state = STATE_OPEN
        return state

    @property
    def remaining_open_seconds(self) -> float:
        """Seconds until the open circuit lets a probe through; 0 unless open."""
        if self.state != STATE_OPEN:
            return 0.0
        if self._breaker.state == STATE_CLOSED:  # open through the shared circuit
            return max(0.0, self._shared_open_until - self._clock())
        remaining: float = self._breaker.open_remaining
        return max(0.0, remaining)

    async def charge(self, request: ChargeRequest) -> ProviderResult:
        return await self._call(self._inner.charge, request)

    async def refund(self, request: RefundRequest) -> ProviderResult:
        return await self._call(self._inner.refund, request)

    async def find_charge(self, request: ChargeRequest) -> ProviderResult | None:
        return await self._call(self._inner.find_charge, request)

    async def find_refund(self, request: RefundRequest) -> ProviderResult | None:
        return await self._call(self._inner.find_refund, request)

    async def settlements(self, day: date) -> list[Settled]:
        return await self._call(self._inner.settlements, day)

    async def aclose(self) -> None:
        """Close the inner provider's HTTP client, if it has one."""
        close: Callable[[], Awaitable[None]] | None = getattr(self._inner, "aclose", None)
        if close is not None:
            await close()

    async def _call(self, method: Callable[[R], Awaitable[T]], request: R) -> T:
        if self._shared is not None and self._breaker.state == STATE_CLOSED:
            if (now := self._clock()) >= self._shared_read_until:
                self._shared_read_until = now + self._shared_refresh  # the calls meanwhile use the last read
                remaining = await self._shared.open_for()
                self._shared_open_until = now + remaining if remaining > 0 else 0.0
            if (remaining := self._shared_open_until - now) > 0:
                raise CircuitOpen(f"circuit open for provider {self.name} (opened by another process)",
                                  retry_after=remaining)
        generation = self._breaker.generation
        try:
            result: T = await self._breaker.call_async(method, request)
        except circuitbreaker.CircuitBreakerError:
            raise CircuitOpen(f"circuit open for provider {self.name}",
                              retry_after=self.remaining_open_seconds) from None
        finally:
            if self._shared is not None and self._breaker.generation != generation:
                await self._share()
        return result

    async def _share(self) -> None:
        """This breaker has just opened or closed: so does the shared circuit."""
        assert self._shared is not None
        if self._breaker.state == STATE_CLOSED:
            await self._shared.close()
            self._shared_open_until = 0.0  # closed by this process: trusted as read now
            self._shared_read_until = self._clock() + self._shared_refresh
        else:
            await self._shared.trip(self._recovery)
