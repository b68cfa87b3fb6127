"""How long Redis is unusable to the service during a Sentinel failover, and how fast a cluster command fails on a
dead node: the clients are the ones `adapters.redis.connect` builds for the API, the locks are `RedisLocks`.

    .venv/bin/python bench/redis_failover.py
    .venv/bin/python bench/redis_failover.py --runs 5 --json /tmp/redis_failover.json

Sentinel (one master, one replica, one Sentinel with down-after-milliseconds 500, started fresh for every run on
free ports): a loop takes and releases a lock every 10 ms; the master is SIGKILLed; measured is the time from the
kill to the first lock taken on the promoted replica, and how many lock operations failed (`Unavailable`) meanwhile.

Cluster (three masters, no replicas, cluster-node-timeout 1000): one node is SIGKILLed; measured is the latency of
a lock operation on a key of that node (it must fail), and of one on another node (it must succeed), then the time
from the node's restart to the first lock taken on it again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.redis.connect import RedisTopology, async_client
from adapters.redis.locks import RedisLocks
from core.errors import Unavailable
from tests.redis_servers import SENTINEL_MASTER, redis_cluster, restart, sentinel_set, wait_for


async def _cycle(locks: RedisLocks, name: str) -> bool:
    try:
        token = await locks.acquire(name, 5)
    except Unavailable:
        return False
    return token is not None and await locks.release(name, token)


async def sentinel_run(directory: Path) -> dict[str, float]:
    with sentinel_set(directory) as servers:
        topology = RedisTopology(url="redis://ignored/0", sentinels=(("127.0.0.1", servers.sentinel.port),),
                                 sentinel_master=SENTINEL_MASTER)
        client = async_client(topology, timeout=1.0)  # the API's timeout
        locks, failed = RedisLocks(client), 0
        try:
            assert await _cycle(locks, "bench")
            servers.master.kill()
            killed = time.monotonic()
            while True:
                if await _cycle(locks, "bench") and servers.master_port() == servers.replica.port:
                    break
                failed += 1
                await asyncio.sleep(0.01)
            return {"seconds_to_new_master": time.monotonic() - killed, "failed_operations": failed}
        finally:
            await client.aclose()


async def cluster_run(directory: Path, samples: int) -> dict[str, float]:
    with redis_cluster(directory) as cluster:
        client = async_client(RedisTopology(url=cluster.seed_url, cluster=True), timeout=1.0)
        locks = RedisLocks(client)
        try:
            victim = cluster.node_for(locks.key("victim"))
            other = next(f"other-{n}" for n in range(100) if cluster.node_for(locks.key(f"other-{n}")) is not victim)
            assert await _cycle(locks, "victim") and await _cycle(locks, other)
            victim.kill()
            down, up = [], []
            for _ in range(samples):
                started = time.monotonic()
                assert not await _cycle(locks, "victim")
                down.append(time.monotonic() - started)
                started = time.monotonic()
                assert await _cycle(locks, other)
                up.append(time.monotonic() - started)
            restarted = time.monotonic()
            restart(victim)
            while True:  # until the restarted node serves its slots again
                if await _cycle(locks, "victim"):
                    break
                await asyncio.sleep(0.01)
            back = time.monotonic() - restarted
            wait_for(cluster.healthy, "the cluster")
            return {"dead_node_op_median": statistics.median(down), "dead_node_op_max": max(down),
                    "live_node_op_median": statistics.median(up), "seconds_to_rejoin": back}
        finally:
            await client.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=20, help="lock operations timed while a cluster node is down")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, Any] = {"sentinel": [], "cluster": []}
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as scratch:
        for run in range(args.runs):
            results["sentinel"].append(await sentinel_run(Path(scratch) / f"sentinel{run}"))
            results["cluster"].append(await cluster_run(Path(scratch) / f"cluster{run}", args.samples))
    for kind, runs in results.items():
        for key in runs[0]:
            values = [run[key] for run in runs]
            print(f"{kind:8} {key:24} " + "  ".join(f"{value:7.3f}" for value in values))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
