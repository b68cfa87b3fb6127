"""compose.yaml cannot run here (no Docker engine): check its shape instead."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_services_ports_and_volumes() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
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
            assert volume.split(":")[0] in declared
    assert (ROOT / "Dockerfile").is_file()
    assert "payments" in (ROOT / "Dockerfile").read_text()
