"""What waiting for a Redis replica (`PAYMENTS_REDIS_MIN_REPLICAS_ACK`) costs the outbox relay's enqueue.

    .venv/bin/python bench/relay_wait.py
    .venv/bin/python bench/relay_wait.py --seconds 5 --batches 1,10,100 --json /tmp/relay_wait.json

One master, one replica and one Sentinel on free ports (local, so the replica's round trip is a loopback one);
the broker is `make_broker(client=<Sentinel-managed client>)` as the worker builds it. For each batch size, for
`--seconds`, `DramatiqTaskQueue.publish_events` (what `relay_outbox` calls) publishes batches of event messages
(each with no follow-up work), with `min_replicas` 0 (Dramatiq's enqueue, one round trip per message) and 1 (one
pipeline per batch ending in `WAIT 1`); reported are batches/s, messages/s and the median and p99 batch time.
The queue is flushed between runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.dramatiq.broker import EVENTS_QUEUE, DramatiqTaskQueue, make_broker
from adapters.redis.connect import RedisTopology, sync_client
from core.events import OutboxMessage
from core.ids import new_id
from tests.redis_servers import SENTINEL_MASTER, SentinelSet, sentinel_set


def _events(count: int) -> list[OutboxMessage]:
    return [OutboxMessage.new(tenant_id=new_id(), topic="account.created", aggregate_id=new_id(),
                              payload={"id": str(new_id())}, correlation_id=None, at=datetime.now(UTC))
            for _ in range(count)]


async def _run(servers: SentinelSet, min_replicas: int, batch: int, seconds: float) -> dict[str, Any]:
    topology = RedisTopology(url="", sentinels=(("127.0.0.1", servers.sentinel.port),),
                             sentinel_master=SENTINEL_MASTER)
    client = sync_client(topology)
    broker = make_broker(client=client, min_replicas=min_replicas, replica_timeout=1.0)  # type: ignore[arg-type]
    queue = DramatiqTaskQueue(broker)
    try:
        await queue.publish_events(_events(batch))  # warm: connection, scripts
        times: list[float] = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            messages = _events(batch)
            started = time.perf_counter()
            await queue.publish_events(messages)
            times.append(time.perf_counter() - started)
        total = sum(times)
        ordered = sorted(times)
        return {"min_replicas": min_replicas, "batch": batch, "batches_per_s": len(times) / total,
                "messages_per_s": len(times) * batch / total, "median_ms": 1000 * statistics.median(times),
                "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]}
    finally:
        broker.flush(EVENTS_QUEUE)  # type: ignore[attr-defined]
        broker.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batches", default="1,10,100", help="batch sizes (the relay's default batch is 100)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as directory, sentinel_set(Path(directory)) as servers:
        for batch in (int(each) for each in args.batches.split(",")):
            for min_replicas in (0, 1):
                result = await _run(servers, min_replicas, batch, args.seconds)
                results.append(result)
                print(f"batch {batch:4d}  min_replicas {min_replicas}:  {result['batches_per_s']:8.1f} batches/s "
                      f"{result['messages_per_s']:9.1f} messages/s  median {result['median_ms']:7.2f} ms  "
                      f"p99 {result['p99_ms']:7.2f} ms", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
