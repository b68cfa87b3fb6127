"""The long-running commands: `serve`, `worker`, `mock-providers`, and `migrate`."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import ssl
import sys
import tempfile
from functools import partial
from types import FrameType
from typing import Any

import attrs
from loguru import logger

from app.bootstrap import Endpoints
from app.settings import Settings
from payments.supervisor import Child, Supervisor

#: What a supervisor adds to PAYMENTS_SERVER_SHUTDOWN_TIMEOUT before it kills a child: the child drains for
#: that long, then still closes its pools and connections.
STOP_MARGIN = 5.0


def child_environment(settings: Settings, endpoints: Endpoints) -> dict[str, str]:
    """The environment of a supervised `payments` process: ours, with the servers and the secrets key this
    process resolved (embedded ones included), so that every child uses the same."""
    return {**os.environ, "PAYMENTS_DATABASE_URL": endpoints.database_url, "PAYMENTS_REDIS_URL": endpoints.redis_url,
            "PAYMENTS_SECRETS_KEYS": settings.secrets.keys}


def payments_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "payments", *args]


def stop_at_once(signum: int, _: FrameType | None) -> None:
    """A second SIGINT/SIGTERM while draining: end the process now, without a traceback."""
    logger.warning("second {}: stopping at once, abandoning what is in flight", signal.Signals(signum).name)
    sys.stderr.flush()
    os._exit(128 + signum)


def _draining(app: Any) -> None:
    """Sanic has handled the first signal and is about to drain: a second one would stop its event loop under
    the drain and end in "Event loop stopped before Future completed", a traceback and exit code 1."""
    app.ctx.draining = True
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop_at_once)


async def _close_when_draining(request: Any, response: Any) -> None:
    """Answer requests finished during the drain with `Connection: close`: Sanic closes idle keep-alive
    connections once, when the drain begins, and would otherwise wait out the whole grace for the connection
    of a request that was in flight then."""
    if getattr(request.app.ctx, "draining", False) and request.stream is not None:
        request.stream.keep_alive = False


def api_app(settings: Settings, database_url: str, redis_url: str) -> Any:
    """The Sanic app of `serve` (a module-level factory: Sanic pickles it into each worker process)."""
    from app.http.app import create_app

    app = create_app(settings, database_url, redis_url)
    app.before_server_stop(_draining)
    app.on_response(_close_when_draining)  # type: ignore[no-untyped-call]
    return app


def cmd_serve(settings: Settings, endpoints: Endpoints, *, workers: int | None = None) -> int:
    """The API until SIGINT/SIGTERM: Sanic stops accepting, drains in-flight requests for up to
    PAYMENTS_SERVER_SHUTDOWN_TIMEOUT, then closes the services; a second signal stops it at once.

    With several processes, their HTTP metrics go through a fresh multiprocess directory (removed on exit), so
    that `/metrics`, whichever process answers it, counts the requests of all of them."""
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from payments.connections import DrainingProtocol

    tls = checked_tls(settings)
    workers = workers or settings.server.workers
    if workers == 1:
        app = AppLoader(factory=partial(api_app, settings, endpoints.database_url, endpoints.redis_url)).load()
        app.prepare(host=settings.server.host, port=settings.server.port, workers=1, access_log=False, motd=False,
                    single_process=True, ssl=tls, protocol=DrainingProtocol)
        Sanic.serve_single(primary=app)
        return 0
    from app.http.metrics import MULTIPROCESS_DIR
    from payments import sanic_manager

    sanic_manager.install()

    # Sanic spawns its processes: they import prometheus_client afresh, in the multiprocess mode this selects
    metrics_dir = os.environ[MULTIPROCESS_DIR] = tempfile.mkdtemp(prefix="payments-api-metrics-")
    try:
        loader = AppLoader(factory=partial(api_app, settings, endpoints.database_url, endpoints.redis_url))
        app = loader.load()
        app.prepare(host=settings.server.host, port=settings.server.port, workers=workers, access_log=False,
                    motd=False, ssl=tls, protocol=DrainingProtocol)
        Sanic.serve(primary=app, app_loader=loader)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def checked_tls(settings: Settings) -> dict[str, str] | None:
    """PAYMENTS_SERVER_TLS_CERT/_KEY as Sanic's `ssl` argument, once they are known to load as a pair: a missing
    file, a key that is not the certificate's or a bad PEM stops `serve` with one line naming the keys."""
    tls = settings.server.tls()
    if tls is not None:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls["cert"], tls["key"])
        except (OSError, ssl.SSLError) as error:
            sys.exit(f"payments: invalid configuration: PAYMENTS_SERVER_TLS_CERT / PAYMENTS_SERVER_TLS_KEY "
                     f"({tls['cert']}, {tls['key']}): {error}")
    return tls


def cmd_worker(settings: Settings, endpoints: Endpoints, *, processes: int = 1, threads: int | None = None) -> int:
    """One worker process, or `processes` of them under a supervisor that restarts any that exits; each serves
    its metrics and health on PAYMENTS_WORKER_METRICS_PORT + its index (0: none)."""
    if threads is not None:
        settings = attrs.evolve(settings, worker=attrs.evolve(settings.worker, concurrency=threads))
    if processes > 1:
        base, env = settings.worker.metrics_port, child_environment(settings, endpoints)
        if base and base + processes - 1 > 65535:
            sys.exit(f"payments: invalid configuration: PAYMENTS_WORKER_METRICS_PORT: {processes} processes need "
                     f"ports {base} to {base + processes - 1}, beyond 65535")
        children = [Child(f"worker-{index + 1}", payments_command("worker", "--threads",
                                                                   str(settings.worker.concurrency)),
                          {**env, "PAYMENTS_WORKER_METRICS_PORT": str(base + index if base else 0)})
                    for index in range(processes)]
        return Supervisor(children, grace=settings.server.shutdown_timeout + STOP_MARGIN).run()
    from adapters.malloc import limit_arenas, start_trimming
    from workers.main import run, use_uvloop

    use_uvloop()
    limit_arenas()  # before the worker's threads start: its memory stays flat (adapters/malloc.py)
    start_trimming()
    asyncio.run(run(settings, endpoints.database_url, endpoints.redis_url))
    return 0


def cmd_migrate(settings: Settings, endpoints: Endpoints) -> int:
    """Apply what is pending; an installation without migrations stops the command with one line, exit 1."""
    from adapters.postgres.migrate import NoMigrations, apply_migrations

    try:
        applied = apply_migrations(endpoints.database_url)
    except NoMigrations as error:
        sys.exit(f"payments migrate: {error}")
    print(f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}")
    return 0


def cmd_mock_providers(settings: Settings) -> int:
    from adapters.providers.mock_server import serve_mock

    serve_mock(settings.mock.host, settings.mock.port, settings.mock.latency, settings.mock.failure_rate)
    return 0

