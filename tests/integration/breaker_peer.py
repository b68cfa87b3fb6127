"""One process of `test_shared_breaker`: a provider's breaker sharing its circuit through Redis, driven from stdin.

`python -m tests.integration.breaker_peer REDIS_URL PREFIX RECOVERY`: each line read (`ok` or `down`, what the
provider answers) makes one charge; one JSON line answers it: `called` (the provider answered), `failed` (it
was down) or `refused` (the circuit was open: the provider was not called), with the breaker's state and how many
calls reached the provider.
"""

from __future__ import annotations

import asyncio
import json
import sys

import redis.asyncio as aioredis

from adapters.providers.breaker import BreakerProvider
from adapters.redis.circuit import RedisCircuit
from core.providers import CircuitOpen, ProviderUnavailable
from tests.unit.test_breaker import ScriptedProvider, charge_request


async def main(redis_url: str, prefix: str, recovery: float) -> None:
    client = aioredis.Redis.from_url(redis_url)
    inner = ScriptedProvider()
    breaker = BreakerProvider(inner, window=4, failure_rate=1.0, recovery_timeout=recovery,
                              shared=RedisCircuit(client, inner.name, prefix=prefix))
    print(json.dumps({"result": "started"}), flush=True)
    for line in sys.stdin:
        inner.outcome = line.strip()
        answer: dict[str, object] = {}
        try:
            await breaker.charge(charge_request())
            answer["result"] = "called"
        except CircuitOpen as refused:
            answer.update(result="refused", retry_after=refused.retry_after)
        except ProviderUnavailable:
            answer["result"] = "failed"
        answer.update(state=breaker.state, calls=inner.calls)
        print(json.dumps(answer), flush=True)
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
