"""The `payments` command: serve, worker, mock-providers, migrate, dev, keys create, dlq, ledger check."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from loguru import logger

from app.container import Endpoints, build_container, data_dir, resolve_endpoints
from app.logs import configure_logging
from app.settings import Settings, SettingsError, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        sys.exit(f"payments: invalid configuration: {error}")


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


async def _create_key(settings: Settings, endpoints: Endpoints, tenant: str, scopes: Sequence[str],
                      plain: str | None = None) -> str:
    from core.usecases.keys import CreateApiKey, create_api_key

    container = await build_container(settings, endpoints.database_url, endpoints.redis_url)
    try:
        async with container.uow() as uow:
            key, _ = await create_api_key(CreateApiKey(tenant=tenant, scopes=tuple(scopes), plain_key=plain),
                                          uow=uow, clock=container.clock)
    finally:
        await container.close()
    return key


def cmd_keys_create(settings: Settings, endpoints: Endpoints, args: argparse.Namespace) -> int:
    from core.errors import ValidationFailed

    scopes = [scope.strip() for scope in args.scopes.split(",") if scope.strip()]
    try:
        key = asyncio.run(_create_key(settings, endpoints, args.tenant, scopes))
    except ValidationFailed as error:
        print(f"payments keys create: {error.detail}", file=sys.stderr)
        return 2
    print(f"created an API key for tenant {args.tenant!r} with scopes {','.join(sorted(set(scopes)))}; "
          "it is shown once:", file=sys.stderr)
    print(key)
    return 0


def cmd_ledger_check(settings: Settings, endpoints: Endpoints) -> int:
    async def run() -> list[str]:
        container = await build_container(settings, endpoints.database_url, endpoints.redis_url)
        try:
            return await container.audit().drift()
        finally:
            await container.close()

    problems = asyncio.run(run())
    for line in problems:
        print(f"DRIFT {line}")
    print("ledger ok: every balance equals its entries, balance_after chains, every tenant's currencies sum to 0"
          if not problems else f"ledger drift: {len(problems)} problem(s)")
    return 1 if problems else 0


def cmd_mock_providers(settings: Settings) -> int:
    from adapters.providers.mock_server import serve_mock

    serve_mock(settings.mock.host, settings.mock.port, settings.mock.latency, settings.mock.failure_rate)
    return 0


def cmd_dlq(settings: Settings, endpoints: Endpoints, args: argparse.Namespace) -> int:
    """`dlq list`: one line per dead letter; `dlq retry ID`: re-drive it to the workers."""
    from uuid import UUID

    from adapters.dramatiq.broker import DramatiqTaskQueue, make_broker
    from core.errors import CoreError
    from core.usecases.dlq import list_dead_letters, retry_dead_letter

    async def run() -> int:
        container = await build_container(settings, endpoints.database_url, endpoints.redis_url)
        try:
            if args.dlq_command == "list":
                async with container.uow(read_only=True) as uow:
                    letters = await list_dead_letters(uow=uow, limit=args.limit)
                print(f"{'ID':36}  {'KIND':7}  {'PAYMENT/REFUND ID':36}  {'ATTEMPTS':>8}  {'FAILED AT':25}  "
                      f"{'RETRIED':7}  ERROR")
                for x in letters:
                    print(f"{x.id}  {x.kind:7}  {x.target_id}  {x.attempts:>8}  {x.created_at.isoformat():25}  "
                          f"{'yes' if x.retried_at else 'no':7}  {x.error}")
                print(f"{len(letters)} dead letter(s)", file=sys.stderr)
                return 0
            queue = DramatiqTaskQueue(make_broker(endpoints.redis_url))
            print(await retry_dead_letter(UUID(args.id), uow_factory=container.uow, queue=queue,
                                          clock=container.clock))
            return 0
        except CoreError as error:
            print(f"payments dlq {args.dlq_command}: {error.detail}", file=sys.stderr)
            return 1
        finally:
            await container.close()

    if args.dlq_command == "retry":
        try:
            UUID(args.id)
        except ValueError:
            print(f"payments dlq retry: {args.id!r} is not a dead letter id (a UUID)", file=sys.stderr)
            return 2
    return asyncio.run(run())


def _dev_key(settings: Settings, endpoints: Endpoints) -> str:
    """PAYMENTS_DEV_API_KEY, or the key kept in the data directory from an earlier run, or a new one."""
    from core.tenants import generate_key

    path = data_dir(settings) / "dev_api_key"
    plain = settings.dev_api_key or (path.read_text().strip() if path.exists() else "") or generate_key()
    asyncio.run(_create_key(settings, endpoints, "dev", ["read", "write"], plain))
    if not settings.dev_api_key:
        path.write_text(plain + "\n")
        path.chmod(0o600)
    return plain


def cmd_dev(settings: Settings, endpoints: Endpoints) -> int:
    """Migrate, then run the API (and every background process) until Ctrl-C or SIGTERM."""
    cmd_migrate(settings, endpoints)
    key = _dev_key(settings, endpoints)
    env = {**os.environ, "PAYMENTS_DATABASE_URL": endpoints.database_url, "PAYMENTS_REDIS_URL": endpoints.redis_url}
    names = ["serve", "worker"]
    if not (settings.providers.stripe_url and settings.providers.paypal_url):
        names.append("mock-providers")  # the providers' default base URLs point at it
    children = [subprocess.Popen([sys.executable, "-m", "app.cli", name], env=env) for name in names]
    url = f"http://{settings.server.host}:{settings.server.port}"
    stopping = False

    def stop(signum: int, _: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    mock = f"http://{settings.mock.host}:{settings.mock.port}/_mock/charges" if "mock-providers" in names else "-"
    print(f"\n  Payments API   {url}\n  API docs       {url}/docs\n  Mock providers {mock}\n  Dev API key    {key}\n"
          f"  Try it         curl -H 'Authorization: Bearer {key}' {url}/api/v1/accounts\n", flush=True)
    code = 0
    while not stopping:
        for child in children:
            if child.poll() is not None:
                logger.error("process {} exited with {}; stopping", child.args, child.returncode)
                stopping, code = True, 1
        time.sleep(0.2)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + settings.server.shutdown_timeout + 5
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return code


def _positive(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="payments", description="The payments API and its tools.")
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP API")
    sub.add_parser("worker", help="run the background worker (outbox relay, task consumers, housekeeping)")
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("dev", help="everything in one command (embedded PostgreSQL and Redis when no URL is set)")
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create an API key (printed alone on the last line)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--scopes", default="read,write", help="comma-separated: read, write")
    ledger = sub.add_parser("ledger", help="ledger tools").add_subparsers(dest="ledger_command", required=True)
    ledger.add_parser("check", help="verify the ledger invariants; exits 1 on drift")
    dlq = sub.add_parser("dlq", help="the dead letter queue").add_subparsers(dest="dlq_command", required=True)
    listing = dlq.add_parser("list", help="payments and refunds whose processing failed, newest first")
    listing.add_argument("--limit", type=_positive, default=100, help="at most this many (1 or more)")
    retry = dlq.add_parser("retry", help="re-drive one dead letter's work to the workers")
    retry.add_argument("id", help="the dead letter's id (first column of `dlq list`)")
    sub.add_parser("mock-providers", help="run the mock Stripe-like and PayPal-like provider server")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = _settings()
    configure_logging(settings.observability.log_level, settings.observability.log_format,
                      process=args.command)
    if args.command == "mock-providers":
        return cmd_mock_providers(settings)
    endpoints = resolve_endpoints(settings, redis=args.command in {"serve", "worker", "dev", "dlq"})
    if not endpoints.redis_url:
        endpoints.redis_url = "redis://127.0.0.1:6379/0"  # unused by commands that do not touch Redis
    try:
        if args.command == "serve":
            return cmd_serve(settings, endpoints)
        if args.command == "worker":
            return cmd_worker(settings, endpoints)
        if args.command == "migrate":
            return cmd_migrate(settings, endpoints)
        if args.command == "dev":
            return cmd_dev(settings, endpoints)
        if args.command == "keys":
            return cmd_keys_create(settings, endpoints, args)
        if args.command == "dlq":
            return cmd_dlq(settings, endpoints, args)
        return cmd_ledger_check(settings, endpoints)
    finally:
        endpoints.close()


if __name__ == "__main__":
    sys.exit(main())

