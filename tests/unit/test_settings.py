"""app.settings.load_settings: environment over YAML over defaults, durations, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.configuration import load_settings, parse_duration
from app.settings import PaymentSettings, Settings, SettingsError


@pytest.fixture
def config(tmp_path: Path):
    """Write a YAML file and return the environment pointing PAYMENTS_CONFIG at it."""

    def write(text: str) -> dict[str, str]:
        path = tmp_path / "payments.yaml"
        path.write_text(text)
        return {"PAYMENTS_CONFIG": str(path)}

    return write


def test_defaults_without_environment_or_file() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert (settings.server.port, settings.payment.max_retries, settings.payment.lock_ttl) == (8080, 5, 30.0)
    assert settings.idempotency.ttl == 24 * 3600
    assert (settings.observability.log_level, settings.observability.log_format) == ("info", "auto")


def test_yaml_overrides_defaults_and_environment_overrides_yaml(config) -> None:
    env = config(
        "server:\n  port: 9000\n  host: 0.0.0.0\n"
        "payment:\n  max_retries: 7\n  lock_ttl: 500ms\n"
        "observability:\n  log_level: debug\n"
        "database:\n  url: postgresql://yaml/db\n"
    )
    settings = load_settings(env)
    assert (settings.server.port, settings.server.host) == (9000, "0.0.0.0")
    assert (settings.payment.max_retries, settings.payment.lock_ttl) == (7, 0.5)
    assert settings.observability.log_level == "debug"
    assert settings.database.url == "postgresql://yaml/db"
    assert settings.redis.port == 6379  # untouched by either: the default

    settings = load_settings({**env, "PAYMENTS_SERVER_PORT": "9100", "PAYMENTS_PAYMENT_LOCK_TTL": "2m",
                              "PAYMENTS_DATABASE_URL": "postgresql://env/db"})
    assert (settings.server.port, settings.server.host) == (9100, "0.0.0.0")
    assert (settings.payment.max_retries, settings.payment.lock_ttl) == (7, 120.0)
    assert settings.database.url == "postgresql://env/db"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30.0), ("2m", 120.0), ("24h", 86400.0), ("1d", 86400.0), ("45", 45.0),
     ("1.5s", 1.5), (" 10s ", 10.0)],
)
def test_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert load_settings({"PAYMENTS_PAYMENT_LOCK_TTL": text}).payment.lock_ttl == seconds
    assert load_settings({"PAYMENTS_IDEMPOTENCY_TTL": text}).idempotency.ttl == seconds


def test_durations_from_yaml_numbers_and_strings(config) -> None:
    env = config("idempotency:\n  ttl: 24h\npayment:\n  min_backoff: 2\n  max_backoff: 30s\n"
                 "server:\n  shutdown_timeout: 1.5\n")
    settings = load_settings(env)
    assert settings.idempotency.ttl == 86400.0
    assert (settings.payment.min_backoff, settings.payment.max_backoff) == (2.0, 30.0)
    assert settings.server.shutdown_timeout == 1.5


def test_log_level_and_format_are_case_insensitive() -> None:
    settings = load_settings({"PAYMENTS_OBSERVABILITY_LOG_LEVEL": "DEBUG", "PAYMENTS_OBSERVABILITY_LOG_FORMAT": "Text"})
    assert (settings.observability.log_level, settings.observability.log_format) == ("debug", "text")


@pytest.mark.parametrize("value", ["auto", "json", "text"])
def test_each_log_format_is_accepted(value: str) -> None:
    assert load_settings({"PAYMENTS_OBSERVABILITY_LOG_FORMAT": value}).observability.log_format == value


@pytest.mark.parametrize("value", ["xml", "", "plain"])
def test_an_unknown_log_format_names_the_key_and_the_choices(value: str, config) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({"PAYMENTS_OBSERVABILITY_LOG_FORMAT": value})
    assert str(error.value) == (f"PAYMENTS_OBSERVABILITY_LOG_FORMAT: expected auto (text on a terminal, JSON "
                                f"otherwise), json or text, not {value!r}")
    with pytest.raises(SettingsError, match=r"^PAYMENTS_OBSERVABILITY_LOG_FORMAT: expected auto"):
        load_settings(config(f"observability:\n  log_format: {value or 'none'}\n"))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("PAYMENTS_SERVER_PORT", "abc"),
        ("PAYMENTS_SERVER_PORT", "-1"),
        ("PAYMENTS_SERVER_PORT", "80.5"),
        ("PAYMENTS_SERVER_PORT", ""),
        ("PAYMENTS_PAYMENT_MAX_RETRIES", "five"),
        ("PAYMENTS_PAYMENT_LOCK_TTL", "soon"),
        ("PAYMENTS_PAYMENT_LOCK_TTL", "-5s"),
        ("PAYMENTS_PAYMENT_LOCK_TTL", "5 weeks"),
        ("PAYMENTS_IDEMPOTENCY_TTL", "24hours"),
        ("PAYMENTS_DATABASE_ACQUIRE_TIMEOUT", "ms"),
        ("PAYMENTS_PAYMENT_MAX_RETRIES", "0"),
        ("PAYMENTS_PAYMENT_PROVIDER_TIMEOUT", "0s"),
        ("PAYMENTS_PAYMENT_STUCK_AFTER", "0"),
        ("PAYMENTS_PAYMENT_BREAKER_FAILURE_RATE", "1.5"),
        ("PAYMENTS_PAYMENT_BREAKER_FAILURE_RATE", "nan"),
        ("PAYMENTS_PAYMENT_BREAKER_WINDOW", "0"),
        ("PAYMENTS_MOCK_FAILURE_RATE", "-0.1"),
        ("PAYMENTS_MOCK_FAILURE_RATE", "often"),
        ("PAYMENTS_MOCK_PORT", "0"),
        ("PAYMENTS_WORKER_CONCURRENCY", "0"),
        ("PAYMENTS_WORKER_HOUSEKEEPING_INTERVAL", "never"),
        ("PAYMENTS_WORKER_HOLD_SWEEP_INTERVAL", "0s"),
        ("PAYMENTS_WORKER_HOLD_SWEEP_INTERVAL", "-1s"),
    ],
)
def test_a_bad_value_raises_settings_error_naming_the_key(key: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({key: value})
    assert key in str(caught.value)



@pytest.mark.parametrize(
    ("key", "value"),
    [("PAYMENTS_OBSERVABILITY_LOG_FORMAT", "xml"), ("PAYMENTS_OBSERVABILITY_LOG_LEVEL", "loud")],
)
def test_a_bad_choice_raises_settings_error_naming_the_key(key: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({key: value})
    assert key in str(caught.value)


def test_a_bad_choice_is_refused() -> None:
    with pytest.raises(SettingsError, match="PAYMENTS_OBSERVABILITY"):
        load_settings({"PAYMENTS_OBSERVABILITY_LOG_FORMAT": "xml"})


def test_a_port_out_of_range_is_refused() -> None:
    with pytest.raises(SettingsError, match="PAYMENTS_SERVER_PORT"):
        load_settings({"PAYMENTS_SERVER_PORT": "70000"})


def test_a_bad_yaml_value_names_the_key(config) -> None:
    with pytest.raises(SettingsError, match="PAYMENTS_SERVER_PORT"):
        load_settings(config("server:\n  port: eighty\n"))
    with pytest.raises(SettingsError, match="PAYMENTS_PAYMENT_LOCK_TTL"):
        load_settings(config("payment:\n  lock_ttl: [1, 2]\n"))


def test_the_environment_wins_even_over_a_bad_yaml_value(config) -> None:
    env = config("server:\n  port: eighty\n")
    assert load_settings({**env, "PAYMENTS_SERVER_PORT": "8181"}).server.port == 8181


@pytest.mark.parametrize("text", ["server: 5\n", "- a\n- b\n", "server: [\n"])
def test_a_malformed_yaml_file_is_a_settings_error(config, text: str) -> None:
    with pytest.raises(SettingsError, match="PAYMENTS_"):
        load_settings(config(text))


def test_a_missing_yaml_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="PAYMENTS_CONFIG"):
        load_settings({"PAYMENTS_CONFIG": str(tmp_path / "missing.yaml")})


def test_database_and_redis_dsn() -> None:
    settings = load_settings({"PAYMENTS_DATABASE_HOST": "db", "PAYMENTS_DATABASE_PASSWORD": "pw",
                              "PAYMENTS_REDIS_HOST": "cache", "PAYMENTS_REDIS_DB": "3"})
    assert settings.database.dsn() == "postgresql://postgres:pw@db:5432/payments"
    assert settings.redis.dsn() == "redis://cache:6379/3"
    settings = load_settings({"PAYMENTS_DATABASE_URL": "postgresql://x/y", "PAYMENTS_DATABASE_HOST": "db"})
    assert settings.database.dsn() == "postgresql://x/y"
    assert load_settings({}).database.dsn() == ""  # embedded


def test_the_broker_is_the_redis_unless_a_redis_or_rabbitmq_url_is_given() -> None:
    assert load_settings({}).broker.dsn("redis://cache:6379/3") == "redis://cache:6379/3"
    for url in ("amqp://u:p@rabbit:5672/payments", "amqps://rabbit/", "redis://other:6379/1", "rediss://r/0"):
        assert load_settings({"PAYMENTS_BROKER_URL": url}).broker.dsn("redis://cache:6379/3") == url
    with pytest.raises(SettingsError, match="PAYMENTS_BROKER_URL") as refused:
        load_settings({"PAYMENTS_BROKER_URL": "http://u:secret@rabbit:15672/"})
    assert "secret" not in str(refused.value)  # the URL may hold a password: only its scheme is named


def test_payment_worker_and_provider_settings() -> None:
    defaults = load_settings({})
    p = defaults.payment
    assert (p.max_retries, p.min_backoff, p.max_backoff, p.provider_timeout) == (5, 1.0, 30.0, 10.0)
    assert (p.breaker_window, p.breaker_failure_rate, p.breaker_recovery, p.stuck_after) == (10, 0.6, 30.0, 120.0)
    assert defaults.provider_url("stripe") == "http://127.0.0.1:8090/stripe"
    assert defaults.provider_url("paypal") == "http://127.0.0.1:8090/paypal"
    settings = load_settings({"PAYMENTS_MOCK_PORT": "9999", "PAYMENTS_PROVIDERS_PAYPAL_URL": "https://pp.example",
                              "PAYMENTS_PAYMENT_BREAKER_FAILURE_RATE": "0.75", "PAYMENTS_MOCK_LATENCY": "50ms",
                              "PAYMENTS_WORKER_CONCURRENCY": "24", "PAYMENTS_WORKER_HOLD_SWEEP_INTERVAL": "250ms"})
    assert settings.provider_url("stripe") == "http://127.0.0.1:9999/stripe"
    assert settings.provider_url("paypal") == "https://pp.example"
    assert (settings.payment.breaker_failure_rate, settings.mock.latency, settings.worker.concurrency) == (
        0.75, 0.05, 24)
    w = defaults.worker
    assert w.concurrency == 16
    assert (w.housekeeping_interval, w.hold_sweep_interval, settings.worker.hold_sweep_interval) == (60.0, 5.0, 0.25)


def test_read_replica_settings() -> None:
    settings = load_settings({"PAYMENTS_DATABASE_READ_URL": "postgresql://replica/db",
                              "PAYMENTS_DATABASE_READ_MAX_LAG": "1500ms"})
    assert (settings.database.read_url, settings.database.read_max_lag) == ("postgresql://replica/db", 1.5)
    assert (Settings().database.read_url, Settings().database.read_max_lag) == ("", 5.0)  # unset: primary only
    with pytest.raises(SettingsError, match="PAYMENTS_DATABASE_READ_MAX_LAG"):
        load_settings({"PAYMENTS_DATABASE_READ_MAX_LAG": "0s"})


@pytest.mark.parametrize(("min_backoff", "poll_ms"), [(1.0, 500), (0.0, 100), (0.1, 100), (0.6, 300), (30.0, 1000)])
def test_delayed_retries_are_polled_every_half_their_shortest_backoff_between_100_ms_and_1_s(
        min_backoff: float, poll_ms: int) -> None:
    assert PaymentSettings(min_backoff=min_backoff).delayed_poll_ms() == poll_ms
