"""compose.yaml and the Dockerfile cannot run here (no Docker engine): check their shape, the Prometheus and Grafana
files compose mounts, and run outside Docker what can be: every `payments` command the services run (`--help`,
and its arguments parsed), and each healthcheck command against a stand-in server. tests/integration/
test_first_key.py runs the first-key service's script against a real database."""

from __future__ import annotations

import configparser
import contextlib
import fnmatch
import http.server
import json
import re
import shlex
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

import pytest
import yaml

from payments.cli import parser

ROOT = Path(__file__).resolve().parents[2]

SERVICES = {"postgres", "redis", "migrate", "first-key", "api", "worker", "mock-providers", "jaeger", "prometheus",
            "grafana"}
#: The services run from the project's image (`build: .`).
OWN = {"migrate", "first-key", "api", "worker", "mock-providers"}
RUNTIME_PACKAGES = ("core", "adapters", "app", "workers", "payments")
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


# --- The Dockerfile ---------------------------------------------------------------------------------------------

def dockerfile_stages() -> list[tuple[str, str, list[tuple[str, str]]]]:
    """The Dockerfile's stages: (name, base image, [(INSTRUCTION, arguments)]), continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        logical.append(pending + line.strip())
        pending = ""
    assert not pending, "the Dockerfile ends in a continuation"
    stages: list[tuple[str, str, list[tuple[str, str]]]] = []
    for text in logical:
        instruction, _, arguments = text.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append((name, words[0], []))
        else:
            assert stages, f"{instruction} before the first FROM"
            stages[-1][2].append((instruction, arguments.strip()))
    return stages


def _all(stage: list[tuple[str, str]], instruction: str) -> list[str]:
    return [arguments for name, arguments in stage if name == instruction]


def _exec_form(arguments: str) -> list[str]:
    parsed = json.loads(arguments)
    assert isinstance(parsed, list) and all(isinstance(word, str) for word in parsed), arguments
    return parsed


def _healthcheck(arguments: str) -> tuple[dict[str, str], list[str]]:
    """HEALTHCHECK's options and its command (exec form, the only one used here)."""
    options, _, command = arguments.partition("CMD ")
    flags = dict(flag.removeprefix("--").split("=", 1) for flag in options.split())
    return flags, _exec_form(command)


def test_dockerfile_builds_the_wheel_then_installs_only_it() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage: a build stage and a runtime stage"
    (build_name, _, build), (_, runtime_base, runtime) = stages[0], stages[-1]
    assert runtime_base == "python:3.11-slim"

    builds = [run for run in _all(build, "RUN") if re.search(r"pip wheel \. --no-deps -w (\S+)|python -m build", run)]
    assert len(builds) == 1, "the build stage builds the project's wheel"
    dist = re.search(r"-w (\S+)", builds[0])
    dist_dir = dist.group(1).rstrip("/") if dist else "/src/dist"
    # what the build needs: setup.cfg with what it reads (long_description = file: ...), and every package
    copied = {source for arguments in _all(build, "COPY") for source in arguments.split()[:-1]}
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    read_files = {value.split("file:", 1)[1].strip() for section in config.sections()
                  for value in config[section].values() if value.strip().startswith("file:")}
    assert {"setup.cfg", "pyproject.toml", *read_files, *RUNTIME_PACKAGES} <= copied, copied

    # the runtime stage: no source tree, only the wheel from the build stage, installed as a wheel
    runtime_copies = _all(runtime, "COPY")
    assert runtime_copies and all(arguments.startswith(f"--from={build_name} ") for arguments in runtime_copies)
    (wheel_copy,) = [arguments for arguments in runtime_copies if arguments.split()[1].rstrip("/") == dist_dir]
    target = wheel_copy.split()[-1].rstrip("/")
    installs = [run for run in _all(runtime, "RUN") if "pip install" in run]
    assert len(installs) == 1, installs
    words = shlex.split(installs[0].split("pip install", 1)[1].split("&&")[0])
    assert words == [f"{target}/payments-*.whl"], f"install the built wheel alone, no options or extras: {words}"
    for run in _all(runtime, "RUN") + _all(build, "RUN"):
        assert not re.search(r"(^|\s)(-e|--editable)(\s|$)", run), f"an editable install: {run}"
        assert "[dev" not in run and "embedded" not in run, f"an extra installed: {run}"
    assert not _all(runtime, "ADD")


