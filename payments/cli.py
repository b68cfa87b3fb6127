"""The `payments` command: serve, worker, mock-providers, migrate, dev, keys create, dlq, ledger check."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.bootstrap import resolve_endpoints
from app.configuration import load_settings
from app.logs import configure_logging
from app.settings import Settings, SettingsError
from payments.admin import cmd_dlq, cmd_keys_create, cmd_ledger_check
from payments.dev import cmd_dev
from payments.processes import cmd_migrate, cmd_mock_providers, cmd_serve, cmd_worker


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as error:
        sys.exit(f"payments: invalid configuration: {error}")


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

