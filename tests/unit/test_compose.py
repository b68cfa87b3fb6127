"""compose.yaml cannot run here (no Docker engine): check its shape and the Prometheus and Grafana files it mounts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

SERVICES = {"postgres", "redis", "migrate", "api", "worker", "mock-providers", "jaeger", "prometheus", "grafana"}
PROMETHEUS_UID = "payments-prometheus"


def _histogram(name: str) -> set[str]:
    return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}


# What the API's and the worker's /metrics expose, plus Prometheus's own `up`.
KNOWN_METRICS = {
    "up",
    "http_requests_total", *_histogram("http_request_duration_seconds"),
    "payments_total", "provider_calls_total", *_histogram("provider_call_duration_seconds"),
    "circuit_breaker_state", "outbox_backlog", "outbox_oldest_unpublished_age_seconds", "dlq_size",
    "webhook_deliveries_total", "webhook_deliveries_pending", "reconciliation_mismatches",
    "events_feed_held_back_seconds",
    "worker_messages_total", *_histogram("worker_message_duration_seconds"), "worker_messages_in_progress",
    "process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
    "process_open_fds", "process_max_fds", "process_start_time_seconds",
}

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
             "bool", "inf", "nan"}
_FUNCTIONS = {
    "sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "limitk", "limit_ratio",
    "rate", "irate", "increase", "delta", "idelta", "deriv", "predict_linear", "resets", "changes",
    "histogram_quantile", "histogram_count", "histogram_sum", "histogram_fraction", "histogram_avg",
    "abs", "absent", "absent_over_time", "ceil", "floor", "round", "clamp", "clamp_min", "clamp_max", "sgn",
    "sqrt", "exp", "ln", "log2", "log10", "scalar", "vector", "time", "timestamp", "sort", "sort_desc",
    "label_replace", "label_join", "minute", "hour", "day_of_week", "day_of_month", "days_in_month", "month",
    "year", *(f"{agg}_over_time" for agg in (
        "avg", "min", "max", "sum", "count", "quantile", "stddev", "stdvar", "last", "present")),
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")  # label names and values, not metric names
_RANGE = re.compile(r"\[[^\[\]]*\]")  # [5m], [$__rate_interval], [1h:5m]
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
# not after a word character, a dot or `$`: skips the `m` of 5m, the `e` of 1e-9 and Grafana's $variables
_IDENTIFIER = re.compile(r"(?<![\w.$:])([A-Za-z_:][\w:]*)(\s*\()?")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads, roughly: identifiers left once strings, label matchers,
    ranges and grouping label lists are cut out, minus keywords and calls of known functions. A call of an
    unknown function comes back as a name, so it fails the known-metric checks rather than passing unseen."""
    text = _GROUPING.sub(" ", _RANGE.sub(" ", _MATCHERS.sub(" ", _STRING.sub(" ", expr))))
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if name.lower() in _KEYWORDS or (call and name in _FUNCTIONS):
            continue
        names.add(name)
    return names