def test_dockerfile_runs_payments_serve_as_a_fixed_non_root_user_with_a_healthcheck() -> None:
    *_, (_, _, runtime) = dockerfile_stages()
    order = [name for name, _ in runtime]
    users = _all(runtime, "USER")
    assert len(users) == 1 and order.index("USER") < order.index("CMD"), "the process runs as the USER"
    user, _, group = users[0].partition(":")
    assert user.isdigit() and int(user) != 0 and group.isdigit() and int(group) != 0, users[0]
    created = " ".join(_all(runtime, "RUN"))
    assert f"--uid {user}" in created and f"--gid {group}" in created, "the USER is created with that uid/gid"
    assert _all(runtime, "EXPOSE") == ["8080"]
    env = " ".join(_all(runtime, "ENV"))
    assert "PAYMENTS_SERVER_HOST=0.0.0.0" in env, "serve must listen beyond the container's loopback"
    assert [_exec_form(cmd) for cmd in _all(runtime, "CMD")] == [["payments", "serve"]]
    assert not _all(runtime, "ENTRYPOINT"), "compose's commands are whole `payments ...` commands"
    (check,) = _all(runtime, "HEALTHCHECK")
    flags, command = _healthcheck(check)
    assert {"interval", "timeout", "retries"} <= set(flags)
    assert command[:2] == ["python", "-c"] and "/health/ready" in command[2]
    assert not {"curl", "wget"} & set(re.findall(r"\w+", " ".join(command)))


def _ignored(path: str, patterns: list[str]) -> bool:
    """Roughly Docker's .dockerignore matching: a pattern matches the path or one of its parent directories."""
    parts = PurePosixPath(path).parts
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatchcase(candidate, pattern) or
               (pattern.startswith("**/") and fnmatch.fnmatchcase(PurePosixPath(candidate).name, pattern[3:]))
               for pattern in patterns for candidate in candidates)


