"""The whole stack on a real three-node Redis Cluster (API.md §8 "Scale-out"): `payments serve` and `payments worker`
with PAYMENTS_REDIS_CLUSTER=true, a seed node as PAYMENTS_REDIS_URL and RabbitMQ as the broker, rate limiting on.
Under transfers and external payments from several clients, the node that holds the rate limiter's bucket is
SIGKILLed and restarted: every answer is a success or a 503 problem with Retry-After (never a 500), every intent
is acknowledged exactly once, every payment completes, every cent is where it belongs, and once the node is back
both processes are ready again and new work goes through. Also: start-up refuses a cluster with a Redis broker."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from decimal import Decimal
from functools import partial
from pathlib import Path

import httpx

from tests.conftest import ROOT, new_api_key_for_url
from tests.e2e.conftest import free_port, stack_env
from tests.e2e.helpers import API, PROBLEM_JSON, all_pages, metric_samples, transfer_body
from tests.e2e.isolated import isolated_stack
from tests.e2e.payflow import balance, funded, settled
from tests.redis_servers import Cluster, redis_cluster, restart, wait_for

Post = Callable[[str], Awaitable[httpx.Response]]


def _ready(url: str) -> bool:
    """/health/ready (the API's or the worker's operations port) answers 200."""
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:  # not listening yet
        return False


def _redis_failing(url: str) -> bool:
    """/health/ready answers 503 naming the Redis check as the failing one."""
    try:
        answer = httpx.get(url, timeout=5)
    except httpx.HTTPError:  # a slow answer on a loaded machine: ask again
        return False
    return answer.status_code == 503 and answer.json()["checks"]["redis"] != "ok"


def _holder(cluster: Cluster, pattern: str) -> int:
    """The index of the node that holds a key matching `pattern` (waits until one does)."""
    found: list[int] = []
    wait_for(lambda: found.extend(n for n, node in enumerate(cluster.nodes) if node.client().keys(pattern)) or found,
             f"a key {pattern!r} on the cluster")
    return found[0]


async def test_the_stack_rides_a_cluster_node_restart(admin_database_url: str, tmp_path: Path) -> None:
    with redis_cluster(tmp_path / "cluster") as cluster:
        env = {"PAYMENTS_REDIS_CLUSTER": "true", "PAYMENTS_REDIS_URL": cluster.seed_url,
               # on, so every request goes through the cluster; never refusing anything here
               "PAYMENTS_RATE_LIMIT_REQUESTS_PER_SECOND": "10000", "PAYMENTS_RATE_LIMIT_BURST": "1000000"}
        ops = free_port()  # the worker's operations port: its /health/ready checks the cluster and the broker
        with isolated_stack(admin_database_url, tmp_path, broker="rabbitmq", env=env,
                            worker_env={"PAYMENTS_WORKER_METRICS_PORT": str(ops)}) as stack:
            ready = {"API": f"{stack.base_url}/health/ready", "worker": f"http://127.0.0.1:{ops}/health/ready"}
            await asyncio.to_thread(wait_for, lambda: _ready(ready["worker"]), "the worker ready")
            key = await new_api_key_for_url(stack.database_url)
            async with httpx.AsyncClient(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"},
                                         timeout=60) as client:
                refused = await _under_load(client, cluster, ready)
                # never a 500: the only 5xx are the 503s the clients saw and the failing readiness probe's
                errors = Counter({(labels["route"], labels["status"]): value for labels, value in metric_samples(
                    (await client.get("/metrics")).text, "http_requests_total") if labels["status"][0] == "5"})
            assert {status for _, status in errors} <= {"503"}, f"{errors}; see {stack.api.log}"
            # a payment whose lock's node was down was retried quietly (a warning), not as an unhandled exception
            assert "unhandled exception" not in stack.workers[0].output(), stack.workers[0].log
            assert sum(v for (route, _), v in errors.items() if not route.endswith("/health/ready")) == refused, errors
            env_ = {k: v for k, v in os.environ.items() if not k.startswith("PAYMENTS_")}
            check = subprocess.run([sys.executable, "-m", "payments", "ledger", "check"], cwd=ROOT, timeout=120,
                                   env={**env_, "PAYMENTS_DATABASE_URL": stack.database_url},
                                   capture_output=True, text=True, check=False)
            assert check.returncode == 0 and "ledger ok" in check.stdout, check.stdout + check.stderr


async def _under_load(client: httpx.AsyncClient, cluster: Cluster, ready: dict[str, str]) -> int:
    """The load, the node's death and return; the checks of what was acknowledged. The number of 503s answered."""
    source, sink = await funded(client, "10000.00"), await funded(client, "0.00")
    victim = cluster.nodes[await asyncio.to_thread(_holder, cluster, "ratelimit:{*")]  # the limiter's bucket
    acked: dict[str, Counter[str]] = {"transfer": Counter(), "payment": Counter()}  # phase → count
    ids: dict[str, list[str]] = {"transfer": [], "payment": []}
    statuses: Counter[int] = Counter()
    phase, stop = "before", asyncio.Event()

    async def until_acknowledged(kind: str, post: Post) -> None:
        """One intent under one Idempotency-Key, sent again after each 503 (as a client should) until answered."""
        idempotency_key = secrets.token_hex(8)
        while True:
            here = phase
            response = await post(idempotency_key)
            statuses[response.status_code] += 1
            if response.status_code in (201, 202):
                ids[kind].append(response.json()["id"])
                acked[kind][here] += 1
                return
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON, response.headers
            assert response.headers["Retry-After"].isdigit(), response.headers
            await asyncio.sleep(0.1)  # not Retry-After's whole second: the test wants the outage exercised

    async def transferring() -> None:
        while not stop.is_set():
            await until_acknowledged("transfer", lambda k: client.post(
                f"{API}/transfers", json=transfer_body(source, sink, "1.00"), headers={"Idempotency-Key": k}))

    async def paying() -> None:
        body = {"payment_type": "external_payment", "source_account_id": source, "amount": "1.00",
                "currency": "USD", "provider": "stripe"}
        while not stop.is_set():
            await until_acknowledged("payment", lambda k: client.post(
                f"{API}/payments", json=body, headers={"Idempotency-Key": k}))
            await asyncio.sleep(0.05)  # paced: a steady stream the one worker keeps up with, not a backlog

    async def acknowledged(wanted: int) -> None:
        while min(acked["transfer"][phase], acked["payment"][phase]) < wanted:
            await asyncio.sleep(0.05)

    load = [asyncio.create_task(each()) for each in (transferring, transferring, paying, paying)]
    try:
        await asyncio.wait_for(acknowledged(5), 60)
        victim.kill()
        phase = "down"
        # both processes notice the lost slots (a 503 naming Redis) while requests keep being answered
        for url in ready.values():
            await asyncio.to_thread(wait_for, partial(_redis_failing, url), f"{url} failing on Redis")
        await asyncio.wait_for(acknowledged(3), 60)
        restart(victim)
        await asyncio.to_thread(wait_for, cluster.healthy, "the restarted node rejoining")
        for url in ready.values():
            await asyncio.to_thread(wait_for, partial(_ready, url), f"{url} ready again")
        phase = "after"  # acknowledged from now on: after the node is back
        await asyncio.wait_for(acknowledged(5), 60)
    finally:
        stop.set()
        outcomes = await asyncio.gather(*load, return_exceptions=True)
    assert all(outcome is None for outcome in outcomes), outcomes
    assert set(statuses) <= {201, 202, 503}, statuses

    # exactly once: the account's history holds every acknowledged id, once, and nothing else
    listed = [p["id"] for p in await all_pages(client, f"{API}/payments", limit=100, params={"account_id": source})]
    assert Counter(listed) == Counter(ids["transfer"] + ids["payment"]), "lost or duplicated payments"
    assert len(set(listed)) == len(listed)
    finals = [await settled(client, pid, timeout=120) for pid in ids["payment"]]
    assert {p["status"] for p in finals} == {"completed"}, Counter(p["status"] for p in finals)
    moved, paid = len(ids["transfer"]), len(ids["payment"])
    assert Decimal(await balance(client, sink)) == moved
    assert Decimal(await balance(client, source)) == 10000 - moved - paid
    return statuses[503]


def test_start_up_refuses_a_cluster_with_the_redis_broker(tmp_path: Path) -> None:
    """`payments serve` and `payments worker` exit non-zero, naming the fix, before touching anything."""
    for command in ("serve", "worker"):
        env = stack_env("postgresql://root@127.0.0.1:1/none", "redis://127.0.0.1:1/0", free_port(),
                        PAYMENTS_REDIS_CLUSTER="true")
        done = subprocess.run([sys.executable, "-m", "payments", command], env=env, cwd=ROOT, timeout=120,
                              capture_output=True, text=True, check=False)
        assert done.returncode != 0, done.stdout + done.stderr
        assert "PAYMENTS_BROKER_URL=amqp://" in done.stdout + done.stderr, done.stdout + done.stderr
