"""Supervised processes (API.md §8): `payments worker --processes N` and `payments dev` restart a child that dies
and say so; each worker process answers /health/live and /health/ready on its own port, ready naming the
dependency that fails; `payments dev` survives its own kill -9 (its children stop, the next run reuses the
embedded servers it left) and Ctrl-C leaves nothing running."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.e2e.conftest import Process, free_port, stack_env, wait_http, wait_ready
from tests.e2e.isolated import PrivateRedis


def until(check: Callable[[], Any], what: str, seconds: float = 60) -> Any:
    """The first truthy value of `check()`, polled until `seconds` pass."""
    deadline = time.monotonic() + seconds
    while not (value := check()):
        assert time.monotonic() < deadline, f"not within {seconds}s: {what}"
        time.sleep(0.1)
    return value


def health(port: int, path: str) -> tuple[int, dict[str, Any]] | None:
    with contextlib.suppress(httpx.HTTPError, ValueError):
        answer = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
        return answer.status_code, answer.json()
    return None


def children(process: Process) -> list[psutil.Process]:
    assert process.popen is not None
    return psutil.Process(process.popen.pid).children()


def named(processes: list[psutil.Process], word: str) -> list[psutil.Process]:
    return [each for each in processes if word in " ".join(each.cmdline())]


def two_free_ports() -> int:
    """A free port whose successor is free too."""
    while True:
        port = free_port()
        with contextlib.suppress(OSError), socket.socket() as sock:
            sock.bind(("127.0.0.1", port + 1))
            return port


def no_traceback(process: Process) -> str:
    text = process.output()
    assert "Traceback" not in text and "Event loop stopped" not in text, text[-4000:]
    return text


def test_worker_processes_each_serve_health_and_a_killed_one_is_restarted(
    database_url: str, redis_url: str, tmp_path: Path,
) -> None:
    port = two_free_ports()
    env = stack_env(database_url, redis_url, 8080, PAYMENTS_WORKER_METRICS_PORT=str(port),
                    PAYMENTS_OBSERVABILITY_LOG_LEVEL="info")
    supervisor = Process(["worker", "--processes", "2", "--threads", "2"], env, tmp_path / "workers.log").start()
    try:
        for each in (port, port + 1):
            wait_http(f"http://127.0.0.1:{each}/health/ready", supervisor, 60)
            assert health(each, "/health/live") == (200, {"status": "live"})
        first = children(supervisor)
        assert len(first) == 2
        first[0].kill()
        until(lambda: "restarted" in supervisor.output(), "the supervisor restarts the killed worker")
        until(lambda: all((health(each, "/health/ready") or (0,))[0] == 200 for each in (port, port + 1)),
              "both workers ready again")
        now = children(supervisor)
        assert len(now) == 2 and first[0].pid not in {each.pid for each in now} and first[1] in now
        assert supervisor.stop(signal.SIGTERM) == 0
        assert psutil.wait_procs(now, timeout=30)[1] == []
        output = no_traceback(supervisor)
        assert f"(pid {first[0].pid}) exited with signal SIGKILL" in output
    finally:
        supervisor.stop(signal.SIGKILL)


def test_worker_readiness_names_redis_while_it_is_down_and_recovers(database_url: str, tmp_path: Path) -> None:
    redis = PrivateRedis(tmp_path / "redis", port=free_port()).start()
    port = free_port()
    worker = Process(["worker"], stack_env(database_url, redis.url, 8080, PAYMENTS_WORKER_METRICS_PORT=str(port)),
                     tmp_path / "worker.log").start()
    try:
        wait_http(f"http://127.0.0.1:{port}/health/ready", worker, 60)
        ready = health(port, "/health/ready")
        assert ready is not None and set(ready[1]["checks"]) == {"database", "redis", "migrations", "broker", "loops"}
        redis.stop()
        _, body = until(lambda: (answer := health(port, "/health/ready")) and answer[0] == 503 and answer,
                        "ready answers 503 while Redis is down")
        assert body["status"] == "unavailable"
        assert body["checks"]["redis"].startswith("failed") and body["checks"]["broker"].startswith("failed")
        assert body["checks"]["database"] == "ok" and body["checks"]["loops"] == "ok"
        assert health(port, "/health/live") == (200, {"status": "live"})  # alive: no reason to restart it
        redis.start()
        until(lambda: (health(port, "/health/ready") or (0,))[0] == 200, "ready again once Redis is back")
        assert worker.stop(signal.SIGTERM) == 0
    finally:
        worker.stop(signal.SIGKILL)
        redis.stop()


def ours(data: str) -> list[psutil.Process]:
    """The processes of a dev stack on `data`: the embedded servers name it, the `payments` processes inherit it."""
    found = []
    for each in psutil.process_iter(["cmdline", "environ"]):
        inherited = (each.info["environ"] or {}).get("PAYMENTS_DATA_DIR")
        if data in " ".join(each.info["cmdline"] or ()) or inherited == data:
            found.append(each)
    return found


@contextlib.contextmanager
def data_directory() -> Iterator[str]:
    """Outside pytest's temporary tree (the embedded PostgreSQL runs as a user of its own, which must reach it,
    and a unix socket path must stay short); whatever still runs on it is killed afterwards."""
    data = tempfile.mkdtemp(prefix="payments-dev-")
    try:
        yield data
    finally:
        for each in ours(data):
            with contextlib.suppress(psutil.Error):
                each.kill()
        shutil.rmtree(data, ignore_errors=True)


def test_dev_restarts_children_outlives_its_own_crash_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    with data_directory() as data, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()  # the mock providers' port is taken: that child crash-loops, the rest must not care
        api, metrics = free_port(), free_port()
        env = stack_env("", "", api, PAYMENTS_DATA_DIR=data, PAYMENTS_MOCK_PORT=str(taken.getsockname()[1]),
                        PAYMENTS_WORKER_METRICS_PORT=str(metrics), PAYMENTS_OBSERVABILITY_LOG_LEVEL="info",
                        PAYMENTS_SERVER_SHUTDOWN_TIMEOUT="10s")
        del env["PAYMENTS_DATABASE_URL"], env["PAYMENTS_REDIS_URL"]  # the embedded servers
        base_url = f"http://127.0.0.1:{api}"
        first = Process(["dev"], env, tmp_path / "dev1.log").start()
        try:
            wait_ready(base_url, first, timeout=180)
            until(lambda: "mock-providers" in first.output() and "crash-looping" in first.output(),
                  "the supervisor reports the mock providers' crash loop", 90)
            named(children(first), "-m payments worker")[0].kill()
            until(lambda: "worker restarted" in first.output(), "the supervisor restarts the killed worker")
            wait_http(f"http://127.0.0.1:{metrics}/health/ready", first, 60)
            orphans = named(children(first), "-m payments")  # (the embedded Redis is a child too)
            servers = [each for each in ours(data) if "postgres" in each.name() or "redis" in each.name()]
            assert first.popen is not None
            first.popen.kill()  # a crash of `payments dev` itself
            first.popen.wait()
            assert psutil.wait_procs(orphans, timeout=60)[1] == []  # its children notice, and stop
            assert all(each.is_running() for each in servers)  # what a crash leaves behind: the embedded servers
        finally:
            first.stop(signal.SIGKILL)
        taken.close()
        second = Process(["dev"], env, tmp_path / "dev2.log").start()
        try:
            wait_ready(base_url, second, timeout=180)
            output = second.output()
            assert "reusing the embedded PostgreSQL" in output and "reusing the embedded Redis" in output
            assert second.stop(signal.SIGINT) == 0  # Ctrl-C
            no_traceback(second)
            until(lambda: not ours(data), "nothing of the dev stack still runs", 30)
        finally:
            second.stop(signal.SIGKILL)
