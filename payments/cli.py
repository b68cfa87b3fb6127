"""The `payments` command: serve, worker, mock-providers, migrate, dev, keys create, dlq, ledger check, secrets,
reconcile, events tail."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from types import FrameType
from typing import TypeVar

from app.bootstrap import resolve_endpoints
from app.configuration import load_settings
from app.logs import configure_logging
from app.settings import Settings, SettingsError
from core.events import CATALOGUE
from payments.admin import cmd_dlq, cmd_keys_create, cmd_ledger_check, cmd_reconcile
from payments.dev import cmd_dev
from payments.encryption import check_key_opens, cmd_new_key, cmd_secrets, settings_with_key
from payments.events import cmd_events_tail, event_id
from payments.processes import cmd_migrate, cmd_mock_providers, cmd_serve, cmd_worker
from payments.supervisor import follow_supervisor

T = TypeVar("T")
#: The commands that run until stopped: a stop on request is their normal end.
SERVERS = frozenset({"serve", "worker", "dev", "mock-providers", "events"})


def _configured(read: Callable[[], T]) -> T:
    """What `read` returns; a `SettingsError` it raises stops the command with its message."""
    try:
        return read()
    except SettingsError as error:
        sys.exit(f"payments: invalid configuration: {error}")


def _positive(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="payments", description="The payments API and its tools.")
    sub = root.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--workers", type=_positive, help="API processes (default: PAYMENTS_SERVER_WORKERS)")
    worker = sub.add_parser("worker", help="run the background worker (outbox relay, task consumers, housekeeping)")
    worker.add_argument("--processes", type=_positive, default=1,
                        help="worker processes, restarted if one exits; each serves metrics and health on "
                             "PAYMENTS_WORKER_METRICS_PORT + its index")
    worker.add_argument("--threads", type=_positive, help="messages in flight per process "
                                                           "(default: PAYMENTS_WORKER_CONCURRENCY)")
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
    reconcile = sub.add_parser("reconcile", help="match providers' settlement reports of a UTC day against the "
                                                 "ledger; exits 1 on any mismatch")
    reconcile.add_argument("--provider", choices=["stripe", "paypal"], help="only this provider (default: each)")
    reconcile.add_argument("--date", help="the UTC day, YYYY-MM-DD (default: yesterday)")
    reconcile.add_argument("--tenant", help="only the tenant of this name (default: every tenant settling there)")
    sub.add_parser("mock-providers", help="run the mock Stripe-like and PayPal-like provider server")
    secrets = sub.add_parser("secrets", help="the keys that encrypt stored secrets (PAYMENTS_SECRETS_KEYS)")
    secret = secrets.add_subparsers(dest="secrets_command", required=True)
    secret.add_parser("new-key", help="print a new random key")
    secret.add_parser("rotate", help="re-encrypt every stored secret under the first key; exits 1 if one is "
                                     "unreadable")
    secret.add_parser("check", help="count stored secrets by the key they are under; exits 1 unless all are "
                                    "under the first key")
    _events_parser(sub)
    return root


def _events_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    events = sub.add_parser("events", help="the events feed").add_subparsers(dest="events_command", required=True)
    tail = events.add_parser("tail", help="print the events feed as it grows, through the API (Ctrl-C to stop)",
                             description="Follow GET /api/v1/events: only new events by default. The API is the "
                                         "one `make run` serves, with its development key, unless told otherwise.")
    tail.add_argument("--type", choices=CATALOGUE, metavar="TYPE", help="only events of this type")
    tail.add_argument("--json", action="store_true", help="each event as one line of JSON, as the API has it")
    start = tail.add_mutually_exclusive_group()
    start.add_argument("--after", type=event_id, metavar="ID", help="start after this event (resume where you were)")
    start.add_argument("--from-start", action="store_true", help="start with the oldest event kept")
    tail.add_argument("--url", help="the API's base URL (default: http://PAYMENTS_SERVER_HOST:PAYMENTS_SERVER_PORT, "
                                    "that is http://127.0.0.1:8080)")
    tail.add_argument("--key", help="an API key with the read scope (default: PAYMENTS_DEV_API_KEY, or the key "
                                    "`make run` keeps in .data/dev_api_key)")


def _interrupt(signum: int, _: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    follow_supervisor()  # started by `payments dev` or `payments worker --processes N`: end with it
    args = parser().parse_args(argv)
    # Until a command installs its own handlers, SIGTERM unwinds like Ctrl-C: what start-up had begun (the
    # embedded servers) is stopped on the way out, and no traceback is printed.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print(f"payments {args.command}: interrupted; stopped", file=sys.stderr)
        return 0 if args.command in SERVERS else 130


def _run(args: argparse.Namespace) -> int:
    if args.command == "secrets" and args.secrets_command == "new-key":
        return cmd_new_key()
    settings: Settings = _configured(load_settings)
    if args.command in {"serve", "worker", "dev", "secrets"}:
        settings = _configured(partial(settings_with_key, settings, args.command))
    configure_logging(settings.observability.log_level, settings.observability.log_format,
                      process=args.command)
    if args.command == "mock-providers":
        return cmd_mock_providers(settings)
    if args.command == "events":  # through the API: no database of its own to find or start
        return cmd_events_tail(settings, args)
    endpoints = resolve_endpoints(settings, redis=args.command in {"serve", "worker", "dev", "dlq"})
    if not endpoints.redis_url:
        endpoints.redis_url = "redis://127.0.0.1:6379/0"  # unused by commands that do not touch Redis
    try:
        if args.command in {"serve", "worker"}:
            _configured(partial(check_key_opens, settings, endpoints))
        if args.command == "serve":
            return cmd_serve(settings, endpoints, workers=args.workers)
        if args.command == "worker":
            return cmd_worker(settings, endpoints, processes=args.processes, threads=args.threads)
        if args.command == "migrate":
            return cmd_migrate(settings, endpoints)
        if args.command == "dev":
            return cmd_dev(settings, endpoints)
        if args.command == "keys":
            return cmd_keys_create(settings, endpoints, args)
        if args.command == "dlq":
            return cmd_dlq(settings, endpoints, args)
        if args.command == "secrets":
            return cmd_secrets(settings, endpoints, args)
        if args.command == "reconcile":
            return cmd_reconcile(settings, endpoints, args)
        return cmd_ledger_check(settings, endpoints)
    finally:
        with _signals_ignored():  # a further Ctrl-C must not leave an embedded server half-stopped
            endpoints.close()


if __name__ == "__main__":
    sys.exit(main())

