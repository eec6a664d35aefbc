"""All configuration, read from the environment in one place.

``LOOTBOX_ENV=production`` refuses to start without DATABASE_URL, REDIS_URL, SECRET_KEY
and LOOTBOX_ENCRYPTION_KEYS. Everywhere, the app needs DATABASE_URL (PostgreSQL) and
REDIS_URL; ``dev.py`` sets both to its embedded servers when they are unset.
"""

from __future__ import annotations

import base64
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
METRICS_TOKEN = re.compile(r"[\x21-\x7e]{16,256}")
BOOLEANS = {"on": True, "true": True, "1": True, "off": False, "false": False, "0": False}
REDIS_KEY_PREFIX = re.compile(r"[\x21-\x7e]{0,99}[\x21-\x39\x3b-\x7e]")


class ConfigError(RuntimeError):
    pass


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    # PostgreSQL and Redis are required everywhere: with neither set, dev.py starts
    # embedded ones and sets these (lootbox/embedded.py).
    database_url: str = ""
    redis_url: str = ""
    # Where idempotency records live in Redis: ``<prefix>:<operatorId>:<key>``. Two
    # deployments sharing one Redis (staging and production, two test runs) each need
    # their own, or one would replay the other's answers.
    redis_key_prefix: str = "lootbox:idem"
    secret_key: str = "dev-only-secret"  # noqa: S105 - development default, refused in production
    port: int = 8080
    wallet_connect_timeout_seconds: float = 2.0
    wallet_read_timeout_seconds: float = 5.0
    idempotency_wait_seconds: float = 2.0
    idempotency_ttl_seconds: int = 7 * 24 * 3600
    idempotency_lease_seconds: float = 30.0
    movement_lease_seconds: float = 15.0
    max_content_length: int = 1024 * 1024
    signature_max_skew_seconds: int = 300
    # How long a worker trusts what it read about an API key and its operator: a revoked
    # key or a changed policy takes effect within this time (lootbox/services/credentials.py).
    auth_cache_seconds: float = 5.0
    database_pool_size: int = 5
    # psycopg's server-side prepared statements. Off: behind a transaction-mode pooler
    # (PgBouncer before 1.21) they collide between clients sharing a server connection.
    database_prepared_statements: bool = False
    log_level: str = "INFO"
    # Empty: /metrics is open, like the probes (keep it on the private network). Set: it
    # needs ``Authorization: Bearer <token>``.
    metrics_token: str = field(default="", repr=False)
    # Fernet keys, comma-separated: the first encrypts the secrets stored in the database,
    # all decrypt (lootbox/persistence/secrets.py). Empty in development: a generated key
    # under instance/. Required in production.
    encryption_keys: str = field(default="", repr=False)

    # environment variable -> field
    ENV_VARS = {
        "LOOTBOX_ENV": "env",
        "DATABASE_URL": "database_url",
        "REDIS_URL": "redis_url",
        "REDIS_KEY_PREFIX": "redis_key_prefix",
        "SECRET_KEY": "secret_key",
        "PORT": "port",
        "WALLET_CONNECT_TIMEOUT_SECONDS": "wallet_connect_timeout_seconds",
        "WALLET_READ_TIMEOUT_SECONDS": "wallet_read_timeout_seconds",
        "IDEMPOTENCY_WAIT_SECONDS": "idempotency_wait_seconds",
        "IDEMPOTENCY_TTL_SECONDS": "idempotency_ttl_seconds",
        "IDEMPOTENCY_LEASE_SECONDS": "idempotency_lease_seconds",
        "MOVEMENT_LEASE_SECONDS": "movement_lease_seconds",
        "MAX_CONTENT_LENGTH": "max_content_length",
        "SIGNATURE_MAX_SKEW_SECONDS": "signature_max_skew_seconds",
        "AUTH_CACHE_SECONDS": "auth_cache_seconds",
        "DATABASE_POOL_SIZE": "database_pool_size",
        "DATABASE_PREPARED_STATEMENTS": "database_prepared_statements",
        "LOG_LEVEL": "log_level",
        "METRICS_TOKEN": "metrics_token",
        "LOOTBOX_ENCRYPTION_KEYS": "encryption_keys",
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        environ = os.environ if environ is None else environ
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for var, name in cls.ENV_VARS.items():
            raw = environ.get(var)
            if raw is None or raw == "":
                continue
            values[name] = _parse(var, raw, str(types[name]))
        settings = replace(cls(), **{**values, **overrides})
        settings.validate(explicit=set(values) | set(overrides))
        return settings

    @property
    def production(self) -> bool:
        return self.env == "production"

    def validate(self, explicit: set[str]) -> None:
        if self.env not in ("development", "test", "production"):
            raise ConfigError(f"LOOTBOX_ENV must be development, test or production: {self.env}")
        if self.production:
            missing = [
                var
                for var, name in (
                    ("DATABASE_URL", "database_url"),
                    ("REDIS_URL", "redis_url"),
                    ("SECRET_KEY", "secret_key"),
                    ("LOOTBOX_ENCRYPTION_KEYS", "encryption_keys"),
                )
                if name not in explicit or not getattr(self, name)
            ]
            if missing:
                raise ConfigError(f"production needs {', '.join(missing)}")
        _in_range("PORT", self.port, 1, 65535)
        _in_range("MAX_CONTENT_LENGTH", self.max_content_length, 1, 1 << 30)
        _in_range("SIGNATURE_MAX_SKEW_SECONDS", self.signature_max_skew_seconds, 1, 3600)
        _in_range("AUTH_CACHE_SECONDS", self.auth_cache_seconds, 0, 300)
        _in_range("DATABASE_POOL_SIZE", self.database_pool_size, 1, 1000)
        _in_range("WALLET_CONNECT_TIMEOUT_SECONDS", self.wallet_connect_timeout_seconds, 0.001, 60)
        _in_range("WALLET_READ_TIMEOUT_SECONDS", self.wallet_read_timeout_seconds, 0.001, 300)
        _in_range("IDEMPOTENCY_WAIT_SECONDS", self.idempotency_wait_seconds, 0, 60)
        _in_range("IDEMPOTENCY_TTL_SECONDS", self.idempotency_ttl_seconds, 1, 10 * 365 * 86400)
        _in_range("IDEMPOTENCY_LEASE_SECONDS", self.idempotency_lease_seconds, 0.001, 3600)
        _in_range("MOVEMENT_LEASE_SECONDS", self.movement_lease_seconds, 0.001, 3600)
        if not REDIS_KEY_PREFIX.fullmatch(self.redis_key_prefix):
            raise ConfigError(
                "REDIS_KEY_PREFIX must be 1 to 100 printable ASCII characters without spaces,"
                " not ending in ':'"
            )
        if self.encryption_keys and not all(
            _is_fernet_key(key) for key in self.encryption_keys.split(",")
        ):
            raise ConfigError(
                "LOOTBOX_ENCRYPTION_KEYS must be comma-separated Fernet keys (32 url-safe"
                " base64-encoded bytes each: python -c 'from cryptography.fernet import"
                " Fernet; print(Fernet.generate_key().decode())')"
            )
        if self.metrics_token and not METRICS_TOKEN.fullmatch(self.metrics_token):
            # Guessable, or not something an HTTP header can carry intact.
            raise ConfigError(
                "METRICS_TOKEN must be 16 to 256 printable ASCII characters without spaces"
            )
        wallet_budget = self.wallet_connect_timeout_seconds + self.wallet_read_timeout_seconds
        if self.movement_lease_seconds <= wallet_budget:
            # A lease shorter than a wallet call would let a second attempt re-send while
            # the first is still waiting for its answer.
            raise ConfigError("MOVEMENT_LEASE_SECONDS must exceed the wallet timeouts")


def _is_fernet_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.strip().encode("ascii"))) == 32
    except (ValueError, UnicodeError):
        return False


def _in_range(var: str, value: float, low: float, high: float) -> None:
    # ``not low <= value <= high`` is also true for NaN, which compares false to everything.
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"{var} must be between {low} and {high}, got {value}")


def _parse(var: str, raw: str, type_name: str) -> Any:
    if type_name == "bool":
        switch = BOOLEANS.get(raw.strip().lower())
        if switch is None:
            raise ConfigError(f"{var}={raw!r} must be on or off (or true/false, 1/0)")
        return switch
    try:
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{var}={raw!r} is not a {type_name}") from exc
    return raw
