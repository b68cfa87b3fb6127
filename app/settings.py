"""PAYMENTS_* environment variables and an optional YAML file, parsed into typed, validated settings."""

from __future__ import annotations

import math
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
import yaml

from core.webhooks import DeliveryPolicy


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the key."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> float:
    """Seconds from `500ms`, `30s`, `2m`, `24h`, `1d` or a bare number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    match = _DURATION.match(str(value)) if isinstance(value, str) else None
    if match is None:
        raise ValueError("expected a duration such as 500ms, 30s, 2m or 24h")
    return float(match.group(1)) * _UNITS[match.group(2)]


_PORT = attrs.validators.and_(attrs.validators.ge(1), attrs.validators.le(65535))


def _duration(default: float, *, positive: bool = False) -> Any:
    validator = attrs.validators.gt(0.0) if positive else None
    return attrs.field(default=default, metadata={"duration": True}, validator=validator)


@attrs.frozen(kw_only=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = attrs.field(default=8080, validator=_PORT)
    workers: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    shutdown_timeout: float = _duration(30.0)
    max_body_size: int = 65536


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
    acquire_timeout: float = _duration(5.0, positive=True)
    statement_timeout: float = _duration(10.0, positive=True)

    def dsn(self) -> str:
        """The configured URL, or one built from host/port/user/password/name; "" means embedded."""
        if self.url or not self.host:
            return self.url
        auth = quote(self.user, safe="") + (f":{quote(self.password, safe='')}" if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.name}"


@attrs.frozen(kw_only=True)
class RedisSettings:
    url: str = ""
    host: str = ""
    port: int = attrs.field(default=6379, validator=_PORT)
    db: int = 0

    def dsn(self) -> str:
        """The configured URL, or one built from host/port/db; "" means embedded."""
        if self.url or not self.host:
            return self.url
        return f"redis://{self.host}:{self.port}/{self.db}"


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
    concurrency: int = attrs.field(default=8, validator=attrs.validators.ge(1))  # messages in flight per process
    housekeeping_interval: float = _duration(60.0, positive=True)
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


@attrs.frozen(kw_only=True)
class IdempotencySettings:
    ttl: float = _duration(86400.0)


@attrs.frozen(kw_only=True)
class RateLimitSettings:
    requests_per_second: int = 0  # per API key; 0 turns the limiter off
    burst: int = 0  # bucket size; 0 means equal to requests_per_second


@attrs.frozen(kw_only=True)
class ObservabilitySettings:
    log_level: str = attrs.field(default="info", validator=attrs.validators.in_(
        ["trace", "debug", "info", "success", "warning", "error", "critical"]))
    log_format: str = attrs.field(default="json", validator=attrs.validators.in_(["json", "text"]))


@attrs.frozen(kw_only=True)
class Settings:
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    payment: PaymentSettings = PaymentSettings()
    providers: ProvidersSettings = ProvidersSettings()
    mock: MockSettings = MockSettings()
    worker: WorkerSettings = WorkerSettings()
    idempotency: IdempotencySettings = IdempotencySettings()
    webhooks: WebhooksSettings = WebhooksSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    data_dir: str = ""
    dev_api_key: str = ""

    def provider_url(self, name: str) -> str:
        """The provider's configured base URL, or the bundled mock server's route for it."""
        configured: str = getattr(self.providers, f"{name}_url")
        return configured or f"http://{self.mock.host}:{self.mock.port}/{name}"


def _convert(key: str, value: object, field: attrs.Attribute[Any], hint: Any) -> object:
    try:
        if field.metadata.get("duration"):
            return parse_duration(value)
        if hint is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in {"1", "true", "yes", "on"}:
                return True
            if str(value).lower() in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError("expected true or false")
        if hint is int:
            number = int(str(value), 10)
            if number < 0:
                raise ValueError("must not be negative")
            return number
        if hint is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            real = float(str(value))
            if not math.isfinite(real):
                raise ValueError("expected a finite number")
            return real
        if hint is str:
            if not isinstance(value, (str, int, float)):
                raise ValueError("expected a string")
            return str(value).lower() if key.endswith(("_LOG_LEVEL", "_LOG_FORMAT")) else str(value)
    except ValueError as error:
        raise SettingsError(f"{key}: {error} (got {value!r})") from None
    raise SettingsError(f"{key}: unsupported type")


def _build(cls: type[Any], prefix: str, env: Mapping[str, str], yaml_data: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in attrs.fields(cls):
        key = f"{prefix}_{field.name.upper()}"
        hint = hints[field.name]
        if attrs.has(hint):
            section = yaml_data.get(field.name) or {}
            if not isinstance(section, dict):
                raise SettingsError(f"{key}: expected a mapping in the YAML file")
            values[field.name] = _build(hint, key, env, section)
        elif key in env or field.name in yaml_data:
            value = _convert(key, env[key] if key in env else yaml_data[field.name], field, hint)
            if field.validator is not None:
                try:
                    field.validator(None, field, value)
                except (TypeError, ValueError) as error:  # attrs puts its message first in args
                    raise SettingsError(f"{key}: {error.args[0] if error.args else error}") from None
            values[field.name] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise SettingsError(f"{prefix}: {error}") from None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment, over the YAML file named by PAYMENTS_CONFIG, over defaults."""
    env = os.environ if env is None else env
    yaml_data: dict[str, Any] = {}
    if path := env.get("PAYMENTS_CONFIG"):
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise SettingsError(f"PAYMENTS_CONFIG: cannot read {path}: {error}") from None
        if not isinstance(loaded, dict):
            raise SettingsError("PAYMENTS_CONFIG: the YAML file must hold a mapping")
        yaml_data = loaded
    settings: Settings = _build(Settings, "PAYMENTS", env, yaml_data)
    return settings


def default_data_dir() -> Path:
    """`.data` in the source checkout (beside `app/`), else in the working directory."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "setup.cfg").exists():
        return checkout / ".data"
    return Path.cwd() / ".data"