def test_dockerignore_keeps_environments_and_caches_out_but_not_what_the_build_copies() -> None:
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for unwanted in (".venv", ".git", ".data", ".cache", ".mypy_cache", "core/__pycache__", "payments.egg-info"):
        assert _ignored(unwanted, patterns), unwanted
    (_, _, build), *_ = dockerfile_stages()
    for arguments in _all(build, "COPY"):
        for source in arguments.split()[:-1]:
            assert not _ignored(source, patterns), f"{source} is copied but ignored"
    tracked = subprocess.run(["git", "ls-files", "--", *RUNTIME_PACKAGES], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    assert tracked and not [path for path in tracked if _ignored(path, patterns)]


# --- Healthchecks, run against a stand-in server ------------------------------------------------------------------

class _Answers(http.server.BaseHTTPRequestHandler):
    status: ClassVar[int] = 200
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _stand_in(status: int) -> Iterator[tuple[int, list[str]]]:
    handler: type[_Answers] = type("Handler", (_Answers,), {"status": status, "paths": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler.paths
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_check(command: list[str], port_variable: str, port: int) -> int:
    assert command[0] == "python", command
    env = {"PATH": "/usr/bin:/bin", port_variable: str(port)}
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, timeout=20,
                          check=False).returncode


def _healthchecks() -> list[tuple[str, list[str], str, str]]:
    """(who, command, the variable naming its port, the path it must ask) of the image's and compose's checks."""
    *_, (_, _, runtime) = dockerfile_stages()
    _, image_check = _healthcheck(_all(runtime, "HEALTHCHECK")[0])
    services = _compose()["services"]
    checks = [("image (api)", image_check, "PAYMENTS_SERVER_PORT", "/health/ready")]
    for name, variable, path in (("worker", "PAYMENTS_WORKER_METRICS_PORT", "/health/ready"),
                                 ("mock-providers", "PAYMENTS_MOCK_PORT", "/_mock/charges")):
        test = services[name]["healthcheck"]["test"]
        assert test[0] == "CMD", name
        checks.append((name, test[1:], variable, path))
    return checks


@pytest.mark.parametrize("who", ["image (api)", "worker", "mock-providers"])
def test_healthchecks_pass_on_200_only(who: str) -> None:
    ((_, command, variable, path),) = [check for check in _healthchecks() if check[0] == who]
    with _stand_in(200) as (port, asked):
        assert _run_check(command, variable, port) == 0
        assert asked == [path]
    with _stand_in(503) as (port, asked):
        assert _run_check(command, variable, port) != 0
        assert asked == [path]
    assert _run_check(command, variable, _closed_port()) != 0


def test_each_service_of_the_image_has_its_own_check_or_none() -> None:
    services = _compose()["services"]
    for name in ("migrate", "first-key"):
        assert services[name]["healthcheck"] == {"disable": True}, f"{name} is a one-shot"
    assert "healthcheck" not in services["api"], "the api uses the image's check of /health/ready"
    assert services["worker"]["environment"]["PAYMENTS_WORKER_METRICS_HOST"] == "0.0.0.0"
    assert services["mock-providers"]["environment"]["PAYMENTS_MOCK_HOST"] == "0.0.0.0"


# --- compose: what a newcomer runs ------------------------------------------------------------------------------

def first_key_script() -> str:
    """The shell script the first-key service runs, as the shell gets it (compose turns `$$` into `$`)."""
    command = _compose()["services"]["first-key"]["command"]
    assert command[:2] == ["sh", "-c"] and len(command) == 3, command
    script: str = command[2]
    assert "$" not in script.replace("$$", ""), "a lone `$` would be compose's interpolation, not the shell's"
    return script.replace("$$", "$")


#: `payments` and its arguments, as written in a command line or in a shell script (up to a quote, a closing
#: parenthesis or the end of the line).
_INVOCATION = re.compile(r"(?<![\w/.-])payments((?:[ \t]+[^\s;|&)\"'`]+)*)")


def payments_invocations() -> list[list[str]]:
    """The argument lists of every `payments` command the image's services run, or tell the reader to run: their
    commands (lists or shell scripts) and the Dockerfile's CMD."""
    services = _compose()["services"]
    found: list[list[str]] = []
    for name in sorted(OWN):
        command = services[name]["command"]
        if command[0] == "payments":
            found.append(command[1:])
        else:
            found.extend(match.group(1).split() for match in _INVOCATION.finditer(first_key_script()))
    *_, (_, _, runtime) = dockerfile_stages()
    found.extend(_exec_form(cmd)[1:] for cmd in _all(runtime, "CMD"))
    return found


def test_payments_invocations_reads_commands_and_scripts() -> None:
    text = 'x=$(payments keys create --tenant dev --if-none)\necho "run: docker compose run --rm api payments keys ' \
           'list --tenant dev"\necho Payments API http://localhost/payments/x'
    assert [match.group(1).split() for match in _INVOCATION.finditer(text)] == [
        ["keys", "create", "--tenant", "dev", "--if-none"], ["keys", "list", "--tenant", "dev"]]


def test_every_command_of_the_image_is_a_payments_command() -> None:
    invocations = payments_invocations()
    subcommands = {tuple(args) for args in invocations}
    assert {("migrate",), ("serve",), ("worker",), ("mock-providers",),
            ("keys", "create", "--tenant", "dev", "--if-none"), ("keys", "list", "--tenant", "dev"),
            ("keys", "create", "--tenant", "dev")} <= subcommands, subcommands
    for args in invocations:
        parser().parse_args(args)  # every option known (argparse exits 2 otherwise)
    # the command and subcommand: the words before the first option (`keys create`, `serve`)
    for words in sorted({tuple(args[:next((i for i, w in enumerate(args) if w.startswith("-")), len(args))][:2])
                         for args in invocations}):
        done = subprocess.run([sys.executable, "-m", "payments", *words, "--help"], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0 and done.stdout.startswith("usage: payments"), (words, done.stderr)


def test_postgres_and_redis_are_not_published() -> None:
    services = _compose()["services"]
    for name in ("postgres", "redis"):
        assert "ports" not in services[name], f"{name}: nothing outside the stack needs it (README, Docker)"
    assert services["api"]["ports"] == ["127.0.0.1:8080:8080"]
    assert services["mock-providers"]["ports"] == ["127.0.0.1:8090:8090"]


def test_first_key_runs_after_migrate_and_api_and_prints_make_runs_urls() -> None:
    services = _compose()["services"]
    first_key = services["first-key"]
    assert first_key["build"] == "."
    assert first_key["environment"] == services["migrate"]["environment"]
    assert first_key["depends_on"] == {"migrate": {"condition": "service_completed_successfully"},
                                       "api": {"condition": "service_healthy"}}
    assert "restart" not in first_key, "a one-shot"
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    script = first_key_script()
    assert script.startswith("set -e\n")
    assert "key=$(payments keys create --tenant dev --if-none)" in script
    # the URLs it prints are the ones published on the host, the same as `make run`'s Try it
    api_port = services["api"]["ports"][0].split(":")[1]
    mock_port = services["mock-providers"]["ports"][0].split(":")[1]
    assert (api_port, mock_port) == ("8080", "8090")
    assert set(re.findall(r"http://localhost:(\d+)", script)) == {api_port, mock_port}
    assert "docker compose logs first-key" in script


def test_compose_env_allows_private_webhooks_only_when_asked() -> None:
    env = _compose()["services"]["api"]["environment"]
    assert env["PAYMENTS_WEBHOOKS_ALLOW_PRIVATE_URLS"] == "${PAYMENTS_WEBHOOKS_ALLOW_PRIVATE_URLS:-false}"
    assert env["PAYMENTS_MOCK_HOST"] == "mock-providers" and env["PAYMENTS_MOCK_PORT"] == "8090"
    assert env["PAYMENTS_SECRETS_KEYS"].startswith("${PAYMENTS_SECRETS_KEYS:-")


def test_readme_docker_section_says_where_the_key_is_and_what_the_service_suggests() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Docker\n", 1)[1].split("\n## ", 1)[0]
    assert "docker compose up --build" in section and "docker compose logs first-key" in section
    assert "[Try it](#try-it)" in section and "\n## Try it\n" in readme
    suggested = re.findall(r"docker compose run --rm api payments keys \w+ --tenant dev", first_key_script())
    assert len(suggested) == 2 and all(command in section for command in suggested)
    assert "127.0.0.1" in section and "compose.override.yaml" in section
