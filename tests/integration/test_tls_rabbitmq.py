"""TLS to RabbitMQ (API.md §8), live: `amqps://…?ssl_options=…` reaches pika through Dramatiq's RabbitmqBroker, the
broker of the API and of `payments worker`. Against a RabbitMQ node the module starts with the test CA's certificate
and a TLS listener only (tests.integration.tls_servers), so that every check that passes went through verified TLS;
the machine's own RabbitMQ is not involved."""

from __future__ import annotations

import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pika
import pika.exceptions
import pytest

from adapters.dramatiq.broker import make_broker, ping_broker
from tests.conftest import new_api_key_for_url
from tests.e2e.conftest import free_port
from tests.e2e.isolated import isolated_stack
from tests.e2e.payflow import balance, charges, funded, pay, settled
from tests.integration.tls_servers import Pki, TlsRabbitmq, make_pki, tls_rabbitmq, wait_for


@attrs.frozen
class AmqpsNode:
    pki: Pki
    rabbitmq: TlsRabbitmq
    url: str  # amqps:// verifying the node against the test CA
    directory: Path


@pytest.fixture(scope="module")
def amqps_node() -> Iterator[AmqpsNode]:
    """One node for the module (its start costs about 5 s), stopped and removed afterwards, whatever happened."""
    directory = Path(tempfile.mkdtemp(prefix="payments-amqps-"))
    try:
        pki = make_pki(directory / "pki")
        with tls_rabbitmq(pki) as rabbitmq:
            yield AmqpsNode(pki, rabbitmq, rabbitmq.url(pki.ca), directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_the_node_speaks_tls_only_and_a_foreign_ca_is_refused(amqps_node: AmqpsNode) -> None:
    """The broker the worker builds from the URL connects; the same URL with another CA fails the certificate
    check, and plain AMQP on the port gets no AMQP answer: what passes went through verified TLS."""
    ping_broker(make_broker(amqps_node.url))
    foreign = make_pki(amqps_node.directory / "foreign", label="someone else")
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        ping_broker(make_broker(amqps_node.rabbitmq.url(foreign.ca)))
    plain = f"amqp://{amqps_node.rabbitmq.credentials}@127.0.0.1:{amqps_node.rabbitmq.port}/%2F"
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.URLParameters(plain))


def _ssl_of_connections(rabbitmq: TlsRabbitmq) -> list[str]:
    listed = rabbitmq.ctl("list_connections", "ssl")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    return [line.strip() for line in listed.stdout.splitlines() if line.strip() in {"true", "false"}]


async def test_an_external_payment_completes_through_a_worker_on_amqps(
    admin_database_url: str, amqps_node: AmqpsNode, tmp_path: Path
) -> None:
    """The API and `payments worker` with PAYMENTS_BROKER_URL=amqps://…: both ready with the broker ok; an external
    payment goes through the outbox relay, the TLS node's queue and the worker's actor to `completed`, charged once;
    every connection the node holds meanwhile is a TLS one. A worker whose URL names a foreign CA answers
    /health/ready 503 with the certificate error as its broker check."""
    broker = {"PAYMENTS_BROKER_URL": amqps_node.url}
    worker_port = free_port()
    with isolated_stack(admin_database_url, tmp_path, workers=0, api_env=broker) as stack:
        worker = stack.add_worker(**broker, PAYMENTS_WORKER_METRICS_PORT=str(worker_port))
        # meanwhile, a worker given another CA: it must stay up but unready, and say why (its failed publishes roll
        # back their outbox claims, so the relay of the first worker still sends everything)
        foreign = make_pki(tmp_path / "foreign", label="someone else")
        refused_port = free_port()
        refused = stack.add_worker(PAYMENTS_BROKER_URL=amqps_node.rabbitmq.url(foreign.ca),
                                   PAYMENTS_WORKER_METRICS_PORT=str(refused_port))

        def worker_ready() -> bool:
            assert worker.popen is not None and worker.popen.poll() is None, worker.output()[-4000:]
            return httpx.get(f"http://127.0.0.1:{worker_port}/health/ready", timeout=5).status_code == 200
        wait_for(worker_ready, "the worker on amqps:// ready", timeout=90)
        checks = httpx.get(f"http://127.0.0.1:{worker_port}/health/ready", timeout=5).json()["checks"]
        assert checks["broker"] == "ok", checks
        ready = httpx.get(f"{stack.base_url}/health/ready", timeout=10).json()
        assert ready["checks"]["broker"] == "ok", ready

        key = await new_api_key_for_url(stack.database_url)
        async with httpx.AsyncClient(base_url=stack.base_url, headers={"Authorization": f"Bearer {key}"},
                                     timeout=30) as client:
            source = await funded(client, "5.00")
            paid = await pay(client, source, "1.25")
            assert paid.status_code == 202, paid.text
            payment = await settled(client, paid.json()["id"], timeout=90)
            assert payment["status"] == "completed", (payment, worker.output()[-4000:])
            assert await balance(client, source) == "3.75"
            assert [c["status"] for c in await charges(stack.mock_url, payment["id"])] == ["succeeded"]
        connections = _ssl_of_connections(amqps_node.rabbitmq)
        assert connections and set(connections) == {"true"}, connections

        def unready_for_the_certificate() -> bool:
            assert refused.popen is not None and refused.popen.poll() is None, refused.output()[-4000:]
            answer = httpx.get(f"http://127.0.0.1:{refused_port}/health/ready", timeout=5)
            return answer.status_code == 503 and answer.json()["checks"]["broker"] == (
                "failed: SSLCertVerificationError")
        wait_for(unready_for_the_certificate, "the worker with a foreign CA unready for its broker", timeout=90)
