"""The `payments` command: serve, worker, mock-providers, migrate, dev, keys, dlq, ledger check, secrets,
reconcile, events tail (`payments --help`, and each command's own `--help`)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

from app.bootstrap import EmbeddedUnavailable, resolve_endpoints
from app.configuration import load_settings
from app.logs import configure_logging
from app.settings import Settings, SettingsError
from core.events import CATALOGUE
from payments.admin import cmd_dlq, cmd_ledger_check, cmd_reconcile
from payments.dev import cmd_dev
from payments.encryption import check_key_opens, cmd_new_key, cmd_secrets, settings_with_key
from payments.events import cmd_events_tail, event_id
from payments.keys import cmd_keys
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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("payments")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def _command(sub: Sub, name: str, summary: str, description: str, examples: str) -> argparse.ArgumentParser:
    """A subcommand whose --help says what it does and shows how it is used."""
    made: argparse.ArgumentParser = sub.add_parser(name, help=summary, description=description,
                                                   epilog="examples:\n" + examples,
                                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    return made


def _group(sub: Sub, name: str, summary: str, dest: str) -> Sub:
    group: Sub = sub.add_parser(name, help=summary, description=summary).add_subparsers(
        dest=dest, required=True, metavar="COMMAND")
    return group


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="payments", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The payments API and its tools. Configuration comes from PAYMENTS_* variables or the YAML "
                    "file PAYMENTS_CONFIG names.",
        epilog="examples:\n  payments dev                      # everything, on embedded PostgreSQL and Redis\n"
               "  payments keys create --tenant acme\n  payments COMMAND --help          # each command's own")
    root.add_argument("--version", action="version", version=f"payments {_version()}")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = _command(sub, "serve", "run the HTTP API",
                     "Serve the HTTP API on PAYMENTS_SERVER_HOST:PAYMENTS_SERVER_PORT (default 127.0.0.1:8080).",
                     "  payments serve\n  payments serve --workers 4")
    serve.add_argument("--workers", type=_positive, help="API processes (default: PAYMENTS_SERVER_WORKERS)")
    worker = _command(sub, "worker", "run the background worker (outbox relay, task consumers, housekeeping)",
                      "Relay the outbox, process external payments and refunds, deliver webhooks and keep house.",
                      "  payments worker\n  payments worker --processes 2 --threads 16")
    worker.add_argument("--processes", type=_positive, default=1,
                        help="worker processes, restarted if one exits; each serves metrics and health on "
                             "PAYMENTS_WORKER_METRICS_PORT + its index")
    worker.add_argument("--threads", type=_positive, help="messages in flight per process "
                                                           "(default: PAYMENTS_WORKER_CONCURRENCY)")
    _command(sub, "migrate", "apply database migrations",
             "Apply every migration not yet applied to PAYMENTS_DATABASE_URL's database.", "  payments migrate")
    _command(sub, "dev", "everything in one command (embedded PostgreSQL and Redis when no URL is set)",
             "Migrate, then run the API, the worker and the mock providers, restarting a child that exits; prints "
             "the URL and a development API key once the API answers.", "  payments dev\n"
             "  PAYMENTS_DATABASE_URL=postgresql://localhost/payments payments dev")
    _keys_parser(sub)
    ledger = _group(sub, "ledger", "ledger tools", "ledger_command")
    _command(ledger, "check", "verify the ledger invariants; exits 1 on drift",
             "Check that every balance equals its entries, every hash chain holds and every tenant's currencies "
             "sum to zero; name each problem and exit 1 if there is one.", "  payments ledger check")
    dlq = _group(sub, "dlq", "the dead letter queue", "dlq_command")
    listing = _command(dlq, "list", "payments and refunds whose processing failed, newest first",
                       "List dead letters: work that failed for good (retries spent or an unexpected error).",
                       "  payments dlq list\n  payments dlq list --limit 10")
    listing.add_argument("--limit", type=_positive, default=100, help="at most this many (1 or more)")
    retry = _command(dlq, "retry", "re-drive one dead letter's work to the workers",
                     "Send a dead letter's payment or refund back to the workers.",
                     "  payments dlq retry ID     # ID: the first column of `payments dlq list`")
    retry.add_argument("id", help="the dead letter's id (first column of `dlq list`)")
    reconcile = _command(sub, "reconcile", "match providers' settlement reports of a UTC day against the ledger; "
                                           "exits 1 on any mismatch",
                         "Fetch each provider's settlement report of a day and match it, item by item, against the "
                         "ledger's settlement entries; print each run; exit 1 on any mismatch, 2 on bad arguments.",
                         "  payments reconcile                       # yesterday, every provider and tenant\n"
                         "  payments reconcile --provider stripe --date 2026-12-01")
    reconcile.add_argument("--provider", choices=["stripe", "paypal"], help="only this provider (default: each)")
    reconcile.add_argument("--date", help="the UTC day, YYYY-MM-DD (default: yesterday)")
    reconcile.add_argument("--tenant", help="only the tenant of this name (default: every tenant settling there)")
    _command(sub, "mock-providers", "run the mock Stripe-like and PayPal-like provider server",
             "Serve the bundled mock providers on PAYMENTS_MOCK_PORT (latency PAYMENTS_MOCK_LATENCY, failure rate "
             "PAYMENTS_MOCK_FAILURE_RATE); GET /_mock/charges lists what it recorded.",
             "  payments mock-providers\n  PAYMENTS_MOCK_LATENCY=50ms payments mock-providers")
    secret = _group(sub, "secrets", "the keys that encrypt stored secrets (PAYMENTS_SECRETS_KEYS)", "secrets_command")
    _command(secret, "new-key", "print a new random key", "Print a new key for PAYMENTS_SECRETS_KEYS.",
             "  payments secrets new-key")
    _command(secret, "rotate", "re-encrypt every stored secret under the first key; exits 1 if one is unreadable",
             "Re-encrypt every stored webhook secret under the first key of PAYMENTS_SECRETS_KEYS "
             "(docs/operations.md, 'Rotating the secrets key').",
             "  PAYMENTS_SECRETS_KEYS=NEW,OLD payments secrets rotate")
    _command(secret, "check", "count stored secrets by the key they are under; exits 1 unless all are under the "
                              "first key",
             "Say how many stored secrets each key opens.", "  payments secrets check")
    _events_parser(sub)
    return root


def _keys_parser(sub: Sub) -> None:
    keys = _group(sub, "keys", "manage API keys", "keys_command")
    create = _command(keys, "create", "create an API key (printed alone on the last line)",
                      "Create a secret API key (sk_...) for a tenant, created if new. The key is shown once; only "
                      "its hash is stored.",
                      "  payments keys create --tenant acme\n  payments keys create --tenant acme --scopes read\n"
                      "  payments keys create --tenant dev --if-none   # a first key, once (compose's first-key)")
    create.add_argument("--tenant", required=True, help="the tenant's name")
    create.add_argument("--scopes", default="read,write", help="comma-separated: read, write (default: both)")
    create.add_argument("--if-none", action="store_true",
                        help="only if the tenant has no live (unrevoked) key; otherwise create nothing, print "
                             "nothing on stdout, say so on stderr and exit 0")
    listing = _command(keys, "list", "list API keys: id, tenant, prefix and last four, scopes, created, last used",
                       "List keys oldest first, never their values: the first characters and the last four tell "
                       "them apart. A key's last use is noted when an API process looks it up (every few seconds "
                       "while it is used).",
                       "  payments keys list\n  payments keys list --tenant acme")
    listing.add_argument("--tenant", help="only this tenant's keys")
    revoke = _command(keys, "revoke", "revoke an API key; every API process refuses it within 10 s",
                      "Revoke a key by its id (the first column of `keys list`). Revoking a revoked key changes "
                      "nothing.", "  payments keys revoke ID")
    revoke.add_argument("id", help="the key's id")


def _events_parser(sub: Sub) -> None:
    events = _group(sub, "events", "the events feed", "events_command")
    tail = _command(events, "tail", "print the events feed as it grows, through the API (Ctrl-C to stop)",
                    "Follow GET /api/v1/events: only new events by default. The API is the one `make run` serves, "
                    "with its development key, unless told otherwise.",
                    "  payments events tail\n  payments events tail --type payment.completed --json\n"
                    "  payments events tail --from-start")
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
    try:
        endpoints = resolve_endpoints(settings, redis=args.command in {"serve", "worker", "dev", "dlq"})
    except EmbeddedUnavailable as error:  # a production install without URLs: what to do, in one line
        sys.exit(f"payments {args.command}: {error}")
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
            return cmd_keys(settings, endpoints, args)
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

