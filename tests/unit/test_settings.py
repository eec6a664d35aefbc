"""Configuration read from the environment once; production fails hard (conventions)."""

from __future__ import annotations

import pytest

from config.settings import ConfigError, Settings
from lootbox.persistence.database import make_engine, normalize_database_url

PRODUCTION = {
    "LOOTBOX_ENV": "production",
    "DATABASE_URL": "postgresql://lootbox:pw@db.internal:5432/lootbox",
    "REDIS_URL": "redis://cache.internal:6379/0",
    "SECRET_KEY": "a-real-secret",
    "LOOTBOX_ENCRYPTION_KEYS": "KOfPUTfqHRYbRCsfQLwFfIlwSdijxrLijOqLpzoBRGw=",
}


def test_nothing_set_gives_the_development_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.env == "development"
    assert not settings.production
    assert settings.database_url == ""  # dev.py sets it (an embedded PostgreSQL)
    assert settings.redis_url == ""
    assert (settings.wallet_connect_timeout_seconds, settings.wallet_read_timeout_seconds) == (
        2.0,
        5.0,
    )
    assert settings.max_content_length == 1024 * 1024
    assert settings.signature_max_skew_seconds == 300


def test_environment_values_are_parsed_to_their_types() -> None:
    settings = Settings.from_env(
        {"PORT": "9000", "WALLET_READ_TIMEOUT_SECONDS": "3.5", "REDIS_URL": "redis://r:6379/1"}
    )
    assert settings.port == 9000
    assert settings.wallet_read_timeout_seconds == 3.5
    assert settings.redis_url == "redis://r:6379/1"


def test_production_starts_with_everything_it_needs() -> None:
    settings = Settings.from_env(PRODUCTION)
    assert settings.production
    assert settings.secret_key == "a-real-secret"


@pytest.mark.parametrize(
    "missing", ["DATABASE_URL", "REDIS_URL", "SECRET_KEY", "LOOTBOX_ENCRYPTION_KEYS"]
)
def test_production_refuses_to_start_without_a_required_variable(missing: str) -> None:
    environ = {k: v for k, v in PRODUCTION.items() if k != missing}
    with pytest.raises(ConfigError, match=missing):
        Settings.from_env(environ)


@pytest.mark.parametrize(
    "empty", ["DATABASE_URL", "REDIS_URL", "SECRET_KEY", "LOOTBOX_ENCRYPTION_KEYS"]
)
def test_production_treats_an_empty_variable_as_missing(empty: str) -> None:
    with pytest.raises(ConfigError, match=empty):
        Settings.from_env({**PRODUCTION, empty: ""})


