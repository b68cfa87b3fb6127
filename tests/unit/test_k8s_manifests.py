"""deploy/k8s cannot run here (no cluster): every manifest is validated against the Kubernetes API schemas that
kubernetes-validate ships (offline, strict: unknown fields are errors) for a pinned Kubernetes version, and checked
against the app: env names are settings, probe paths are routes the API and the worker serve, the commands are the
image's `payments` subcommands, the ports, user and grace periods agree with the Dockerfile and the settings, the
PostgreSQL connection budget holds, and deploy/prometheus/kubernetes.yml scrapes what the pods announce."""

from __future__ import annotations

import asyncio
import configparser
import json
import re
import threading
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import kubernetes_validate
import pytest
import yaml

from adapters.crypto import new_key
from app.configuration import load_settings, parse_duration
from app.http.app import create_app
from app.settings import Settings, SettingsError
from payments.cli import parser
from tests.e2e.conftest import free_port
from workers.health import serve_health

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
#: The Kubernetes release the manifests are written for (its schemas ship with kubernetes-validate).
KUBERNETES_VERSION = "1.33.0"
#: PostgreSQL's default max_connections less superuser_reserved_connections.
POSTGRES_CONNECTIONS = 100 - 3


def _documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path.name, document


DOCUMENTS = list(_documents())


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [doc for _, doc in DOCUMENTS if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _pod(kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = _one(kind, name)["spec"]["template"]
    return spec


def _containers() -> list[tuple[str, dict[str, Any]]]:
    return [(doc["metadata"]["name"], container) for _, doc in DOCUMENTS if doc["kind"] in {"Deployment", "Job"}
            for container in doc["spec"]["template"]["spec"]["containers"]]


def _settings_keys(cls: type[Any] = Settings, prefix: str = "PAYMENTS") -> set[str]:
    """Every PAYMENTS_* name app.configuration reads (the way it builds them from the settings classes)."""
    hints, keys = typing.get_type_hints(cls), set()
    for field in attrs.fields(cls):
        key = f"{prefix}_{field.name.upper()}"
        keys |= _settings_keys(hints[field.name], key) if attrs.has(hints[field.name]) else {key}
    return keys


def _config() -> dict[str, str]:
    return {**_one("ConfigMap", "payments-config")["data"], **_one("Secret", "payments-secrets")["stringData"]}


def _settings() -> Settings:
    """What the pods read, with a real secrets key in place of the Secret's placeholder."""
    return load_settings({**_config(), "PAYMENTS_SECRETS_KEYS": new_key()})


@pytest.mark.parametrize(("name", "document"), DOCUMENTS,
                         ids=[f"{name}:{doc['kind']}" for name, doc in DOCUMENTS])
def test_each_manifest_is_valid_for_the_pinned_kubernetes(name: str, document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_kustomization_applies_every_manifest_with_the_image_of_this_release() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in K8S.glob("*.yaml")
                                                        if p.name != "kustomization.yaml")
    assert {doc.get("metadata", {}).get("namespace", "payments") for _, doc in DOCUMENTS} == {"payments"}
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert kustomization["images"] == [{"name": "payments", "newName": "payments",
                                        "newTag": setup["metadata"]["version"]}]
    assert {container["image"] for _, container in _containers()} == {"payments"}


def test_every_payments_variable_is_a_setting() -> None:
    known = _settings_keys() | {"PAYMENTS_CONFIG"}
    names = set(_config()) | {env["name"] for _, container in _containers() for env in container.get("env", [])}
    assert {name for name in names if name.startswith("PAYMENTS_")} <= known
    assert {name for name in names if not name.startswith("PAYMENTS_")} <= {"OTEL_SERVICE_NAME"}
    for _, container in _containers():
        sources = {(ref.get("configMapRef") or ref.get("secretRef"))["name"] for ref in container["envFrom"]}
        assert sources == {"payments-config", "payments-secrets"}
    assert _settings()  # every value parses as its setting
    with pytest.raises(SettingsError, match="PAYMENTS_SECRETS_KEYS"):  # a placeholder left in stops start-up
        load_settings(_config())


def test_commands_are_the_images_subcommands() -> None:
    """The Dockerfile has no ENTRYPOINT and runs `payments serve`: the API runs that, the worker and the
    migration Job the same console script with their subcommand (arguments that `payments` parses)."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ENTRYPOINT" not in dockerfile
    cmd = json.loads(re.findall(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)[-1])
    commands = {name: container["command"] for name, container in _containers()}
    assert commands == {"payments-api": cmd, "payments-worker": ["payments", "worker"],
                        "payments-migrate": ["payments", "migrate"]}
    for command in commands.values():
        parser().parse_args(command[1:])
    user = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)[-1]
    for _, doc in DOCUMENTS:
        if doc["kind"] in {"Deployment", "Job"}:
            security = doc["spec"]["template"]["spec"]["securityContext"]
            assert (str(security["runAsUser"]), str(security["runAsGroup"])) == user and security["runAsNonRoot"]
    assert _one("Job", "payments-migrate")["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def _probes(container: dict[str, Any]) -> dict[str, tuple[str, int]]:
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    return {kind: (container[kind]["httpGet"]["path"], ports[container[kind]["httpGet"]["port"]])
            for kind in ("readinessProbe", "livenessProbe", "startupProbe")}


def test_api_probes_are_the_api_health_routes_on_its_port() -> None:
    config = _config()
    container = _pod("Deployment", "payments-api")["spec"]["containers"][0]
    probes = _probes(container)
    assert probes["readinessProbe"] == ("/health/ready", int(config["PAYMENTS_SERVER_PORT"]))
    assert probes["livenessProbe"][0] == probes["startupProbe"][0] == "/health/live"
    assert re.search(rf"^EXPOSE {config['PAYMENTS_SERVER_PORT']}$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    app = create_app(_settings(), "postgresql://nobody@127.0.0.1:1/none", "redis://127.0.0.1:1/0",
                     name="k8s-manifests")
    routes = {"/" + route.path for route in app.router.routes}
    assert {path for path, _ in probes.values()} | {"/metrics"} <= routes
    service = _one("Service", "payments-api")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert service["spec"]["selector"] == _one("Deployment", "payments-api")["spec"]["selector"]["matchLabels"]


def test_worker_probes_answer_on_the_workers_operations_port() -> None:
    """The worker's probe paths, asked of its real operations server (with a readiness that is all ok)."""
    config = _config()
    probes = _probes(_pod("Deployment", "payments-worker")["spec"]["containers"][0])
    assert {port for _, port in probes.values()} == {int(config["PAYMENTS_WORKER_METRICS_PORT"])}
    assert config["PAYMENTS_WORKER_METRICS_HOST"] == "0.0.0.0"  # the kubelet probes the pod's IP

    async def all_ok() -> dict[str, str]:
        return {"database": "ok"}

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    port = free_port()
    stop = serve_health("127.0.0.1", port, loop, all_ok)
    try:
        for path, _ in probes.values():
            assert httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10).status_code == 200, path
    finally:
        stop()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_pods_outlast_their_drain_and_disruptions_leave_capacity() -> None:
    drain = parse_duration(_config()["PAYMENTS_SERVER_SHUTDOWN_TIMEOUT"])
    for name in ("payments-api", "payments-worker"):
        spec = _pod("Deployment", name)["spec"]
        pause = sum(int(c["lifecycle"]["preStop"]["exec"]["command"][1]) for c in spec["containers"]
                    if "lifecycle" in c)
        assert spec["terminationGracePeriodSeconds"] >= pause + drain + 5, name
        budget = _one("PodDisruptionBudget", name)["spec"]
        assert budget["selector"]["matchLabels"] == _one("Deployment", name)["spec"]["selector"]["matchLabels"]
    hpa = _one("HorizontalPodAutoscaler", "payments-api")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "payments-api"}
    assert _one("PodDisruptionBudget", "payments-api")["spec"]["minAvailable"] < hpa["minReplicas"]


