"""The long-running commands: `serve`, `worker`, `mock-providers`, and `migrate`."""

from __future__ import annotations

import asyncio
from functools import partial

from app.bootstrap import Endpoints
from app.settings import Settings


def cmd_serve(settings: Settings, endpoints: Endpoints) -> int:
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    from app.http.app import create_app

    loader = AppLoader(factory=partial(create_app, settings, endpoints.database_url, endpoints.redis_url))
    app = loader.load()
    workers = max(1, settings.server.workers)
    app.prepare(host=settings.server.host, port=settings.server.port, workers=workers, access_log=False,
                motd=False, single_process=workers == 1)
    if workers == 1:
        Sanic.serve_single(primary=app)
    else:
        Sanic.serve(primary=app, app_loader=loader)
    return 0


def cmd_worker(settings: Settings, endpoints: Endpoints) -> int:
    from workers.main import run

    asyncio.run(run(settings, endpoints.database_url, endpoints.redis_url))
    return 0


def cmd_migrate(settings: Settings, endpoints: Endpoints) -> int:
    from adapters.postgres.migrate import apply_migrations

    applied = apply_migrations(endpoints.database_url)
    print(f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}")
    return 0


def cmd_mock_providers(settings: Settings) -> int:
    from adapters.providers.mock_server import serve_mock

    serve_mock(settings.mock.host, settings.mock.port, settings.mock.latency, settings.mock.failure_rate)
    return 0
