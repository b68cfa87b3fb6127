"""The `Locks` port in Redis: compare-and-act Lua scripts over a key holding the owner's token.

Acquires and releases asked for in the same turn of the event loop go to Redis together, in one pipeline (one
round trip, one write; issue 12): a worker's payment attempts that a shared unit of work completes together
release their locks together, and those whose messages arrive together take them together."""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
from typing import Any

import attrs
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from adapters.redis.connect import AsyncRedis
from core.errors import Unavailable

# KEYS[1] lock; ARGV: token, ttl in ms. SET NX PX that also answers 1 to the token already holding the key, so a
# pipeline redis-py sends again after a lost connection does not find its own lock busy.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return 1
end
if holder then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS[1] lock; ARGV: token, ttl in ms. Touches the key only while the token still owns it.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS[1] lock; ARGV: token. Deletes the key only while the token still owns it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# TimeoutError covers asyncio's timeouts (an alias of the builtin since 3.11); OSError covers dropped sockets.
_REDIS_FAILURES = (RedisError, OSError, TimeoutError)


def _milliseconds(ttl_seconds: float) -> int:
    if not ttl_seconds > 0:
        raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds!r}")
    return max(1, math.ceil(ttl_seconds * 1000))


@attrs.frozen
class _Call:
    """An acquire (`ttl_ms` set) or a release waiting for its turn's round trip."""

    key: str
    token: str
    ttl_ms: int | None
    done: asyncio.Future[Any]


class RedisLocks:
    """Cross-process locks (the `Locks` port) as Redis keys `prefix{name}` holding the owner's random token.

    The name is a hash tag: on a Redis Cluster a lock is one key in one slot, and anything ever kept beside
    it under the same name (a fencing counter, say) would share that slot, as a multi-key script needs.

    Check and act happen in one Lua script, so an owner whose lock expired and was
    taken by someone else can neither extend nor release the new owner's lock.

    Acquires and releases of one turn of the event loop share a pipeline (not a transaction: each command keeps
    its own answer, and a command's failure is its caller's `Unavailable` alone), in the order they were asked.
    The pipeline sends the scripts' text (`EVAL`), so a Redis that lost its script cache (restarted, failed over)
    answers every one of them in order. Not on a Redis Cluster, whose locks live on several nodes: there each call
    is its own round trip, so a node that is down fails only the locks it serves.
    """

    def __init__(self, client: AsyncRedis, prefix: str = "payments:lock:") -> None:
        self._client = client
        self._prefix = prefix
        # AsyncScript runs EVALSHA and falls back to loading the script when Redis lost it (NOSCRIPT).
        self._acquire = client.register_script(_ACQUIRE)
        self._extend = client.register_script(_EXTEND)
        self._release = client.register_script(_RELEASE)
        self._together = isinstance(client, aioredis.Redis)
        self._turn: list[_Call] = []
        self._turn_loop: asyncio.AbstractEventLoop | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def key(self, name: str) -> str:
        """The Redis key of lock `name`: `prefix{name}`."""
        return f"{self._prefix}{{{name}}}"

    async def acquire(self, name: str, ttl_seconds: float) -> str | None:
        token = secrets.token_hex(16)
        taken = await self._call(self.key(name), token, _milliseconds(ttl_seconds))
        return token if int(taken) == 1 else None

    async def extend(self, name: str, token: str, ttl_seconds: float) -> bool:
        ttl_ms = _milliseconds(ttl_seconds)
        try:
            extended = await self._extend(keys=[self.key(name)], args=[token, ttl_ms])
        except _REDIS_FAILURES as error:
            raise Unavailable(f"lock store unavailable: {error}") from error
        return int(extended) == 1

    async def release(self, name: str, token: str) -> bool:
        return int(await self._call(self.key(name), token, None)) == 1

    async def _call(self, key: str, token: str, ttl_ms: int | None) -> Any:
        if not self._together:
            try:
                return await self._one(key, token, ttl_ms)
            except _REDIS_FAILURES as error:
                raise Unavailable(f"lock store unavailable: {error}") from error
        loop = asyncio.get_running_loop()
        call = _Call(key, token, ttl_ms, loop.create_future())
        if self._turn and self._turn_loop is loop:
            self._turn.append(call)
        else:  # a new turn: sent once the ready callbacks of this one have run (and asked for theirs)
            self._turn, self._turn_loop = [call], loop
            loop.call_soon(self._send_turn, self._turn)
        return await call.done

    def _send_turn(self, calls: list[_Call]) -> None:
        if self._turn is calls:
            self._turn = []
        task = asyncio.get_running_loop().create_task(self._send(calls))
        self._sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: `_send` gave it to every caller already

    async def _send(self, calls: list[_Call]) -> None:
        waiting = [call for call in calls if not call.done.done()]  # a caller that stopped waiting asks nothing
        try:
            if len(waiting) == 1:
                only = waiting[0]
                answers: list[Any] = [await self._one(only.key, only.token, only.ttl_ms)]
            elif waiting:
                pipe = self._client.pipeline(transaction=False)
                for call in waiting:
                    if call.ttl_ms is None:
                        pipe.eval(_RELEASE, 1, call.key, call.token)
                    else:
                        pipe.eval(_ACQUIRE, 1, call.key, call.token, call.ttl_ms)
                answers = await pipe.execute(raise_on_error=False)
            else:
                answers = []
        except _REDIS_FAILURES as error:
            answers = [error] * len(waiting)
        except BaseException as error:  # cancelled (the process stopping) or a bug: no caller waits for ever
            failure = Unavailable(f"lock store call abandoned: {error!r}")
            for call in waiting:
                _settle(call, failure)
            raise
        # Taken for a caller that stopped waiting meanwhile: nobody holds the token, so let it go now, not at its TTL.
        orphans = [call for call, answer in zip(waiting, answers, strict=True)
                   if not _settle(call, answer) and call.ttl_ms is not None and answer == 1]
        for call in orphans:
            with contextlib.suppress(*_REDIS_FAILURES):
                await self._one(call.key, call.token, None)

    async def _one(self, key: str, token: str, ttl_ms: int | None) -> Any:
        if ttl_ms is None:
            return await self._release(keys=[key], args=[token])
        return await self._acquire(keys=[key], args=[token, ttl_ms])


def _settle(call: _Call, answer: Any) -> bool:
    """Give a call its answer (`Unavailable` for a Redis failure); False if its caller had stopped waiting."""
    if call.done.done():
        return False
    if isinstance(answer, Unavailable):
        call.done.set_exception(answer)
    elif isinstance(answer, BaseException):
        unavailable = Unavailable(f"lock store unavailable: {answer}")
        unavailable.__cause__ = answer
        call.done.set_exception(unavailable)
    else:
        call.done.set_result(answer)
    return True
