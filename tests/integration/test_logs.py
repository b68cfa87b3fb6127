"""Logs: JSON lines when not on a terminal (the default `auto` here: the log is a file), each line of a request
carrying its correlation id; text on request, a request's line with its method, path, status, duration and id."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.e2e.conftest import start_api


def test_every_line_of_a_request_is_json_with_its_correlation_id(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "api.log"
    base_url, process = start_api(database_url, redis_url, log, PAYMENTS_OBSERVABILITY_LOG_LEVEL="debug")
    try:
        response = httpx.post(f"{base_url}/api/v1/accounts", content=b"{", headers={
            "X-Request-ID": "req-logs-1", "Authorization": "Bearer nobody"})
        assert response.status_code == 401
        httpx.get(f"{base_url}/health", headers={"X-Request-ID": "req-logs-2"})
    finally:
        process.stop()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert lines, "the API wrote no log lines"
    assert all({"time", "level", "message", "correlation_id"} <= set(line) for line in lines)
    first = [line for line in lines if line["correlation_id"] == "req-logs-1"]
    assert first and first[-1]["message"] == "request completed"
    assert first[-1]["status"] == 401 and first[-1]["path"] == "/api/v1/accounts"
    assert [line["status"] for line in lines if line["correlation_id"] == "req-logs-2"] == [200]


def test_text_format(database_url: str, redis_url: str, tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    base_url, process = start_api(database_url, redis_url, log, PAYMENTS_OBSERVABILITY_LOG_LEVEL="info",
                                  PAYMENTS_OBSERVABILITY_LOG_FORMAT="text")
    try:
        httpx.get(f"{base_url}/health", headers={"X-Request-ID": "req-text-1"})
    finally:
        process.stop()
    text = log.read_text()
    (line,) = [line for line in text.splitlines() if "req=req-text-1" in line]
    assert re.match(r"^\d\d:\d\d:\d\d\.\d{3} INFO    api    GET /health 200 \d+\.\d ms req=req-text-1  "
                    r"request completed$", line), line
    assert not any(line.startswith("{") for line in text.splitlines())