def test_production_names_every_missing_variable() -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"LOOTBOX_ENV": "production"})
    assert all(var in str(error.value) for var in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY"))


def test_explicit_overrides_count_as_configured_in_production() -> None:
    settings = Settings.from_env(
        {"LOOTBOX_ENV": "production"},
        database_url="postgresql://x/y",
        redis_url="redis://r",
        secret_key="k",
        encryption_keys="KOfPUTfqHRYbRCsfQLwFfIlwSdijxrLijOqLpzoBRGw=",
    )
    assert settings.production


def test_an_unknown_environment_name_is_refused() -> None:
    with pytest.raises(ConfigError, match="LOOTBOX_ENV"):
        Settings.from_env({"LOOTBOX_ENV": "prod"})


@pytest.mark.parametrize(
    ("var", "raw"),
    [
        ("PORT", "eighty"),
        ("PORT", "80.5"),
        ("IDEMPOTENCY_TTL_SECONDS", "1e3"),
        ("WALLET_READ_TIMEOUT_SECONDS", "fast"),
        ("MOVEMENT_LEASE_SECONDS", "15s"),
        ("MAX_CONTENT_LENGTH", "1MiB"),
    ],
)
def test_a_value_that_is_not_a_number_is_a_config_error(var: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=var):
        Settings.from_env({var: raw})


@pytest.mark.parametrize(
    "environ",
    [
        {"WALLET_CONNECT_TIMEOUT_SECONDS": "0"},
        {"WALLET_READ_TIMEOUT_SECONDS": "-1"},
        {"IDEMPOTENCY_WAIT_SECONDS": "-0.1"},
        {"IDEMPOTENCY_TTL_SECONDS": "0"},
    ],
)
def test_non_positive_timeouts_and_ttls_are_refused(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(environ)


@pytest.mark.parametrize(
    "environ",
    [
        {"MOVEMENT_LEASE_SECONDS": "6"},  # default wallet budget is 2 + 5 s
        {"MOVEMENT_LEASE_SECONDS": "7"},  # equal is not enough: the call may take all of it
        {"WALLET_READ_TIMEOUT_SECONDS": "20"},  # default lease is 15 s
        {"WALLET_CONNECT_TIMEOUT_SECONDS": "10", "MOVEMENT_LEASE_SECONDS": "12"},
    ],
)
def test_a_movement_lease_not_longer_than_the_wallet_timeouts_is_refused(
    environ: dict[str, str],
) -> None:
    with pytest.raises(ConfigError, match="MOVEMENT_LEASE_SECONDS"):
        Settings.from_env(environ)


def test_a_movement_lease_just_above_the_wallet_timeouts_is_accepted() -> None:
    assert Settings.from_env({"MOVEMENT_LEASE_SECONDS": "7.5"}).movement_lease_seconds == 7.5


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param(
            {"WALLET_READ_TIMEOUT_SECONDS": "nan"},
            id="nan-wallet-timeout",
        ),
        pytest.param(
            {"MOVEMENT_LEASE_SECONDS": "nan"},
            id="nan-movement-lease",
        ),
        pytest.param(
            {"MOVEMENT_LEASE_SECONDS": "inf"},
            id="infinite-movement-lease",
        ),
        pytest.param(
            {"IDEMPOTENCY_WAIT_SECONDS": "nan"},
            id="nan-idempotency-wait",
        ),
        pytest.param(
            {"IDEMPOTENCY_LEASE_SECONDS": "0"},
            id="zero-idempotency-lease",
        ),
        pytest.param(
            {"IDEMPOTENCY_LEASE_SECONDS": "-1"},
            id="negative-idempotency-lease",
        ),
        pytest.param(
            {"PORT": "-1"},
            id="negative-port",
        ),
        pytest.param(
            {"PORT": "70000"},
            id="port-above-65535",
        ),
        pytest.param(
            {"MAX_CONTENT_LENGTH": "-5"},
            id="negative-body-limit",
        ),
        pytest.param(
            {"SIGNATURE_MAX_SKEW_SECONDS": "-1"},
            id="negative-skew",
        ),
    ],
)
def test_numbers_out_of_their_sensible_range_are_refused(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(environ)


# --- database URLs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p%40ss@db:5432/lootbox", "postgresql+psycopg://u:p%40ss@db:5432/lootbox"),
        (
            "postgresql://u@db/lootbox?sslmode=require",
            "postgresql+psycopg://u@db/lootbox?sslmode=require",
        ),
        ("postgresql+psycopg://u@db/lootbox", "postgresql+psycopg://u@db/lootbox"),
    ],
)
def test_database_urls_are_normalised_to_the_psycopg3_driver(url: str, expected: str) -> None:
    assert normalize_database_url(url) == expected


def test_a_paas_postgres_url_builds_a_psycopg_engine_without_connecting() -> None:
    engine = make_engine("postgres://u:pw@127.0.0.1:1/lootbox")
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        assert (engine.url.host, engine.url.port, engine.url.database) == (
            "127.0.0.1",
            1,
            "lootbox",
        )
    finally:
        engine.dispose()


# --- psycopg's server-side prepared statements ------------------------------------------------


def test_prepared_statements_are_off_unless_turned_on() -> None:
    assert Settings.from_env({}).database_prepared_statements is False


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("on", True),
        ("off", False),
        ("true", True),
        ("false", False),
        ("1", True),
        ("0", False),
        ("ON", True),
        (" Off ", False),
        ("True", True),
    ],
)
def test_prepared_statements_accept_on_off_true_false_one_zero(raw: str, expected: bool) -> None:
    settings = Settings.from_env({"DATABASE_PREPARED_STATEMENTS": raw})
    assert settings.database_prepared_statements is expected


def test_an_empty_prepared_statements_variable_keeps_the_default() -> None:
    settings = Settings.from_env({"DATABASE_PREPARED_STATEMENTS": ""})
    assert settings.database_prepared_statements is False


@pytest.mark.parametrize("raw", ["yes", "no", "enabled", "2", "-1", "onn", "t"])
def test_anything_else_for_prepared_statements_is_refused_with_the_accepted_values(
    raw: str,
) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"DATABASE_PREPARED_STATEMENTS": raw})
    message = str(error.value)
    assert message.startswith(f"DATABASE_PREPARED_STATEMENTS={raw!r}")
    assert "on or off" in message


def test_encryption_keys_must_be_fernet_keys() -> None:
    with pytest.raises(ConfigError, match="LOOTBOX_ENCRYPTION_KEYS"):
        Settings.from_env({**PRODUCTION, "LOOTBOX_ENCRYPTION_KEYS": "not-a-key"})


def test_several_encryption_keys_are_accepted_for_rotation() -> None:
    second = "nuplwiU4uTK-X5TS8m_TPv1X4aYDf_n9RhiXCG89jTw="
    keys = f"{PRODUCTION['LOOTBOX_ENCRYPTION_KEYS']},{second}"
    assert (
        Settings.from_env({**PRODUCTION, "LOOTBOX_ENCRYPTION_KEYS": keys}).encryption_keys == keys
    )
