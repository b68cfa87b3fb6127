"""Observability as an operator sees it: one payment is one trace from the API to the worker, the API's
/metrics has every family the dashboards and alerts use, and the worker serves its own metrics on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.configuration import load_settings
from tests.conftest import ROOT, fresh_database, new_api_key_for_url
from tests.e2e.conftest import free_port, start_mock
from tests.e2e.isolated import PrivateRedis, isolated_stack
from tests.e2e.payflow import funded, pay, settled
from tests.receiver import Receiver

API_FAMILIES = {"http_requests", "http_request_duration_seconds", "payments", "provider_calls",
                "provider_call_duration_seconds", "circuit_breaker_state", "outbox_backlog",
                "outbox_oldest_unpublished_age_seconds", "dlq_size", "webhook_deliveries",
                "webhook_deliveries_pending"}

Samples = dict[str, list[tuple[str, dict[str, str], float]]]


def test_one_payment_is_one_trace_from_the_api_through_the_worker(admin_database_url: str, tmp_path: Path) -> None:
    with fresh_database(admin_database_url) as database_url:
        private = PrivateRedis(tmp_path / "redis").start()
        port, mock = start_mock(tmp_path / "mock.log")
        try:
            done = subprocess.run([sys.executable, "-m", "tests.e2e.trace_probe", database_url, private.url,
                                   str(port)], cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
        finally:
            mock.stop()
            private.stop()
    assert done.returncode == 0, done.stderr[-4000:]
    spans: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])

    (api,) = [s for s in spans if s["name"] == "POST /api/v1/payments"]
    (worker,) = [s for s in spans if s["name"] == "process_payment process"]
    assert (api["kind"], worker["kind"]) == ("SERVER", "CONSUMER")
    assert api["attributes"]["http.response.status_code"] == 202
    assert worker["trace_id"] == api["trace_id"]
    by_id = {s["span_id"]: s for s in spans}

    def ancestors(span: dict[str, Any]) -> list[str]:
        chain = []
        while span["parent_id"] in by_id:
            span = by_id[span["parent_id"]]
            chain.append(span["name"])
        return chain

    assert ancestors(worker) == ["POST /api/v1/payments"]
    trace = [s for s in spans if s["trace_id"] == api["trace_id"]]
    sql = [s for s in trace if s["attributes"].get("db.system") == "postgresql"]
    assert {ancestors(s)[0] for s in sql} >= {"POST /api/v1/payments", "process_payment process"}
    urls = {s["span_id"]: str(s["attributes"].get("url.full") or s["attributes"].get("http.url") or "") for s in trace}
    provider = [s for s in trace if s["kind"] == "CLIENT" and "/stripe/" in urls[s["span_id"]]]
    assert provider and all(ancestors(s)[0] == "process_payment process" for s in provider)
    assert any(s["attributes"].get("db.system") == "redis" for s in trace)
    # the webhook its completion caused joins it too, under the work that committed the event (the relay fans
    # events out itself: no `dispatch_event` task), down to the POST to the receiver
    assert not [s for s in spans if s["name"] == "dispatch_event process"]
    (webhook,) = [s for s in trace if s["name"] == "deliver_webhook process"]
    assert ancestors(webhook)[:1] == ["process_payment process"] and ancestors(webhook)[-1] == api["name"]
    # the message is a batch (of one delivery here): the delivery has its span under it, and the POST under that
    (delivery,) = [s for s in trace if s["name"] == "webhook delivery"]
    assert ancestors(delivery)[0] == "deliver_webhook process"
    assert delivery["attributes"]["http.response.status_code"] == 200
    posts = [s for s in trace if s["kind"] == "CLIENT" and urls[s["span_id"]].endswith("/hook")]
    assert len(posts) == 1 and ancestors(posts[0])[:2] == ["webhook delivery", "deliver_webhook process"]


def _scrape(url: str) -> Samples:
    text = httpx.get(url, timeout=10).text
    samples: Samples = defaultdict(list)
    for family in text_string_to_metric_families(text):
        samples[family.name] += [(s.name, s.labels, s.value) for s in family.samples]
        samples.setdefault(family.name, [])
    return samples


def _value(samples: Samples, family: str, name: str, **labels: str) -> float:
    return sum(v for n, ls, v in samples.get(family, []) if n == name and labels.items() <= ls.items())


async def test_metrics_of_the_api_and_of_the_worker(admin_database_url: str, tmp_path: Path) -> None:
    assert load_settings({}).worker.metrics_host == "127.0.0.1"  # the documented default
    worker_port = free_port()
    with isolated_stack(admin_database_url, tmp_path, worker_env={"PAYMENTS_WORKER_METRICS_PORT": str(worker_port)},
                        api_env={"PAYMENTS_WORKER_METRICS_PORT": "0"}) as stack:
        key = await new_api_key_for_url(stack.database_url)
        receiver = Receiver().start()
        try:
            async with httpx.AsyncClient(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"},
                                         timeout=30) as client:
                hook = await client.post("/api/v1/webhooks", json={"url": receiver.url(),
                                                                   "events": ["payment.completed"]})
                assert hook.status_code == 201, hook.text
                payment = await settled(client, (await pay(client, await funded(client))).json()["id"])
                assert payment["status"] == "completed"
            await asyncio.to_thread(receiver.wait, "/hook", 1)
        finally:
            receiver.stop()

        api = f"{stack.base_url}/metrics"
        deadline = asyncio.get_running_loop().time() + 30
        while not (_value(samples := _scrape(api), "payments", "payments_total", type="external_payment",
                          status="completed")
                   and _value(samples, "webhook_deliveries", "webhook_deliveries_total", outcome="succeeded")
                   and _value(samples, "provider_calls", "provider_calls_total", provider="stripe",
                              operation="charge", outcome="succeeded")):  # written behind, 0.1 s after the call
            assert asyncio.get_running_loop().time() < deadline, f"payments_total never counted the payment: " \
                f"{samples.get('payments')}"
            await asyncio.sleep(0.1)

        assert set(samples) >= API_FAMILIES, API_FAMILIES - set(samples)
        assert _value(samples, "http_requests", "http_requests_total", method="POST", route="/api/v1/payments",
                      status="202") == 1
        assert _value(samples, "http_request_duration_seconds", "http_request_duration_seconds_count",
                      route="/api/v1/payments") == 1
        assert _value(samples, "provider_calls", "provider_calls_total", provider="stripe", operation="charge",
                      outcome="succeeded") == 1
        assert _value(samples, "provider_call_duration_seconds", "provider_call_duration_seconds_count",
                      provider="stripe", operation="charge", outcome="succeeded") == 1
        assert {ls["provider"]: v for _, ls, v in samples["circuit_breaker_state"]} == {"stripe": 0, "paypal": 0}
        assert _value(samples, "payments", "payments_total", type="external_payment", status="completed") == 1
        for gauge in ("outbox_backlog", "outbox_oldest_unpublished_age_seconds", "dlq_size",
                      "webhook_deliveries_pending"):
            assert len(samples[gauge]) == 1 and samples[gauge][0][2] >= 0, gauge
        assert _value(samples, "dlq_size", "dlq_size") == 0
        assert _value(samples, "webhook_deliveries", "webhook_deliveries_total", outcome="succeeded") == 1
        assert _value(samples, "webhook_deliveries_pending", "webhook_deliveries_pending") == 0

        worker = _scrape(f"http://127.0.0.1:{worker_port}/metrics")
        assert _value(worker, "worker_messages", "worker_messages_total", actor="process_payment",
                      outcome="succeeded") >= 1
        assert _value(worker, "worker_messages", "worker_messages_total", actor="deliver_webhook",
                      outcome="succeeded") >= 1
        assert _value(worker, "worker_messages", "worker_messages_total", actor="dispatch_event") == 0
        assert {"worker_message_duration_seconds", "worker_messages_in_progress", "process_cpu_seconds",
                "python_info"} <= set(worker)
        assert _listening(worker_port) == {"127.0.0.1"}  # loopback only, not 0.0.0.0


def _listening(port: int) -> set[str]:
    """The local addresses of the sockets listening on `port` (Linux's /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                if len(address) == 8:
                    found.add(str(ipaddress.IPv4Address(bytes.fromhex(address)[::-1])))
                else:  # four little-endian 32-bit words
                    words = [bytes.fromhex(address[i:i + 8])[::-1] for i in range(0, 32, 8)]
                    found.add(str(ipaddress.IPv6Address(b"".join(words))))
    return found