@pytest.mark.parametrize(("expr", "names"), [
    ("up == 0", {"up"}),
    ('up{job="api"} == 0', {"up"}),
    ("max by (provider) (circuit_breaker_state) == 2", {"circuit_breaker_state"}),
    ('sum(rate(http_requests_total{status=~"5.."}[5m])) / (sum(rate(http_requests_total[5m])) > 0) > 0.05',
     {"http_requests_total"}),
    ("histogram_quantile(0.95, sum by (route, le) (rate(http_request_duration_seconds_bucket[$__rate_interval])))",
     {"http_request_duration_seconds_bucket"}),
    ("sum(rate(a_total[5m])) without (instance) / on (job) group_left (x) b offset 5m > bool 1e-9",
     {"a_total", "b"}),
    ('label_replace(foo, "dst", "$1", "src", "(bar_total)")', {"foo"}),
    ("no_such_function(dlq_size)", {"no_such_function", "dlq_size"}),
])
def test_metric_names_reads_promql_roughly(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _compose() -> Any:
    return _load_yaml(ROOT / "compose.yaml")


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (short syntax, relative to compose.yaml)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (ROOT / source).resolve()
    return mounts


def _host_path(service: dict[str, Any], container_path: str) -> Path:
    """The repo file a container path is mounted from, directly or inside a mounted directory."""
    path = PurePosixPath(container_path)
    for target, source in _bind_mounts(service).items():
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return source / path.relative_to(target)
    raise AssertionError(f"{container_path} is not bind-mounted")


def test_compose_services_ports_and_volumes() -> None:
    compose = _compose()
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "api", "worker", "mock-providers"} <= set(services)
    assert services["worker"]["command"] == ["payments", "worker"]
    assert services["mock-providers"]["command"] == ["payments", "mock-providers"]
    assert services["worker"]["environment"]["PAYMENTS_MOCK_HOST"] == "mock-providers"
    assert services["worker"]["environment"]["PAYMENTS_MOCK_PORT"] == services["mock-providers"]["environment"][
        "PAYMENTS_MOCK_PORT"]
    assert services["api"]["ports"] == ["127.0.0.1:8080:8080"]
    assert services["api"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    for name in ("migrate", "api", "worker"):
        assert services[name]["build"] == "."
        env = services[name]["environment"]
        assert (
            env["PAYMENTS_DATABASE_URL"].startswith("postgresql://")
            and "@postgres:5432/" in env["PAYMENTS_DATABASE_URL"]
        )
        assert env["PAYMENTS_REDIS_URL"] == "redis://redis:6379/0"
    declared = set(compose["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):  # bind mounts are checked in test_compose_mounts
                assert source in declared
    assert (ROOT / "Dockerfile").is_file()
    assert "payments" in (ROOT / "Dockerfile").read_text()


def test_compose_every_service_pinned_and_published_on_loopback_only() -> None:
    services = _compose()["services"]
    assert set(services) == SERVICES
    host_ports: list[str] = []
    for name, service in services.items():
        assert service.get("build") == "." or re.fullmatch(r"[\w./-]+:[\w.-]+", service["image"]), name
        assert not service.get("image", "").endswith(":latest"), name
        for port in service.get("ports", []):
            assert isinstance(port, str), f"{name}: use the short syntax 127.0.0.1:HOST:CONTAINER"
            host_ip, host_port, _container = port.split("/")[0].split(":")
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond this machine"
            host_ports.append(host_port)
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
    assert len(host_ports) == len(set(host_ports)), f"host port published twice: {sorted(host_ports)}"
    assert {"8080", "16686", "9090", "3000"} <= set(host_ports)
    assert "9191" not in host_ports or "127.0.0.1:9191:9191" in services["worker"].get("ports", [])


def test_compose_volumes_declared_used_and_bind_mounts_exist() -> None:
    compose = _compose()
    declared = set(compose["volumes"])
    used = set()
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                path = (ROOT / source).resolve()
                assert path.is_relative_to(ROOT) and path.exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
    assert used == declared
    assert {"prometheus-data", "grafana-data"} <= declared


def test_compose_tracing_and_worker_metrics() -> None:
    services = _compose()["services"]
    jaeger = services["jaeger"]
    assert re.fullmatch(r"jaegertracing/all-in-one:1\.\d+\.\d+", jaeger["image"])
    assert str(jaeger["environment"]["COLLECTOR_OTLP_ENABLED"]).lower() == "true"
    assert "127.0.0.1:16686:16686" in jaeger["ports"]
    for name, service_name in (("api", "payments-api"), ("worker", "payments-worker")):
        env = services[name]["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
        assert env["OTEL_SERVICE_NAME"] == service_name
        assert "jaeger" in services[name]["depends_on"]
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in services["migrate"]["environment"]
    worker_env = services["worker"]["environment"]
    assert worker_env["PAYMENTS_WORKER_METRICS_HOST"] == "0.0.0.0"
    assert worker_env["PAYMENTS_WORKER_METRICS_PORT"] == "9191"


def test_prometheus_config_scrapes_api_and_worker_and_loads_the_mounted_rules() -> None:
    services = _compose()["services"]
    prometheus = services["prometheus"]
    assert re.fullmatch(r"prom/prometheus:v\d+\.\d+\.\d+", prometheus["image"])
    mounts = _bind_mounts(prometheus)
    assert mounts["/etc/prometheus/prometheus.yml"] == ROOT / "deploy/prometheus/prometheus.yml"
    assert mounts["/etc/prometheus/alerts.yml"] == ROOT / "deploy/prometheus/alerts.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert "prometheus-data:/prometheus" in prometheus["volumes"]
    config = _load_yaml(mounts["/etc/prometheus/prometheus.yml"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {job_name: {target for static in job["static_configs"] for target in static["targets"]}
               for job_name, job in jobs.items()}
    api_port = services["api"]["environment"]["PAYMENTS_SERVER_PORT"]
    worker_port = services["worker"]["environment"]["PAYMENTS_WORKER_METRICS_PORT"]
    assert targets["api"] == {f"api:{api_port}"} == {"api:8080"}
    assert targets["worker"] == {f"worker:{worker_port}"} == {"worker:9191"}
    assert all(jobs[job].get("metrics_path", "/metrics") == "/metrics" for job in ("api", "worker"))
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    for rule_file in config["rule_files"]:
        assert _host_path(prometheus, rule_file).is_file()


def _rules() -> dict[str, dict[str, Any]]:
    alerts = _load_yaml(ROOT / "deploy/prometheus/alerts.yml")
    rules = [rule for group in alerts["groups"] for rule in group["rules"]]
    by_name = {rule["alert"]: rule for rule in rules}
    assert len(by_name) == len(rules), "duplicate alert names"
    return by_name


def test_alert_rules_are_complete_and_read_known_metrics() -> None:
    rules = _rules()
    required = {"CircuitBreakerOpen": ("1m", "circuit_breaker_state"), "DeadLetterQueueNotEmpty": ("5m", "dlq_size"),
                "OutboxStale": ("1m", "outbox_oldest_unpublished_age_seconds"),
                "High5xxRate": ("5m", "http_requests_total")}
    for name, (duration, metric) in required.items():
        assert rules[name]["for"] == duration, name
        assert metric_names(rules[name]["expr"]) == {metric}, name
    assert "== 2" in rules["CircuitBreakerOpen"]["expr"] and "> 60" in rules["OutboxStale"]["expr"]
    high_5xx = " ".join(rules["High5xxRate"]["expr"].split())
    assert 'status=~"5.."' in high_5xx and "[5m]" in high_5xx and "> 0.05" in high_5xx
    assert "> 0)" in high_5xx, "the denominator must drop a zero request rate instead of dividing by it"
    for name, rule in rules.items():
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, name
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        names = metric_names(rule["expr"])
        assert names and names <= KNOWN_METRICS, f"{name}: {names - KNOWN_METRICS}"


def test_grafana_provisions_prometheus_jaeger_and_the_mounted_dashboards() -> None:
    services = _compose()["services"]
    grafana = services["grafana"]
    assert re.fullmatch(r"grafana/grafana:\d+\.\d+\.\d+", grafana["image"])
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert _bind_mounts(grafana)["/etc/grafana/provisioning"] == ROOT / "deploy/grafana/provisioning"
    provisioning = ROOT / "deploy/grafana/provisioning"
    files = sorted(provisioning.rglob("*.y*ml"))
    assert {path.parent.name for path in files} == {"datasources", "dashboards"}
    for path in files:
        assert _load_yaml(path)["apiVersion"] == 1, path
    datasources = {ds["type"]: ds for path in files if path.parent.name == "datasources"
                   for ds in _load_yaml(path)["datasources"]}
    assert datasources["prometheus"]["uid"] == PROMETHEUS_UID
    assert datasources["prometheus"]["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in services["prometheus"]["ports"]
    assert datasources["jaeger"]["url"] == "http://jaeger:16686"
    providers = [provider for path in files if path.parent.name == "dashboards"
                 for provider in _load_yaml(path)["providers"]]
    assert providers
    for provider in providers:
        assert _host_path(grafana, provider["options"]["path"]) == ROOT / "deploy/grafana/dashboards"
    assert _host_path(grafana, grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]).is_file()


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # collapsed rows hold their panels


def test_dashboard_covers_the_topics_with_known_metrics_on_the_provisioned_datasource() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/payments.json").read_text())
    panels = [panel for panel in _panels(dashboard["panels"]) if panel["type"] != "row"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    topics = {"traffic": "http_requests_total", "error rate": "http_requests_total",
              "p95 latency": "http_request_duration_seconds_bucket", "payments by status": "payments_total",
              "worker throughput": "worker_messages_total", "circuit breaker": "circuit_breaker_state"}
    for topic, metric in topics.items():
        matching = [panel for panel in panels if topic in panel["title"].lower()]
        assert len(matching) == 1, f"one panel about {topic}"
        assert any(metric in metric_names(target["expr"]) for target in matching[0]["targets"]), topic
    p95 = next(panel for panel in panels if "p95 latency" in panel["title"].lower())
    assert all("histogram_quantile(0.95" in target["expr"] for target in p95["targets"])
    breaker = next(panel for panel in panels if "circuit breaker" in panel["title"].lower())
    texts = {text["text"] for mapping in breaker["fieldConfig"]["defaults"]["mappings"]
             for text in mapping["options"].values()}
    assert texts == {"closed", "half-open", "open"}
    for panel in panels:
        assert panel["type"] in {"timeseries", "stat"}, panel["title"]
        assert panel["datasource"]["uid"] == PROMETHEUS_UID, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] == PROMETHEUS_UID, panel["title"]
            names = metric_names(target["expr"])
            assert names and names <= KNOWN_METRICS, f"{panel['title']}: {names - KNOWN_METRICS}"