def test_the_postgresql_connection_budget_holds_at_the_most_pods() -> None:
    """What app.bootstrap opens at most: PAYMENTS_DATABASE_POOL_MAX per API process, concurrency + 2 (at least 4)
    + 3 per worker process; every API pod the HPA may make and every worker replica, each with a rollout's surge
    pod, and the migration Job."""
    settings = _settings()
    api = _one("Deployment", "payments-api")["spec"]
    # a rollout runs its surge pods next to the old ones (the worker's default surge: 25 %, rounded up: one)
    api_pods = _one("HorizontalPodAutoscaler", "payments-api")["spec"]["maxReplicas"] + \
        api["strategy"]["rollingUpdate"]["maxSurge"]
    worker = _one("Deployment", "payments-worker")["spec"]
    assert "strategy" not in worker
    worker_pods = worker["replicas"] + 1
    per_worker = max(4, settings.worker.concurrency + 2) + 3
    total = api_pods * settings.server.workers * settings.database.pool_max + worker_pods * per_worker + 1
    assert total <= POSTGRES_CONNECTIONS, total


def test_prometheus_scrapes_each_pod_by_its_annotations() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/kubernetes.yml").read_text())
    compose = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert [job["job_name"] for job in config["scrape_configs"]] == [job["job_name"] for job in
                                                                      compose["scrape_configs"]] == ["api", "worker"]
    assert config["rule_files"] == compose["rule_files"]
    for job in config["scrape_configs"]:
        pod = _pod("Deployment", f"payments-{job['job_name']}")
        container = pod["spec"]["containers"][0]
        annotations, labels = pod["metadata"]["annotations"], pod["metadata"]["labels"]
        assert annotations["prometheus.io/port"] == str(container["ports"][0]["containerPort"])
        assert annotations["prometheus.io/path"] == "/metrics" and annotations["prometheus.io/scrape"] == "true"
        assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["payments"]}}]
        rules = {tuple(rule["source_labels"]): rule for rule in job["relabel_configs"]}
        component = rules[("__meta_kubernetes_pod_label_app_kubernetes_io_component",)]
        assert (component["action"], component["regex"]) == ("keep", labels["app.kubernetes.io/component"])
        assert rules[("__meta_kubernetes_pod_annotation_prometheus_io_scrape",)]["action"] == "keep"
        path = rules[("__meta_kubernetes_pod_annotation_prometheus_io_path",)]
        assert path["target_label"] == "__metrics_path__"
        address = rules[("__address__", "__meta_kubernetes_pod_annotation_prometheus_io_port")]
        # what Prometheus does with the pod's address and the port annotation
        joined = f"10.1.2.3:8000;{annotations['prometheus.io/port']}"
        assert re.sub(f"^(?:{address['regex']})$", address["replacement"].replace("$", "\\"), joined) == \
            f"10.1.2.3:{annotations['prometheus.io/port']}"
    # one process per API pod: each scrape target is one process (PAYMENTS_SERVER_WORKERS, docs/observability.md)
    assert _settings().server.workers == 1
