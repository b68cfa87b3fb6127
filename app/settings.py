"""The typed, validated settings of every process (read by `app.configuration.load_settings`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import attrs

from adapters.crypto import parse_keys
from app.settings_fields import PORT as _PORT
from app.settings_fields import duration as _duration
from app.settings_redis import BrokerSettings, RedisSettings
from core.usecases.daily_reconciliation import DailyReconciliation
from core.webhooks import DeliveryPolicy


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the key."""


@attrs.frozen(kw_only=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = attrs.field(default=8080, validator=_PORT)
    workers: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    shutdown_timeout: float = _duration(30.0)
    max_body_size: int = 65536
    # HTTPS: PEM files of the certificate (chain) and its private key; both or neither (empty: plain HTTP)
    tls_cert: str = ""
    tls_key: str = ""

    def __attrs_post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("PAYMENTS_SERVER_TLS_CERT and PAYMENTS_SERVER_TLS_KEY go together: set both, or neither "
                             "for plain HTTP")

    def tls(self) -> dict[str, str] | None:
        """Sanic's `ssl` argument (`cert`/`key` file names, which Sanic also passes to each worker process), or
        None for plain HTTP."""
        return {"cert": self.tls_cert, "key": self.tls_key} if self.tls_cert else None


@attrs.frozen(kw_only=True)
class DatabaseSettings:
    url: str = ""
    host: str = ""
    port: int = attrs.field(default=5432, validator=_PORT)
    user: str = "postgres"
    password: str = ""
    name: str = "payments"
    pool_min: int = 1
    pool_max: int = attrs.field(default=20, validator=attrs.validators.ge(1))
    acquire_timeout: float = _duration(5.0, positive=True)  # for a hot account's turn, then a connection; 503 beyond
    statement_timeout: float = _duration(10.0, positive=True)
    # A streaming replica for the reads that may lag (lists, statements, the events feed, balance history); "" = none
    read_url: str = attrs.field(default="", repr=False)  # may hold a password
    read_max_lag: float = _duration(5.0, positive=True)  # a replica further behind (or down) is bypassed
    # Group commit of transfers (`core.usecases.group_commit`): transactions of grouped requests one process runs
    # at once (0: every request alone, in its own); a further one starts only once those running have run
    # `group_stall` (stuck on a lock held elsewhere, say); the most requests one of them holds
    group_transactions: int = attrs.field(default=4, validator=attrs.validators.ge(0))
    group_stall: float = _duration(0.05, positive=True)
    group_size: int = attrs.field(default=64, validator=attrs.validators.and_(attrs.validators.ge(1),
                                                                              attrs.validators.le(1000)))

    def dsn(self) -> str:
        """The configured URL, or one built from host/port/user/password/name; "" means embedded."""
        if self.url or not self.host:
            return self.url
        auth = quote(self.user, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.name}"


_RATE = attrs.validators.and_(attrs.validators.ge(0.0), attrs.validators.le(1.0))


@attrs.frozen(kw_only=True)
class PaymentSettings:
    max_retries: int = attrs.field(default=5, validator=attrs.validators.ge(1))  # attempts per provider call
    min_backoff: float = _duration(1.0)
    max_backoff: float = _duration(30.0)
    provider_timeout: float = _duration(10.0, positive=True)
    lock_ttl: float = _duration(30.0, positive=True)
    stuck_after: float = _duration(120.0, positive=True)  # untouched this long: housekeeping re-enqueues it
    breaker_window: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    breaker_failure_rate: float = attrs.field(default=0.6, validator=_RATE)
    breaker_recovery: float = _duration(30.0, positive=True)
    # how long a payment or refund waits for an open breaker (refusals are not attempts), then fails
    breaker_max_wait: float = _duration(3600.0, positive=True)

    def delayed_poll_ms(self) -> int:
        """How often at most an idle worker looks for delayed payments and refunds (their retries): half the shortest
        delay, between 100 ms and 1 s, so a retry starts at most half its backoff late (500 ms at the defaults)."""
        return round(min(max(self.min_backoff / 2, 0.1), 1.0) * 1000)


@attrs.frozen(kw_only=True)
class ProvidersSettings:
    """Base URLs and API keys of the providers; an empty URL means the bundled mock server."""

    stripe_url: str = ""
    stripe_api_key: str = "sk_test_mock"
    paypal_url: str = ""
    paypal_api_key: str = "paypal_test_mock"


@attrs.frozen(kw_only=True)
class MockSettings:
    """The bundled mock provider server (`payments mock-providers`)."""

    host: str = "127.0.0.1"
    port: int = attrs.field(default=8090, validator=_PORT)
    latency: float = _duration(0.0)
    failure_rate: float = attrs.field(default=0.0, validator=_RATE)


@attrs.frozen(kw_only=True)
class WorkerSettings:
    # messages in flight per process: 16 keeps a 50 ms provider from idling the CPU (docs/benchmarks.md, issue 12)
    concurrency: int = attrs.field(default=16, validator=attrs.validators.ge(1))
    housekeeping_interval: float = _duration(60.0, positive=True)
    # how often every worker looks for holds past their expiry (one indexed query when none is due)
    hold_sweep_interval: float = _duration(5.0, positive=True)
    # The worker's own Prometheus metrics (process, messages); port 0 turns them off.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = attrs.field(default=9191, validator=attrs.validators.le(65535))


@attrs.frozen(kw_only=True)
class WebhooksSettings:
    """Webhook deliveries: the defaults retry for about three days (21 attempts, 1 min doubling to 6 h)."""

    max_attempts: int = attrs.field(default=21, validator=attrs.validators.ge(1))
    min_backoff: float = _duration(60.0, positive=True)
    max_backoff: float = _duration(6 * 3600.0, positive=True)
    timeout: float = _duration(5.0, positive=True)
    # POSTs in flight per worker process: the rest of its threads stay free for payments when receivers are slow
    concurrency: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    allow_private_urls: bool = False
    poll_interval: float = _duration(1.0, positive=True)  # how often the scheduler looks for due retries
    secret_overlap: float = _duration(86400.0)  # a rotated-out secret keeps signing this long

    def policy(self) -> DeliveryPolicy:
        return DeliveryPolicy(max_attempts=self.max_attempts, min_backoff=self.min_backoff,
                              max_backoff=self.max_backoff, timeout=self.timeout,
                              lease=max(60.0, self.timeout * 3), rotation_overlap=self.secret_overlap)


def _secrets_keys(_: object, __: attrs.Attribute[str], value: str) -> None:
    parse_keys(value)


@attrs.frozen(kw_only=True)
class SecretsSettings:
    """Encryption at rest of stored secrets (webhook signing secrets): comma-separated Fernet keys; the first
    encrypts, every one decrypts, so the key can be rotated (docs/operations.md). Never shown in a repr."""

    keys: str = attrs.field(default="", repr=False, validator=_secrets_keys)


@attrs.frozen(kw_only=True)
class ReconcileSettings:
    """Reconciliation against the providers' settlement reports (API.md §12) and its daily run in the worker."""

    enabled: bool = True  # the worker reconciles yesterday (UTC) once per provider and tenant
    run_after: float = _duration(7200.0)  # how far into the UTC day yesterday's run may start
    grace: float = _duration(3600.0)  # how far past midnight a settlement's ledger entry may land
    retry_after: float = _duration(3600.0, positive=True)  # a daily run that failed is tried again after this

    def daily(self) -> DailyReconciliation:
        return DailyReconciliation(enabled=self.enabled, run_after=timedelta(seconds=self.run_after),
                                   grace=timedelta(seconds=self.grace),
                                   retry_after=timedelta(seconds=self.retry_after))


@attrs.frozen(kw_only=True)
class EventsSettings:
    """The event store behind webhooks and the events feed: published events older than `retention` are purged
    (a feed reader that falls further behind must start again), unpublished ones never are."""

    retention: float = _duration(30 * 86400.0, positive=True)


@attrs.frozen(kw_only=True)
class IdempotencySettings:
    ttl: float = _duration(86400.0)


@attrs.frozen(kw_only=True)
class RateLimitSettings:
    requests_per_second: int = 0  # per API key; 0 turns the limiter off
    burst: int = 0  # bucket size; 0 means equal to requests_per_second


#: PAYMENTS_OBSERVABILITY_LOG_FORMAT's values (`app.logs.configure_logging` takes the same).
LOG_FORMATS = ("auto", "json", "text")


def _log_format(_: object, __: object, value: str) -> None:
    if value not in LOG_FORMATS:
        raise ValueError(f"expected auto (text on a terminal, JSON otherwise), json or text, not {value!r}")


@attrs.frozen(kw_only=True)
class ObservabilitySettings:
    log_level: str = attrs.field(default="info", validator=attrs.validators.in_(
        ["trace", "debug", "info", "success", "warning", "error", "critical"]))
    #: `auto`: human-readable text when the logs (stderr) go to a terminal, JSON lines otherwise.
    log_format: str = attrs.field(default="auto", validator=_log_format)


@attrs.frozen(kw_only=True)
class Settings:
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = attrs.field(factory=RedisSettings)
    broker: BrokerSettings = attrs.field(factory=BrokerSettings)
    payment: PaymentSettings = PaymentSettings()
    providers: ProvidersSettings = ProvidersSettings()
    mock: MockSettings = MockSettings()
    worker: WorkerSettings = WorkerSettings()
    idempotency: IdempotencySettings = IdempotencySettings()
    webhooks: WebhooksSettings = WebhooksSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    events: EventsSettings = EventsSettings()
    secrets: SecretsSettings = SecretsSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    data_dir: str = ""
    dev_api_key: str = ""

    def __attrs_post_init__(self) -> None:
        if self.redis.cluster and not self.broker.url.startswith(("amqp://", "amqps://")):
            raise ValueError("a Redis Cluster cannot carry Dramatiq's Redis broker (its queues need one Redis): set "
                             "PAYMENTS_BROKER_URL=amqp://user:password@host:5672/vhost to use RabbitMQ")

    def provider_url(self, name: str) -> str:
        """The provider's configured base URL, or the bundled mock server's route for it."""
        configured: str = getattr(self.providers, f"{name}_url")
        return configured or f"http://{self.mock.host}:{self.mock.port}/{name}"


def default_data_dir() -> Path:
    """`.data` in the source checkout (beside `app/`), else in the working directory."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "setup.cfg").exists():
        return checkout / ".data"
    return Path.cwd() / ".data"


