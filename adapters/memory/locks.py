"""The `Locks` port in memory, with expiry measured by an injectable monotonic clock."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import attrs


@attrs.frozen
class _Held:
    token: str
    expires_at: float


class InMemoryLocks:
    """Locks of one process (the `Locks` port); a lock is free once `clock()` reaches its expiry.

    Every method runs without awaiting, so each is atomic on the event loop, as the
    Lua scripts of `RedisLocks` are in Redis.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._held: dict[str, _Held] = {}

    def _owner(self, name: str) -> _Held | None:
        held = self._held.get(name)
        if held is not None and self._clock() >= held.expires_at:
            del self._held[name]
            return None
        return held

    async def acquire(self, name: str, ttl_seconds: float) -> str | None:
        _check_ttl(ttl_seconds)
        if self._owner(name) is not None:
            return None
        token = secrets.token_hex(16)
        self._held[name] = _Held(token, self._clock() + ttl_seconds)
        return token

    async def extend(self, name: str, token: str, ttl_seconds: float) -> bool:
        _check_ttl(ttl_seconds)
        held = self._owner(name)
        if held is None or held.token != token:
            return False
        self._held[name] = _Held(token, self._clock() + ttl_seconds)
        return True

    async def release(self, name: str, token: str) -> bool:
        held = self._owner(name)
        if held is None or held.token != token:
            return False
        del self._held[name]
        return True


def _check_ttl(ttl_seconds: float) -> None:
    if not ttl_seconds > 0:
        raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds!r}")
