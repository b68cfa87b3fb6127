"""The relay's publish on Redis, one round trip per message (Dramatiq's own `enqueue`) against one pipeline per batch.

    .venv/bin/python bench/enqueue.py --redis-url redis://127.0.0.1:6379/14
    .venv/bin/python bench/enqueue.py --batches 4,16,100 --messages 4000 --rounds 6

The tasks the worker's relay sends for a batch of outbox messages (each external payment's `payment.created` is an
event task and a work task), on a broker made by `make_broker`: `enqueue_all` (one pipeline per batch, the relay
now) against `enqueue` once per task (one round trip each, the relay before, as Dramatiq sends).
The two alternate, --rounds times, each publishing --messages outbox messages in batches of each size; the
database is flushed before and after each publish and at the end. Printed per batch size and way: the median of
the rounds' wall µs per outbox message, the client's CPU µs per message (this process, `time.process_time`) and
the Redis server's (`INFO cpu`, which counts every client of that server: give it a database of its own, on a
quiet server for the server column to mean anything).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dramatiq
import redis

from adapters.dramatiq.broker import ReplicatedRedisBroker, event_message, make_broker, work_message
from core.events import OutboxMessage, work_for
from core.ids import new_id


def messages(count: int) -> list[OutboxMessage]:
    return [OutboxMessage.new(tenant_id=new_id(), topic="payment.created", aggregate_id=new_id(),
                              payload={"payment_type": "external_payment", "amount": "1.00"}, correlation_id="bench",
                              at=datetime.now(UTC)) for _ in range(count)]


def server_cpu(client: redis.Redis) -> float:
    info: dict[str, Any] = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def tasks_of(batch: list[OutboxMessage]) -> list[dramatiq.Message[Any]]:
    """What the relay sends for a batch: each message's event task and the work its `payment.created` starts."""
    tasks = [event_message(m) for m in batch]
    return tasks + [work_message(item) for m in batch if (item := work_for(m)) is not None]


def send(broker: ReplicatedRedisBroker, batch: list[OutboxMessage], way: str) -> None:
    tasks = tasks_of(batch)
    if way == "pipeline":  # the relay now: one pipeline per batch
        broker.enqueue_all(tasks)
    else:  # the relay before: Dramatiq's `enqueue`, one round trip per task
        for task in tasks:
            broker.enqueue(task)


async def publish(broker: ReplicatedRedisBroker, all_messages: list[OutboxMessage], size: int, way: str) -> None:
    for start in range(0, len(all_messages), size):  # from a thread, as `DramatiqTaskQueue` sends
        await asyncio.to_thread(send, broker, all_messages[start:start + size], way)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--batches", default="4,16,100", help="outbox messages per relay batch, comma-separated")
    parser.add_argument("--messages", type=int, default=2000, help="outbox messages per round and way")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis_url)
    if client.dbsize():
        sys.exit(f"{args.redis_url} is not empty: give the bench a database of its own")
    broker = make_broker(args.redis_url)
    assert isinstance(broker, ReplicatedRedisBroker)
    results: dict[tuple[int, str], list[tuple[float, float, float]]] = {}
    try:
        for _ in range(args.rounds):
            for size in (int(b) for b in args.batches.split(",")):
                for way in ("one by one", "pipeline"):
                    batch = messages(args.messages)
                    client.flushdb()
                    wall, cpu, server = time.perf_counter(), time.process_time(), server_cpu(client)
                    await publish(broker, batch, size, way)
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                    server = server_cpu(client) - server
                    per = 1e6 / args.messages
                    results.setdefault((size, way), []).append((wall * per, cpu * per, server * per))
    finally:
        client.flushdb()
        broker.close()
    print("| batch | way | wall µs/message | client CPU µs/message | Redis CPU µs/message |")
    print("|---|---|---|---|---|")
    for (size, way), rows in results.items():
        med = [statistics.median(column) for column in zip(*rows, strict=True)]
        print(f"| {size} | {way} | {med[0]:.0f} | {med[1]:.0f} | {med[2]:.0f} |")


if __name__ == "__main__":
    asyncio.run(main())
